"""kopf handlers: thin glue from watch events to the :class:`Reconciler`.

Everything is registered on a registry built by :func:`build_registry` (nothing happens
at import time). The operator's settings keep kopf's own bookkeeping under
``bosun.dev`` annotations, so the Workspace's status stays in its schema.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, cast

import kopf
from kubernetes.aio.client import Configuration
from prometheus_client import CollectorRegistry, Counter, Histogram

from bosun.api.workspace import GROUP, VERSION
from bosun.operator.kube import Kube, KubeError
from bosun.operator.rag import RagReconciler
from bosun.operator.reconciler import Reconciler
from bosun.render import RenderOptions
from bosun.render.names import RAG_LABEL, WORKSPACE_LABEL

__all__ = ["OWNED_WATCHES", "OperatorConfig", "build_registry"]

log = logging.getLogger("bosun.operator")

WORKSPACES = (GROUP, VERSION, "workspaces")
RAG_ENGINES = (GROUP, VERSION, "ragengines")
# Every object a Workspace renders, and the pods of its workloads, carry this label.
MANAGED = {WORKSPACE_LABEL: kopf.PRESENT}
# Owned objects whose changes (or deletion) re-check their Workspace.
OWNED_WATCHES = (
    ("apps", "v1", "deployments"),
    ("", "v1", "services"),
    ("", "v1", "configmaps"),
    ("", "v1", "pods"),
    ("batch", "v1", "jobs"),
    ("leaderworkerset.x-k8s.io", "v1", "leaderworkersets"),
    ("resource.k8s.io", "v1", "resourceclaimtemplates"),
    ("karpenter.sh", "v1", "nodeclaims"),
)
# A RAGEngine's objects (its claim included), and its pod.
RAG_WATCHES = (
    ("apps", "v1", "deployments"),
    ("", "v1", "services"),
    ("", "v1", "persistentvolumeclaims"),
    ("", "v1", "pods"),
)
POD_INDEX = "workspace_pods"  # kopf passes the index to handlers under this name
STATUS_INTERVAL = 60.0  # seconds between status checks when nothing happens


@dataclass(frozen=True)
class OperatorConfig:
    configuration: Configuration  # the API server and credentials (kubeconfig or in-cluster)
    images: RenderOptions
    peering: bool = True
    metrics: CollectorRegistry | None = None  # where /metrics reads from (None: no metrics)


class _Metrics:
    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.reconciles = Counter(
            "bosun_operator_reconciles_total",
            "Workspace reconciles by result (applied, retried).",
            ["result"],
            registry=registry,
        )
        self.seconds = Histogram(
            "bosun_operator_reconcile_seconds",
            "Time to plan, render and apply one Workspace.",
            registry=registry,
        )


def _retry(exc: KubeError) -> kopf.TemporaryError:
    return kopf.TemporaryError(str(exc), delay=5 if exc.status == 429 else 2)


def _emit(body: dict[str, Any], type_: str, reason: str, message: str) -> None:
    kopf.event(cast(kopf.Body, body), type=type_, reason=reason, message=message[:1024])


def _provisions_nodes(spec: kopf.Spec, **_: Any) -> bool:
    """Whether the Workspace names an instance type (immutable), so may own NodeClaims."""
    return bool((spec.get("resource") or {}).get("instanceType"))


class _Peering(logging.Handler):
    """Whether kopf's peering has paused this replica (a peer of higher or equal priority
    is alive). kopf keeps that state to itself and stops its own handlers; the status
    loop below is not kopf's, so it learns of the pause from kopf's records of it."""

    LOGGER = "kopf._core.engines.peering"

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.paused = False

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith(("Pausing operations", "Pausing all operators")):
            self.paused = True
        elif message.startswith("Resuming operations"):
            self.paused = False

    def __enter__(self) -> _Peering:
        logger = logging.getLogger(self.LOGGER)
        logger.setLevel(logging.INFO)  # its records are the signal, whatever else is shown
        logger.addHandler(self)
        return self

    def __exit__(self, *_: object) -> None:
        logging.getLogger(self.LOGGER).removeHandler(self)


async def _sleep(seconds: float, peering: _Peering) -> None:
    """Sleep ``seconds``, and longer while the operator is paused (seen within 1 s)."""
    while True:
        if peering.paused:
            log.info("status checks paused with the operator (kopf peering)")
            while peering.paused:
                await asyncio.sleep(1.0)
            log.info("status checks resumed")
        if seconds <= 0:
            return
        await asyncio.sleep(min(seconds, 1.0))
        seconds -= 1.0


async def _check(memo: kopf.Memo) -> None:
    """Refresh every Workspace's and RAGEngine's status once per ``STATUS_INTERVAL``,
    spread over it: what changes without an event (discovered GPUs, a Workspace that a
    RAGEngine answers through) is seen within a minute. One task for all of them, rather
    than a kopf timer per object: a timer is a task per object, and kopf guards it with a
    finalizer (a patch of each object). A replica that kopf's peering paused refreshes
    nothing (its watches are stopped, so what it knows is stale)."""
    with _Peering() as peering:
        await _refresh_all(memo, peering)


async def _refresh_all(memo: kopf.Memo, peering: _Peering) -> None:
    while True:
        memo.reconciler.discovery.invalidate()
        keys = [(memo.reconciler, k) for k in list(memo.reconciler.desired)]
        keys += [(memo.rag, k) for k in list(memo.rag.desired)]
        pause = STATUS_INTERVAL / max(1, len(keys))
        await _sleep(pause, peering)
        for reconciler, key in keys:
            if key in reconciler.desired:  # not deleted since the round began
                reconciler.schedule_refresh(key)
            await _sleep(pause, peering)


def build_registry(config: OperatorConfig) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    metrics = _Metrics(config.metrics)

    async def reconcile(
        memo: kopf.Memo, body: kopf.Body, old: Any = None, resumed: bool = False
    ) -> None:
        with metrics.seconds.time():
            try:
                await memo.reconciler.reconcile(dict(body), old=old, resumed=resumed)
            except KubeError as exc:
                metrics.reconciles.labels("retried").inc()
                raise _retry(exc) from None
        metrics.reconciles.labels("applied").inc()

    # The pods of each Workspace, by (namespace, Workspace label): kopf keeps an index
    # from the pods' watch, and runs no handler before its first listing is in, so a
    # status refresh reads pods from memory (and never sees half a cluster after a
    # restart) instead of listing them per Workspace.
    @kopf.index("", "v1", "pods", labels=MANAGED, id=POD_INDEX, registry=registry)
    async def workspace_pods(
        namespace: str | None, labels: kopf.Labels, body: kopf.Body, **_: Any
    ) -> dict[Any, Any]:
        return {
            (namespace or "", labels[WORKSPACE_LABEL]): {
                "metadata": dict(body["metadata"]),
                "status": dict(body.get("status") or {}),
            }
        }

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **kwargs: Any) -> None:
        settings.persistence.finalizer = f"{GROUP}/finalizer"
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix=GROUP, key="last-handled-configuration"
        )
        settings.posting.level = logging.WARNING  # Bosun posts its own events per step
        settings.peering.mandatory = False
        settings.peering.standalone = not config.peering
        settings.watching.server_timeout = 300
        settings.networking.error_backoffs = [1, 2, 5, 10]
        kube = Kube(config.configuration)
        memo.reconciler = Reconciler(kube, config.images, _emit, pods=kwargs[POD_INDEX])
        memo.rag = RagReconciler(kube, config.images, _emit)
        memo.checks = asyncio.get_running_loop().create_task(_check(memo))

    @kopf.on.cleanup(registry=registry)
    async def cleanup(memo: kopf.Memo, **_: Any) -> None:
        memo.checks.cancel()
        await memo.reconciler.kube.close()

    @kopf.on.login(registry=registry)
    async def login(**_: Any) -> kopf.ConnectionInfo:
        c = config.configuration
        token = c.api_key.get("BearerToken") or c.api_key.get("authorization")
        if token:
            token = token.removeprefix("Bearer ").strip()
        return kopf.ConnectionInfo(
            server=c.host,
            ca_path=c.ssl_ca_cert,
            insecure=not c.verify_ssl,
            token=token or None,
            certificate_path=c.cert_file,
            private_key_path=c.key_file,
        )

    @kopf.on.create(*WORKSPACES, registry=registry)
    async def apply(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        await reconcile(memo, body)

    @kopf.on.resume(*WORKSPACES, registry=registry)
    async def resume(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        await reconcile(memo, body, resumed=True)

    @kopf.on.update(*WORKSPACES, registry=registry)
    async def update(body: kopf.Body, old: Any, memo: kopf.Memo, **_: Any) -> None:
        await reconcile(memo, body, old=dict(old or {}))

    # Only a Workspace that provisions nodes has anything to delete by hand: the others
    # carry no finalizer (kopf adds one where a delete handler matches), and their
    # deletion costs no patch.
    @kopf.on.delete(*WORKSPACES, when=_provisions_nodes, registry=registry)
    async def delete(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        try:
            deleted = await memo.reconciler.finalize(dict(body))
        except KubeError as exc:
            raise _retry(exc) from None
        if deleted:
            _emit(dict(body), "Normal", "NodesReleased", f"deleted {deleted} NodeClaim(s)")

    @kopf.on.resume(*RAG_ENGINES, registry=registry)
    @kopf.on.create(*RAG_ENGINES, registry=registry)
    @kopf.on.update(*RAG_ENGINES, registry=registry)
    async def apply_rag(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        try:
            await memo.rag.reconcile(dict(body))
        except KubeError as exc:
            raise _retry(exc) from None

    @kopf.on.event(*WORKSPACES, id="rag-workspaces", registry=registry)
    async def workspace_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
        memo.reconciler.workspace_seen(event["type"] or "", dict(event["object"]))
        memo.rag.workspace_changed(dict(event["object"]))

    for group, version, plural in RAG_WATCHES:

        @kopf.on.event(
            group,
            version,
            plural,
            labels={RAG_LABEL: kopf.PRESENT},
            id=f"rag-{plural}",
            registry=registry,
        )
        async def rag_owned(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
            obj = dict(event["object"])
            try:
                await memo.rag.owned_changed(event["type"] or "", obj)
            except KubeError as exc:
                log.warning("could not check %s: %s", obj.get("kind"), exc)

    for group, version, plural in OWNED_WATCHES:

        @kopf.on.event(
            group, version, plural, labels=MANAGED, id=f"owned-{plural}", registry=registry
        )
        async def owned(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
            obj = dict(event["object"])
            try:
                await memo.reconciler.owned_changed(event["type"] or "", obj)
            except KubeError as exc:
                log.warning("could not check %s: %s", obj.get("kind"), exc)

    return registry
