"""The OpenAI surface, with the official openai client against a real server (fake engine)."""

from __future__ import annotations

import base64
import json
import re
import struct
import threading
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from bosun.engine.fake import FakeEngine
from bosun.serving.app import ServeSettings
from tests.serving.server import running_server

MODEL = "fake-model"


@pytest.fixture(scope="module")
def engine() -> FakeEngine:
    return FakeEngine(max_model_len=256)


@pytest.fixture(scope="module")
def base(engine: FakeEngine) -> Iterator[str]:
    with running_server(engine) as url:
        yield url


@pytest.fixture
def client(base: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0)


def chat(client: openai.OpenAI, **kw: object) -> object:
    return client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "hello there"}],
        **kw,  # type: ignore[arg-type]
    )


def test_models(client: openai.OpenAI) -> None:
    (model,) = client.models.list().data
    assert model.id == MODEL and model.object == "model"


def test_chat_completion_and_usage(client: openai.OpenAI) -> None:
    response = chat(client, max_tokens=5)
    choice = response.choices[0]  # type: ignore[attr-defined]
    assert choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason == "length"
    usage = response.usage  # type: ignore[attr-defined]
    assert usage.completion_tokens == 5
    assert usage.total_tokens == usage.prompt_tokens + 5
    assert usage.prompt_tokens_details.cached_tokens == 0


def test_text_completion_with_echo_and_logprobs(client: openai.OpenAI) -> None:
    response = client.completions.create(
        model=MODEL, prompt="say something", max_tokens=3, echo=True, logprobs=2
    )
    choice = response.choices[0]
    assert choice.text.startswith("say something")
    assert choice.logprobs is not None and len(choice.logprobs.tokens) == 3
    assert all(len(top) == 2 for top in choice.logprobs.top_logprobs)


def test_streaming_is_well_formed(client: openai.OpenAI) -> None:
    stream = chat(client, max_tokens=4, stream=True, stream_options={"include_usage": True})
    chunks = list(stream)  # type: ignore[call-overload]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    content_chunks = [c for c in chunks if c.choices]
    assert all(c.choices[0].finish_reason is None for c in content_chunks[:-1])
    assert content_chunks[-1].choices[0].finish_reason == "length"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 4
    assert all(c.usage is None for c in chunks[:-1])


def test_raw_sse_ends_with_done(base: str) -> None:
    with httpx.stream(
        "POST",
        f"{base}/v1/completions",
        json={"model": MODEL, "prompt": "x", "max_tokens": 2, "stream": True},
    ) as r:
        body = "".join(r.iter_text())
    events = [e for e in body.split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"
    assert json.loads(events[0][6:])["object"] == "text_completion"


def test_n_choices_and_seeds(client: openai.OpenAI) -> None:
    response = chat(client, max_tokens=6, n=3, seed=7)
    texts = [c.message.content for c in response.choices]  # type: ignore[attr-defined]
    assert [c.index for c in response.choices] == [0, 1, 2]  # type: ignore[attr-defined]
    again = chat(client, max_tokens=6, n=3, seed=7)
    assert [c.message.content for c in again.choices] == texts  # type: ignore[attr-defined]


def test_stop_across_tokens(client: openai.OpenAI) -> None:
    response = chat(client, max_tokens=20, temperature=0, stop=["fox jum"])
    choice = response.choices[0]  # type: ignore[attr-defined]
    assert choice.message.content == "The quick brown "
    assert choice.finish_reason == "stop"


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"temperature": 3}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"n": 0}, "n"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"presence_penalty": 9}, "presence_penalty"),
        ({"top_logprobs": 50, "logprobs": True}, "top_logprobs"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"logit_bias": {"12": 500}}, "logit_bias"),
    ],
)
def test_out_of_range_values_name_the_parameter(
    client: openai.OpenAI, kwargs: dict[str, object], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        chat(client, **kwargs)
    assert info.value.status_code == 400
    assert info.value.body["param"] == param  # type: ignore[index]


def test_prompt_longer_than_the_context_says_both_numbers(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(model=MODEL, prompt="word " * 300)
    assert "maximum context length is 256 tokens" in str(info.value)
    assert "300 input tokens" in str(info.value)
    with pytest.raises(openai.BadRequestError) as info:
        chat(client, max_tokens=1000)
    assert info.value.body["param"] == "max_tokens"  # type: ignore[index]


def test_unknown_model_is_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    assert info.value.body["code"] == "model_not_found"  # type: ignore[index]


def test_malformed_json_and_missing_fields(base: str) -> None:
    r = httpx.post(
        f"{base}/v1/chat/completions",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
    r = httpx.post(f"{base}/v1/chat/completions", json={"model": MODEL})
    assert r.status_code == 400 and r.json()["error"]["param"] == "messages"


def test_embeddings_on_a_generative_model_is_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(model=MODEL, input="x")
    assert "not an embedding model" in str(info.value)


def test_metrics_count_tokens(base: str, client: openai.OpenAI) -> None:
    def value(name: str) -> float:
        text = httpx.get(f"{base}/metrics").text
        match = re.search(rf'^{re.escape(name)}{{model_name="{MODEL}"}} (\S+)$', text, re.M)
        return float(match.group(1)) if match else 0.0

    before = value("vllm:generation_tokens_total")
    chat(client, max_tokens=7)
    assert value("vllm:generation_tokens_total") == before + 7
    text = httpx.get(f"{base}/metrics").text
    for name in (
        "vllm:num_requests_running",
        "vllm:num_requests_waiting",
        "vllm:kv_cache_usage_perc",
        "vllm:time_to_first_token_seconds_bucket",
        "vllm:e2e_request_latency_seconds_count",
        "vllm:request_success_total",
    ):
        assert name in text


def test_api_key_is_enforced() -> None:
    with running_server(FakeEngine(), ServeSettings(api_key="sekret")) as url:
        good = openai.OpenAI(base_url=f"{url}/v1", api_key="sekret", max_retries=0)
        assert good.models.list().data
        bad = openai.OpenAI(base_url=f"{url}/v1", api_key="wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            bad.models.list()
        assert httpx.get(f"{url}/health").status_code == 200  # probes need no key


def test_full_queue_is_429_with_retry_after() -> None:
    busy = FakeEngine(max_running=1, max_waiting=0, delay=0.05)
    with running_server(busy) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)
        holder = threading.Thread(
            target=lambda: client.completions.create(model=MODEL, prompt="x", max_tokens=40)
        )
        holder.start()
        deadline = time.monotonic() + 10
        while busy.stats().running < 1 and time.monotonic() < deadline:
            time.sleep(0.01)  # until the first request holds the only slot
        r = httpx.post(
            f"{url}/v1/completions", json={"model": MODEL, "prompt": "y", "max_tokens": 2}
        )
        assert r.status_code == 429 and r.headers["retry-after"] == "1"
        assert r.json()["error"]["type"] == "rate_limit_error"
        holder.join()


def test_a_disconnected_stream_is_cancelled() -> None:
    slow = FakeEngine(delay=0.05)
    with running_server(slow) as url:
        with httpx.stream(
            "POST",
            f"{url}/v1/completions",
            json={"model": MODEL, "prompt": "x", "max_tokens": 200, "stream": True},
        ) as r:
            for line in r.iter_lines():
                if line.startswith("data: {"):
                    break  # read one chunk, then hang up
        deadline = time.monotonic() + 5
        while not slow.cancelled and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(slow.cancelled) == 1
        assert slow.stats().running == 0


class EmbeddingFake(FakeEngine):
    """The fake with an embedding: three numbers from the text, exact in float32."""

    async def embed(self, texts: list[str]) -> list[list[float]]:
        return [[0.5, -1.25, float(len(t))] for t in texts]


def test_embeddings_in_floats_and_in_base64() -> None:
    """OpenAI's client asks for base64 unless told otherwise and decodes float32 bytes."""
    with running_server(EmbeddingFake()) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        got = client.embeddings.create(model=MODEL, input=["ab", "abcd"])
        assert [d.embedding for d in got.data] == [[0.5, -1.25, 2.0], [0.5, -1.25, 4.0]]
        raw = httpx.post(
            f"{url}/v1/embeddings",
            json={"model": MODEL, "input": "abc", "encoding_format": "base64"},
        ).json()
        encoded = raw["data"][0]["embedding"]
        assert struct.unpack("<3f", base64.b64decode(encoded)) == (0.5, -1.25, 3.0)
        plain = httpx.post(f"{url}/v1/embeddings", json={"model": MODEL, "input": "abc"}).json()
        assert plain["data"][0]["embedding"] == [0.5, -1.25, 3.0]


def test_runtime_adapter_loading_is_off_unless_allowed(base: str) -> None:
    """Loading an adapter makes the server read a local directory: any client could
    probe the file system, so it takes --allow-runtime-lora (vLLM gates it too)."""
    for route, body in (
        ("load_lora_adapter", {"lora_name": "x", "lora_path": "/etc"}),
        ("unload_lora_adapter", {"lora_name": "x"}),
    ):
        r = httpx.post(f"{base}/v1/{route}", json=body)
        assert r.status_code == 403, r.text
        assert "--allow-runtime-lora" in r.json()["error"]["message"]
    assert [m["id"] for m in httpx.get(f"{base}/v1/models").json()["data"]] == [MODEL]
