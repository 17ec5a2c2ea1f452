"""The DRA structured-parameters allocator, as kube-scheduler runs it (1.36, incubating).

A faithful port of ``k8s.io/dynamic-resource-allocation/structured`` (DRA.md beside the
design notes): pools gathered per node (generations, incomplete and invalid pools),
ExactCount and All, admin access, matchAttribute / distinctAttribute constraints,
prioritized lists (``firstAvailable``), partitionable devices (shared counters), device
taints and tolerations, binding conditions, node-local and network-attached devices,
the 32-result limit and the result node selector. The search is depth-first, first fit,
in pool / slice / device order, trying combinations (not permutations) within a request
and backtracking across requests and claims, exactly as upstream does, so it gives the
same answers.

Pure computation over the objects it is given; the CEL seam is :mod:`bosun.devices.cel`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from bosun.api.errors import BosunError
from bosun.api.quantity import parse_quantity
from bosun.devices.cel import (
    MISSING,
    CELError,
    CompiledSelector,
    attribute_value,
    compile_selector,
    quantity_value,
)
from bosun.devices.model import (
    ALLOCATION_RESULTS_MAX_SIZE,
    AllocationResult,
    Device,
    DeviceAllocationConfiguration,
    DeviceAllocationResult,
    DeviceAttribute,
    DeviceClass,
    DeviceRequest,
    DeviceRequestAllocationResult,
    DeviceSelector,
    DeviceSubRequest,
    DeviceTaint,
    DeviceToleration,
    ExactDeviceRequest,
    NodeSelector,
    NodeSelectorRequirement,
    NodeSelectorTerm,
    ResourceClaim,
    ResourceSlice,
)
from bosun.devices.nodes import NodeInfo, node_matches

__all__ = ["AllocationError", "Allocator", "DeviceID", "Features"]

DeviceID = tuple[str, str, str]  # (driver, pool, device)


class AllocationError(BosunError):
    """Allocation cannot even be attempted: the scheduler would retry the pod later."""


@dataclass(frozen=True)
class Features:
    """DRA feature gates. Defaults: what Kubernetes 1.36 enables."""

    admin_access: bool = True
    prioritized_list: bool = True
    partitionable_devices: bool = True
    device_taints: bool = True
    device_binding: bool = True  # DRADeviceBindingConditions + DRAResourceClaimDeviceStatus
    consumable_capacity: bool = False  # shared capacity (allowMultipleAllocations): not yet


# --------------------------------------------------------------------------- prepared data


@dataclass(eq=False, slots=True)
class _Dev:
    """A device of the snapshot, and what its selectors read (a
    :class:`~bosun.devices.cel.CelDevice`): a value a selector names is read from the
    spec when asked; the whole device as CEL sees it is made only for a selector that
    reads it otherwise. A large cluster's devices are thus looked at without making
    anything of them that lives on (which also spares the collector: a full garbage
    collection over a 5,000-node snapshot took ~0.4 s)."""

    id: DeviceID
    spec: Device
    slice: _Slice
    counters: tuple[tuple[str, tuple[tuple[str, Decimal], ...]], ...]
    _whole: dict[str, Any] | None = None

    @property
    def driver(self) -> str:
        return self.slice.driver

    @property
    def allow_multiple_allocations(self) -> bool:
        return bool(self.spec.allow_multiple_allocations)

    def value(self, kind: str, domain: str, ident: str) -> Any:
        return _lookup(self.slice.driver, self.spec, kind, domain, ident)

    def whole(self) -> dict[str, Any]:
        if self._whole is None:
            attributes, capacity = _maps(self.slice.driver, self.spec)
            self._whole = {
                "driver": self.slice.driver,
                "attributes": attributes,
                "capacity": capacity,
                "allowMultipleAllocations": self.allow_multiple_allocations,
            }
        return self._whole


@dataclass(eq=False, slots=True)
class _Slice:
    obj: ResourceSlice
    name: str
    driver: str
    pool: str
    generation: int
    count: int
    devices: list[_Dev] = field(default_factory=list)
    counter_sets: dict[str, dict[str, Decimal]] = field(default_factory=dict)

    @property
    def per_device(self) -> bool:
        return bool(self.obj.spec.per_device_node_selection)


@dataclass(eq=False)
class _Pool:
    driver: str
    name: str
    slices: list[_Slice]  # relevant for the node, at the pool's generation
    incomplete: bool = False
    invalid: bool = False
    invalid_reason: str = ""
    other_slices: list[_Slice] = field(default_factory=list)  # same generation, other nodes
    counter_sets: dict[str, dict[str, Decimal]] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.driver}/{self.name}"


def _maps(
    driver: str, device: Device
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """A device's attributes and capacity as CEL sees them, by domain (a bare name is the
    driver's)."""
    attributes: dict[str, dict[str, Any]] = {}
    for name, attr in device.attributes.items():
        domain, _, ident = name.rpartition("/")
        attributes.setdefault(domain or driver, {})[ident] = _attribute(attr)
    capacity: dict[str, dict[str, Any]] = {}
    for name, cap in device.capacity.items():
        domain, _, ident = name.rpartition("/")
        capacity.setdefault(domain or driver, {})[ident] = quantity_value(cap.value)
    return attributes, capacity


def _attribute(attr: DeviceAttribute) -> Any:
    version = attr.version_value
    return attribute_value("version", version) if version is not None else attr.value


def _lookup(driver: str, device: Device, kind: str, domain: str, ident: str) -> Any:
    """What ``_maps(driver, device)`` holds for ``kind`` (attributes or capacity),
    ``domain`` and ``ident``, or MISSING: read from the spec, without making the maps."""
    table = device.attributes if kind == "attributes" else device.capacity
    if domain == driver:  # "ident", "/ident" and "driver/ident" all land there
        names = [n for n in (ident, f"/{ident}", f"{driver}/{ident}") if n in table]
        if len(names) > 1:  # the last of them in the device's order wins: as _maps does
            return _maps(driver, device)[0 if kind == "attributes" else 1][domain][ident]
        found = table.get(names[0]) if names else None
    else:
        found = table.get(f"{domain}/{ident}")
    if found is None:
        return MISSING
    if kind == "attributes":
        return _attribute(found)  # type: ignore[arg-type]
    return quantity_value(found.value)


def _prepare(obj: ResourceSlice) -> _Slice:
    spec = obj.spec
    prepared = _Slice(
        obj=obj,
        name=obj.metadata.name,
        driver=spec.driver,
        pool=spec.pool.name,
        generation=spec.pool.generation,
        count=spec.pool.resource_slice_count,
    )
    for device in spec.devices:
        counters = tuple(
            (c.counter_set, tuple((n, parse_quantity(v.value)) for n, v in c.counters.items()))
            for c in device.consumes_counters
        )
        prepared.devices.append(
            _Dev(
                id=(spec.driver, spec.pool.name, device.name),
                spec=device,
                slice=prepared,
                counters=counters,
            )
        )
    for counter_set in spec.shared_counters:
        prepared.counter_sets[counter_set.name] = {
            n: parse_quantity(c.value) for n, c in counter_set.counters.items()
        }
    return prepared


# --------------------------------------------------------------------------- requests


@dataclass(eq=False)
class _Request:
    """One request without subrequests, or one subrequest."""

    claim_index: int
    name: str
    parent: str | None
    exact: ExactDeviceRequest | DeviceSubRequest
    device_class: DeviceClass
    num_devices: int = 0
    all_devices: list[tuple[_Dev, _Pool]] | None = None
    selected_sub: int = 0
    # Read on every device the search tries: computed once.
    admin: bool = field(init=False)
    mode: str = field(init=False)
    tolerations: list[DeviceToleration] = field(init=False)
    selectors: list[DeviceSelector] = field(init=False)

    def __post_init__(self) -> None:
        self.admin = isinstance(self.exact, ExactDeviceRequest) and bool(self.exact.admin_access)
        self.mode = self.exact.allocation_mode or "ExactCount"
        self.tolerations = self.exact.tolerations
        self.selectors = self.exact.selectors

    @property
    def full_name(self) -> str:
        return f"{self.parent}/{self.name}" if self.parent else self.name


class _Constraint:
    def add(self, request: str, sub: str, device: _Dev) -> bool:
        raise NotImplementedError

    def remove(self, request: str, sub: str, device: _Dev) -> None:
        raise NotImplementedError


def _lookup_attribute(device: _Dev, name: str) -> DeviceAttribute | None:
    attributes = device.spec.attributes
    if name in attributes:
        return attributes[name]
    domain, sep, ident = name.partition("/")
    if not sep or domain != device.id[0]:
        return None
    return attributes.get(ident)


def _typed(attr: DeviceAttribute) -> tuple[str, Any]:
    for kind, value in (
        ("string", attr.string_value),
        ("int", attr.int_value),
        ("bool", attr.bool_value),
        ("version", attr.version_value),
    ):
        if value is not None:
            return kind, value
    return "unknown", None


class _RequestScope:
    def __init__(self, requests: list[str]) -> None:
        self.names = set(requests)

    def applies(self, request: str, sub: str) -> bool:
        if not self.names:
            return True
        return request in self.names or (bool(sub) and f"{request}/{sub}" in self.names)


class _MatchAttribute(_Constraint):
    def __init__(self, requests: list[str], attribute: str) -> None:
        self.scope = _RequestScope(requests)
        self.attribute = attribute
        self.value: tuple[str, Any] | None = None
        self.count = 0

    def add(self, request: str, sub: str, device: _Dev) -> bool:
        if not self.scope.applies(request, sub):
            return True
        attr = _lookup_attribute(device, self.attribute)
        if attr is None:
            return False
        value = _typed(attr)
        if self.count == 0:
            self.value, self.count = value, 1
            return True
        if value != self.value:
            return False
        self.count += 1
        return True

    def remove(self, request: str, sub: str, device: _Dev) -> None:
        if self.scope.applies(request, sub):
            self.count -= 1


class _DistinctAttribute(_Constraint):
    def __init__(self, requests: list[str], attribute: str) -> None:
        self.scope = _RequestScope(requests)
        self.attribute = attribute
        self.seen: dict[tuple[str, Any], int] = {}

    def add(self, request: str, sub: str, device: _Dev) -> bool:
        if not self.scope.applies(request, sub):
            return True
        attr = _lookup_attribute(device, self.attribute)
        if attr is None:
            return False
        value = _typed(attr)
        if value in self.seen:
            return False
        self.seen[value] = 1
        return True

    def remove(self, request: str, sub: str, device: _Dev) -> None:
        if not self.scope.applies(request, sub):
            return
        attr = _lookup_attribute(device, self.attribute)
        if attr is not None:
            self.seen.pop(_typed(attr), None)


def _tolerates(toleration: DeviceToleration, taint: DeviceTaint) -> bool:
    if toleration.effect and toleration.effect != taint.effect:
        return False
    if toleration.key and toleration.key != taint.key:
        return False
    if toleration.operator == "Exists":
        return True
    return (toleration.value or "") == (taint.value or "")


def _taint_prevents(device: _Dev, tolerations: list[DeviceToleration]) -> bool:
    for taint in device.spec.taints:
        if taint.effect in ("NoSchedule", "NoExecute") and not any(
            _tolerates(t, taint) for t in tolerations
        ):
            return True
    return False


def _claim_ref(claim: ResourceClaim) -> str:
    meta = claim.metadata
    return f"{meta.namespace}/{meta.name}" if meta.namespace else meta.name


class _StopError(Exception):
    """errAllocationResultMaxSizeExceeded: this branch can never fit in 32 results."""


@dataclass(eq=False, slots=True)
class _Result:
    request: _Request
    device: _Dev


# --------------------------------------------------------------------------- allocator


class Allocator:
    """Allocates devices for the claims of one pod, node by node.

    Build it once per cluster snapshot (classes, slices, devices already allocated) and
    call :meth:`allocate` for each candidate node.
    """

    def __init__(
        self,
        classes: Iterable[DeviceClass],
        slices: Iterable[ResourceSlice],
        allocated: Iterable[DeviceID] = (),
        features: Features | None = None,
    ) -> None:
        self.features = features or Features()
        self.classes = {c.metadata.name: c for c in classes}
        self.allocated = frozenset(allocated)
        self._slices = [_prepare(s) for s in slices]
        self._on_node: dict[str, list[_Slice]] = defaultdict(list)
        self._shared: list[_Slice] = []
        self._by_pool: dict[tuple[str, str], list[_Slice]] = defaultdict(list)
        for s in self._slices:
            if s.obj.spec.node_name:
                self._on_node[s.obj.spec.node_name].append(s)
            else:
                self._shared.append(s)
            self._by_pool[(s.driver, s.pool)].append(s)
        self._available: dict[tuple[str, str], dict[str, dict[str, Decimal]]] = {}
        # Each node's pools, gathered for its first claim and kept: the snapshot does not
        # change under an allocator, and a search never changes a pool.
        self._gathered: dict[tuple[str, tuple[tuple[str, str], ...]], list[_Pool]] = {}

    # ----------------------------------------------------------------- pools

    def _relevant(self, s: _Slice, node: NodeInfo) -> bool:
        spec = s.obj.spec
        if s.per_device and not self.features.partitionable_devices:
            return False
        if spec.node_name or spec.all_nodes or spec.node_selector is not None:
            return node_matches(node, spec.node_name, spec.all_nodes, spec.node_selector)
        if s.per_device:
            return any(
                node_matches(node, d.spec.node_name, d.spec.all_nodes, d.spec.node_selector)
                for d in s.devices
            )
        return False  # an unknown, future kind of node selection

    def gather_pools(self, node: NodeInfo) -> list[_Pool]:
        """The pools with devices reachable from ``node``, sorted as the allocator walks them."""
        key = (node.name, tuple(sorted(node.labels.items())))
        gathered = self._gathered.get(key)
        if gathered is None:
            gathered = self._gathered[key] = self._gather(node)
        return gathered

    def _gather(self, node: NodeInfo) -> list[_Pool]:
        pools: dict[tuple[str, str], _Pool] = {}
        for s in self._on_node.get(node.name, []) + self._shared:
            if not self._relevant(s, node):
                continue
            key = (s.driver, s.pool)
            pool = pools.get(key)
            if pool is None:
                pools[key] = _Pool(s.driver, s.pool, [s])
            elif s.generation > pool.slices[0].generation:
                pool.slices = [s]
            elif s.generation == pool.slices[0].generation:
                pool.slices.append(s)
        result = []
        for key, pool in pools.items():
            generation = pool.slices[0].generation
            expected = pool.slices[0].count
            same = [s for s in self._by_pool[key] if s.generation == generation]
            if len(pool.slices) != expected:
                # Slices for other nodes may complete the pool, unless a newer generation
                # exists: then the driver is replacing this one and the pool is ignored.
                if any(s.generation > generation for s in self._by_pool[key]):
                    continue
                pool.incomplete = len(same) != expected
            pool.other_slices = [s for s in same if all(s is not t for t in pool.slices)]
            pool.slices.sort(key=lambda s: s.name)
            self._validate(pool, same)
            result.append(pool)
        has_binding = {
            id(p): any(d.spec.binding_conditions for s in p.slices for d in s.devices)
            for p in result
        }
        result.sort(key=lambda p: (has_binding[id(p)], p.driver, p.name))
        return result

    def _validate(self, pool: _Pool, slices: list[_Slice]) -> None:
        names: set[str] = set()
        for s in slices:
            for d in s.devices:
                if d.spec.name in names:
                    pool.invalid, pool.invalid_reason = True, f"duplicate device name {d.spec.name}"
                    return
                names.add(d.spec.name)
            for set_name, shared in s.counter_sets.items():
                if set_name in pool.counter_sets:
                    pool.invalid, pool.invalid_reason = True, f"duplicate counter set {set_name}"
                    return
                pool.counter_sets[set_name] = shared
        if not self.features.partitionable_devices:
            return
        for s in slices:
            for d in s.devices:
                for set_name, counters in d.counters:
                    known = pool.counter_sets.get(set_name)
                    if known is None or any(n not in known for n, _ in counters):
                        pool.invalid = True
                        pool.invalid_reason = (
                            f"device {d.spec.name} consumes unknown counters of {set_name}"
                        )
                        return

    # ----------------------------------------------------------------- entry point

    def allocate(
        self, node: NodeInfo, claims: Sequence[ResourceClaim]
    ) -> list[AllocationResult] | None:
        """One allocation result per claim, or None when the claims do not fit on ``node``.

        Raises :class:`AllocationError` when allocation cannot be attempted (unknown
        class, CEL error, an "All" request over a pool being updated, invalid pools...).
        """
        run = _Run(self, node, list(claims))
        return run.execute()


class _Run:
    """The state of one :meth:`Allocator.allocate` call."""

    def __init__(self, allocator: Allocator, node: NodeInfo, claims: list[ResourceClaim]) -> None:
        self.a = allocator
        self.features = allocator.features
        self.node = node
        self.claims = claims
        self.pools = allocator.gather_pools(node)
        self.requests: dict[tuple[int, int, int], _Request] = {}
        self.parents: dict[tuple[int, int], DeviceRequest] = {}
        self.constraints: list[list[_Constraint]] = []
        self.matches: dict[tuple[DeviceID, tuple[int, int, int]], bool] = {}
        self.allocating: dict[DeviceID, set[int]] = defaultdict(set)
        self.consumed: dict[tuple[str, str], dict[str, dict[str, Decimal]]] = {}
        self.results: list[list[_Result]] = [[] for _ in claims]
        self.calls = 0

    # ----------------------------------------------------------------- validation

    def _validate_request(
        self,
        claim: ResourceClaim,
        key: tuple[int, int, int],
        name: str,
        parent: str | None,
        exact: ExactDeviceRequest | DeviceSubRequest,
    ) -> _Request:
        ref = _claim_ref(claim)
        for i, selector in enumerate(exact.selectors):
            if selector.cel is None:
                raise AllocationError(
                    f"claim {ref}, request {name}, selector #{i}: "
                    "CEL expression empty (unsupported selector type?)"
                )
        admin = exact.admin_access if isinstance(exact, ExactDeviceRequest) else None
        if admin is not None and not self.features.admin_access:
            raise AllocationError(
                f"claim {ref}, request {name}: admin access is requested, "
                "but the feature is disabled"
            )
        if exact.capacity is not None and not self.features.consumable_capacity:
            what = "request" if parent is None else "subrequest"
            raise AllocationError(
                f"claim {ref}, {what} {name}: has capacity requests, but the "
                "DRAConsumableCapacity feature is disabled"
            )
        if not exact.device_class_name:
            raise AllocationError(
                f"claim {ref}, request {name}: missing device class name "
                "(unsupported request type?)"
            )
        device_class = self.a.classes.get(exact.device_class_name)
        if device_class is None:
            raise AllocationError(
                f"claim {ref}, request {name}: could not retrieve device class "
                f"{exact.device_class_name}: not found"
            )
        request = _Request(key[0], name, parent, exact, device_class)
        mode = exact.allocation_mode or "ExactCount"
        if mode == "ExactCount":
            request.num_devices = 1 if exact.count is None else exact.count
        elif mode == "All":
            request.all_devices = []
            for pool in self.pools:
                if pool.incomplete:
                    raise AllocationError(
                        f"claim {ref}, request {name}: asks for all devices, but resource "
                        f"pool {pool.key} is currently being updated"
                    )
                if pool.invalid:
                    raise AllocationError(
                        f"claim {ref}, request {name}: asks for all devices, but resource "
                        f"pool {pool.key} is currently invalid"
                    )
                for s in pool.slices:
                    for device in s.devices:
                        if self._selectable(key, request, device):
                            request.all_devices.append((device, pool))
            request.num_devices = len(request.all_devices)
        else:
            raise AllocationError(f"claim {ref}, request {name}: unsupported count mode {mode}")
        return request

    def _prepare(self) -> None:
        for ci, claim in enumerate(self.claims):
            ref = _claim_ref(claim)
            minimum = 0
            for ri, request in enumerate(claim.spec.devices.requests):
                if request.first_available:
                    if not self.features.prioritized_list:
                        raise AllocationError(
                            f"claim {ref}, request {request.name}: has subrequests, but the "
                            "DRAPrioritizedList feature is disabled"
                        )
                    self.parents[(ci, ri)] = request
                    least = None
                    for si, sub in enumerate(request.first_available):
                        data = self._validate_request(
                            claim, (ci, ri, si), sub.name, request.name, sub
                        )
                        self.requests[(ci, ri, si)] = data
                        least = data.num_devices if least is None else min(least, data.num_devices)
                    minimum += least or 0
                else:
                    assert request.exactly is not None
                    data = self._validate_request(
                        claim, (ci, ri, 0), request.name, None, request.exactly
                    )
                    self.requests[(ci, ri, 0)] = data
                    minimum += data.num_devices
            if minimum > ALLOCATION_RESULTS_MAX_SIZE:
                raise AllocationError(
                    f"claim {ref}: number of requested devices {minimum} exceeds the claim "
                    f"limit of {ALLOCATION_RESULTS_MAX_SIZE}"
                )
            constraints: list[_Constraint] = []
            for i, c in enumerate(claim.spec.devices.constraints):
                if c.match_attribute is not None:
                    constraints.append(_MatchAttribute(c.requests, c.match_attribute))
                elif c.distinct_attribute is not None:
                    constraints.append(_DistinctAttribute(c.requests, c.distinct_attribute))
                else:
                    raise AllocationError(
                        f"claim {ref}, constraint #{i}: empty constraint "
                        "(unsupported constraint type?)"
                    )
            self.constraints.append(constraints)

    # ----------------------------------------------------------------- selection

    def _selectors_match(
        self, request: _Request, device: _Dev, selectors: list[DeviceSelector], of_class: bool
    ) -> bool:
        def owner() -> str:
            if of_class:
                return f"class {request.device_class.metadata.name}"
            return f"claim {_claim_ref(self.claims[request.claim_index])}"

        for i, selector in enumerate(selectors):
            assert selector.cel is not None
            try:
                compiled: CompiledSelector = compile_selector(selector.cel.expression)
            except CELError as exc:
                raise AllocationError(
                    f"{owner()}: selector #{i}: CEL compile error: {exc}"
                ) from None
            try:
                if not compiled.matches(device):
                    return False
            except CELError as exc:
                if str(exc).startswith("undeclared reference"):
                    raise AllocationError(
                        f"{owner()}: selector #{i}: CEL compile error: {exc}"
                    ) from None
                driver, pool, name = device.id
                raise AllocationError(
                    f"{owner()}: selector #{i} on device {driver}/{pool}/{name}: "
                    f"CEL runtime error: {exc}"
                ) from None
        return True

    def _selectable(self, key: tuple[int, int, int], request: _Request, device: _Dev) -> bool:
        if not self.features.device_binding and device.spec.binding_conditions:
            return False
        cache_key = (device.id, key)
        cached = self.matches.get(cache_key)
        if cached is not None:
            return cached
        result = self._selectors_match(
            request, device, request.device_class.spec.selectors, True
        ) and self._selectors_match(request, device, request.selectors, False)
        if result and device.slice.per_device:
            spec = device.spec
            result = node_matches(self.node, spec.node_name, spec.all_nodes, spec.node_selector)
        self.matches[cache_key] = result
        return result

    # ----------------------------------------------------------------- bookkeeping

    def _in_use(self, device_id: DeviceID) -> bool:
        return device_id in self.a.allocated or bool(self.allocating.get(device_id))

    def _available_counters(self, pool: _Pool) -> dict[str, dict[str, Decimal]]:
        key = (pool.driver, pool.name)
        cached = self.a._available.get(key)
        if cached is not None:
            return cached
        available = {n: dict(c) for n, c in pool.counter_sets.items()}
        for s in pool.slices + pool.other_slices:
            for d in s.devices:
                if d.id not in self.a.allocated:
                    continue
                for set_name, counters in d.counters:
                    target = available.get(set_name, {})
                    for n, v in counters:
                        if n in target:
                            target[n] -= v
        self.a._available[key] = available
        return available

    def _take_counters(self, device: _Dev, pool: _Pool) -> bool:
        available = self._available_counters(pool)
        consumed = self.consumed.setdefault((pool.driver, pool.name), {})
        for set_name, counters in device.counters:
            target = consumed.setdefault(set_name, {})
            for n, v in counters:
                target[n] = target.get(n, Decimal(0)) + v
        for set_name, counters_available in available.items():
            used = consumed.get(set_name, {})
            for n, v in counters_available.items():
                if v < used.get(n, Decimal(0)):
                    self._give_counters(device, pool)
                    return False
        return True

    def _give_counters(self, device: _Dev, pool: _Pool) -> None:
        consumed = self.consumed[(pool.driver, pool.name)]
        for set_name, counters in device.counters:
            for n, v in counters:
                consumed[set_name][n] -= v

    def _allocate_device(
        self, request: _Request, device: _Dev, pool: _Pool, must: bool
    ) -> Callable[[], None] | None:
        """Take ``device`` for ``request`` if it is free and fits; the undo, or None."""
        ci = request.claim_index
        if request.admin:
            if ci in self.allocating.get(device.id, ()):
                return None
        elif self._in_use(device.id):
            return None
        if device.counters and not self.features.partitionable_devices:
            return None
        if device.counters and not self._take_counters(device, pool):
            return None
        base = request.parent or request.name
        sub = request.name if request.parent else ""

        def undo_counters() -> None:
            if device.counters and self.features.partitionable_devices:
                self._give_counters(device, pool)

        if self.features.device_taints and _taint_prevents(device, request.tolerations):
            undo_counters()
            return None
        constraints = self.constraints[ci]
        for i, constraint in enumerate(constraints):
            if not constraint.add(base, sub, device):
                for earlier in constraints[:i]:
                    earlier.remove(base, sub, device)
                undo_counters()
                if must:
                    driver, pool_name, name = device.id
                    raise AllocationError(
                        f"claim {_claim_ref(self.claims[ci])}, request {request.name}: cannot "
                        f"add device {driver}/{pool_name}/{name} because a claim constraint "
                        "would not be satisfied"
                    )
                return None
        self.allocating[device.id].add(ci)
        results = self.results[ci]
        results.append(_Result(request, device))
        before = len(results) - 1

        def undo() -> None:
            for constraint in constraints:
                constraint.remove(base, sub, device)
            self.allocating[device.id].discard(ci)
            undo_counters()
            del results[before:]

        return undo

    # ----------------------------------------------------------------- search

    def _allocate_one(
        self,
        ci: int,
        ri: int,
        si: int,
        di: int,
        in_sub: bool,
        start: tuple[int, int, int],
    ) -> bool:
        self.calls += 1
        if ci >= len(self.claims):
            return True
        claim = self.claims[ci]
        if ri >= len(claim.spec.devices.requests):
            try:
                return self._allocate_one(ci + 1, 0, 0, 0, False, (0, 0, 0))
            except _StopError:
                return False
        request = self.requests[(ci, ri, si)]
        if not in_sub and request.parent is not None:
            all_exceeded = True
            sub_index = 0
            while (ci, ri, sub_index) in self.requests:
                try:
                    done = self._allocate_one(ci, ri, sub_index, 0, True, (0, 0, 0))
                except _StopError:
                    sub_index += 1
                    continue
                all_exceeded = False
                if done:
                    self.requests[(ci, ri, 0)].selected_sub = sub_index
                    return True
                sub_index += 1
            if all_exceeded:
                raise _StopError
            return False

        if request.mode == "All" and not request.all_devices:
            return False
        if di >= request.num_devices:
            return self._allocate_one(ci, ri + 1, 0, 0, False, (0, 0, 0))
        if len(self.results[ci]) + request.num_devices - di > ALLOCATION_RESULTS_MAX_SIZE:
            raise _StopError

        if request.mode == "All":
            assert request.all_devices is not None
            device, pool = request.all_devices[di]
            undo = self._allocate_device(request, device, pool, True)
            if undo is None:
                return False
            try:
                done = self._allocate_one(ci, ri, si, di + 1, in_sub, (0, 0, 0))
            except BaseException:
                undo()
                raise
            if not done:
                undo()
            return done

        key = (ci, ri, si)
        start_pool, start_slice, start_device = start
        for pi in range(start_pool, len(self.pools)):
            pool = self.pools[pi]
            if pool.incomplete or pool.invalid:
                continue
            first_slice = start_slice if pi == start_pool else 0
            for sli in range(first_slice, len(pool.slices)):
                devices = pool.slices[sli].devices
                first = start_device if (pi == start_pool and sli == start_slice) else 0
                for dvi in range(first, len(devices)):
                    device = devices[dvi]
                    if request.admin:
                        if ci in self.allocating.get(device.id, ()):
                            continue
                    elif self._in_use(device.id):
                        continue
                    if not self._selectable(key, request, device):
                        continue
                    undo = self._allocate_device(request, device, pool, False)
                    if undo is None:
                        continue
                    try:
                        done = self._allocate_one(ci, ri, si, di + 1, in_sub, (pi, sli, dvi + 1))
                    except BaseException:
                        undo()
                        raise
                    if done:
                        return True
                    undo()
        return False

    # ----------------------------------------------------------------- pruning

    def _free_devices(self) -> Iterator[_Dev]:
        """The devices a non-admin request could take here: in pools the search walks,
        not allocated already."""
        for pool in self.pools:
            if pool.incomplete or pool.invalid:
                continue
            for s in pool.slices:
                for device in s.devices:
                    if device.id not in self.a.allocated:
                        yield device

    def _cannot_fit(self) -> bool:
        """True when some request has fewer free devices that its selectors accept than
        it asks for, so the search would only fail (slowly: it tries every combination
        of the devices there are, an 8-GPU claim on a node with 7 free costs hundreds of
        steps). Only claims of plain ExactCount requests are judged; the count ignores
        taints, counters and constraints, so it can only overestimate.

        Decided without changing an answer: a request is counted until it has enough,
        and only when one falls short is every other request's count completed, which
        evaluates every selector the search could (a CEL error the search might raise
        is then left for the search to raise)."""
        requests = list(self.requests.values())
        if any(r.parent is not None or r.admin or r.mode != "ExactCount" for r in requests):
            return False
        if sum(r.num_devices for r in requests) <= 1:
            return False  # one device: the search tries each once, as the count would
        try:
            short = None
            for key, request in self.requests.items():
                found = 0
                if request.num_devices == 0:
                    continue
                for device in self._free_devices():
                    if self._selectable(key, request, device):
                        found += 1
                        if found >= request.num_devices:
                            break
                if found < request.num_devices:
                    short = key
                    break
            if short is None:
                return False
            for key, request in self.requests.items():
                if key != short:
                    for device in self._free_devices():
                        self._selectable(key, request, device)
        except AllocationError:
            return False
        return True

    # ----------------------------------------------------------------- results

    def execute(self) -> list[AllocationResult] | None:
        self._prepare()
        try:
            done = not self._cannot_fit() and self._allocate_one(0, 0, 0, 0, False, (0, 0, 0))
        except _StopError:
            return None
        if not done:
            if any(p.invalid for p in self.pools):
                raise AllocationError("invalid resource pools were encountered")
            return None
        return [self._result(ci) for ci in range(len(self.claims))]

    def _result(self, ci: int) -> AllocationResult:
        claim = self.claims[ci]
        devices = []
        for r in self.results[ci]:
            spec = r.device.spec
            driver, pool, name = r.device.id
            entry: dict[str, Any] = {
                "request": r.request.full_name,
                "driver": driver,
                "pool": pool,
                "device": name,
            }
            if r.request.admin:
                entry["adminAccess"] = True
            if r.request.tolerations:
                entry["tolerations"] = [
                    t.model_dump(by_alias=True, exclude_none=True) for t in r.request.tolerations
                ]
            if self.features.device_binding and spec.binding_conditions:
                entry["bindingConditions"] = list(spec.binding_conditions)
                entry["bindingFailureConditions"] = list(spec.binding_failure_conditions)
            devices.append(DeviceRequestAllocationResult.model_validate(entry))
        return AllocationResult(
            devices=DeviceAllocationResult(results=devices, config=self._configs(ci, claim)),
            node_selector=self._node_selector(self.results[ci]),
        )

    def _configs(self, ci: int, claim: ResourceClaim) -> list[DeviceAllocationConfiguration]:
        configs: list[dict[str, Any]] = []
        by_class: dict[str, tuple[int, int]] = {}
        requests = claim.spec.devices.requests
        for ri in range(len(requests)):
            data = self.requests[(ci, ri, 0)]
            if data.parent is not None:
                data = self.requests[(ci, ri, data.selected_sub)]
            class_name = data.device_class.metadata.name
            if class_name in by_class:
                begin, end = by_class[class_name]
                for i in range(begin, end):
                    configs[i]["requests"].append(data.full_name)
                continue
            begin = len(configs)
            for class_config in data.device_class.spec.config:
                configs.append(
                    {
                        "source": "FromClass",
                        "requests": [data.full_name],
                        "opaque": class_config.opaque,
                    }
                )
            by_class[class_name] = (begin, len(configs))
        for config in claim.spec.devices.config:
            if not config.requests:
                configs.append({"source": "FromClaim", "requests": [], "opaque": config.opaque})
                continue
            for ri, request in enumerate(requests):
                if request.name in config.requests:
                    configs.append(
                        {
                            "source": "FromClaim",
                            "requests": list(config.requests),
                            "opaque": config.opaque,
                        }
                    )
                    continue
                if (ci, ri) not in self.parents:
                    continue
                chosen = self.requests[(ci, ri, self.requests[(ci, ri, 0)].selected_sub)]
                if chosen.full_name in config.requests:
                    configs.append(
                        {
                            "source": "FromClaim",
                            "requests": list(config.requests),
                            "opaque": config.opaque,
                        }
                    )
        return [
            DeviceAllocationConfiguration(
                source=c["source"], requests=c["requests"], opaque=c["opaque"]
            )
            for c in configs
        ]

    def _node_selector(self, results: list[_Result]) -> NodeSelector | None:
        fields: list[NodeSelectorRequirement] = []
        expressions: list[NodeSelectorRequirement] = []
        for r in results:
            spec = r.device.slice.obj.spec
            if spec.per_device_node_selection:
                node_name, selector = r.device.spec.node_name, r.device.spec.node_selector
            else:
                node_name, selector = spec.node_name, spec.node_selector
            if node_name is not None or r.device.spec.binds_to_node:
                return NodeSelector(
                    node_selector_terms=[
                        NodeSelectorTerm(
                            match_fields=[
                                NodeSelectorRequirement(
                                    key="metadata.name", operator="In", values=[self.node.name]
                                )
                            ]
                        )
                    ]
                )
            if selector is not None:
                if len(selector.node_selector_terms) > 1:
                    raise AllocationError(
                        f"unsupported ResourceSlice.NodeSelector with "
                        f"{len(selector.node_selector_terms)} terms"
                    )
                for term in selector.node_selector_terms:
                    _merge(term.match_fields, fields)
                    _merge(term.match_expressions, expressions)
        if fields or expressions:
            return NodeSelector(
                node_selector_terms=[
                    NodeSelectorTerm(match_expressions=expressions, match_fields=fields)
                ]
            )
        return None


def _merge(source: list[NodeSelectorRequirement], target: list[NodeSelectorRequirement]) -> None:
    for requirement in source:
        if not any(
            r.key == requirement.key
            and r.operator == requirement.operator
            and set(r.values) == set(requirement.values)
            for r in target
        ):
            target.append(requirement)
