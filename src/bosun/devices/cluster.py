"""Allocating a pod's claims across the nodes of a snapshot, and saying why not."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bosun.devices.allocator import Allocator, Features
from bosun.devices.cel import CELError, compile_selector
from bosun.devices.model import (
    AllocationResult,
    DeviceSubRequest,
    ExactDeviceRequest,
    ResourceClaim,
    to_wire,
)
from bosun.devices.nodes import NodeInfo
from bosun.devices.snapshot import Snapshot

__all__ = ["NodeOutcome", "allocate_on_nodes", "explain"]


@dataclass(frozen=True)
class NodeOutcome:
    node: str
    allocated: bool
    claims: list[ResourceClaim]
    results: list[AllocationResult] | None
    reason: str

    def to_json(self) -> dict[str, Any]:
        """As ``bosun dra allocate -o json`` prints it; ``allocation`` is what Kubernetes
        would write to the claim's ``status.allocation``."""
        results: list[AllocationResult | None] = (
            list(self.results) if self.results is not None else [None] * len(self.claims)
        )
        return {
            "node": self.node,
            "allocated": self.allocated,
            "claims": [
                {
                    "name": c.metadata.name,
                    "namespace": c.metadata.namespace,
                    "allocation": to_wire(r) if r is not None else None,
                }
                for c, r in zip(self.claims, results, strict=True)
            ],
            "reason": self.reason,
        }


def _alternatives(request: Any) -> list[ExactDeviceRequest | DeviceSubRequest]:
    if request.exactly is not None:
        return [request.exactly]
    return list(request.first_available)


def explain(allocator: Allocator, node: NodeInfo, claims: Sequence[ResourceClaim]) -> str:
    """Why the claims do not fit on ``node``: per request, how many devices qualify."""
    pools = allocator.gather_pools(node)
    if not pools:
        return "does not fit: no ResourceSlice offers devices on this node"
    usable = [p for p in pools if not p.incomplete and not p.invalid]
    notes = [f"pool {p.key} is being updated" for p in pools if p.incomplete]
    notes += [f"pool {p.key} is invalid ({p.invalid_reason})" for p in pools if p.invalid]
    devices = [d for p in usable for s in p.slices for d in s.devices]
    parts = []
    for claim in claims:
        for request in claim.spec.devices.requests:
            texts = []
            for alt in _alternatives(request):
                device_class = allocator.classes.get(alt.device_class_name)
                if device_class is None:
                    texts.append(f"device class {alt.device_class_name} does not exist")
                    continue
                expressions = [s.cel.expression for s in device_class.spec.selectors if s.cel]
                expressions += [s.cel.expression for s in alt.selectors if s.cel]
                try:
                    matching = [
                        d
                        for d in devices
                        if all(compile_selector(e).matches(d) for e in expressions)
                    ]
                except CELError as exc:
                    texts.append(f"a selector fails: {exc}")
                    continue
                free = [d for d in matching if d.id not in allocator.allocated]
                wanted = "all" if alt.allocation_mode == "All" else str(alt.count or 1)
                texts.append(
                    f"needs {wanted}, {len(matching)} of {len(devices)} devices match "
                    f"({len(free)} free)"
                )
            parts.append(f"{claim.metadata.name}/{request.name}: " + " or ".join(texts))
    summary = "; ".join(parts + notes)
    return f"does not fit: {summary} (constraints, counters and taints apply on top)"


def allocate_on_nodes(
    snapshot: Snapshot,
    claims: Sequence[ResourceClaim] | None = None,
    node: str | None = None,
    features: Features | None = None,
) -> list[NodeOutcome]:
    """Try the claims (default: the snapshot's unallocated ones) on each node, or one.

    Raises :class:`bosun.devices.AllocationError` for what makes allocation impossible
    (unknown class, CEL errors) and ``KeyError`` for an unknown ``node``.
    """
    to_allocate = list(snapshot.claims if claims is None else claims)
    allocator = Allocator(snapshot.classes, snapshot.slices, snapshot.allocated_devices(), features)
    nodes = snapshot.node_infos()
    if node is not None:
        nodes = [n for n in nodes if n.name == node]
        if not nodes:
            raise KeyError(node)
    outcomes = []
    for info in nodes:
        results = allocator.allocate(info, to_allocate)
        if results is None:
            reason = explain(allocator, info, to_allocate)
            outcomes.append(NodeOutcome(info.name, False, to_allocate, None, reason))
            continue
        devices = [f"{r.driver}/{r.pool}/{r.device}" for a in results for r in a.devices.results]
        reason = f"allocated {len(devices)} device(s): {', '.join(devices)}"
        outcomes.append(NodeOutcome(info.name, True, to_allocate, results, reason))
    return outcomes
