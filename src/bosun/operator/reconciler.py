"""The side of the operator that acts: apply what a Workspace needs, restore what drifts,
provision nodes, observe, and write status. kopf calls into it (``handlers``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bosun.api.workspace import API_VERSION, KIND
from bosun.operator.desired import Desired, InvalidWorkspaceError, desire, immutable_changes, subset
from bosun.operator.discovery import Discovery
from bosun.operator.kube import Kube, KubeError
from bosun.operator.refresh import Key, previous_conditions, schedule
from bosun.operator.sources import Resolver, check_sources, resolve
from bosun.operator.status import Observed, Status, compute_status, invalid_status
from bosun.render import RenderOptions
from bosun.render.names import WORKSPACE_LABEL, dns_label
from bosun.render.nodes import NAMESPACE_LABEL
from bosun.render.placement import place_replicas

__all__ = ["Reconciler", "workspace_of"]

log = logging.getLogger("bosun.operator")

# Kinds a Workspace may own; what it no longer renders is pruned on a spec change.
OWNED = (
    ("apps/v1", "Deployment"),
    ("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet"),
    ("batch/v1", "Job"),
    ("v1", "Service"),
    ("v1", "ConfigMap"),
    ("resource.k8s.io/v1", "ResourceClaimTemplate"),
)
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"

Emit = Callable[[dict[str, Any], str, str, str], None]  # (body, type, reason, message)


def workspace_of(obj: dict[str, Any]) -> Key | None:
    """The Workspace an object belongs to: its controller owner, or a NodeClaim's note."""
    meta = obj.get("metadata") or {}
    for ref in meta.get("ownerReferences") or []:
        if ref.get("kind") == KIND and ref.get("apiVersion") == API_VERSION:
            return meta.get("namespace", ""), ref["name"]
    note = (meta.get("annotations") or {}).get(WORKSPACE_LABEL, "")
    if "/" in note:
        namespace, _, name = note.partition("/")
        return namespace, name
    return None


def _labelled(items: list[dict[str, Any]], key: str, value: str) -> list[dict[str, Any]]:
    """Client-side label filter (a selector the server ignored does no harm)."""
    return [i for i in items if ((i.get("metadata") or {}).get("labels") or {}).get(key) == value]


@dataclass
class Reconciler:
    kube: Kube
    images: RenderOptions = field(default_factory=RenderOptions)
    emit: Emit = lambda body, type_, reason, message: None
    resolver: Resolver = resolve  # names of web sources, to check where they point
    discovery: Discovery = field(init=False)
    desired: dict[Key, Desired] = field(default_factory=dict)
    # The objects Workspaces own, as the owned watches last saw them, by (kind,
    # namespace, name): what is already as desired is not applied again.
    live: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    # The status this operator last wrote, by Workspace uid, until the Workspace watch
    # shows it: a refresh working from an older copy of the Workspace (kopf's, or a read
    # that crossed the write) compares with it, and does not write the same status
    # twice. Once the watch has shown it, the watch is the record, so a status someone
    # else changes after that is seen, and written back.
    written: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Each Workspace as its watch last showed it (only what a refresh reads: metadata and
    # status), so that a refresh after an event does not read it again.
    seen: dict[Key, dict[str, Any]] = field(default_factory=dict)
    # The pods of each Workspace by (namespace, label value), kept by a watch (the
    # operator's kopf index, complete before any handler runs); None: list them.
    pods: Mapping[Key, Iterable[dict[str, Any]]] | None = None
    # (namespace, label value) -> Workspace: a pod names its Workspace only by label.
    _labels: dict[Key, Key] = field(default_factory=dict)
    _pending: dict[Key, asyncio.Task[None]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.discovery = Discovery(self.kube)

    # ------------------------------------------------------------------ reconcile

    async def reconcile(
        self, body: dict[str, Any], old: dict[str, Any] | None = None, resumed: bool = False
    ) -> None:
        """Make the cluster match the Workspace ``body``; status says how far it got.

        Only objects that differ from what is desired are applied (and the events say
        so): ``resumed`` (the operator restarted) reads each one the watches have not
        shown yet, so that a restart over applied Workspaces reads and writes nothing."""
        meta = body["metadata"]
        key: Key = (meta["namespace"], meta["name"])
        generation = meta.get("generation")
        if old is not None:
            changed = immutable_changes(old, body)
            if changed:
                message = (
                    f"{', '.join(changed)} cannot change: create a new Workspace instead "
                    "(the running one is kept as it was)"
                )
                await self._write_invalid(body, "ImmutableField", message, generation)
                return
        view = await self.discovery.view()
        try:
            want = desire(body, view, self.images)
        except InvalidWorkspaceError as exc:
            self.desired.pop(key, None)
            await self._write_invalid(body, exc.reason, exc.message, generation)
            return
        problem = await check_sources(want.ws, self.images.allowed_hosts, self.resolver)
        if problem is not None:
            self.desired.pop(key, None)
            await self._write_invalid(body, "InvalidSpec", problem, generation)
            return
        # Known before the first apply, so drift checks compare with this generation.
        self.desired[key] = want
        self._labels[(key[0], dns_label(want.ws.name))] = key
        try:
            stale = [obj for obj in want.objects if not await self._in_place(obj, resumed)]
            if stale or want.node_claims:
                plan = want.plan
                self.emit(body, "Normal", "Planned", f"{plan.devices_summary}: {plan.reason}")
            await self._provision(body, want)
            for obj in stale:
                await self._apply(obj)
        except KubeError as exc:
            if exc.transient:
                raise  # kopf retries with backoff
            self.desired.pop(key, None)
            await self._write_invalid(body, "ApplyFailed", str(exc), generation)
            return
        if old is not None:
            await self._prune(want)
        if stale:
            self.emit(body, "Normal", "Applied", f"{len(stale)} object(s) applied")
        await self.refresh(key, body)

    async def _in_place(self, obj: dict[str, Any], read: bool) -> bool:
        """Whether ``obj`` is in the cluster as desired: as the watches last saw it, or,
        with ``read`` and not seen yet, as the API server has it now."""
        meta = obj["metadata"]
        live = self.live.get((obj["kind"], meta.get("namespace", ""), meta["name"]))
        if live is None and read:
            try:
                live = await self.kube.get(
                    obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace")
                )
            except KubeError as exc:
                if exc.status != 403:  # a kind the operator may apply but not read
                    raise
        return live is not None and subset(obj, live)

    async def _apply(self, obj: dict[str, Any]) -> None:
        try:
            self._remember(await self.kube.apply(obj))
        except KubeError as exc:
            # A Job's pod template cannot change: a new tuning spec is a new Job.
            if obj["kind"] != "Job" or exc.status != 422:
                raise
            meta = obj["metadata"]
            await self.kube.delete(obj["apiVersion"], "Job", meta["name"], meta.get("namespace"))
            self._remember(await self.kube.apply(obj))

    def _remember(self, obj: dict[str, Any] | None) -> None:
        """Keep what an apply answered as the live copy until the watch shows it."""
        if isinstance(obj, dict) and isinstance(obj.get("metadata"), dict):
            meta = obj["metadata"]
            self.live[(str(obj.get("kind")), meta.get("namespace", ""), meta.get("name", ""))] = obj

    async def _provision(self, body: dict[str, Any], want: Desired) -> None:
        """Create the NodeClaims for the nodes the cluster lacks (none when it has them)."""
        if not want.node_claims:
            return
        plan = want.plan
        assert plan.instance_type is not None
        namespace = want.ws.metadata.namespace or "default"
        mine = [
            c
            for c in await self._node_claims(want)
            if (c["metadata"].get("labels") or {}).get(NAMESPACE_LABEL) == namespace
        ]
        names = {c["metadata"]["name"] for c in mine}
        nodes = _labelled(
            await self.kube.list("v1", "Node"), INSTANCE_TYPE_LABEL, plan.instance_type.name
        )
        # Nodes of this type that no Workspace provisioned serve it before new ones.
        free = [n for n in nodes if WORKSPACE_LABEL not in (n["metadata"].get("labels") or {})]
        needed = max(0, len(want.node_claims) - len(free))
        created = 0
        for claim in want.node_claims[:needed]:
            await self.kube.apply(claim)
            created += claim["metadata"]["name"] not in names
        if created:
            self.emit(
                body,
                "Normal",
                "ProvisioningNodes",
                f"created {created} NodeClaim(s) of {plan.instance_type.name}",
            )

    async def _node_claims(self, want: Desired) -> list[dict[str, Any]]:
        label = dns_label(want.ws.name)
        found = await self.kube.list(
            "karpenter.sh/v1", "NodeClaim", label_selector=f"{WORKSPACE_LABEL}={label}"
        )
        return _labelled(found, WORKSPACE_LABEL, label)

    async def _prune(self, want: Desired) -> None:
        """Delete what the Workspace owned but no longer renders (as a ConfigMap whose
        config was removed, or a Deployment replaced by a LeaderWorkerSet)."""
        keep = {(o["kind"], o["metadata"]["name"]) for o in want.objects}
        label = dns_label(want.ws.name)
        namespace = want.ws.metadata.namespace
        for api_version, kind in OWNED:
            for obj in _labelled(
                await self.kube.list(
                    api_version, kind, namespace, label_selector=f"{WORKSPACE_LABEL}={label}"
                ),
                WORKSPACE_LABEL,
                label,
            ):
                name = obj["metadata"]["name"]
                owner = workspace_of(obj)
                if (kind, name) not in keep and owner == (namespace, want.ws.name):
                    await self.kube.delete(api_version, kind, name, namespace)

    async def finalize(self, body: dict[str, Any]) -> int:
        """The Workspace is being deleted: delete its NodeClaims (owner references cannot
        reach cluster-scoped objects; the rest goes by garbage collection)."""
        meta = body["metadata"]
        key: Key = (meta["namespace"], meta["name"])
        self.forget(body)
        label = dns_label(meta["name"])
        deleted = 0
        claims = await self.kube.list(
            "karpenter.sh/v1", "NodeClaim", label_selector=f"{WORKSPACE_LABEL}={label}"
        )
        for claim in _labelled(claims, WORKSPACE_LABEL, label):
            if workspace_of(claim) == key:
                deleted += await self.kube.delete(
                    "karpenter.sh/v1", "NodeClaim", claim["metadata"]["name"]
                )
        return deleted

    # ------------------------------------------------------------------ drift

    async def owned_changed(self, event: str, obj: dict[str, Any]) -> None:
        """An object a Workspace owns was changed or deleted: restore it if it drifted
        from what was applied, then update the Workspace's status."""
        meta = obj.get("metadata") or {}
        ident = (str(obj.get("kind")), meta.get("namespace", ""), meta.get("name", ""))
        if event == "DELETED":
            self.live.pop(ident, None)
        else:
            self.live[ident] = obj
        key = workspace_of(obj) or self._by_label(obj)
        if key is None:
            return
        want = self.desired.get(key)
        if want is not None:
            meta = obj["metadata"]
            wanted = next(
                (
                    o
                    for o in [*want.objects, *want.node_claims]
                    if o["kind"] == obj.get("kind") and o["metadata"]["name"] == meta["name"]
                ),
                None,
            )
            gone = event == "DELETED" and not meta.get("deletionTimestamp")
            if (
                wanted is not None
                and wanted["kind"] != "NodeClaim"
                and (gone or not subset(wanted, obj))
            ):
                self._remember(await self.kube.apply(wanted))
                what = "deleted" if gone else "edited"
                log.info("restored %s %s/%s (%s by hand)", wanted["kind"], *key, what)
                body = {
                    "apiVersion": API_VERSION,
                    "kind": KIND,
                    "metadata": {"namespace": key[0], "name": key[1], "uid": want.ws.metadata.uid},
                }
                self.emit(
                    body,
                    "Normal",
                    "Restored",
                    f"{wanted['kind']} {meta['name']} was {what}; applied it again",
                )
        self.schedule_refresh(key)

    def _by_label(self, obj: dict[str, Any]) -> Key | None:
        """A pod's Workspace, by its label (pods are owned by ReplicaSets and Jobs)."""
        meta = obj.get("metadata") or {}
        label = (meta.get("labels") or {}).get(WORKSPACE_LABEL)
        key = self._labels.get((meta.get("namespace", ""), str(label)))
        return key if key is not None and key in self.desired else None

    def schedule_refresh(self, key: Key) -> None:
        """Refresh the status soon, once for a burst of events."""
        schedule(self._pending, key, self.refresh, "Workspace")

    def forget(self, body: dict[str, Any]) -> None:
        """The Workspace is gone (or going): drop what is kept for it."""
        meta = body.get("metadata") or {}
        key: Key = (meta.get("namespace", ""), meta.get("name", ""))
        self.desired.pop(key, None)
        self.seen.pop(key, None)
        self.written.pop(str(meta.get("uid")), None)
        self._labels.pop((key[0], dns_label(key[1])), None)

    def workspace_seen(self, event: str, obj: dict[str, Any]) -> None:
        """The Workspace watch showed ``obj``: keep what a refresh reads of it."""
        meta = obj.get("metadata") or {}
        key: Key = (meta.get("namespace", ""), meta.get("name", ""))
        if event == "DELETED":
            self.forget(obj)
            return
        status = obj.get("status") or {}
        before = self.seen.get(key)
        self.seen[key] = {
            "metadata": {k: meta.get(k) for k in ("namespace", "name", "uid", "generation")},
            "status": status,
        }
        uid = str(meta.get("uid"))
        written = self.written.get(uid)
        if written is not None:
            if _holds(status, written):
                del self.written[uid]  # the watch shows this operator's write: it is the record
            return  # else an older copy, from before the write
        if before is not None and before["status"] != status:
            # Not this operator's write (that would be in ``written``): someone else
            # changed the status, so observe again; the refresh writes only a difference.
            self.schedule_refresh(key)

    # ------------------------------------------------------------------ status

    async def refresh(self, key: Key, body: dict[str, Any] | None = None) -> None:
        """Observe the Workspace's objects and write its status when it changed."""
        want = self.desired.get(key)
        if want is None:
            return  # reconcile() has not run for it yet (it will refresh), or it is gone
        if body is None:
            body = self.seen.get(key) or await self.kube.get(API_VERSION, KIND, key[1], key[0])
            if body is None:
                self.desired.pop(key, None)
                return
        if want.ws.metadata.generation != body["metadata"].get("generation"):
            return  # reconcile() has not run for this generation yet; it will refresh
        seen = await self._observe(want)
        previous = previous_conditions(self._latest(body))
        status = compute_status(want, seen, previous, body["metadata"].get("generation"))
        await self._write(body, want, status)

    async def _observe(self, want: Desired) -> Observed:
        namespace = want.ws.metadata.namespace
        workload = want.workload
        current = None
        if workload is not None:
            # As the watch last saw it (its events schedule this refresh), else read.
            name = workload["metadata"]["name"]
            current = self.live.get((workload["kind"], namespace or "", name))
            if current is None:
                current = await self.kube.get(
                    workload["apiVersion"], workload["kind"], name, namespace
                )
        label = dns_label(want.ws.name)
        if self.pods is not None:
            pods = list(self.pods.get((namespace or "", label), ()))
        else:
            pods = _labelled(
                await self.kube.list("v1", "Pod", namespace, f"{WORKSPACE_LABEL}={label}"),
                WORKSPACE_LABEL,
                label,
            )
        claims = await self._node_claims(want) if want.node_claims else []
        placement = ""
        pending = any((p.get("status") or {}).get("phase", "Pending") == "Pending" for p in pods)
        view = await self.discovery.view()
        if pending and not want.plan.cpu_only and view.snapshot.slices:
            placed = place_replicas(want.ws, want.plan, view.snapshot)
            placement = "; ".join(f"{n['node']}: {n['reason']}" for n in placed.nodes)
        devices = await self._allocated(want, pods)
        return Observed(current, pods, claims, placement, devices)

    async def _allocated(self, want: Desired, pods: list[dict[str, Any]]) -> list[str]:
        """The devices the DRA claims of the Workspace's pods hold, as driver/pool/device."""
        shared = {o["metadata"]["name"] for o in want.objects if o["kind"] == "ResourceClaim"}
        if not shared and not any(o["kind"] == "ResourceClaimTemplate" for o in want.objects):
            return []
        names = {p["metadata"]["name"] for p in pods}
        devices = set()
        # The claims made from the template carry its labels (and a shared claim is ours).
        label = dns_label(want.ws.name)
        claims = await self.kube.list(
            "resource.k8s.io/v1",
            "ResourceClaim",
            want.ws.metadata.namespace,
            label_selector=f"{WORKSPACE_LABEL}={label}",
        )
        for claim in _labelled(claims, WORKSPACE_LABEL, label):
            meta = claim.get("metadata") or {}
            owners = {
                r.get("name") for r in meta.get("ownerReferences") or [] if r.get("kind") == "Pod"
            }
            if not (owners & names or meta.get("name") in shared):
                continue
            allocation = (claim.get("status") or {}).get("allocation") or {}
            for r in (allocation.get("devices") or {}).get("results") or []:
                devices.add(f"{r.get('driver')}/{r.get('pool')}/{r.get('device')}")
        return sorted(devices)

    async def _write(self, body: dict[str, Any], want: Desired, status: Status) -> None:
        service = want.service
        namespace = want.ws.metadata.namespace
        new: dict[str, Any] = {
            **status.to_json(),
            "plan": want.plan.status().model_dump(by_alias=True),
            "observedGeneration": body["metadata"].get("generation"),
            "selector": f"{WORKSPACE_LABEL}={dns_label(want.ws.name)}",
            "endpoint": (
                f"http://{service['metadata']['name']}.{namespace}.svc.cluster.local"
                if service is not None
                else None
            ),
        }
        await self._patch_status(body, new)

    async def _write_invalid(
        self, body: dict[str, Any], reason: str, message: str, generation: int | None
    ) -> None:
        status = invalid_status(reason, message, previous_conditions(body), generation)
        self.emit(body, "Warning", reason, message)
        await self._patch_status(body, {**status.to_json(), "observedGeneration": generation})

    def _latest(self, body: dict[str, Any]) -> dict[str, Any]:
        """``body``, with the status this operator last wrote for it if there is one."""
        written = self.written.get(str(body["metadata"].get("uid")))
        return (
            body if written is None else {**body, "status": {**body.get("status", {}), **written}}
        )

    def _shown(self, key: Key) -> dict[str, Any]:
        """The Workspace's status as its watch last showed it."""
        return (self.seen.get(key) or {}).get("status") or {}

    async def _patch_status(self, body: dict[str, Any], new: dict[str, Any]) -> None:
        old = body.get("status") or {}
        meta = body["metadata"]
        uid = str(meta.get("uid"))
        key: Key = (meta["namespace"], meta["name"])
        if any(_holds(seen, new) for seen in (old, self._shown(key), self.written.get(uid) or {})):
            return
        await self.kube.patch_status(API_VERSION, KIND, meta["name"], meta["namespace"], new)
        if _holds(self._shown(key), new):
            self.written.pop(uid, None)  # the watch showed the write before it returned
        else:
            self.written[uid] = new


def _holds(status: dict[str, Any], fields: dict[str, Any]) -> bool:
    """``status`` has every one of ``fields`` (a status patch) as given."""
    return bool(status) and all(status.get(k) == v for k, v in fields.items())
