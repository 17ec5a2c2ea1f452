"""The trained adapter served: beside the base model from one `bosun serve` (the official
openai client over HTTP), in one mixed batch, loaded and unloaded at run time, with its
strength applied, and in the transformers engine too."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from bosun.engine.client import GenerationRequest, SamplingParams
from bosun.engine.engine import BosunEngine, EngineOptions
from bosun.serving.app import ServeSettings
from tests.serving.server import running_server
from tests.tuning.conftest import PRESET, UNSEEN, bosun, write_workspace


def ask(client: openai.OpenAI, model: str, question: str) -> str:
    reply = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": question}], max_tokens=12, temperature=0
    )
    return reply.choices[0].message.content or ""


@pytest.fixture(scope="module")
def served(trained: dict[str, Any]) -> Iterator[tuple[str, BosunEngine]]:
    # Exact float32: the strength-0 check compares two answers token by token (and the
    # former dynamic int8 scaled activations per batch, so answers depended on the step).
    adapters = (("robot", str(trained["adapter"]), 1.0),)
    engine = BosunEngine(EngineOptions(model=PRESET, quantization="none", adapters=adapters))
    with running_server(engine, ServeSettings(runtime_lora=True)) as base:
        yield base, engine


def test_the_adapter_and_the_base_are_served_side_by_side(
    served: tuple[str, BosunEngine], trained: dict[str, Any]
) -> None:
    base, _ = served
    client = openai.OpenAI(base_url=f"{base}/v1", api_key="none")
    models = {m.id: m for m in client.models.list().data}
    assert set(models) == {PRESET, "robot"}
    assert (models["robot"].model_extra or {})["parent"] == PRESET
    for question in UNSEEN:
        assert ask(client, "robot", question).startswith("BEEP BOOP")
        assert "BEEP" not in ask(client, PRESET, question).upper()


def test_adapters_load_and_unload_without_a_restart(
    served: tuple[str, BosunEngine], trained: dict[str, Any]
) -> None:
    base, _ = served
    client = openai.OpenAI(base_url=f"{base}/v1", api_key="none")
    path = str(trained["adapter"])
    # At strength 0 the adapter changes nothing: the base model's answer.
    loaded = httpx.post(
        f"{base}/v1/load_lora_adapter",
        json={"lora_name": "robot-off", "lora_path": path, "strength": 0.0},
    )
    assert loaded.status_code == 200, loaded.text
    assert ask(client, "robot-off", UNSEEN[0]) == ask(client, PRESET, UNSEEN[0])
    again = httpx.post(
        f"{base}/v1/load_lora_adapter", json={"lora_name": "robot-off", "lora_path": path}
    )
    assert again.status_code == 400 and "already served" in again.json()["error"]["message"]
    missing = httpx.post(
        f"{base}/v1/load_lora_adapter", json={"lora_name": "x", "lora_path": "/nonexistent"}
    )
    assert missing.status_code == 400 and missing.json()["error"]["param"] == "lora_path"
    gone = httpx.post(f"{base}/v1/unload_lora_adapter", json={"lora_name": "robot-off"})
    assert gone.status_code == 200
    with pytest.raises(openai.NotFoundError):
        ask(client, "robot-off", UNSEEN[0])
    unknown = httpx.post(f"{base}/v1/unload_lora_adapter", json={"lora_name": "robot-off"})
    assert unknown.status_code == 404
    assert [m.id for m in client.models.list().data] == [PRESET, "robot"]


def answers(
    engine: BosunEngine, asks: list[tuple[str, str | None]], record: Any = None
) -> list[str]:
    """Start ``engine``, send every (question, adapter) at once, return the texts."""

    async def one(question: str, adapter: str | None) -> str:
        ids = engine.apply_chat_template([{"role": "user", "content": question}])
        params = SamplingParams(max_tokens=8, temperature=0)
        text = ""
        async for event in engine.generate(GenerationRequest(question, ids, params, adapter)):
            text += event.text
        return text

    async def run() -> list[str]:
        await engine.start()
        if record is not None:
            record(engine)
        try:
            return list(await asyncio.gather(*(one(q, a) for q, a in asks)))
        finally:
            await engine.shutdown()

    return asyncio.run(run())


def test_one_batch_mixes_the_base_and_the_adapter(trained: dict[str, Any]) -> None:
    steps: list[set[int]] = []

    def record(engine: BosunEngine) -> None:
        runner: Any = engine._runner
        original = runner.run

        def recording(items: list[Any]) -> Any:
            steps.append({i.adapter for i in items})
            return original(items)

        runner.run = recording

    adapters = (("robot", str(trained["adapter"]), 1.0),)
    # float32: the former dynamic int8's per-batch activation scales made an 8-step
    # adapter's answers depend on what shared the step ("== I am a robot" was seen).
    engine = BosunEngine(EngineOptions(model=PRESET, quantization="none", adapters=adapters))
    asks = [(q, a) for q in UNSEEN[:2] for a in (None, "robot")]
    texts = answers(engine, asks, record)
    assert [t.startswith("BEEP BOOP") for t in texts] == [False, True, False, True], texts
    assert any(len(adapters) == 2 for adapters in steps), steps  # base and adapter together


def test_the_transformers_engine_serves_an_adapter(trained: dict[str, Any]) -> None:
    adapters = (("robot", str(trained["adapter"]), 1.0),)
    options = EngineOptions(
        model=PRESET, backend="transformers", quantization="none", adapters=adapters
    )
    with_adapter, without = answers(BosunEngine(options), [(UNSEEN[1], "robot"), (UNSEEN[1], None)])
    assert with_adapter.startswith("BEEP BOOP") and not without.startswith("BEEP")


def test_a_bad_adapter_flag_is_refused(tmp_path: Path) -> None:
    serve = [sys.executable, "-m", "bosun.cli.main", "serve", "--model", PRESET]
    for value, message in [
        ("robot", "write NAME=PATH or NAME=PATH:STRENGTH"),
        (f"robot={tmp_path}", "is not a PEFT adapter directory"),
        (f"robot={tmp_path}:1.5", "strength 1.5 is not between 0 and 1"),
    ]:
        result = subprocess.run(
            [*serve, "--adapter", value], capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 2 and message in result.stderr, result.stderr
        assert "Traceback" not in result.stderr


def test_a_workspace_serves_its_adapters_under_bosun_up(
    trained: dict[str, Any], tmp_path: Path
) -> None:
    adapter = {"name": "robot", "source": {"uri": f"file://{trained['adapter']}"}}
    inference = {"preset": {"name": PRESET}, "adapters": [adapter]}
    file = write_workspace(tmp_path / "serve.yaml", "robot-serve", inference=inference)
    home = tmp_path / "home"
    try:
        up = bosun(home, "up", str(file))
        assert up.returncode == 0, up.stderr
        rows = {r["name"]: r for r in json.loads(bosun(home, "ps", "-o", "json").stdout)}
        # Asked directly, and through the local gateway, which knows the adapter's server.
        for endpoint in (rows["robot-serve"]["endpoint"], rows["gateway"]["endpoint"]):
            client = openai.OpenAI(base_url=endpoint, api_key="none")
            assert ask(client, "robot", UNSEEN[2]).startswith("BEEP BOOP")
        listed = {m.id: m for m in client.models.list().data}
        assert listed["robot"].model_extra and listed["robot"].model_extra["parent"] == PRESET
    finally:
        bosun(home, "down", "--all")
    elsewhere = file.read_text(encoding="utf-8").replace(
        f"file://{trained['adapter']}", "hf://org/robot"
    )
    file.write_text(elsewhere, encoding="utf-8")
    refused = bosun(home, "up", str(file))
    assert refused.returncode == 2
    assert "spec.inference.adapters[0].source.uri: hf://org/robot cannot be read" in refused.stderr
