"""What a Workspace should be on this cluster: its plan and every object to apply.

Pure: a Workspace body and a :class:`ClusterView` in, a :class:`Desired` out, or
:class:`InvalidWorkspaceError` with a reason and a message that names the field to fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bosun.api.errors import BosunError, WorkspaceError
from bosun.api.load import parse_workspace
from bosun.api.workspace import Workspace
from bosun.catalog.sizing import Plan, plan_workspace
from bosun.operator.discovery import ClusterView
from bosun.render import RenderOptions, render_workspace

__all__ = ["IMMUTABLE", "Desired", "InvalidWorkspaceError", "desire", "immutable_changes", "subset"]

# Fields a running Workspace cannot change, as KAITO's: another model, instance type or
# tuning method is another Workspace.
IMMUTABLE = (
    ("spec", "inference", "preset", "name"),
    ("spec", "resource", "instanceType"),
    ("spec", "tuning", "method"),
    ("spec", "tuning", "preset", "name"),
)


class InvalidWorkspaceError(Exception):
    """The Workspace cannot be reconciled as written; the user must edit it."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        self.message = message
        super().__init__(message)


@dataclass(frozen=True)
class Desired:
    ws: Workspace
    plan: Plan
    objects: list[dict[str, Any]]  # namespaced, owned by the Workspace, in apply order
    node_claims: list[dict[str, Any]]  # cluster-scoped; the finalizer deletes them

    @property
    def workload(self) -> dict[str, Any] | None:
        """The Deployment, LeaderWorkerSet or Job that runs the model."""
        kinds = ("Deployment", "LeaderWorkerSet", "Job")
        return next((o for o in self.objects if o["kind"] in kinds), None)

    @property
    def service(self) -> dict[str, Any] | None:
        return next((o for o in self.objects if o["kind"] == "Service"), None)


def _dig(body: dict[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = body
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def immutable_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The immutable fields that differ between two Workspace bodies, as field paths."""
    changed = []
    for path in IMMUTABLE:
        before, after = _dig(old, path), _dig(new, path)
        if before is not None and before != after:
            changed.append(".".join(path))
    return changed


def parse(body: dict[str, Any], allowed_hosts: frozenset[str] = frozenset()) -> Workspace:
    """The Workspace of a body read from the API server (status is the operator's);
    ``allowed_hosts``: internal hosts the operator was told to accept as sources."""
    data = {k: body[k] for k in ("apiVersion", "kind", "metadata", "spec") if k in body}
    meta = body.get("metadata") or {}
    where = f"Workspace {meta.get('namespace', '')}/{meta.get('name', '')}"
    try:
        return parse_workspace(data, where, allowed_hosts)
    except WorkspaceError as exc:
        raise InvalidWorkspaceError(
            "InvalidSpec", "; ".join(str(p) for p in exc.problems)
        ) from None


def desire(body: dict[str, Any], view: ClusterView, images: RenderOptions) -> Desired:
    """Plan the Workspace for this cluster and render it; raises :class:`InvalidWorkspaceError`."""
    ws = parse(body, images.allowed_hosts)
    resource = ws.spec.resource
    acc = resource.accelerator
    found = view.gpu
    # Discovered GPUs size the model unless the Workspace names its hardware itself.
    use_found = (
        found is not None
        and resource.instance_type is None
        and not resource.cpu_only
        and (acc is None or acc.mig_profile is None)
    )
    try:
        plan = plan_workspace(
            ws,
            local_profile=found if use_found else None,
            devices_per_node=view.gpus_per_node if use_found else None,
        )
    except BosunError as exc:
        raise InvalidWorkspaceError("PlanFailed", str(exc)) from None
    if not plan.fits and (acc is None or acc.count is None):
        raise InvalidWorkspaceError("DoesNotFit", f"spec.resource: {plan.reason}")
    options = RenderOptions(
        namespace=ws.metadata.namespace,
        extended_resources=view.extended_resources and not plan.cpu_only,
        vllm_image=images.vllm_image,
        bosun_image=images.bosun_image,
        node_class=images.node_class,
        allowed_hosts=images.allowed_hosts,
    )
    rendered = render_workspace(ws, plan, options)
    node_claims = [o for o in rendered if o["kind"] == "NodeClaim"]
    objects = [o for o in rendered if o["kind"] != "NodeClaim"]
    return Desired(ws, plan, objects, node_claims)


def subset(want: Any, have: Any) -> bool:
    """Whether ``have`` holds everything ``want`` says (extra fields are the server's).

    Lists must match item by item, so a reordered or shortened list counts as drift.
    """
    if isinstance(want, dict):
        return isinstance(have, dict) and all(subset(v, have.get(k)) for k, v in want.items())
    if isinstance(want, list):
        return (
            isinstance(have, list)
            and len(want) == len(have)
            and all(subset(w, h) for w, h in zip(want, have, strict=True))
        )
    if isinstance(want, int | float) and isinstance(have, int | float):
        return want == have
    return bool(want == have) or str(want) == str(have)
