"""The gateway's source in a cluster: Workspaces, RAGEngines and the EndpointSlices of
their Services.

Each refresh lists the Workspaces and the EndpointSlices that carry the
``bosun.dev/workspace`` label (the EndpointSlice controller copies a Service's labels to
its slices): a Workspace's replicas are the ready endpoints of its Service, on the port
named ``http``. Its models (the served name and every adapter) come from its spec, so a
Workspace scaled to zero is still known. Scaling goes through the Workspace's ``scale``
subresource (``spec.resource.count``), as ``kubectl scale`` and an HPA do; the operator
does the rest.

A RAGEngine is one model, named after it (its pod runs `bosun rag serve --served-name`);
it is never scaled. A cluster without the RAGEngine CRD simply has none.

Four list calls per refresh, whatever the number of Workspaces: fine for hundreds; a
cluster with thousands would want watches instead (not built).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bosun.api import DEFAULT_IDLE_TIMEOUT_S
from bosun.api.workspace import GROUP, VERSION
from bosun.gateway.sources import Workload
from bosun.render.names import RAG_LABEL, WORKSPACE_LABEL, dns_label

__all__ = ["KubernetesSource", "rag_workload_of", "workload_of"]

log = logging.getLogger("bosun.gateway")

PLURAL = "workspaces"
RAG_PLURAL = "ragengines"
PORT_NAME = "http"  # the serving port of a Workspace's pods (render/workloads.py)


def _served_names(ws: Mapping[str, Any]) -> dict[str, str | None]:
    """The model names a Workspace answers to: the preset's name (else the Workspace's,
    as render.pods.served_model_name), and each adapter with it as parent."""
    spec = ws.get("spec") or {}
    inference = spec.get("inference") or {}
    preset = (inference.get("preset") or {}).get("name")
    model = preset or (ws.get("metadata") or {}).get("name", "")
    names: dict[str, str | None] = {model: None}
    for adapter in inference.get("adapters") or []:
        if isinstance(adapter, Mapping) and adapter.get("name"):
            names[adapter["name"]] = model
    return names


def _ready_endpoints(slices: list[Mapping[str, Any]]) -> tuple[str, ...]:
    """``http://address:port`` of every ready endpoint in ``slices``."""
    urls: list[str] = []
    for piece in slices:
        ports = [p for p in piece.get("ports") or [] if p.get("name") == PORT_NAME]
        if not ports or not ports[0].get("port"):
            continue
        port = ports[0]["port"]
        for endpoint in piece.get("endpoints") or []:
            if (endpoint.get("conditions") or {}).get("ready") is False:
                continue  # unset means ready, as the API documents
            for address in endpoint.get("addresses") or []:
                host = f"[{address}]" if ":" in address else address
                urls.append(f"http://{host}:{port}")
    return tuple(sorted(set(urls)))


def _message(ws: Mapping[str, Any], kind: str = "InferenceReady") -> str:
    for condition in (ws.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind:
            return str(condition.get("message") or "")
    return ""


def workload_of(ws: Mapping[str, Any], slices: list[Mapping[str, Any]]) -> Workload | None:
    """A Workspace as the gateway sees it (None for a fine-tuning one: it serves
    nothing). Pure: tested without a cluster."""
    spec = ws.get("spec") or {}
    if spec.get("inference") is None:
        return None
    meta = ws.get("metadata") or {}
    resource = spec.get("resource") or {}
    replicas = _ready_endpoints(slices)
    count = resource.get("count", 1)
    state = "Ready" if replicas else "Idle" if count == 0 else "Starting"
    return Workload(
        name=f"{meta.get('namespace', '')}/{meta.get('name', '')}",
        replicas=replicas,
        state=state,
        models=_served_names(ws),
        scale_to_zero=resource.get("minReplicas") == 0,
        idle_timeout=float(resource.get("idleTimeoutSeconds") or DEFAULT_IDLE_TIMEOUT_S),
        message=_message(ws),
    )


def rag_workload_of(rag: Mapping[str, Any], slices: list[Mapping[str, Any]]) -> Workload:
    """A RAGEngine as the gateway sees it: one model, its name. Pure."""
    meta = rag.get("metadata") or {}
    name = str(meta.get("name", ""))
    replicas = _ready_endpoints(slices)
    return Workload(
        # Apart from a Workspace of the same name (workloads are keyed by name).
        name=f"{meta.get('namespace', '')}/ragengine/{name}",
        replicas=replicas,
        state="Ready" if replicas else "Starting",
        models={name: None},
        scale_to_zero=False,
        idle_timeout=float(DEFAULT_IDLE_TIMEOUT_S),
        message=_message(rag, "Ready"),
    )


async def _items(call: Awaitable[Any]) -> list[dict[str, Any]]:
    """The ``items`` of a list call made without preloading its answer."""
    response = await call
    try:
        if response.status != 200:
            raise RuntimeError(f"listing EndpointSlices: HTTP {response.status}")
        listing = await response.json()
    finally:
        response.release()
    return list(_dict(listing).get("items") or [])


def _dict(value: object) -> dict[str, Any]:
    """A custom-object call's answer (the client types it ``object``)."""
    return value if isinstance(value, dict) else {}


def _key(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return meta.get("namespace", ""), dns_label(meta.get("name", ""))


def _by_owner(
    slices: list[dict[str, Any]], label: str
) -> dict[tuple[str, str], list[Mapping[str, Any]]]:
    """Slices by (namespace, the value of ``label``: their owner's DNS name)."""
    found: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for piece in slices:
        meta = piece.get("metadata") or {}
        owner = (meta.get("labels") or {}).get(label, "")
        found.setdefault((meta.get("namespace", ""), owner), []).append(piece)
    return found


@dataclass
class KubernetesSource:
    """Workspaces in ``namespaces`` (empty: every namespace), read through the API server
    ``kubeconfig`` names (default: in-cluster, then ``$KUBECONFIG``)."""

    namespaces: tuple[str, ...] = ()
    kubeconfig: Path | None = None

    def __post_init__(self) -> None:
        self._api: Any = None

    async def _client(self) -> Any:
        if self._api is None:
            from kubernetes.aio.client import ApiClient

            from bosun.operator.connection import load_configuration

            self._api = ApiClient(await load_configuration(self.kubeconfig))
        return self._api

    async def _objects(self, plural: str) -> list[dict[str, Any]]:
        """Workspaces or RAGEngines in the namespaces (none where the CRD is absent)."""
        from kubernetes.aio.client import CustomObjectsApi
        from kubernetes.aio.client.exceptions import ApiException

        api = CustomObjectsApi(await self._client())
        try:
            if not self.namespaces:
                listing = _dict(await api.list_cluster_custom_object(GROUP, VERSION, plural))
                return list(listing.get("items") or [])
            items: list[dict[str, Any]] = []
            for namespace in self.namespaces:
                listing = _dict(
                    await api.list_namespaced_custom_object(GROUP, VERSION, namespace, plural)
                )
                items += listing.get("items") or []
            return items
        except ApiException as exc:
            if exc.status == 404 and plural == RAG_PLURAL:
                return []  # installed before RAGEngines were
            raise

    async def _slices(self, label: str) -> list[dict[str, Any]]:
        """The EndpointSlices that carry ``label`` (a Workspace's or a RAGEngine's
        Services'), as the API server sends them (read as JSON: the client's typed models
        would be built only to be turned back into dicts)."""
        from kubernetes.aio.client import DiscoveryV1Api

        api = DiscoveryV1Api(await self._client())
        if not self.namespaces:
            return await _items(
                api.list_endpoint_slice_for_all_namespaces_without_preload_content(
                    label_selector=label
                )
            )
        pieces: list[dict[str, Any]] = []
        for namespace in self.namespaces:
            pieces += await _items(
                api.list_namespaced_endpoint_slice_without_preload_content(
                    namespace, label_selector=label
                )
            )
        return pieces

    async def workloads(self) -> list[Workload]:
        out = []
        workspaces, slices = await self._objects(PLURAL), await self._slices(WORKSPACE_LABEL)
        by_owner = _by_owner(slices, WORKSPACE_LABEL)
        for ws in workspaces:
            workload = workload_of(ws, by_owner.get(_key(ws), []))
            if workload is not None:
                out.append(workload)
        engines = await self._objects(RAG_PLURAL)
        if engines:
            by_engine = _by_owner(await self._slices(RAG_LABEL), RAG_LABEL)
            out += [rag_workload_of(rag, by_engine.get(_key(rag), [])) for rag in engines]
        return out

    async def _scale(self, name: str, replicas: int, only_from: int | None) -> bool:
        """Set the Workspace's replicas through its scale subresource; with
        ``only_from``, only if it has that many now."""
        from kubernetes.aio.client import CustomObjectsApi

        namespace, _, workspace = name.partition("/")
        api = CustomObjectsApi(await self._client())
        where = (GROUP, VERSION, namespace, PLURAL, workspace)
        scale = _dict(await api.get_namespaced_custom_object_scale(*where))
        current = int((scale.get("spec") or {}).get("replicas") or 0)
        if only_from is not None and current != only_from:
            return False
        await api.patch_namespaced_custom_object_scale(*where, {"spec": {"replicas": replicas}})
        log.info("scaled %s from %d to %d replicas", name, current, replicas)
        return True

    async def wake(self, name: str) -> bool:
        return await self._scale(name, 1, only_from=0)

    async def sleep(self, name: str) -> bool:
        return await self._scale(name, 0, only_from=None)

    async def close(self) -> None:
        if self._api is not None:
            await self._api.close()
            self._api = None
