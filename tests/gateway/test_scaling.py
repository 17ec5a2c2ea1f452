"""Scale from zero through the gateway, with a source whose one Workspace ("w", serving
model "m" on a real fake-engine server) starts when woken and stops when put to sleep:
the first request waits and is answered, a burst starts it once, it stops after its idle
time-out, and a full queue, a model that never starts and one that fails get clear
errors."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack

import httpx
import openai
import pytest

from bosun.engine.fake import FakeEngine
from bosun.gateway.sources import Workload
from tests.gateway.helpers import metric, running_gateway
from tests.serving.server import running_server


class ScalingSource:
    """Workspace "w" (model "m", adapter "m-tuned"), scaled to zero. Woken, its server
    starts after ``boot`` seconds, or never (``comes_up`` False), or it fails."""

    def __init__(
        self,
        idle_timeout: float = 3600.0,
        boot: float = 0.0,
        comes_up: bool = True,
        failure: str = "",
    ) -> None:
        self.idle_timeout, self.boot = idle_timeout, boot
        self.comes_up, self.failure = comes_up, failure
        self.state, self.url, self.message = "Idle", "", ""
        self.wakes = self.sleeps = self.reads = 0
        self.servers = ExitStack()

    async def workloads(self) -> list[Workload]:
        self.reads += 1
        models = {"m": None, "m-tuned": "m"}
        replicas = (self.url,) if self.url else ()
        return [Workload("w", replicas, self.state, models, True, self.idle_timeout, self.message)]

    async def wake(self, name: str) -> bool:
        if self.state != "Idle":
            return False
        self.wakes += 1
        self.state = "Starting"
        if self.failure:
            self.state, self.message = "Failed", self.failure
        elif self.comes_up:
            threading.Thread(target=self._start, daemon=True).start()
        return True

    def _start(self) -> None:
        time.sleep(self.boot)
        server = running_server(FakeEngine(name="m", answer="awake now"))
        self.url = self.servers.enter_context(server)
        self.state = "Ready"

    async def sleep(self, name: str) -> bool:
        self.sleeps += 1
        await asyncio.to_thread(self.servers.close)
        self.url, self.state = "", "Idle"
        return True

    async def close(self) -> None:
        return None


@pytest.fixture
def scaled() -> Iterator[Callable[..., tuple[str, ScalingSource]]]:
    """Make (a gateway's URL, its source), stopped after the test."""
    with ExitStack() as stack:

        def make(**options: object) -> tuple[str, ScalingSource]:
            settings = {
                k: options.pop(k) for k in ("max_queue", "cold_start_timeout") if k in options
            }
            source = ScalingSource(**options)  # type: ignore[arg-type]
            stack.callback(source.servers.close)
            url = stack.enter_context(
                running_gateway([], refresh_seconds=0.2, source=source, **settings)
            )
            return url, source

        yield make


def ask(url: str, model: str = "m") -> str:
    with openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0, timeout=60) as c:
        answer = c.completions.create(model=model, prompt="hello", max_tokens=2)
    return answer.choices[0].text


def until(check: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "it never happened"
        time.sleep(0.05)


def listed(url: str) -> dict[str, dict[str, object]]:
    return {m["id"]: m for m in httpx.get(f"{url}/v1/models").json()["data"]}


def test_the_first_request_starts_the_model_and_it_stops_when_idle(scaled: Callable) -> None:  # type: ignore[type-arg]
    url, source = scaled(boot=0.5, idle_timeout=1.0)
    models = listed(url)
    assert models["m"]["state"] == "idle" and models["m"]["replicas"] == 0
    assert models["m-tuned"]["parent"] == "m"  # its adapter, known before it runs

    # A burst while it is scaled to zero: one cold start, every request answered.
    answers: list[str] = []
    burst = [threading.Thread(target=lambda: answers.append(ask(url))) for _ in range(5)]
    for thread in burst:
        thread.start()
    until(lambda: metric(url, "bosun_gateway_queue_depth", model="m") == 5)
    for thread in burst:
        thread.join()
    assert answers == ["awake now"] * 5 and source.wakes == 1
    assert metric(url, "bosun_gateway_cold_starts_total", model="m") == 1
    assert metric(url, "bosun_gateway_cold_start_seconds_count", model="m") == 1
    assert metric(url, "bosun_gateway_queue_seconds_count", model="m") == 5
    assert metric(url, "bosun_gateway_queue_seconds_sum", model="m") >= 5 * 0.5  # its boot
    assert metric(url, "bosun_gateway_queue_depth", model="m") == 0
    assert listed(url)["m"]["state"] == "ready"

    # Idle for its time-out: scaled to zero, and the next request starts it again.
    until(lambda: source.state == "Idle")
    assert source.sleeps == 1 and metric(url, "bosun_gateway_scale_downs_total", model="m") == 1
    until(lambda: listed(url)["m"]["state"] == "idle")
    assert ask(url) == "awake now" and source.wakes == 2
    # Its Workspace names an adapter that its server, up now, does not serve: no waiting.
    with pytest.raises(openai.NotFoundError, match="'m-tuned' is not served by w"):
        ask(url, "m-tuned")


def test_a_model_in_use_is_not_scaled_down(scaled: Callable) -> None:  # type: ignore[type-arg]
    url, source = scaled(idle_timeout=1.0)
    ask(url)
    for _ in range(6):  # a request every half second, for three seconds
        assert ask(url) == "awake now"
        time.sleep(0.5)
    assert source.sleeps == 0 and source.wakes == 1


def test_a_full_queue_is_refused_and_a_model_that_never_starts_times_out(
    scaled: Callable,  # type: ignore[type-arg]
) -> None:
    url, source = scaled(comes_up=False, max_queue=1, cold_start_timeout=2)
    first: list[httpx.Response] = []
    waiting = threading.Thread(
        target=lambda: first.append(
            httpx.post(f"{url}/v1/completions", json={"model": "m", "prompt": "hi"}, timeout=30)
        )
    )
    waiting.start()
    until(lambda: metric(url, "bosun_gateway_queue_depth", model="m") == 1)
    full = httpx.post(f"{url}/v1/completions", json={"model": "m", "prompt": "hi"})
    assert full.status_code == 429 and full.headers["retry-after"] == "2"
    assert "1 requests already wait for 'm' to start" in full.json()["error"]["message"]
    waiting.join()
    (late,) = first
    assert late.status_code == 503 and late.headers["retry-after"] == "2"
    assert "'m' did not start within 2 s (workspace w" in late.json()["error"]["message"]
    assert source.wakes == 1


def test_a_model_that_fails_to_start_says_why(scaled: Callable) -> None:  # type: ignore[type-arg]
    url, _ = scaled(failure="the weights do not load: disk full")
    reply = httpx.post(f"{url}/v1/completions", json={"model": "m", "prompt": "hi"}, timeout=30)
    assert reply.status_code == 503
    assert (
        "'m' failed to start (w: the weights do not load: disk full)"
        in (reply.json()["error"]["message"])
    )
    unknown = httpx.post(f"{url}/v1/completions", json={"model": "m-tund", "prompt": "hi"})
    assert unknown.status_code == 404
    assert "did you mean 'm-tuned'" in unknown.json()["error"]["message"]


def test_waiting_and_unknown_models_do_not_make_it_read_the_source_back_to_back(
    scaled: Callable,  # type: ignore[type-arg]
) -> None:
    """A request waits 2 s for a model that never starts while others name unknown
    models: the source is read every 0.25 s at most, not as fast as it answers."""
    url, source = scaled(comes_up=False, cold_start_timeout=2)
    waiting = threading.Thread(
        target=lambda: httpx.post(
            f"{url}/v1/completions", json={"model": "m", "prompt": "hi"}, timeout=30
        )
    )
    before = source.reads
    began = time.monotonic()
    waiting.start()
    while waiting.is_alive():
        httpx.post(f"{url}/v1/completions", json={"model": "nobody", "prompt": "hi"})
    seconds = time.monotonic() - began
    assert source.reads - before <= seconds / 0.25 + 2
