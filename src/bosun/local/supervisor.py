"""The supervisor of one local workspace: ``python -m bosun.local.supervisor NAME``.

A job (a fine-tuning Workspace) runs once: Running, then Succeeded or Failed. For a
server, it starts the workspace's server (its command is in the state store), appends its output to
the workspace's log, marks it Ready once ``/health`` answers 200, and restarts it when it
exits with exponential backoff (1, 2, 4, ... 30 s), counting restarts. After
``MAX_CRASHES`` crashes in a row without reaching Ready it marks the workspace Failed with
the last log lines and exits. SIGTERM (``bosun down``) stops the server and the
supervisor.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import FrameType
from typing import Any

from bosun.local.process import WORKSPACE_ENV, start_time
from bosun.local.state import Record, Store

__all__ = ["MAX_CRASHES", "backoff", "main", "run_job", "tail"]

MAX_CRASHES = 5
_STOP_GRACE = 30.0  # seconds a server gets to drain on SIGTERM


def backoff(crashes: int) -> float:
    """Seconds to wait before restart number ``crashes`` (1, 2, 4, ... at most 30)."""
    return float(min(2 ** max(crashes - 1, 0), 30))


def tail(path: Path, lines: int) -> list[str]:
    """The last ``lines`` lines of a file (empty if it does not exist)."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            text = f.read().decode(errors="replace")
    except FileNotFoundError:
        return []
    return text.splitlines()[-lines:] if lines > 0 else []


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
            return bool(r.status == 200)
    except OSError:
        return False


class _StopRequestedError(Exception):
    pass


def _on_term(_signum: int, _frame: FrameType | None) -> None:
    raise _StopRequestedError


def _stop(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is not None:
        return
    server.terminate()
    try:
        server.wait(_STOP_GRACE)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def _start(record: Record, log_path: Path) -> subprocess.Popen[bytes]:
    """The workspace's process, its output appended to its log."""
    with log_path.open("ab") as log:
        return subprocess.Popen(
            record.command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # Named in its environment: found from the process table if the store is lost.
            env={**os.environ, **record.env, WORKSPACE_ENV: record.name},
        )


def _update(store: Store, name: str, **changes: Any) -> None:
    """Record a change; a damaged state store never stops the supervising (the next
    `bosun` command sets the file aside and lists this workspace again from its
    processes, and later changes land in the new file)."""
    try:
        store.update(name, **changes)
    except sqlite3.DatabaseError as exc:
        print(
            f"bosun supervisor: the state store is unreadable ({exc}); supervising on", flush=True
        )


def run_job(store: Store, record: Record) -> int:
    """Run a job once: Running, then Succeeded or Failed (with its last log lines). Run
    again (``bosun up``), a tuning job resumes from its last checkpoint."""
    name, log_path = record.name, store.log_path(record.name)
    server: subprocess.Popen[bytes] | None = None
    try:
        server = _start(record, log_path)
        _update(
            store,
            name,
            pid=server.pid,
            pid_start=start_time(server.pid),
            started=time.time(),
            state="Running",
        )
        code = server.wait()
    except _StopRequestedError:
        if server is not None:
            _stop(server)
        _update(store, name, state="Stopped", pid=None)
        return 0
    if code == 0:
        _update(store, name, state="Succeeded", pid=None, message="")
        return 0
    last = "\n".join(tail(log_path, 20))
    _update(
        store,
        name,
        state="Failed",
        pid=None,
        message=f"the job exited with {code}; last lines:\n{last}",
    )
    return 1


def supervise(store: Store, name: str) -> int:
    record = store.get(name)
    if record is None:
        return 1
    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGINT, _on_term)
    _update(store, name, supervisor_pid=os.getpid(), supervisor_start=start_time(os.getpid()))
    if record.kind == "job":
        return run_job(store, record)
    log_path = store.log_path(name)
    crashes, restarts = 0, record.restarts
    server: subprocess.Popen[bytes] | None = None
    try:
        while True:
            server = _start(record, log_path)
            _update(
                store, name, pid=server.pid, pid_start=start_time(server.pid), started=time.time()
            )
            ready = False
            while server.poll() is None:
                if not ready and _healthy(record.port):
                    ready, crashes = True, 0
                    _update(store, name, state="Ready", message="")
                time.sleep(0.2)
            code = server.returncode
            crashes += 1
            if crashes >= MAX_CRASHES:
                last = "\n".join(tail(log_path, 20))
                _update(
                    store,
                    name,
                    state="Failed",
                    pid=None,
                    message=f"the server exited {crashes} times in a row (last code "
                    f"{code}); last log lines:\n{last}",
                )
                return 1
            restarts += 1  # this supervisor is the only writer of restarts
            _update(store, name, state="Restarting", pid=None, restarts=restarts)
            time.sleep(backoff(crashes))
            _update(store, name, state="Starting")
    except _StopRequestedError:
        if server is not None:
            _stop(server)
        _update(store, name, state="Stopped", pid=None)
        return 0


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m bosun.local.supervisor NAME")
    raise SystemExit(supervise(Store(), sys.argv[1]))


if __name__ == "__main__":
    main()
