"""`bosun up` of a RAGEngine: `bosun rag serve` as a supervised local process, its
indexes under the state directory (``rag/NAME``), answering through a local Workspace
(or the URL the spec names)."""

from __future__ import annotations

import sys
from collections.abc import Callable

from bosun.api.rag import RAGEngine
from bosun.catalog.embeddings import RagPlan
from bosun.local.runtime import (
    GATEWAY,
    LocalError,
    Shown,
    free_port,
    launch,
    make_room,
    port_free,
    show,
)
from bosun.local.state import Record, Store
from bosun.render.rag import RagTarget, qdrant_prefix, rag_command

__all__ = ["KIND", "generation_target", "rag_data", "reserve_rag", "up_rag"]

KIND = "rag"  # the record's kind: supervised, restarted and checked like a server
_GONE = ("Stopped", "Failed", "Succeeded")


def rag_data(store: Store, name: str) -> str:
    """Where the engine ``name`` keeps its indexes: kept after `bosun down`."""
    return str(store.root / "rag" / name)


def generation_target(store: Store, rag: RAGEngine, file: str) -> RagTarget:
    """The server that answers: the local Workspace the spec names (it must be up, or
    scaled to zero: its endpoint is the same when it wakes), or the spec's URL."""
    inference = rag.spec.inference
    if inference.url is not None:
        url = inference.url.rstrip("/")
        return RagTarget(url if url.endswith("/v1") else f"{url}/v1", inference.model)
    name = inference.workspace
    record = store.get(name) if name else None
    if record is None or record.kind != "server" or show(record).state in _GONE:
        running = sorted(
            r.name for r in store.all() if r.kind == "server" and show(r).state not in _GONE
        )
        raise LocalError(
            f"{file}: spec.inference.workspace: no Workspace named {name!r} runs here "
            f"(bosun up it first; running: {', '.join(running) or 'none'})"
        )
    return RagTarget(record.endpoint, inference.model or record.model)


def reserve_rag(
    store: Store,
    rag: RAGEngine,
    plan: RagPlan,
    file: str,
    name: str | None = None,
    port: int | None = None,
) -> Record:
    """Check that ``rag`` can run here, choose its port, and store it as Starting."""
    name = name or rag.name
    if name == GATEWAY:
        raise LocalError(f"{GATEWAY!r} is the local gateway's name (bosun ps): --name another")
    target = generation_target(store, rag, file)
    make_room(store, name)
    if port is not None and not port_free(port):
        raise LocalError(f"--port {port} is taken on 127.0.0.1: choose another, or leave it out")
    chosen = port or free_port()
    base = [sys.executable, "-m", "bosun.cli.main"]
    command = rag_command(
        plan,
        rag_data(store, name),
        target,
        "127.0.0.1",
        chosen,
        base,
        rag.spec.vector_store,
        qdrant_prefix(rag, None),
    )

    def build(_: list[Record]) -> Record:
        return Record(
            name=name,
            model=plan.name,  # what it serves as (--served-name)
            file=file,
            port=chosen,
            command=command,
            kind=KIND,
            workspace=rag.model_dump(mode="json", by_alias=True, exclude_none=True),
        )

    record = store.insert_new(name, build)
    if record is None:
        raise LocalError(f"{name} was just started from another terminal")
    return record


def up_rag(
    store: Store,
    rag: RAGEngine,
    plan: RagPlan,
    file: str,
    name: str | None = None,
    port: int | None = None,
    wait: float = 300.0,
    on_wait: Callable[[str], None] | None = None,
) -> Shown:
    """Start a supervised `bosun rag serve` for ``rag`` and wait until it is Ready."""
    record = reserve_rag(store, rag, plan, file, name, port)
    return launch(store, record.name, wait, on_wait)
