"""A Workspace's status from what is observed on the cluster: NodeClaims, the workload,
its pods. Pure; reasons are what a user can act on.

Conditions, as KAITO's: ``ResourceReady`` (nodes and devices), ``InferenceReady`` (the
servers answer) or ``JobStarted`` / ``JobSucceeded`` (tuning), and ``WorkspaceSucceeded``
(all of them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from bosun.api.conditions import Condition, ConditionType, set_condition
from bosun.operator.desired import Desired

__all__ = ["Observed", "Status", "compute_status", "invalid_status"]

T = ConditionType
StatusValue = Literal["True", "False", "Unknown"]


@dataclass(frozen=True)
class Observed:
    workload: dict[str, Any] | None = None  # Deployment, LeaderWorkerSet or Job
    pods: list[dict[str, Any]] = field(default_factory=list)
    node_claims: list[dict[str, Any]] = field(default_factory=list)
    placement: str = ""  # per node, why the replicas do not fit (when pods are pending)
    devices: list[str] = field(default_factory=list)  # driver/pool/device the pods' claims hold


@dataclass(frozen=True)
class Status:
    conditions: list[Condition]
    state: str
    replicas: int
    allocated_devices: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "conditions": [c.model_dump(by_alias=True, exclude_none=True) for c in self.conditions],
            "state": self.state,
            "replicas": self.replicas,
            "allocatedDevices": self.allocated_devices,
        }


def _conditions(obj: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    items = ((obj or {}).get("status") or {}).get("conditions") or []
    return {c.get("type", ""): c for c in items if isinstance(c, dict)}


def _node_claims(claims: list[dict[str, Any]], wanted: int) -> tuple[StatusValue, str, str]:
    ready = 0
    for claim in claims:
        conds = _conditions(claim)
        for kind in ("Launched", "Registered", "Initialized"):
            c = conds.get(kind)
            if c is not None and c.get("status") == "False" and c.get("reason") != "NotLaunched":
                name = claim["metadata"]["name"]
                why = c.get("message") or c.get("reason") or kind
                return "False", "NodeClaimFailed", f"NodeClaim {name} is not {kind}: {why}"
        if conds.get("Ready", {}).get("status") == "True":
            ready += 1
    if ready >= wanted:
        return "True", "NodesReady", f"{ready} node(s) provisioned"
    return "False", "ProvisioningNodes", f"{ready} of {wanted} NodeClaim(s) ready"


def _pod_problem(pods: list[dict[str, Any]]) -> tuple[str, str] | None:
    """The first pod problem a user can act on: (reason, message)."""
    for pod in pods:
        name = pod["metadata"]["name"]
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            waiting = (status.get("state") or {}).get("waiting") or {}
            reason = waiting.get("reason")
            if reason in (
                "CrashLoopBackOff",
                "ImagePullBackOff",
                "ErrImagePull",
                "CreateContainerConfigError",
                "InvalidImageName",
            ):
                return reason, f"pod {name}: {waiting.get('message') or reason}"
    return None


def _scheduled(pod: dict[str, Any]) -> bool:
    return bool(_conditions(pod).get("PodScheduled", {}).get("status") == "True")


def _unschedulable(pods: list[dict[str, Any]]) -> str | None:
    for pod in pods:
        c = _conditions(pod).get("PodScheduled", {})
        if c.get("status") == "False" and c.get("reason") == "Unschedulable":
            return f"pod {pod['metadata']['name']}: {c.get('message') or 'unschedulable'}"
    return None


def _resources(desired: Desired, seen: Observed, replicas: int) -> tuple[StatusValue, str, str]:
    if desired.node_claims:
        status, reason, message = _node_claims(seen.node_claims, len(desired.node_claims))
        if status != "True":
            return status, reason, message
    if seen.workload is None:
        return "False", "Applying", "the workload is being created"
    unschedulable = _unschedulable(seen.pods)
    if unschedulable:
        message = unschedulable + (f". Per node: {seen.placement}" if seen.placement else "")
        return "False", "DevicesUnavailable", message
    scheduled = [p for p in seen.pods if _scheduled(p)]
    if len(scheduled) >= max(replicas, 1) or replicas == 0:
        devices = "" if desired.plan.cpu_only else f" with {desired.plan.devices_summary}"
        if seen.devices:
            devices += f" ({', '.join(seen.devices)})"
        return "True", "ResourcesAllocated", f"{len(scheduled)} pod(s) scheduled{devices}"
    return "False", "WaitingForPods", f"{len(scheduled)} of {replicas} pod(s) scheduled"


def _inference(seen: Observed, replicas: int) -> tuple[StatusValue, str, str, int]:
    status = (seen.workload or {}).get("status") or {}
    ready = int(status.get("readyReplicas") or 0)
    if replicas == 0:
        return "False", "ScaledToZero", "spec.resource.count is 0", 0
    if ready >= replicas:
        return "True", "ReplicasReady", f"{ready} of {replicas} replica(s) ready", ready
    problem = _pod_problem(seen.pods)
    if problem is not None:
        return "False", problem[0], problem[1], ready
    return "False", "ReplicasNotReady", f"{ready} of {replicas} replica(s) ready", ready


def _job(seen: Observed) -> tuple[tuple[StatusValue, str, str], tuple[StatusValue, str, str]]:
    job = seen.workload or {}
    status = job.get("status") or {}
    conds = _conditions(job)
    started: tuple[StatusValue, str, str] = ("False", "JobPending", "the Job has not started")
    if status.get("startTime") or status.get("active"):
        started = ("True", "JobStarted", f"started at {status.get('startTime', 'now')}")
    failed = conds.get("Failed", {})
    if failed.get("status") == "True":
        why = failed.get("message") or failed.get("reason") or "failed"
        return started, ("False", "JobFailed", f"the tuning Job failed: {why}")
    if conds.get("Complete", {}).get("status") == "True" or status.get("succeeded"):
        return started, ("True", "JobSucceeded", "the adapter is written")
    problem = _pod_problem(seen.pods)
    if problem is not None:
        return started, ("False", problem[0], problem[1])
    return started, ("False", "JobRunning", "the tuning Job is running")


def compute_status(
    desired: Desired, seen: Observed, previous: list[Condition], generation: int | None
) -> Status:
    """The Workspace's conditions, state and ready replicas from what is observed."""
    conditions = list(previous)
    replicas = desired.ws.spec.resource.count
    tuning = desired.ws.spec.tuning is not None

    def put(kind: str, value: tuple[StatusValue, str, str]) -> None:
        nonlocal conditions
        conditions = set_condition(conditions, kind, *value, observed_generation=generation)

    resources = _resources(desired, seen, 1 if tuning else replicas)
    put(T.RESOURCE_READY, resources)
    checks = [resources]
    ready = 0
    if tuning:
        started, succeeded = _job(seen)
        put(T.JOB_STARTED, started)
        put(T.JOB_SUCCEEDED, succeeded)
        checks += [started, succeeded]
    else:
        status, reason, message, ready = _inference(seen, replicas)
        value: tuple[StatusValue, str, str] = (status, reason, message)
        put(T.INFERENCE_READY, value)
        checks.append(value)
    failing = next((c for c in checks if c[0] != "True"), None)
    if failing is None:
        done = "TuningSucceeded" if tuning else "WorkspaceReady"
        put(T.WORKSPACE_SUCCEEDED, ("True", done, "every condition is True"))
        state = "Succeeded" if tuning else "Ready"
    else:
        put(T.WORKSPACE_SUCCEEDED, ("False", failing[1], failing[2]))
        failed = failing[1] in (
            "NodeClaimFailed",
            "JobFailed",
            "CrashLoopBackOff",
            "ImagePullBackOff",
            "ErrImagePull",
            "InvalidImageName",
        )
        state = "Failed" if failed else "Pending" if failing is resources else "Running"
    return Status(conditions, state, ready, list(seen.devices))


def invalid_status(
    reason: str, message: str, previous: list[Condition], generation: int | None
) -> Status:
    """A Workspace that cannot be reconciled as written: every condition says why."""
    conditions = list(previous)
    for kind in (T.RESOURCE_READY, T.WORKSPACE_SUCCEEDED):
        conditions = set_condition(
            conditions, kind, "False", reason, message, observed_generation=generation
        )
    return Status(conditions, "Invalid", 0)
