"""RAGEngines on a cluster: apply what `bosun render` prints for one (its claim, its
Deployment, its Service), restore what drifts, and write status conditions.

Conditions, each with a reason and a message a user can act on:
- ``Applied``: the objects were applied (False: ``InvalidSpec`` or ``PlanFailed``, the
  field named; ``ApplyFailed``, the API server's answer).
- ``InferenceReady``: the Workspace that answers exists and is Ready
  (``WorkspaceNotFound``, ``WorkspaceNotReady``; ``ExternalServer`` for a URL, which the
  operator does not call).
- ``Ready``: the engine's pod answers on its Service (``Starting`` with what its pod
  waits for: the claim to bind, the image, the model loading).

The claim is never deleted by the operator (render.rag): the index outlives its engine.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from bosun.api.conditions import Condition, set_condition
from bosun.api.errors import BosunError, WorkspaceError
from bosun.api.load import parse_resource
from bosun.api.rag import RAG_KIND, RAGEngine
from bosun.api.workspace import API_VERSION, KIND
from bosun.catalog.embeddings import plan_rag
from bosun.operator.desired import subset
from bosun.operator.kube import Kube, KubeError
from bosun.operator.refresh import Key, previous_conditions, schedule
from bosun.render.names import RAG_LABEL, dns_label
from bosun.render.pods import RenderOptions
from bosun.render.rag import render_rag_engine

__all__ = ["RagReconciler", "rag_engine_of"]

log = logging.getLogger("bosun.operator")

Emit = Callable[[dict[str, Any], str, str, str], None]  # (body, type, reason, message)
Status = Literal["True", "False", "Unknown"]


def rag_engine_of(obj: dict[str, Any]) -> Key | None:
    """The RAGEngine an object belongs to: its controller owner, or (the claim, which has
    none, and pods) its label."""
    meta = obj.get("metadata") or {}
    for ref in meta.get("ownerReferences") or []:
        if ref.get("kind") == RAG_KIND and ref.get("apiVersion") == API_VERSION:
            return meta.get("namespace", ""), ref["name"]
    label = (meta.get("labels") or {}).get(RAG_LABEL)
    return (meta.get("namespace", ""), label) if label else None


@dataclass(frozen=True)
class _Want:
    rag: RAGEngine
    objects: list[dict[str, Any]]

    def of(self, kind: str) -> dict[str, Any] | None:
        return next((o for o in self.objects if o["kind"] == kind), None)


@dataclass
class RagReconciler:
    kube: Kube
    images: RenderOptions = field(default_factory=RenderOptions)
    emit: Emit = lambda body, type_, reason, message: None
    desired: dict[Key, _Want] = field(default_factory=dict)
    _pending: dict[Key, asyncio.Task[None]] = field(default_factory=dict)

    async def reconcile(self, body: dict[str, Any]) -> None:
        """Make the cluster match the RAGEngine ``body``; status says how far it got."""
        meta = body["metadata"]
        key: Key = (meta["namespace"], meta["name"])
        generation = meta.get("generation")
        data = {k: body[k] for k in ("apiVersion", "kind", "metadata", "spec") if k in body}
        where = f"RAGEngine {key[0]}/{key[1]}"
        try:
            rag = parse_resource(data, where)
            assert isinstance(rag, RAGEngine)
            plan = plan_rag(rag)
        except WorkspaceError as exc:
            await self._failed(body, "InvalidSpec", "; ".join(map(str, exc.problems)), generation)
            return
        except BosunError as exc:
            await self._failed(body, "PlanFailed", str(exc), generation)
            return
        options = RenderOptions(namespace=key[0], bosun_image=self.images.bosun_image)
        want = _Want(rag, render_rag_engine(rag, plan, options))
        self.desired[key] = want
        try:
            for obj in want.objects:
                await self.kube.apply(obj)
        except KubeError as exc:
            if exc.transient:
                raise  # kopf retries with backoff
            self.desired.pop(key, None)
            await self._failed(body, "ApplyFailed", str(exc), generation)
            return
        self.emit(body, "Normal", "Applied", f"{len(want.objects)} object(s) applied")
        await self.refresh(key, body)

    async def _failed(
        self, body: dict[str, Any], reason: str, message: str, generation: int | None
    ) -> None:
        self.desired.pop((body["metadata"]["namespace"], body["metadata"]["name"]), None)
        self.emit(body, "Warning", reason, message)
        conditions = set_condition(
            previous_conditions(body), "Applied", "False", reason, message, generation
        )
        conditions = set_condition(conditions, "Ready", "False", reason, message, generation)
        await self._patch(body, {"conditions": _json(conditions), "state": "Failed"}, generation)

    # ------------------------------------------------------------------ drift

    async def owned_changed(self, event: str, obj: dict[str, Any]) -> None:
        """An object of a RAGEngine changed or went: restore it if it drifted from what
        was applied (a deleted claim comes back empty; its data went with it), then
        update the status."""
        key = rag_engine_of(obj)
        if key is None:
            return
        want = self.desired.get(key)
        meta = obj.get("metadata") or {}
        if want is not None and obj.get("kind") != "Pod":
            wanted = next(
                (
                    o
                    for o in want.objects
                    if o["kind"] == obj.get("kind") and o["metadata"]["name"] == meta.get("name")
                ),
                None,
            )
            gone = event == "DELETED" and not meta.get("deletionTimestamp")
            if wanted is not None and (gone or not subset(wanted, obj)):
                await self.kube.apply(wanted)
                what = "deleted" if gone else "edited"
                log.info("restored %s of RAGEngine %s/%s (%s by hand)", wanted["kind"], *key, what)
        self.schedule_refresh(key)

    def workspace_changed(self, obj: dict[str, Any]) -> None:
        """A Workspace changed (its status, most often): the engines that answer through
        it say so in their InferenceReady condition."""
        meta = obj.get("metadata") or {}
        for key, want in list(self.desired.items()):
            if key[0] == meta.get("namespace") and want.rag.spec.inference.workspace == meta.get(
                "name"
            ):
                self.schedule_refresh(key)

    def schedule_refresh(self, key: Key) -> None:
        """Refresh the status soon, once for a burst of events."""
        schedule(self._pending, key, self.refresh, "RAGEngine")

    # ------------------------------------------------------------------ status

    async def refresh(self, key: Key, body: dict[str, Any] | None = None) -> None:
        """Observe the engine and the Workspace it answers through; write the status."""
        if body is None:
            body = await self.kube.get(API_VERSION, RAG_KIND, key[1], key[0])
            if body is None:
                self.desired.pop(key, None)
                return
        want = self.desired.get(key)
        generation = body["metadata"].get("generation")
        if want is None or want.rag.metadata.generation != generation:
            return  # reconcile() has not run for this generation yet; it will refresh
        conditions = set_condition(
            previous_conditions(body),
            "Applied",
            "True",
            "Applied",
            f"{len(want.objects)} object(s) applied",
            generation,
        )
        inference = await self._inference(want.rag)
        conditions = set_condition(conditions, "InferenceReady", *inference, generation)
        ready = await self._ready(want)
        conditions = set_condition(conditions, "Ready", *ready, generation)
        service = want.of("Service")
        assert service is not None
        state = "Ready" if ready[0] == "True" else "Pending"
        new = {
            "conditions": _json(conditions),
            "state": state,
            "endpoint": f"http://{service['metadata']['name']}.{key[0]}.svc.cluster.local/v1",
        }
        await self._patch(body, new, generation)

    async def _inference(self, rag: RAGEngine) -> tuple[Status, str, str]:
        inference = rag.spec.inference
        if inference.url is not None:
            return "True", "ExternalServer", f"answers through {inference.url}"
        name = inference.workspace or ""
        ws = await self.kube.get(API_VERSION, KIND, name, rag.metadata.namespace)
        if ws is None:
            return (
                "False",
                "WorkspaceNotFound",
                f"spec.inference.workspace: no Workspace {name!r} in this namespace; "
                "the engine indexes and retrieves, and answers once it exists",
            )
        for c in (ws.get("status") or {}).get("conditions") or []:
            if c.get("type") == "WorkspaceSucceeded" and c.get("status") == "True":
                return "True", "WorkspaceReady", f"Workspace {name} is Ready"
        return "False", "WorkspaceNotReady", f"Workspace {name} is not Ready yet"

    async def _ready(self, want: _Want) -> tuple[Status, str, str]:
        deployment = want.of("Deployment")
        assert deployment is not None
        namespace = want.rag.metadata.namespace
        current = await self.kube.get(
            "apps/v1", "Deployment", deployment["metadata"]["name"], namespace
        )
        if current is not None and ((current.get("status") or {}).get("readyReplicas") or 0) >= 1:
            return "True", "Ready", "the engine answers"
        label = dns_label(want.rag.name)
        pods = [
            p
            for p in await self.kube.list("v1", "Pod", namespace, f"{RAG_LABEL}={label}")
            if ((p.get("metadata") or {}).get("labels") or {}).get(RAG_LABEL) == label
        ]
        return "False", "Starting", _waiting_for(pods)

    async def _patch(self, body: dict[str, Any], new: dict[str, Any], generation: Any) -> None:
        new = {**new, "observedGeneration": generation}
        old = body.get("status") or {}
        if all(old.get(k) == v for k, v in new.items()):
            return
        meta = body["metadata"]
        await self.kube.patch_status(API_VERSION, RAG_KIND, meta["name"], meta["namespace"], new)


def _waiting_for(pods: list[dict[str, Any]]) -> str:
    """What the engine's pod waits for, from its status (the first reason found)."""
    if not pods:
        return "no pod yet"
    status = pods[0].get("status") or {}
    for c in status.get("conditions") or []:
        if c.get("type") == "PodScheduled" and c.get("status") == "False":
            return f"not scheduled: {c.get('message') or c.get('reason')}"
    for s in status.get("containerStatuses") or []:
        waiting = (s.get("state") or {}).get("waiting") or {}
        if waiting:
            return f"{waiting.get('reason')}: {waiting.get('message', '')}".rstrip(": ")
    return f"pod {status.get('phase', 'Pending')}: loading the model and opening the index"


def _json(conditions: list[Condition]) -> list[dict[str, Any]]:
    return [c.model_dump(by_alias=True, exclude_none=True) for c in conditions]
