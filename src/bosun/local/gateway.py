"""The local gateway: one OpenAI endpoint (``http://127.0.0.1:8090/v1`` unless
``$BOSUN_GATEWAY_PORT`` says otherwise) in front of every Workspace `bosun up` serves on
this machine. It runs as ``bosun gateway --local`` under a supervisor, like a server: its
row in the state store is named ``gateway``, `bosun ps` lists it, and a crash (or a
``kill -9``) is restarted."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the CLI reads DEFAULT_PORT at start: the runtime is imported on use
    from bosun.local.runtime import Shown
    from bosun.local.state import Record, Store

__all__ = [
    "DEFAULT_PORT",
    "PORT_ENV",
    "ensure_gateway",
    "gateway_command",
    "gateway_port",
    "running_gateway",
    "stop_if_unused",
]

PORT_ENV = "BOSUN_GATEWAY_PORT"
DEFAULT_PORT = 8090  # bosun serve takes 8000, and the operator 8080-8081
_RUNNING = ("Ready", "Starting", "Restarting")


def gateway_port() -> int:
    """The local gateway's port: ``$BOSUN_GATEWAY_PORT``, else 8090."""
    from bosun.local.runtime import LocalError

    value = os.environ.get(PORT_ENV, "").strip()
    if not value:
        return DEFAULT_PORT
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise LocalError(f"${PORT_ENV}: {value!r} is not a port number from 1 to 65535")
    return int(value)


def gateway_command(port: int) -> list[str]:
    return [sys.executable, "-m", "bosun.cli.main", "gateway", "--local", "--port", str(port)]


def running_gateway(store: Store) -> Shown | None:
    """The local gateway, if it runs."""
    from bosun.local.runtime import GATEWAY, show

    record = store.get(GATEWAY)
    if record is None:
        return None
    shown = show(record)
    return shown if shown.state in _RUNNING else None


def ensure_gateway(store: Store, wait: float = 60.0) -> Shown | str:
    """The local gateway, started if it does not run yet; or why it cannot be (its port
    is another program's)."""
    from bosun.local.runtime import GATEWAY, launch, port_free
    from bosun.local.state import Record

    current = running_gateway(store)
    if current is not None:
        return current
    if store.get(GATEWAY) is not None:
        store.delete(GATEWAY)  # a stopped or failed one: replaced
    port = gateway_port()
    if not port_free(port):
        return (
            f"the gateway's port {port} is taken by another program, so the gateway is not "
            f"started; set ${PORT_ENV} to a free port and run bosun up again"
        )
    record = Record(
        name=GATEWAY,
        model="",
        file="",
        port=port,
        command=gateway_command(port),
        kind="gateway",
    )
    if store.insert_new(GATEWAY, lambda _others: record) is None:
        started = running_gateway(store)  # another terminal started it meanwhile
        return started or "the gateway was started and stopped from another terminal"
    shown = launch(store, GATEWAY, wait)
    if shown.state != "Ready":
        why = shown.record.message or shown.note
        return f"the gateway did not start: {why} (bosun logs gateway)"
    return shown


def stop_if_unused(store: Store) -> Record | None:
    """Stop the local gateway when no server (nor RAG engine) is left behind it;
    the gateway's row as it was, or None if it stays (or was not there)."""
    from bosun.local.runtime import GATEWAY, down

    if store.get(GATEWAY) is None or any(r.kind in ("server", "rag") for r in store.all()):
        return None
    return down(store, GATEWAY)
