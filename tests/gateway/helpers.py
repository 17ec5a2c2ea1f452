"""A gateway in a thread, and reading its metrics: shared by the gateway's tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import uvicorn
from prometheus_client.parser import text_string_to_metric_families

from bosun.gateway.proxy import GatewaySettings, build_gateway
from bosun.gateway.sources import Source
from tests.serving.server import free_port


@contextmanager
def running_gateway(
    replicas: list[str],
    refresh_seconds: float = 0.5,
    source: Source | None = None,
    **settings: Any,
) -> Iterator[str]:
    """A gateway app in a thread, as `bosun gateway` serves it; yields its base URL."""
    port = free_port()
    options = GatewaySettings(tuple(replicas), refresh_seconds=refresh_seconds, **settings)
    app = build_gateway(options, source)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "the gateway did not start"
        time.sleep(0.05)
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def metric(url: str, name: str, **labels: str) -> float:
    """A sample's value from the gateway's /metrics (0 when absent)."""
    text = httpx.get(f"{url}/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0
