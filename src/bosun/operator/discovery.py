"""What the cluster offers: is DRA served, which devices its slices publish, and, where DRA
is absent, what NVIDIA's GPU Feature Discovery says on the nodes' labels.

Read once per :data:`TTL` and shared by every reconcile, so a burst of Workspaces costs
a handful of list calls, not a handful each.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bosun.api.quantity import to_bytes
from bosun.catalog.accelerators import AcceleratorProfile, all_profiles
from bosun.devices.snapshot import Snapshot, parse_snapshot
from bosun.operator.kube import Kube

__all__ = ["TTL", "ClusterView", "Discovery", "profile_for_product"]

TTL = 10.0
DRA = "resource.k8s.io/v1"
GFD_PRODUCT = "nvidia.com/gpu.product"
GFD_MEMORY = "nvidia.com/gpu.memory"  # MiB
GFD_COUNT = "nvidia.com/gpu.count"
MIB = 2**20


def _norm(product: str) -> str:
    return product.strip().lower().replace(" ", "-")


def profile_for_product(product: str, memory_bytes: int = 0) -> AcceleratorProfile:
    """The catalog's profile of a GPU product, as DRA (``NVIDIA H100 80GB HBM3``) or GFD
    (``NVIDIA-H100-80GB-HBM3``) spell it; an ad-hoc profile for a product it lacks."""
    for profile in all_profiles():
        if profile.kind == "gpu" and _norm(profile.product_name) == _norm(product):
            return profile
    return AcceleratorProfile(
        name=_norm(product), kind="gpu", memory_bytes=memory_bytes, product_name=product
    )


@dataclass(frozen=True)
class ClusterView:
    dra: bool  # resource.k8s.io/v1 is served
    nodes: list[dict[str, Any]] = field(default_factory=list)
    snapshot: Snapshot = field(default_factory=Snapshot)  # DeviceClasses, slices, claims
    gpu: AcceleratorProfile | None = None  # the most common GPU on the nodes
    gpus_per_node: int = 0

    @property
    def extended_resources(self) -> bool:
        """Claim ``nvidia.com/gpu`` instead of DRA devices: DRA is absent, or nothing
        publishes GPUs through it while the device plugin does."""
        return not self.dra or (not self.snapshot.slices and self.gpu is not None)


def _from_slices(snapshot: Snapshot) -> tuple[AcceleratorProfile | None, int]:
    per_node: Counter[str] = Counter()
    products: Counter[tuple[str, int]] = Counter()
    for s in snapshot.slices:
        for device in s.spec.devices:
            attrs = device.attributes
            product = attrs.get("productName")
            if product is None or product.string_value is None:
                continue
            memory = device.capacity.get("memory")
            size = to_bytes(memory.value) if memory is not None else 0
            products[(product.string_value, size)] += 1
            per_node[s.spec.node_name or device.node_name or ""] += 1
    if not products:
        return None, 0
    (name, size), _ = products.most_common(1)[0]
    return profile_for_product(name, size), max(per_node.values())


def _from_labels(nodes: list[dict[str, Any]]) -> tuple[AcceleratorProfile | None, int]:
    found: Counter[tuple[str, int, int]] = Counter()
    for node in nodes:
        labels = node.get("metadata", {}).get("labels") or {}
        product = labels.get(GFD_PRODUCT)
        if not product:
            continue
        try:
            memory = int(labels.get(GFD_MEMORY, "0")) * MIB
            count = int(labels.get(GFD_COUNT, "1"))
        except ValueError:
            continue
        found[(product, memory, count)] += 1
    if not found:
        return None, 0
    (product, memory, count), _ = found.most_common(1)[0]
    return profile_for_product(product, memory), count


class Discovery:
    """A cached :class:`ClusterView`, refreshed at most every :data:`TTL` seconds."""

    def __init__(self, kube: Kube, ttl: float = TTL) -> None:
        self.kube = kube
        self.ttl = ttl
        self._view: ClusterView | None = None
        self._at = 0.0
        self._lock = asyncio.Lock()

    def invalidate(self) -> None:
        self._view = None

    async def view(self) -> ClusterView:
        async with self._lock:
            if self._view is None or time.monotonic() - self._at > self.ttl:
                self._view = await self._discover()
                self._at = time.monotonic()
            return self._view

    async def _discover(self) -> ClusterView:
        kube = self.kube
        nodes = await kube.list("v1", "Node")
        dra = await kube.served(DRA)
        snapshot = Snapshot()
        if dra:
            documents: list[Any] = []
            for kind in ("DeviceClass", "ResourceSlice", "ResourceClaim"):
                documents += [
                    {**item, "apiVersion": DRA, "kind": kind} for item in await kube.list(DRA, kind)
                ]
            documents += [{**n, "apiVersion": "v1", "kind": "Node"} for n in nodes]
            snapshot = parse_snapshot(documents, "the cluster")
            snapshot.claims = []  # pending claims belong to pods, not to this view
        gpu, per_node = _from_slices(snapshot)
        if gpu is None:
            gpu, per_node = _from_labels(nodes)
        return ClusterView(dra, nodes, snapshot, gpu, per_node)
