"""A real uvicorn server on a loopback port, in a thread, for the official openai client."""

from __future__ import annotations

import socket
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
