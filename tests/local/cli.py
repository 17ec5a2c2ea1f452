"""The real `bosun` CLI in a subprocess, with its own $BOSUN_HOME; processes that look
like Bosun's."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bosun.local.process import alive

_GATEWAY_PORTS: dict[Path, int] = {}


def environment(home: Path) -> dict[str, str]:
    """The environment of a `bosun` command for ``home``: its state there, and its local
    gateway on a port of its own (not 8090, which a user's gateway may hold)."""
    if home not in _GATEWAY_PORTS:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            _GATEWAY_PORTS[home] = int(s.getsockname()[1])
    return {**os.environ, "BOSUN_HOME": str(home), "BOSUN_GATEWAY_PORT": str(_GATEWAY_PORTS[home])}


def gateway_port(home: Path) -> int:
    return int(environment(home)["BOSUN_GATEWAY_PORT"])


def bosun(home: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bosun.cli.main", *args],
        env=environment(home),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@contextmanager
def fake_supervisor(home: Path, name: str) -> Iterator[subprocess.Popen[bytes]]:
    """A process that looks like the Bosun supervisor of workspace ``name`` for ``home``
    (its command line and environment), and exits on SIGTERM as the real one does."""
    code = (
        "import signal, sys, time; "
        "signal.signal(signal.SIGTERM, lambda *a: sys.exit(0)); time.sleep(120)"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code, "bosun.local.supervisor", name],
        env={**os.environ, "BOSUN_HOME": str(home)},
    )
    # Yield it once the process table shows it as a supervisor (a full run once saw one
    # not yet recognised, or gone, right after it was started).
    deadline = time.monotonic() + 10
    while not alive(process.pid, None, ("bosun.local.supervisor", name)):
        assert process.poll() is None, f"the fake supervisor exited: {process.returncode}"
        assert time.monotonic() < deadline, "the fake supervisor never showed as one"
        time.sleep(0.02)
    try:
        yield process
    finally:
        process.kill()
        process.wait()
