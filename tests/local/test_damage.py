"""Local state under damage and reused pids: Bosun never signals a process it did not
start, never loses track of a supervisor it did start, and `bosun ps` never crashes on
a bad row (real processes, the real CLI, no model)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import pytest

from bosun.local.process import alive, command_line, running, signal_if_ours, start_time
from bosun.local.runtime import down
from bosun.local.state import DamagedRecordError, Record, Store
from tests.local.cli import bosun, fake_supervisor


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A process Bosun did not start."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield process
    process.kill()
    process.wait()


def gone(process: subprocess.Popen[bytes], timeout: float = 10) -> bool:
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        return False
    return True


def test_start_times_tell_a_reused_pid_from_ours(sleeper: subprocess.Popen[bytes]) -> None:
    started = start_time(sleeper.pid)
    assert started is not None
    assert alive(sleeper.pid, started) and alive(sleeper.pid)
    assert not alive(sleeper.pid, started + 1)
    assert not signal_if_ours(sleeper.pid, started + 1, signal.SIGTERM)
    assert sleeper.poll() is None  # not signalled
    assert not alive(None) and start_time(None) is None


def test_a_process_whose_command_line_is_not_the_recorded_one_is_not_ours(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    """Pid and start time match (a record written with the wrong pid, or a start time
    lost): the command line still tells, and nothing is signalled."""
    started = start_time(sleeper.pid)
    line = command_line(sleeper.pid)
    assert line is not None and line[-2:] == ["-c", "import time; time.sleep(120)"]
    assert alive(sleeper.pid, started, ["-c", "import time; time.sleep(120)"])
    assert not alive(sleeper.pid, started, ["-m", "bosun.cli.main", "serve"])
    store = Store(tmp_path)
    record = Record(name="w", model="m", file="w.yaml", port=1, command=["bosun", "serve"])
    record.pid, record.pid_start = sleeper.pid, started
    record.supervisor_pid, record.supervisor_start = sleeper.pid, started
    store.put(record)
    down(store, "w", grace=1)
    assert sleeper.poll() is None, "a process with another command line was signalled"


def test_down_never_signals_a_process_that_reused_a_recorded_pid(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    """The recorded supervisor and server exited; their pid now belongs to another
    program (here: the sleeper, with another start time)."""
    store = Store(tmp_path)
    started = start_time(sleeper.pid)
    assert started is not None
    stale = Record(name="w", model="m", file="w.yaml", port=1, command=["true"])
    stale.pid, stale.pid_start = sleeper.pid, started - 1
    stale.supervisor_pid, stale.supervisor_start = sleeper.pid, started - 1
    store.put(stale)
    assert down(store, "w", grace=1).state == "Stopped"
    assert sleeper.poll() is None, "an unrelated process was signalled"
    assert store.get("w") is None


def test_down_signals_the_recorded_process(tmp_path: Path) -> None:
    store = Store(tmp_path)
    with fake_supervisor(tmp_path, "w") as ours:
        record = Record(name="w", model="m", file="w.yaml", port=1, command=["true"])
        record.supervisor_pid, record.supervisor_start = ours.pid, start_time(ours.pid)
        store.put(record)
        down(store, "w", grace=10)
        assert gone(ours)


def damage(home: Path, name: str, data: str) -> None:
    with sqlite3.connect(home / "state.db") as db:
        db.execute("INSERT INTO workspaces (name, data) VALUES (?, ?)", (name, data))


@pytest.mark.parametrize(
    ("data", "why"),
    [
        ("{not json", "it is not JSON"),
        ("[1, 2]", "it is not a JSON object"),
        (json.dumps({"name": "x"}), "model: Field required"),
        (
            json.dumps({**asdict(Record("x", "m", "f", 1, [])), "port": "eighty"}),
            "port: Input should be a valid integer",
        ),
    ],
)
def test_a_damaged_row_is_named_and_can_be_removed(tmp_path: Path, data: str, why: str) -> None:
    store = Store(tmp_path)
    store.put(Record(name="good", model="m", file="w.yaml", port=1, command=["true"]))
    damage(tmp_path, "broken", data)
    with pytest.raises(DamagedRecordError, match=why):
        store.get("broken")
    assert [r.name for r in store.all()] == ["good"]
    listed = bosun(tmp_path, "ps", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    assert [r["name"] for r in json.loads(listed.stdout)] == ["good"]
    assert "broken: its stored row is damaged" in listed.stderr
    assert "Traceback" not in listed.stderr
    # Other commands name the damage in one line, never a traceback.
    shown = bosun(tmp_path, "status", "broken")
    assert shown.returncode == 2 and "Traceback" not in shown.stderr
    assert "broken: its stored row is damaged" in shown.stderr
    # Bosun up of another workspace is not blocked by it, nor are updates of good rows.
    assert store.update("good", restarts=1) is not None
    assert store.update("broken", restarts=1) is None
    removed = bosun(tmp_path, "down", "broken")
    assert removed.returncode == 0, removed.stderr
    assert bosun(tmp_path, "ps", "-o", "json").stderr == ""


def fake_server(home: Path, name: str, port: int) -> subprocess.Popen[bytes]:
    """A process that looks like the server of workspace ``name`` for ``home`` (whose
    supervisor died): named in its environment, as the supervisor starts servers."""
    code = "import signal, sys, time; signal.signal(signal.SIGTERM, lambda *a: sys.exit(0)); time.sleep(120)"
    return subprocess.Popen(
        [sys.executable, "-c", code, "serve", "--served-model-name", "m", "--port", str(port)],
        env={**os.environ, "BOSUN_HOME": str(home), "BOSUN_WORKSPACE": name},
    )


def test_processes_the_store_lost_are_listed_again_and_stopped(tmp_path: Path) -> None:
    """The state file was replaced (or its rows deleted): the running supervisor, and a
    server whose supervisor is gone, are found in the process table; `bosun ps` lists
    them again and `bosun down --all` stops them. Another home's processes are not ours."""
    Store(tmp_path)
    server = fake_server(tmp_path, "unsupervised", 65001)
    with (
        fake_supervisor(tmp_path, "lost") as orphan,
        fake_supervisor(tmp_path / "elsewhere", "theirs") as other_home,
    ):
        deadline = time.monotonic() + 10
        while len(running(tmp_path)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        found = running(tmp_path)
        assert set(found) == {"lost", "unsupervised"}  # not another home's
        assert found["lost"].supervisor is not None and found["lost"].server is None
        assert found["unsupervised"].server is not None
        listed = bosun(tmp_path, "ps", "-o", "json")
        assert listed.returncode == 0, listed.stderr
        assert "lost: runs but the state store had no row for it" in listed.stderr
        rows = {r["name"]: r for r in json.loads(listed.stdout)}
        assert set(rows) == {"lost", "unsupervised"}
        assert rows["unsupervised"]["pid"] == server.pid
        assert rows["unsupervised"]["port"] == 65001 and rows["unsupervised"]["model"] == "m"
        assert bosun(tmp_path, "ps").stderr == ""  # adopted once: rows now
        stopped = bosun(tmp_path, "down", "--all")
        assert stopped.returncode == 0, stopped.stderr
        assert gone(orphan) and gone(server)
        assert other_home.poll() is None
