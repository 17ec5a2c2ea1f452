"""Object names, labels and owner references for everything a Workspace or a RAGEngine
renders."""

from __future__ import annotations

import hashlib
import re
from typing import Any, Protocol

from bosun.api.meta import ObjectMeta
from bosun.api.rag import RAG_KIND
from bosun.api.workspace import API_VERSION

__all__ = [
    "MANAGED_BY",
    "RAG_LABEL",
    "WORKSPACE_LABEL",
    "Owner",
    "dns_label",
    "labels",
    "metadata",
    "owner_references",
    "selector_labels",
]

MANAGED_BY = "bosun"
WORKSPACE_LABEL = "bosun.dev/workspace"
RAG_LABEL = "bosun.dev/rag-engine"


class Owner(Protocol):
    """A Bosun resource that owns what it renders: a Workspace or a RAGEngine."""

    @property
    def kind(self) -> str: ...

    @property
    def metadata(self) -> ObjectMeta: ...

    @property
    def name(self) -> str: ...


def dns_label(*parts: str, max_len: int = 63) -> str:
    """A DNS-1035 label (Service names need one) built from ``parts``.

    Dots become dashes, a leading digit gets a ``ws-`` prefix, and a name too long is cut
    and given a short hash so that distinct inputs stay distinct.
    """
    raw = "-".join(p for p in parts if p)
    name = re.sub(r"[^a-z0-9-]", "-", raw.lower()).strip("-")
    if not name or not name[0].isalpha():
        name = f"ws-{name}"
    if len(name) > max_len:
        digest = hashlib.sha256(raw.encode()).hexdigest()[:8]
        name = f"{name[: max_len - 9].rstrip('-')}-{digest}"
    return name


def selector_labels(ws: Owner, component: str) -> dict[str, str]:
    """The labels that select a Workspace's (or a RAGEngine's) pods, stable across updates."""
    return {
        "app.kubernetes.io/name": dns_label(ws.name),
        "app.kubernetes.io/component": component,
        (RAG_LABEL if ws.kind == RAG_KIND else WORKSPACE_LABEL): dns_label(ws.name),
    }


def labels(ws: Owner, component: str) -> dict[str, str]:
    return {
        **selector_labels(ws, component),
        "app.kubernetes.io/instance": dns_label(ws.name),
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "app.kubernetes.io/part-of": "bosun",
    }


def owner_references(ws: Owner) -> list[dict[str, Any]]:
    """The resource as controller owner, when it has a uid (it came from a cluster)."""
    if not ws.metadata.uid:
        return []
    return [
        {
            "apiVersion": API_VERSION,
            "kind": ws.kind,
            "name": ws.name,
            "uid": ws.metadata.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]


def metadata(
    ws: Owner, name: str, component: str, namespace: str | None, namespaced: bool = True
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespaced and namespace:
        meta["namespace"] = namespace
    meta["labels"] = labels(ws, component)
    refs = owner_references(ws)
    if refs and namespaced:
        meta["ownerReferences"] = refs
    return meta
