"""Hostile input at the door: the API key on every route, checked before the body; the
body limit; a body that never arrives; prompts the model cannot read (real server,
fake engine)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlparse

import httpx
import openai
import pytest

from bosun.engine.fake import FAKE_VOCAB_SIZE, FakeEngine
from bosun.serving.app import ServeSettings
from bosun.serving.guard import GuardSettings, RequestGuard
from tests.serving.server import running_server

MODEL = "fake-model"
KEY = "sekret"


@pytest.fixture(scope="module")
def guarded() -> Iterator[str]:
    settings = ServeSettings(api_key=KEY, max_request_bytes=64 * 1024)
    with running_server(FakeEngine(max_model_len=256), settings) as url:
        yield url


@pytest.fixture(scope="module")
def open_metrics() -> Iterator[str]:
    with running_server(FakeEngine(), ServeSettings(api_key=KEY, public_metrics=True)) as url:
        yield url


ROUTES = [
    ("GET", "/v1/models"),
    ("GET", "/metrics"),
    ("GET", "/docs"),
    ("GET", "/redoc"),
    ("GET", "/openapi.json"),
    ("POST", "/v1/chat/completions"),
    ("POST", "/v1/completions"),
    ("POST", "/v1/embeddings"),
    ("POST", "/v1/load_lora_adapter"),
    ("POST", "/v1/unload_lora_adapter"),
    ("GET", "/no/such/route"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Bearer {KEY}x", KEY, f"bearer {KEY}"])
def test_every_route_but_health_needs_the_key(
    guarded: str, method: str, path: str, header: str | None
) -> None:
    headers = {"authorization": header} if header else {}
    r = httpx.request(method, guarded + path, headers=headers, json={"model": MODEL})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "invalid_api_key"
    assert r.headers["www-authenticate"] == "Bearer"


def test_with_the_key_the_routes_answer(guarded: str) -> None:
    auth = {"authorization": f"Bearer {KEY}"}
    assert httpx.get(f"{guarded}/metrics", headers=auth).status_code == 200
    assert httpx.get(f"{guarded}/openapi.json", headers=auth).status_code == 200
    assert httpx.get(f"{guarded}/health").status_code == 200  # probes need no key
    client = openai.OpenAI(base_url=f"{guarded}/v1", api_key=KEY, max_retries=0)
    assert client.completions.create(model=MODEL, prompt="hello", max_tokens=2).choices


def test_public_metrics_opens_metrics_only(open_metrics: str) -> None:
    assert httpx.get(f"{open_metrics}/metrics").status_code == 200
    assert httpx.get(f"{open_metrics}/v1/models").status_code == 401


def test_a_bad_body_without_the_key_is_401_not_400(guarded: str) -> None:
    """The key is checked before the body is parsed: an anonymous client learns nothing
    about what the server would accept."""
    r = httpx.post(f"{guarded}/v1/completions", content=b"{not json")
    assert r.status_code == 401


def test_an_oversized_body_is_refused_by_its_length(guarded: str) -> None:
    auth = {"authorization": f"Bearer {KEY}"}
    big = {"model": MODEL, "prompt": "x " * 40_000, "max_tokens": 1}
    r = httpx.post(f"{guarded}/v1/completions", json=big, headers=auth)
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "request_too_large"
    assert "65536 bytes" in r.json()["error"]["message"]


def test_an_oversized_chunked_body_is_refused_as_it_arrives(guarded: str) -> None:
    auth = {"authorization": f"Bearer {KEY}"}

    def chunks() -> Iterator[bytes]:
        yield b'{"model": "fake-model", "prompt": "'
        for _ in range(100):
            yield b"x " * 1000
        yield b'"}'

    r = httpx.post(f"{guarded}/v1/completions", content=chunks(), headers=auth)
    assert r.status_code == 413


def test_a_body_that_fits_in_chunks_is_served(guarded: str) -> None:
    auth = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}

    def chunks() -> Iterator[bytes]:
        yield b'{"model": "fake-model", '
        yield b'"prompt": "hello there", "max_tokens": 2}'

    r = httpx.post(f"{guarded}/v1/completions", content=chunks(), headers=auth)
    assert r.status_code == 200, r.text
    assert r.json()["usage"]["completion_tokens"] == 2


def test_a_body_that_never_arrives_does_not_hold_the_health_probe(guarded: str) -> None:
    """A client announces 1,000 bytes and sends 10: the probe answers meanwhile."""
    url = urlparse(guarded)
    with socket.create_connection((url.hostname, url.port)) as s:
        s.sendall(
            b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sekret\r\n"
            b'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"model": '
        )
        r = httpx.get(f"{guarded}/health", timeout=5)
        assert r.status_code == 200


def test_the_body_time_limit_answers_408() -> None:
    """On the middleware itself, whose time limit a test can shorten."""
    sent: list[dict[str, object]] = []

    async def app(_: object, __: object, ___: object) -> None:
        raise AssertionError("the route ran")

    async def receive() -> dict[str, object]:
        await asyncio.sleep(10)
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    guard = RequestGuard(app, GuardSettings(body_timeout=0.05))
    scope = {"type": "http", "path": "/v1/completions", "headers": [(b"content-length", b"9")]}
    asyncio.run(guard(scope, receive, send))  # type: ignore[arg-type]
    assert sent[0]["status"] == 408


# --------------------------------------------------------------------------- prompts


@pytest.fixture(scope="module")
def plain() -> Iterator[str]:
    with running_server(FakeEngine(max_model_len=256, delay=0.02)) as url:
        yield url


@pytest.mark.parametrize(
    ("prompt", "message"),
    [
        ([FAKE_VOCAB_SIZE], f"prompt: token id {FAKE_VOCAB_SIZE} is not in the model's vocabulary"),
        ([-1], "prompt: token id -1 is not in the model's vocabulary"),
        ([[5], [1_000_000]], "prompt: token id 1000000 is not in the model's vocabulary"),
        ("", "prompt: must not be empty"),
        ([""], "prompt: must not be empty"),
        ([[1], []], "prompt: must not be empty"),
        ([], "prompt: must not be empty"),
    ],
)
def test_prompts_the_model_cannot_read_are_400(plain: str, prompt: object, message: str) -> None:
    r = httpx.post(
        f"{plain}/v1/completions", json={"model": MODEL, "prompt": prompt, "max_tokens": 2}
    )
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["message"].startswith(message) and error["param"] == "prompt"


def test_a_bad_prompt_beside_running_streams_leaves_them_intact(plain: str) -> None:
    client = openai.OpenAI(base_url=f"{plain}/v1", api_key="x", max_retries=0)
    finished: list[str | None] = []

    def stream() -> None:
        reason = None
        for chunk in client.completions.create(
            model=MODEL, prompt="tell me", max_tokens=30, stream=True
        ):
            reason = chunk.choices[0].finish_reason or reason
        finished.append(reason)

    threads = [threading.Thread(target=stream) for _ in range(8)]
    for t in threads:
        t.start()
    for bad in ([1_000_000], [-1], ""):
        r = httpx.post(f"{plain}/v1/completions", json={"model": MODEL, "prompt": bad})
        assert r.status_code == 400
    for t in threads:
        t.join()
    assert finished == ["length"] * 8


# --------------------------------------------------------------------------- faults


class FaultyEngine(FakeEngine):
    """Raises a plain bug on one word: a real server fault."""

    def tokenize(self, text: str) -> list[int]:
        if "boom" in text:
            raise RuntimeError("a bug")
        return super().tokenize(text)


def test_a_server_fault_is_a_500_in_openai_shape_and_the_connection_stays_usable() -> None:
    with running_server(FaultyEngine()) as url, httpx.Client(base_url=url) as client:
        bad = client.post("/v1/completions", json={"model": MODEL, "prompt": "boom"})
        assert bad.status_code == 500
        assert bad.json()["error"] == {
            "message": "internal server error",
            "type": "server_error",
            "param": None,
            "code": None,
        }
        good = client.post(
            "/v1/completions", json={"model": MODEL, "prompt": "hi", "max_tokens": 2}
        )
        assert good.status_code == 200


def test_a_refused_request_leaves_none_of_its_choices_running() -> None:
    """12 choices (3 prompts x n=4) meet room for 2 running and 2 waiting: 429, and the
    choices admitted before the refusal are cancelled, not left generating for nobody."""
    engine = FakeEngine(max_running=2, max_waiting=2, delay=0.05)
    with running_server(engine) as url:
        r = httpx.post(
            f"{url}/v1/completions",
            json={"model": MODEL, "prompt": ["a", "b", "c"], "n": 4, "max_tokens": 200},
            timeout=60,
        )
        assert r.status_code == 429
        deadline = time.monotonic() + 60
        while (engine.stats().running or engine.stats().waiting) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert engine.stats().running == 0 and engine.stats().waiting == 0
        # Those that ran were cancelled (200 tokens at 50 ms would take 10 s each).
        assert engine.cancelled and all(rid.startswith("cmpl-") for rid in engine.cancelled)


# --------------------------------------------------------------------------- connections


def test_idle_and_trickling_connections_are_closed_by_the_header_time_out() -> None:
    """100 sockets that send nothing, and 100 that send half a request line: each is
    closed once the (here shortened) header time-out passes; requests keep working."""
    with running_server(FakeEngine(), header_timeout=0.5) as url:
        host = urlparse(url)
        sockets = []
        for i in range(200):
            s = socket.create_connection((host.hostname, host.port))
            if i % 2:
                s.sendall(b"GET /v1/models HTTP/1.1\r\nHost: x")
            sockets.append(s)
        assert httpx.get(f"{url}/health").status_code == 200
        closed = 0
        deadline = time.monotonic() + 30  # for all of them together: a regression fails fast
        for s in sockets:
            s.settimeout(max(0.05, deadline - time.monotonic()))
            with s, contextlib.suppress(TimeoutError):
                closed += s.recv(1) == b""  # the server closed it
        assert closed == 200


def test_a_keep_alive_connection_serves_several_requests() -> None:
    with running_server(FakeEngine(), header_timeout=0.5) as url, httpx.Client() as client:
        for _ in range(3):
            assert client.get(f"{url}/v1/models").status_code == 200


def test_a_client_that_leaves_is_not_an_error() -> None:
    """A non-streaming request whose client gives up: its generation is cancelled, the
    log says so at INFO, and nothing is logged as an error."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep(level=logging.INFO)
    loggers = [logging.getLogger(n) for n in ("uvicorn.error", "bosun.serving")]
    engine = FakeEngine(delay=0.05)
    with running_server(engine) as url:
        for logger in loggers:
            logger.addHandler(handler)
            logger.setLevel(logging.INFO)
        try:
            with contextlib.suppress(httpx.TimeoutException):
                httpx.post(
                    f"{url}/v1/completions",
                    json={"model": MODEL, "prompt": "hi", "max_tokens": 100},
                    timeout=0.5,
                )
            deadline = time.monotonic() + 30
            while not any("disconnected" in r.getMessage() for r in records):
                assert time.monotonic() < deadline, [r.getMessage() for r in records]
                time.sleep(0.05)
        finally:
            for logger in loggers:
                logger.removeHandler(handler)
    assert not [r.getMessage() for r in records if r.levelno >= logging.ERROR]
    assert engine.cancelled
