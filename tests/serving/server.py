"""A real uvicorn server on a loopback port, in a thread, for the official openai client;
and a real `bosun serve` process."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import uvicorn

from bosun.engine.client import EngineClient
from bosun.serving.app import ServeSettings, build_app
from bosun.serving.connections import guarded_h11


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_server(
    engine: EngineClient,
    settings: ServeSettings | None = None,
    ready_timeout: float = 300,
    header_timeout: float = 10.0,
) -> Iterator[str]:
    """Start the app over ``engine`` as `bosun serve` does (the same connection protocol);
    yield its base URL once /health is ready."""
    port = free_port()
    config = uvicorn.Config(
        build_app(settings or ServeSettings(), engine),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        http=guarded_h11(header_timeout),
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + ready_timeout
    try:
        while True:
            try:
                health = httpx.get(f"{base}/health", timeout=2)
                if health.status_code == 200:
                    break
                if health.json().get("status") != "loading":
                    raise RuntimeError(f"the server failed: {health.json()}")
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("the server did not become ready")
            time.sleep(0.05)
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=60)


@contextmanager
def serve_process(model: str, *args: str, ready_timeout: float = 300) -> Iterator[str]:
    """A real `bosun serve` process, as a user starts it; yields its /v1 base URL once
    /health is ready, and stops it after."""
    port = free_port()
    command = [sys.executable, "-m", "bosun.cli.main", "serve", "--model", model]
    command += ["--port", str(port), "--log-level", "warning", *args]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            if server.poll() is not None:
                err = server.stderr.read().decode() if server.stderr else ""
                raise RuntimeError(f"bosun serve exited: {err}")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("bosun serve did not become ready")
            time.sleep(0.3)
        yield f"{url}/v1"
    finally:
        server.terminate()
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        if server.stderr is not None:
            server.stderr.close()
