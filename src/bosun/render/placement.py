"""Where a plan's replicas fit in a cluster: the claim render would create, allocated
node by node with the DRA allocator (before anything is deployed)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bosun.api.workspace import Workspace
from bosun.catalog.sizing import Plan
from bosun.devices.allocator import Allocator
from bosun.devices.cluster import allocate_on_nodes
from bosun.devices.model import ResourceClaim
from bosun.devices.snapshot import Snapshot
from bosun.render.claims import claim_spec

__all__ = ["Placement", "place_replicas"]


@dataclass(frozen=True)
class Placement:
    nodes: list[dict[str, Any]]  # every node: can it host one replica, and why (not)
    replicas: list[str | None]  # the node each replica lands on, first fit, or None

    @property
    def complete(self) -> bool:
        return all(node is not None for node in self.replicas)

    def to_json(self) -> dict[str, Any]:
        return {
            "nodes": self.nodes,
            "placement": [{"replica": i, "node": n} for i, n in enumerate(self.replicas)],
        }


def place_replicas(ws: Workspace, plan: Plan, snapshot: Snapshot) -> Placement:
    """Which nodes can host a replica, and a first-fit placement of all of them.

    Replicas are placed one after another, each taking its devices out of the pool, as the
    scheduler would bind pods. Raises :class:`bosun.devices.AllocationError` when the
    claim cannot be allocated anywhere for a reason of its own (unknown DeviceClass...).
    """
    claim = ResourceClaim.model_validate(
        {"metadata": {"name": f"{ws.name}-accelerator"}, "spec": claim_spec(ws, plan)}
    )
    outcomes = allocate_on_nodes(snapshot, [claim])
    nodes = [{"node": o.node, "fits": o.allocated, "reason": o.reason} for o in outcomes]
    held = set(snapshot.allocated_devices())
    infos = {n.name: n for n in snapshot.node_infos()}
    shared = plan.sharing.value != "Exclusive"
    replicas: list[str | None] = []
    for _ in range(plan.replicas):
        chosen = None
        for outcome in outcomes:
            if not outcome.allocated:
                continue
            allocator = Allocator(snapshot.classes, snapshot.slices, held)
            results = allocator.allocate(infos[outcome.node], [claim])
            if results is None:
                continue
            chosen = outcome.node
            if not shared:  # shared devices stay available to the other replicas
                held |= {(r.driver, r.pool, r.device) for r in results[0].devices.results}
            break
        replicas.append(chosen)
    return Placement(nodes, replicas)
