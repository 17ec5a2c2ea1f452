"""`bosun console` as a process of its own, for the tests."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.local.cli import environment
from tests.serving.server import free_port


@contextmanager
def running_console(home: Path, api_key: str) -> Iterator[str]:
    """`bosun console --local --api-key KEY` over ``home``'s state; its URL once it answers."""
    port = free_port()
    command = ["console", "--local", "--port", str(port), "--api-key", api_key]
    process = subprocess.Popen(
        [sys.executable, "-m", "bosun.cli.main", *command],
        env=environment(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                output = process.communicate(timeout=30)[0].decode(errors="replace")
                raise AssertionError(f"bosun console did not start:\n{output}")
            time.sleep(0.2)
        yield url
    finally:
        if process.poll() is None:
            process.terminate()
        process.communicate(timeout=30)
