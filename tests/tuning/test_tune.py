"""`bosun tune` on the real SmolLM2, on CPU: a tuning Workspace under `bosun up` trains an
adapter whose loss falls, a killed job resumes from its last checkpoint, and bad input is
refused before any training with a message naming the field, file or line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.tuning.conftest import PRESET, bosun, tuning_workspace, write_data


def test_a_tuning_workspace_runs_locally_to_an_adapter(trained: dict[str, Any]) -> None:
    assert "is Running" in trained["up"].stdout and "bosun logs robot-tune" in trained["up"].stdout
    assert trained["states"][-1] == "Succeeded", trained["logs"]
    assert "Running" in trained["states"]
    adapter: Path = trained["adapter"]
    assert (adapter / "adapter_config.json").is_file()
    assert (adapter / "adapter_model.safetensors").is_file()
    summary = json.loads((adapter / "bosun-tuning.json").read_text(encoding="utf-8"))
    assert summary["steps"] == 8 and summary["examples"] == 16
    assert summary["final_loss"] < summary["first_loss"] / 5  # it learned the habit
    # The log shows the loss and the time left, step by step.
    assert "bosun tune: step 8/8 loss" in trained["logs"] and " left " in trained["logs"]
    conditions = {
        c["type"]: c["status"] for c in json.loads(trained["status"].stdout)["status"]["conditions"]
    }
    assert conditions["JobStarted"] == conditions["JobSucceeded"] == "True"


def test_a_killed_job_resumes_from_its_last_checkpoint(tmp_path: Path) -> None:
    data, output = write_data(tmp_path / "train.jsonl"), tmp_path / "adapter"
    command = [
        sys.executable, "-m", "bosun.cli.main", "tune", "--model", PRESET,
        "--data", str(data), "--output", str(output),
        "--set", "max_steps=6", "--set", "save_steps=2", "--set", "batch_size=4",
        "--set", "learning_rate=0.002",
    ]  # fmt: skip
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    checkpoint = output / "checkpoints" / "checkpoint-2" / "trainer_state.json"
    deadline = time.monotonic() + 300
    while not checkpoint.is_file() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert checkpoint.is_file(), "no checkpoint was written"
    os.kill(first.pid, signal.SIGKILL)
    first.communicate()
    assert not (output / "adapter_model.safetensors").exists()  # killed before the end
    second = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "resuming from checkpoint-" in second.stdout
    summary = json.loads((output / "bosun-tuning.json").read_text(encoding="utf-8"))
    assert summary["steps"] == 6
    assert "step 1/6" not in second.stdout  # the first steps were not run again
    # Another training into the same output is refused before it touches the checkpoints.
    other = [*command[:-1], "learning_rate=0.001"]  # another learning rate
    refused = subprocess.run(other, capture_output=True, text=True, timeout=300, check=False)
    assert refused.returncode == 2
    assert "holds the checkpoints of another training (its settings differ)" in refused.stderr
    assert (output / "checkpoints" / "checkpoint-6").is_dir()


def test_bad_input_is_refused_before_training(tmp_path: Path) -> None:
    data = write_data(tmp_path / "train.jsonl")
    with data.open("a") as f:
        f.write('{"messages": [{"role": "user", "content": "hi"}]}\n')
    base = [sys.executable, "-m", "bosun.cli.main", "tune", "--model", PRESET]

    def tune(*args: str) -> subprocess.CompletedProcess[str]:
        out = str(tmp_path / "out")
        return subprocess.run(
            [*base, "--output", out, *args], capture_output=True, text=True, timeout=300
        )

    bad = tune("--data", str(data))
    assert bad.returncode == 2 and f"{data}:17: no assistant message" in bad.stderr
    assert "step " not in bad.stdout
    good = str(write_data(tmp_path / "good.jsonl"))
    qlora = tune("--data", good, "--method", "qlora", "--device", "cpu")
    assert qlora.returncode == 2 and "qlora trains over a 4-bit base model" in qlora.stderr
    assert "on CPUs use method: lora" in qlora.stderr
    unknown = tune("--data", good, "--set", "learning_rat=0.1", "--set", "max_steps=0")
    assert unknown.returncode == 2
    assert "config.learning_rat: unknown key" in unknown.stderr
    assert "config.max_steps: Input should be greater than or equal to 1" in unknown.stderr
    missing = subprocess.run(
        [*base, "--data", good], capture_output=True, text=True, timeout=60, check=False
    )
    assert missing.returncode == 2 and "--output: needed without --config" in missing.stderr
    everything = bad.stderr + qlora.stderr + unknown.stderr + missing.stderr
    assert "Traceback" not in everything


def test_a_tuning_workspace_on_cluster_volumes_is_refused_locally(tmp_path: Path) -> None:
    ws = tuning_workspace(tmp_path / "tune.yaml", tmp_path / "d.jsonl", tmp_path / "out")
    text = ws.read_text(encoding="utf-8").replace(
        f"file://{tmp_path}/d.jsonl", "pvc://data/chats.jsonl"
    )
    ws.write_text(text, encoding="utf-8")
    refused = bosun(tmp_path / "home", "up", str(ws))
    assert refused.returncode == 2
    assert "pvc://data/chats.jsonl cannot be read on one machine" in refused.stderr


def test_bosun_up_refuses_bad_data_before_starting_the_job(tmp_path: Path) -> None:
    data = write_data(tmp_path / "train.jsonl")
    with data.open("a") as f:
        f.write('{"prompt": "no answer"}\n')
    ws = tuning_workspace(tmp_path / "tune.yaml", data, tmp_path / "out", loraR=0)
    home = tmp_path / "home"
    refused = bosun(home, "up", str(ws))
    assert refused.returncode == 2
    assert "config.loraR: Input should be greater than or equal to 1" in refused.stderr
    ws = tuning_workspace(tmp_path / "tune.yaml", data, tmp_path / "out")
    refused = bosun(home, "up", str(ws))
    assert refused.returncode == 2
    assert f"{data}:17: 'completion' must be a non-empty string" in refused.stderr
    assert json.loads(bosun(home, "ps", "-o", "json").stdout) == []  # nothing was started
