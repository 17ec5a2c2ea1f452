"""A `bosun` command as a process of its own, for the tests: started, waited for until its
``/health`` answers, and stopped after."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import httpx

from tests.serving.server import free_port


@contextmanager
def bosun_process(
    args: list[str], env: Mapping[str, str] | None = None, timeout: float = 300
) -> Iterator[str]:
    """`bosun ARGS --port P` (a free port); yields ``http://127.0.0.1:P`` once /health
    answers 200. A process that exits first fails with its output."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "bosun.cli.main", *args, "--port", str(port)],
        env=dict(env) if env is not None else dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                output = process.communicate(timeout=30)[0].decode(errors="replace")
                raise AssertionError(f"bosun {' '.join(args)} did not start:\n{output}")
            time.sleep(0.2)
        yield url
    finally:
        if process.poll() is None:
            process.terminate()
        process.communicate(timeout=60)
