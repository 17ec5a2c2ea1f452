"""The gateway in front of real servers (fake engines, each answering its own words), with
the official openai client: routing by model, streaming passed through, prompts sharing a
beginning meeting on one replica, unknown models, and a replica that cannot be reached."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, contextmanager

import httpx
import openai
import pytest

from bosun.engine.client import GenerationRequest, TokenEvent
from bosun.engine.fake import FakeEngine
from bosun.serving.state import ServeSettings
from tests.gateway.helpers import metric, running_gateway
from tests.serving.server import free_port, running_server


@pytest.fixture(scope="module")
def gateway() -> Iterator[openai.OpenAI]:
    with ExitStack() as stack:
        engines = [
            FakeEngine(name="fake-model", answer="from a"),
            FakeEngine(name="fake-model", answer="from b"),
            FakeEngine(name="other-model", answer="other"),
        ]
        replicas = [stack.enter_context(running_server(engine)) for engine in engines]
        replicas.append(f"http://127.0.0.1:{free_port()}")  # nothing listens there
        url = stack.enter_context(running_gateway(replicas))
        with openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0) as client:
            # Ready once its table has read every replica that answers (on a loaded
            # machine a replica may answer its first read late, and is read again).
            deadline = time.monotonic() + 60
            while (
                sum((m.model_extra or {}).get("replicas", 0) for m in client.models.list().data) < 3
            ):
                assert time.monotonic() < deadline, "the gateway never listed the replicas"
                time.sleep(0.1)
            yield client


def ask(client: openai.OpenAI, model: str, system: str, user: str) -> str:
    answer = client.chat.completions.create(
        model=model,
        messages=[{"role": "system", "content": system}, {"role": "user", "content": user}],
        max_tokens=4,
    )
    return answer.choices[0].message.content or ""


def test_every_model_behind_the_gateway_is_listed(gateway: openai.OpenAI) -> None:
    listed = {m.id: m for m in gateway.models.list().data}
    assert set(listed) == {"fake-model", "other-model"}
    assert listed["fake-model"].model_extra and listed["fake-model"].model_extra["replicas"] == 2


def test_requests_go_to_a_replica_of_their_model(gateway: openai.OpenAI) -> None:
    assert ask(gateway, "other-model", "hello", "there") == "other"
    assert ask(gateway, "fake-model", "hello", "there") in ("from a", "from b")


def test_prompts_that_begin_alike_meet_on_one_replica(gateway: openai.OpenAI) -> None:
    system = "You are the support assistant of tenant 17. " * 8
    answers = {ask(gateway, "fake-model", system, f"question {i}") for i in range(6)}
    assert len(answers) == 1
    tenants = {ask(gateway, "fake-model", f"tenant {i} " * 40, "q") for i in range(12)}
    assert tenants == {"from a", "from b"}  # other prefixes use the other replica too


def test_a_stream_is_passed_through_chunk_by_chunk(gateway: openai.OpenAI) -> None:
    stream = gateway.chat.completions.create(
        model="other-model",
        messages=[{"role": "user", "content": "hi"}],
        max_tokens=4,
        stream=True,
    )
    pieces = [
        c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content
    ]
    assert len(pieces) >= 1 and "".join(pieces) == "other"


def test_an_unknown_model_is_a_404_naming_the_closest(gateway: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError, match="did you mean 'fake-model'"):
        ask(gateway, "fake-modle", "s", "u")


def test_a_request_without_a_model_names_the_field(gateway: openai.OpenAI) -> None:
    reply = httpx.post(f"{gateway.base_url}chat/completions", json={"messages": []})
    assert reply.status_code == 400 and reply.json()["error"]["param"] == "model"
    reply = httpx.post(f"{gateway.base_url}chat/completions", content=b"{not json")
    assert reply.status_code == 400
    huge = b'{"model": "fake-model", "prompt": "' + b"x" * (17 * 2**20) + b'"}'
    reply = httpx.post(f"{gateway.base_url}completions", content=huge)
    assert reply.status_code == 413 and "exceeds" in reply.json()["error"]["message"]


@contextmanager
def two_replicas() -> Iterator[tuple[str, ExitStack, str, openai.OpenAI]]:
    """Replicas a and b of model "m" (answering "from a" and "from b"), and a gateway that
    read them once and will not look again: (a's URL, the stack that stops b, the
    gateway's URL, a client of it)."""
    with ExitStack() as stack:
        a = stack.enter_context(running_server(FakeEngine(name="m", answer="from a")))
        b_stack = stack.enter_context(ExitStack())
        b = b_stack.enter_context(running_server(FakeEngine(name="m", answer="from b")))
        url = stack.enter_context(running_gateway([a, b], refresh_seconds=3600))
        with openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0) as client:
            yield a, b_stack, url, client


def a_prompt_answered(client: openai.OpenAI, answer: str) -> str:
    """A system prompt whose requests the gateway sends to the replica answering ``answer``."""
    return next(
        f"tenant {i} " * 40
        for i in range(40)
        if ask(client, "m", f"tenant {i} " * 40, "q") == answer
    )


def test_a_replica_gone_since_the_last_refresh_is_retried_elsewhere() -> None:
    """The table still lists a replica that has just stopped: its request, not yet
    started, goes to the other replica instead of failing."""
    with two_replicas() as (a, b_stack, url, client):
        on_b = a_prompt_answered(client, "from b")
        b_stack.close()  # b stops; the gateway has not looked since
        assert ask(client, "m", on_b, "q") == "from a"
    with ExitStack() as stack:  # a gateway whose only reachable replica stops: a 503
        gone = [f"http://127.0.0.1:{free_port()}"]
        a_stack = stack.enter_context(ExitStack())
        a = a_stack.enter_context(running_server(FakeEngine(name="m", answer="from a")))
        url = stack.enter_context(running_gateway([a, *gone], refresh_seconds=3600))
        a_stack.close()
        reply = httpx.post(f"{url}/v1/completions", json={"model": "m", "prompt": "hi"})
        assert reply.status_code == 503 and reply.headers["retry-after"] == "2"
        assert "no replica of 'm' is reachable" in reply.json()["error"]["message"]


def test_its_metrics_count_requests_routing_and_retries() -> None:
    with two_replicas() as (a, b_stack, url, client):
        system = "the same long system prompt " * 12
        for i in range(3):
            ask(client, "m", system, f"q{i}")
        with pytest.raises(openai.NotFoundError):
            ask(client, f"no-such-model-{time.monotonic()}", "s", "u")
        total = "bosun_gateway_requests_total"
        assert metric(url, total, model="m", status="200") == 3
        assert metric(url, total, model="(unknown)", status="404") == 1  # not the name sent
        routed = "bosun_gateway_routing_decisions_total"
        assert metric(url, routed, model="m", reason="prefix", home="true") == 3
        assert metric(url, "bosun_gateway_in_flight", replica=a) == 0
        on_b = a_prompt_answered(client, "from b")
        b_stack.close()
        ask(client, "m", on_b, "q")
        assert metric(url, "bosun_gateway_retries_total", model="m") == 1


def test_a_client_that_goes_away_frees_its_replica() -> None:
    """The client closes a stream mid-answer: the gateway stops relaying and closes its
    request to the replica at once, instead of reading the answer to its end."""
    slow = FakeEngine(name="m", answer=" ".join(["word"] * 400), delay=0.05, max_model_len=1024)
    with running_server(slow) as replica, running_gateway([replica]) as url:
        body = {"model": "m", "prompt": "hi", "max_tokens": 400, "stream": True}
        with httpx.stream("POST", f"{url}/v1/completions", json=body, timeout=30) as reply:
            assert reply.status_code == 200  # 400 tokens, 50 ms each: 20 s in all
            lines = reply.iter_lines()  # kept: a dropped iterator closes the connection
            next(lines)
            assert metric(url, "bosun_gateway_in_flight", replica=replica) == 1
        began = time.monotonic()
        while metric(url, "bosun_gateway_in_flight", replica=replica) != 0:
            assert time.monotonic() - began < 5, "the replica's request was not closed"
            time.sleep(0.05)


class StallingEngine(FakeEngine):
    """Its first token comes at once, the next a minute later."""

    async def generate(self, request: GenerationRequest) -> AsyncIterator[TokenEvent]:
        async for event in super().generate(request):
            yield event
            if event.finish_reason is None:
                await asyncio.sleep(60)


def test_a_client_that_goes_away_between_tokens_frees_its_replica_at_once() -> None:
    """The replica is slow to its next token (a long prefill, a busy batch): a client that
    goes away is noticed then, not when that token comes a minute later."""
    no_warmup = ServeSettings(warmup=False)  # its warm-up would stall too
    with (
        running_server(StallingEngine(name="m"), no_warmup) as replica,
        running_gateway([replica]) as url,
    ):
        body = {"model": "m", "prompt": "hi", "max_tokens": 10, "stream": True}
        with httpx.stream("POST", f"{url}/v1/completions", json=body, timeout=30) as reply:
            lines = reply.iter_lines()
            next(lines)  # the first token
            assert metric(url, "bosun_gateway_in_flight", replica=replica) == 1
        began = time.monotonic()
        while metric(url, "bosun_gateway_in_flight", replica=replica) != 0:
            assert time.monotonic() - began < 30, "the relay waited for the next token"
            time.sleep(0.05)
        assert metric(url, "bosun_gateway_broken_streams_total", model="m") == 0
