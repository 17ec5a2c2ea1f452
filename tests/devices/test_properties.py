"""Properties of every allocation, on random clusters and claims (hypothesis)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bosun.api.quantity import to_bytes as _bytes
from bosun.devices.allocator import AllocationError, Allocator, Features, _lookup, _maps
from bosun.devices.cel import MISSING, DeviceView, compile_selector
from bosun.devices.model import Device, DeviceClass, ResourceClaim, ResourceSlice
from bosun.devices.nodes import NodeInfo

DRIVER = "gpu.example.com"
NODE = NodeInfo("node-1")
SELECTORS = [
    None,
    "device.capacity['gpu.example.com'].memory.compareTo(quantity('40Gi')) >= 0",
    "device.attributes['gpu.example.com'].model == 'big'",
    "device.attributes['gpu.example.com'].numa == 0",
]


@st.composite
def clusters(
    draw: Any,
) -> tuple[list[ResourceSlice], list[ResourceClaim], set[tuple[str, str, str]]]:
    slices = []
    all_ids = []
    for p in range(draw(st.integers(1, 3))):
        devices = []
        for d in range(draw(st.integers(0, 5))):
            big = draw(st.booleans())
            device: dict[str, Any] = {
                "name": f"gpu-{d}",
                "attributes": {
                    "model": {"string": "big" if big else "small"},
                    "numa": {"int": draw(st.integers(0, 1))},
                },
                "capacity": {"memory": {"value": "80Gi" if big else "24Gi"}},
            }
            if draw(st.booleans()):
                device["consumesCounters"] = [
                    {
                        "counterSet": "mem",
                        "counters": {"memory": {"value": device["capacity"]["memory"]["value"]}},
                    }
                ]
            devices.append(device)
            all_ids.append((DRIVER, f"pool-{p}", f"gpu-{d}"))
        slices.append(
            ResourceSlice.model_validate(
                {
                    "metadata": {"name": f"slice-{p}"},
                    "spec": {
                        "driver": DRIVER,
                        "nodeName": "node-1",
                        "pool": {"name": f"pool-{p}", "generation": 1, "resourceSliceCount": 2},
                        "devices": devices,
                    },
                }
            )
        )
        slices.append(
            ResourceSlice.model_validate(
                {
                    "metadata": {"name": f"counters-{p}"},
                    "spec": {
                        "driver": DRIVER,
                        "nodeName": "node-1",
                        "pool": {"name": f"pool-{p}", "generation": 1, "resourceSliceCount": 2},
                        "sharedCounters": [
                            {
                                "name": "mem",
                                "counters": {
                                    "memory": {"value": draw(st.sampled_from(["100Gi", "200Gi"]))}
                                },
                            }
                        ],
                    },
                }
            )
        )
    allocated = set(draw(st.lists(st.sampled_from(all_ids), max_size=3))) if all_ids else set()
    claims = []
    for c in range(draw(st.integers(1, 2))):
        requests = []
        for r in range(draw(st.integers(1, 2))):
            selector = draw(st.sampled_from(SELECTORS))
            exactly: dict[str, Any] = {"deviceClassName": "gpu", "count": draw(st.integers(1, 3))}
            if draw(st.integers(0, 4)) == 0:
                exactly = {"deviceClassName": "gpu", "allocationMode": "All"}
            if selector:
                exactly["selectors"] = [{"cel": {"expression": selector}}]
            if draw(st.integers(0, 5)) == 0:
                exactly["adminAccess"] = True
            requests.append({"name": f"req-{r}", "exactly": exactly})
        constraints = []
        if draw(st.booleans()):
            constraints.append(
                {draw(st.sampled_from(["matchAttribute", "distinctAttribute"])): f"{DRIVER}/numa"}
            )
        claims.append(
            ResourceClaim.model_validate(
                {
                    "metadata": {"name": f"claim-{c}"},
                    "spec": {"devices": {"requests": requests, "constraints": constraints}},
                }
            )
        )
    return slices, claims, allocated


CLASS = DeviceClass.model_validate(
    {
        "metadata": {"name": "gpu"},
        "spec": {"selectors": [{"cel": {"expression": f"device.driver == '{DRIVER}'"}}]},
    }
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(clusters())
def test_allocations_respect_every_rule(data: Any) -> None:
    slices, claims, allocated = data
    allocator = Allocator([CLASS], slices, allocated, Features())
    try:
        results = allocator.allocate(NODE, claims)
    except AllocationError:
        return  # e.g. a constraint that cannot hold in All mode: an error, not a bad answer
    # Determinism: the same input gives the same output.
    again = Allocator([CLASS], slices, allocated, Features()).allocate(NODE, claims)
    assert [r.model_dump() for r in results or []] == [r.model_dump() for r in again or []]
    if results is None:
        return
    devices = {(s.spec.driver, s.spec.pool.name, d.name): d for s in slices for d in s.spec.devices}
    exclusive: Counter[tuple[str, str, str]] = Counter()
    consumed: Counter[str] = Counter()
    for claim, result in zip(claims, results, strict=True):
        requests = {r.name: r for r in claim.spec.devices.requests}
        per_claim: Counter[tuple[str, str, str]] = Counter()
        for entry in result.devices.results:
            key = (entry.driver, entry.pool, entry.device)
            device = devices[key]
            request = requests[entry.request]
            assert request.exactly is not None
            # Every result satisfies its selectors.
            for selector in request.exactly.selectors:
                assert selector.cel is not None
                assert compile_selector(selector.cel.expression).matches(
                    DeviceView(DRIVER, *_maps(DRIVER, device))
                )
            per_claim[key] += 1
            if not entry.admin_access:
                exclusive[key] += 1
                assert key not in allocated  # never a device someone else holds
                for c in device.consumes_counters:
                    consumed[entry.pool] += _bytes(c.counters["memory"].value)
        assert all(n == 1 for n in per_claim.values())  # a claim gets a device once
        # Constraints hold over the whole claim.
        for constraint in claim.spec.devices.constraints:
            values = [
                devices[(e.driver, e.pool, e.device)].attributes["numa"].int_value
                for e in result.devices.results
            ]
            if constraint.match_attribute:
                assert len(set(values)) <= 1
            if constraint.distinct_attribute:
                assert len(set(values)) == len(values)
    # No device handed out twice without admin access.
    assert all(n == 1 for n in exclusive.values())
    # Counters: what allocations consume, with what was already allocated, fits the pool.
    for s in slices:
        for counter_set in s.spec.shared_counters:
            pool = s.spec.pool.name
            held = sum(
                _bytes(c.counters["memory"].value)
                for key, d in devices.items()
                if key[1] == pool and key in allocated
                for c in d.consumes_counters
            )
            # (The random starting state may already overdraw a pool; then nothing more
            # that consumes its counters may be added.)
            if consumed[pool]:
                assert consumed[pool] + held <= _bytes(counter_set.counters["memory"].value)


NAMES = ["x", "/x", f"{DRIVER}/x", "other.io/x", "y", f"{DRIVER}/y", "other.io/z"]


@given(
    st.lists(st.sampled_from(NAMES), unique=True, max_size=len(NAMES)),
    st.lists(st.sampled_from(NAMES), unique=True, max_size=len(NAMES)),
    st.integers(0, 1000),
)
def test_a_value_read_alone_is_the_one_the_whole_device_holds(
    attribute_names: list[str], capacity_names: list[str], seed: int
) -> None:
    """A selector naming its paths reads them one by one (_lookup); the maps a selector
    reading the whole device sees (_maps) must hold the same, whichever of a driver's
    names ("x", "/x", "DRIVER/x") a device uses, in any order, with versions converted."""
    attributes: dict[str, Any] = {}
    for i, name in enumerate(attribute_names):
        kind = ("int", "bool", "string", "version")[(seed + i) % 4]
        value = {"int": i, "bool": i % 2 == 0, "string": f"s{i}", "version": f"1.{i}.0"}[kind]
        attributes[name] = {kind: value}
    capacity = {name: {"value": f"{i + seed}Gi"} for i, name in enumerate(capacity_names)}
    device = Device.model_validate({"name": "d", "attributes": attributes, "capacity": capacity})
    maps = dict(zip(("attributes", "capacity"), _maps(DRIVER, device), strict=True))
    for kind, table in maps.items():
        for domain in (DRIVER, "other.io", "absent.io"):
            for ident in ("x", "y", "z", "w"):
                expected = table.get(domain, {}).get(ident, MISSING)
                assert _lookup(DRIVER, device, kind, domain, ident) == expected
