"""The local state store, liveness checks and the supervisor's restart policy."""

from __future__ import annotations

import os
import signal
import sqlite3
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bosun.local import supervisor
from bosun.local.runtime import show
from bosun.local.state import Record, Store
from tests.local.cli import fake_supervisor


def record(name: str = "w", **changes: object) -> Record:
    r = Record(name=name, model="m", file="w.yaml", port=1, command=["true"])
    for key, value in changes.items():
        setattr(r, key, value)
    return r


def test_records_round_trip_and_names_are_unique(tmp_path: Path) -> None:
    store = Store(tmp_path)
    seen: list[list[str]] = []

    def build(name: str) -> Callable[[list[Record]], Record]:
        def make(others: list[Record]) -> Record:
            seen.append([o.name for o in others])
            return record(name)

        return make

    assert store.insert_new("a", build("a")) is not None
    assert store.insert_new("a", build("a")) is None  # taken: build is not even called
    assert store.insert_new("b", build("b")) is not None and seen == [[], ["a"]]

    def refuse(others: list[Record]) -> Record:
        raise ValueError("no free device")

    with pytest.raises(ValueError, match="no free device"):
        store.insert_new("c", refuse)
    assert [r.name for r in store.all()] == ["a", "b"]
    store.delete("b")
    stored = store.get("a")
    assert stored is not None and stored.model == "m"
    updated = store.update("a", state="Ready", restarts=2)
    assert updated is not None and (updated.state, updated.restarts) == ("Ready", 2)
    assert Store(tmp_path).get("a") == updated  # another terminal sees the same row
    assert store.update("missing", state="Ready") is None
    store.delete("a")
    assert store.all() == []
    with sqlite3.connect(store.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_an_unreadable_state_file_is_kept_aside_not_deleted(tmp_path: Path) -> None:
    (tmp_path / "state.db").write_bytes(b"not a database, " * 100)
    store = Store(tmp_path)
    assert store.recovered is not None and store.recovered.read_bytes().startswith(b"not a")
    store.put(record())
    assert store.get("w") is not None


@pytest.fixture
def lookalike(tmp_path: Path) -> Iterator[int]:
    """The pid of a process whose command line is that of workspace w's supervisor."""
    with fake_supervisor(tmp_path, "w") as process:
        yield process.pid


def test_stale_entries_are_never_shown_as_ready(lookalike: int) -> None:
    gone = 2**22 + 12345  # above Linux's default pid_max: no such process
    shown = show(record(state="Ready", pid=gone, supervisor_pid=gone))
    assert shown.state == "Stopped" and "stale" in shown.note
    # Supervisor alive, server gone: it is being restarted, not Ready.
    shown = show(record(state="Ready", pid=gone, supervisor_pid=lookalike))
    assert shown.state == "Restarting" and shown.supervised
    # A live process that is not the supervisor of this workspace does not count.
    shown = show(record(state="Ready", pid=gone, supervisor_pid=os.getpid()))
    assert shown.state == "Stopped" and not shown.supervised


def test_entries_from_before_a_reboot_are_stale_even_if_their_pids_are_reused(
    lookalike: int,
) -> None:
    # A live pid: after a reboot, another process may well have it.
    shown = show(record(state="Ready", pid=lookalike, supervisor_pid=lookalike, boot="earlier"))
    assert shown.state == "Stopped" and "machine restarted" in shown.note
    assert show(record(state="Starting", supervisor_pid=lookalike)).state == "Starting"


def test_backoff_doubles_up_to_thirty_seconds() -> None:
    assert [supervisor.backoff(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]


def test_a_server_that_keeps_crashing_ends_failed_with_its_last_log_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(tmp_path)
    crash = [sys.executable, "-c", "import sys; print('boom: no model here'); sys.exit(3)"]
    store.put(record(command=crash))
    monkeypatch.setattr(supervisor, "backoff", lambda crashes: 0.0)
    handlers = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    try:
        assert supervisor.supervise(store, "w") == 1
    finally:
        signal.signal(signal.SIGTERM, handlers[0])
        signal.signal(signal.SIGINT, handlers[1])
    final = store.get("w")
    assert final is not None and final.state == "Failed"
    assert final.restarts == supervisor.MAX_CRASHES - 1
    assert "exited 5 times" in final.message and "boom: no model here" in final.message
