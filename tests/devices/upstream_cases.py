"""The upstream allocator test cases (k8s.io/dynamic-resource-allocation,
structured/internal/allocatortesting/allocator_testing.go), same inputs, same outcomes.

Each case allocates ``claims`` on ``node`` and expects one of: a list of allocation
results (one per claim; results in any order, as upstream's ``ConsistOf``), ``None``
(the claims do not fit on this node, no error), or an error containing ``error``.
Two cases named in DRA.md were not among the upstream source read here
(``lexicographical-sorting-pools``, ``check-combinations-with-backtracking``); they are
rebuilt from their names and marked ``reconstructed``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bosun.devices.allocator import DeviceID, Features
from bosun.devices.model import DeviceClass, ResourceClaim, ResourceSlice
from bosun.devices.nodes import NodeInfo
from tests.devices.builders import (
    ALL_NODES,
    BOOL_ATTR,
    CLAIM0,
    CLAIM1,
    CLASS_A,
    CLASS_B,
    COUNTER_SET1,
    COUNTER_SET2,
    DEVICE0,
    DEVICE1,
    DEVICE2,
    DEVICE3,
    DEVICE4,
    DRIVER_A,
    DRIVER_B,
    INT_ATTR,
    MAX,
    MISSING_ATTR,
    NODE1,
    NODE2,
    PER_DEVICE,
    POOL1,
    POOL2,
    POOL3,
    POOL4,
    REGION1,
    REGION2,
    REQ0,
    REQ1,
    REQ2,
    SLICE1,
    SLICE2,
    SLICE3,
    SLICE4,
    STRING_ATTR,
    SUB0,
    SUB1,
    TAINT_NO_EXECUTE,
    TAINT_NO_SCHEDULE,
    TAINT_NONE,
    TOLERATE_KEY1,
    TOLERATE_NO_EXECUTE,
    TOLERATE_NO_SCHEDULE,
    VERSION_ATTR,
    all_request,
    allocation,
    cel,
    claim,
    device,
    device_class,
    features,
    label_selector,
    local_selector,
    many_devices,
    many_results,
    memory_at_least,
    node,
    one_device,
    opaque,
    prioritized,
    request,
    result,
    slice_,
    sub,
)


@dataclass
class Case:
    name: str
    claims: list[ResourceClaim]
    classes: list[DeviceClass]
    slices: list[ResourceSlice]
    node: NodeInfo = field(default_factory=lambda: node(NODE1, REGION1))
    allocated: list[DeviceID] = field(default_factory=list)
    features: Features = field(default_factory=features)
    expect: list[dict[str, Any]] | None = None
    error: str | None = None
    reconstructed: bool = False


A = [device_class(CLASS_A, DRIVER_A)]
AB = [device_class(CLASS_A, DRIVER_A), device_class(CLASS_B, DRIVER_B)]
LOCAL1 = local_selector(NODE1)
R0A = claim(CLAIM0, request(REQ0, CLASS_A))


def r(req: str, dev: str, pool: str = POOL1, driver: str = DRIVER_A, **kw: Any) -> dict[str, Any]:
    return result(req, driver, pool, dev, **kw)


def local(*results: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return allocation(LOCAL1, *results, **kw)


def mem(name: str, size: str, attributes: dict[str, Any] | None = None) -> dict[str, Any]:
    return device(name, {"memory": size}, attributes)


def ver(v: str) -> dict[str, str]:
    return {"version": v}


def counter_dev(
    name: str, set_name: str = COUNTER_SET1, *, from_counters: bool = True, **counters: str
) -> dict[str, Any]:
    return device(name, counters=[(set_name, counters)], from_counters=from_counters)


def counter_slice(
    name: str,
    sets: list[tuple[str, dict[str, str]]],
    selection: Any = NODE1,
    pool: str = POOL1,
    count: int = 2,
    driver: str = DRIVER_A,
) -> ResourceSlice:
    return slice_(name, selection, pool, driver, count=count, counter_sets=sets)


def gen(name: str, node_name: str, dev: str, generation: int, count: int = 2) -> ResourceSlice:
    return slice_(name, node_name, POOL1, DRIVER_A, device(dev), count=count, generation=generation)


PL = features(prioritized_list=True)
PD = features(partitionable_devices=True)
PDPL = features(partitionable_devices=True, prioritized_list=True)
ADMIN = features(admin_access=True)
TAINTS = features(device_taints=True)
BIND = features(device_binding=True)

CASES: list[Case] = [
    Case("empty", [], [], [], expect=[]),
    Case(
        "simple",
        [R0A],
        A,
        [one_device(SLICE1, NODE1, POOL1, DRIVER_A)],
        expect=[local(r(REQ0, DEVICE1))],
    ),
    Case(
        "other-node",
        [R0A],
        A,
        [one_device(SLICE1, NODE1, POOL1, DRIVER_B), one_device(SLICE2, NODE2, POOL2, DRIVER_A)],
        node=node(NODE2, REGION2),
        expect=[allocation(local_selector(NODE2), r(REQ0, DEVICE1, POOL2))],
    ),
    Case(
        "small-and-large",
        [
            claim(
                CLAIM0,
                request(REQ0, CLASS_A, 1, memory_at_least("1Gi")),
                request(REQ1, CLASS_A, 1, memory_at_least("2Gi")),
            )
        ],
        A,
        [slice_(SLICE1, NODE1, POOL1, DRIVER_A, mem(DEVICE1, "1Gi"), mem(DEVICE2, "2Gi"))],
        expect=[local(r(REQ0, DEVICE1), r(REQ1, DEVICE2))],
    ),
    Case(
        "small-and-large-backtrack-requests",
        [
            claim(
                CLAIM0,
                request(REQ0, CLASS_A, 1, memory_at_least("1Gi")),
                request(REQ1, CLASS_A, 1, memory_at_least("2Gi")),
            )
        ],
        A,
        [slice_(SLICE1, NODE1, POOL1, DRIVER_A, mem(DEVICE2, "2Gi"), mem(DEVICE1, "1Gi"))],
        expect=[local(r(REQ0, DEVICE1), r(REQ1, DEVICE2))],
    ),
    Case(
        "small-and-large-backtrack-claims",
        [
            claim(CLAIM0, request(REQ0, CLASS_A, 1, memory_at_least("1Gi"))),
            claim(CLAIM1, request(REQ1, CLASS_A, 1, memory_at_least("2Gi"))),
        ],
        A,
        [slice_(SLICE1, NODE1, POOL1, DRIVER_A, mem(DEVICE2, "2Gi"), mem(DEVICE1, "1Gi"))],
        expect=[local(r(REQ0, DEVICE1)), local(r(REQ1, DEVICE2))],
    ),
    Case(
        "devices-split-across-different-slices",
        [claim(CLAIM0, request(REQ0, CLASS_A, 2))],
        A,
        [one_device(SLICE1, NODE1, POOL1, DRIVER_A), one_device(SLICE2, NODE1, POOL2, DRIVER_A)],
        expect=[local(r(REQ0, DEVICE1), r(REQ0, DEVICE1, POOL2))],
    ),
    Case(
        "obsolete-slice",
        [R0A],
        A,
        [
            slice_("slice-1-obsolete", NODE1, POOL1, DRIVER_A, device(DEVICE1), count=2),
            slice_(
                "slice-1-obsolete", NODE1, POOL1, DRIVER_A, device(DEVICE2), count=2, generation=2
            ),
        ],
    ),
    Case(
        "duplicate-slice",
        [R0A],
        A,
        [
            one_device(SLICE1, NODE1, POOL1, DRIVER_A, count=2),
            one_device(SLICE1 + "-2", NODE1, POOL1, DRIVER_A, count=2),
        ],
        error="invalid resource pools were encountered",
    ),
    Case("no-slices", [R0A], A, []),
    Case(
        "not-enough-suitable-devices",
        [R0A, claim(CLAIM0, request(REQ1, CLASS_A))],
        A,
        [one_device(SLICE1, NODE1, POOL1, DRIVER_A)],
    ),
    Case(
        "no-classes",
        [R0A],
        [],
        [one_device(SLICE1, NODE1, POOL1, DRIVER_A)],
        error="could not retrieve device class class-a",
    ),
    Case(
        "unknown-class",
        [claim(CLAIM0, request(REQ0, "unknown-class"))],
        A,
        [one_device(SLICE1, NODE1, POOL1, DRIVER_A)],
        error="could not retrieve device class unknown-class",
    ),
    Case(
        "empty-class",
        [claim(CLAIM0, request(REQ0, ""))],
        A,
        [one_device(SLICE1, NODE1, POOL1, DRIVER_A)],
        error="claim claim-0, request req-0: missing device class name (unsupported request type?)",
    ),
    Case("no-claims-to-allocate", [], A, [one_device(SLICE1, NODE1, POOL1, DRIVER_A)], expect=[]),
    Case(
        "all-devices-single",
        [claim(CLAIM0, all_request(REQ0, CLASS_A))],
        A,
        [one_device(SLICE1, NODE1, POOL1, DRIVER_A)],
        expect=[local(r(REQ0, DEVICE1))],
    ),
    Case(
        "all-devices-many",
        [claim(CLAIM0, all_request(REQ0, CLASS_A))],
        A,
        [one_device(SLICE1, NODE1, POOL1, DRIVER_A), one_device(SLICE1, NODE1, POOL2, DRIVER_A)],
        expect=[local(r(REQ0, DEVICE1), r(REQ0, DEVICE1, POOL2))],
    ),
    Case(
        "all-devices-of-the-incomplete-pool",
        [claim(CLAIM0, request(REQ0, CLASS_A, 1, mode="All"))],
        A,
        [one_device(SLICE1, NODE1, POOL1, DRIVER_A, count=2)],
        error="claim claim-0, request req-0: asks for all devices, but resource pool "
        "driver-a/pool-1 is currently being updated",
    ),
    Case(
        "all-devices-plus-another",
        [claim(CLAIM0, all_request(REQ0, CLASS_A)), claim(CLAIM1, request(REQ0, CLASS_B))],
        AB,
        [one_device(SLICE1, NODE1, POOL1, DRIVER_A), one_device(SLICE1, NODE1, POOL1, DRIVER_B)],
        expect=[local(r(REQ0, DEVICE1)), local(r(REQ0, DEVICE1, driver=DRIVER_B))],
    ),
    Case(
        "all-devices-plus-another-reversed",
        [claim(CLAIM1, request(REQ0, CLASS_B)), claim(CLAIM0, all_request(REQ0, CLASS_A))],
        AB,
        [one_device(SLICE1, NODE1, POOL1, DRIVER_A), one_device(SLICE1, NODE1, POOL1, DRIVER_B)],
        expect=[local(r(REQ0, DEVICE1, driver=DRIVER_B)), local(r(REQ0, DEVICE1))],
    ),
    Case(
        "all-devices-many-plus-another",
        [claim(CLAIM0, all_request(REQ0, CLASS_A)), claim(CLAIM1, request(REQ0, CLASS_B))],
        AB,
        [
            slice_(SLICE1, NODE1, POOL1, DRIVER_A, device(DEVICE1), device(DEVICE2)),
            one_device(SLICE1, NODE1, POOL1, DRIVER_B),
        ],
        expect=[
            local(r(REQ0, DEVICE1), r(REQ0, DEVICE2)),
            local(r(REQ0, DEVICE1, driver=DRIVER_B)),
        ],
    ),
    Case(
        "all-devices-many-plus-another-reversed",
        [claim(CLAIM1, request(REQ0, CLASS_B)), claim(CLAIM0, all_request(REQ0, CLASS_A))],
        AB,
        [
            slice_(SLICE1, NODE1, POOL1, DRIVER_A, device(DEVICE1), device(DEVICE2)),
            one_device(SLICE1, NODE1, POOL1, DRIVER_B),
        ],
        expect=[
            local(r(REQ0, DEVICE1, driver=DRIVER_B)),
            local(r(REQ0, DEVICE1), r(REQ0, DEVICE2)),
        ],
    ),
    Case(
        "all-devices-no-solution",
        [claim(CLAIM1, request(REQ0, CLASS_A)), claim(CLAIM0, all_request(REQ0, CLASS_A))],
        A,
        [one_device(SLICE1, NODE1, POOL1, DRIVER_A)],
    ),
    Case(
        "all-devices-no-solution-reversed",
        [claim(CLAIM0, all_request(REQ0, CLASS_A)), claim(CLAIM1, request(REQ0, CLASS_A))],
        A,
        [one_device(SLICE1, NODE1, POOL1, DRIVER_A)],
    ),
    Case(
        "all-devices-slice-without-devices",
        [claim(CLAIM0, all_request(REQ0, CLASS_A))],
        A,
        [slice_(SLICE1, NODE1, POOL1, DRIVER_A)],
    ),
    Case("all-devices-no-slices", [claim(CLAIM0, all_request(REQ0, CLASS_A))], A, []),
    Case(
        "all-devices-some-allocated",
        [claim(CLAIM0, all_request(REQ0, CLASS_A))],
        A,
        [slice_(SLICE1, NODE1, POOL1, DRIVER_A, device(DEVICE1), device(DEVICE2))],
        allocated=[(DRIVER_A, POOL1, DEVICE1)],
    ),
    Case(
        "all-devices-some-allocated-admin-access",
        [claim(CLAIM0, request(REQ0, CLASS_A, 1, mode="All", admin=True))],
        A,
        [slice_(SLICE1, NODE1, POOL1, DRIVER_A, device(DEVICE1), device(DEVICE2))],
        allocated=[(DRIVER_A, POOL1, DEVICE1)],
        features=ADMIN,
        expect=[local(r(REQ0, DEVICE1, admin=True), r(REQ0, DEVICE2, admin=True))],
    ),
    Case(
        "all-devices-some-allocating-admin-access",
        [
            claim(
                CLAIM0,
                request(REQ0, CLASS_A, admin=True),
                request(REQ1, CLASS_A, 1, mode="All", admin=True),
            )
        ],
        A,
        [slice_(SLICE1, NODE1, POOL1, DRIVER_A, device(DEVICE1), device(DEVICE2))],
        features=ADMIN,
    ),
    Case(
        "count-devices-some-allocated-admin-access",
        [claim(CLAIM0, request(REQ0, CLASS_A, 2, admin=True))],
        A,
        [slice_(SLICE1, NODE1, POOL1, DRIVER_A, device(DEVICE1), device(DEVICE2))],
        allocated=[(DRIVER_A, POOL1, DEVICE1)],
        features=ADMIN,
        expect=[local(r(REQ0, DEVICE1, admin=True), r(REQ0, DEVICE2, admin=True))],
    ),
    Case(
        "separate-claims-share-device-admin-access",
        [
            claim(CLAIM0, request(REQ0, CLASS_A, admin=True)),
            claim(CLAIM1, request(REQ0, CLASS_A, admin=True)),
        ],
        A,
        [slice_(SLICE1, NODE1, POOL1, DRIVER_A, device(DEVICE1), device(DEVICE2))],
        features=ADMIN,
        expect=[local(r(REQ0, DEVICE1, admin=True)), local(r(REQ0, DEVICE1, admin=True))],
    ),
    Case(
        "admin-access-claims-device-allocating-for-non-admin-access",
        [R0A, claim(CLAIM1, request(REQ0, CLASS_A, admin=True))],
        A,
        [slice_(SLICE1, NODE1, POOL1, DRIVER_A, device(DEVICE1), device(DEVICE2))],
        features=ADMIN,
        expect=[local(r(REQ0, DEVICE1)), local(r(REQ0, DEVICE1, admin=True))],
    ),
    Case(
        "all-devices-slice-without-devices-prioritized-list",
        [claim(CLAIM0, prioritized(REQ0, sub(SUB0, CLASS_A, 0, mode="All"), sub(SUB1, CLASS_B)))],
        AB,
        [slice_(SLICE1, NODE1, POOL1, DRIVER_A), one_device(SLICE2, NODE1, POOL2, DRIVER_B)],
        features=PL,
        expect=[local(r("req-0/subReq-1", DEVICE1, POOL2, DRIVER_B))],
    ),
    Case(
        "all-devices-no-slices-prioritized-list",
        [claim(CLAIM0, prioritized(REQ0, sub(SUB0, CLASS_A, 0, mode="All"), sub(SUB1, CLASS_B)))],
        AB,
        [one_device(SLICE2, NODE1, POOL2, DRIVER_B)],
        features=PL,
        expect=[local(r("req-0/subReq-1", DEVICE1, POOL2, DRIVER_B))],
    ),
    Case(
        "all-devices-some-allocated-prioritized-list",
        [claim(CLAIM0, prioritized(REQ0, sub(SUB0, CLASS_A, 0, mode="All"), sub(SUB1, CLASS_B)))],
        AB,
        [
            slice_(SLICE1, NODE1, POOL1, DRIVER_A, device(DEVICE1), device(DEVICE2)),
            one_device(SLICE2, NODE1, POOL2, DRIVER_B),
        ],
        allocated=[(DRIVER_A, POOL1, DEVICE1)],
        features=PL,
        expect=[local(r("req-0/subReq-1", DEVICE1, POOL2, DRIVER_B))],
    ),
    Case(
        "network-attached-device",
        [R0A],
        A,
        [one_device(SLICE1, label_selector("region", REGION1), POOL1, DRIVER_A)],
        expect=[allocation(label_selector("region", REGION1), r(REQ0, DEVICE1))],
    ),
    Case(
        "unsuccessful-allocation-network-attached-device",
        [R0A],
        A,
        [one_device(SLICE1, label_selector("region", REGION1), POOL1, DRIVER_A)],
        node=node(NODE2, REGION2),
    ),
    Case(
        "many-network-attached-devices",
        [claim(CLAIM0, request(REQ0, CLASS_A, 4))],
        A,
        [
            one_device(SLICE1, label_selector("region", REGION1), POOL1, DRIVER_A),
            one_device(SLICE1, ALL_NODES, POOL2, DRIVER_A),
            one_device(SLICE1, label_selector("planet", "earth"), POOL3, DRIVER_A),
            one_device(SLICE1, LOCAL1, POOL4, DRIVER_A),
        ],
        expect=[
            allocation(
                {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {"key": "region", "operator": "In", "values": [REGION1]},
                                {"key": "planet", "operator": "In", "values": ["earth"]},
                            ],
                            "matchFields": [
                                {"key": "metadata.name", "operator": "In", "values": [NODE1]}
                            ],
                        }
                    ]
                },
                r(REQ0, DEVICE1),
                r(REQ0, DEVICE1, POOL2),
                r(REQ0, DEVICE1, POOL3),
                r(REQ0, DEVICE1, POOL4),
            )
        ],
    ),
    Case(
        "local-and-network-attached-devices",
        [claim(CLAIM0, request(REQ0, CLASS_A, 2))],
        A,
        [
            one_device(SLICE1, label_selector("region", REGION1), POOL1, DRIVER_A),
            one_device(SLICE1, NODE1, POOL2, DRIVER_A),
        ],
        expect=[local(r(REQ0, DEVICE1), r(REQ0, DEVICE1, POOL2))],
    ),
    Case(
        "several-different-drivers",
        [R0A, claim(CLAIM0, request(REQ0, CLASS_B))],
        AB,
        [
            slice_(SLICE1, NODE1, POOL1, DRIVER_A, device(DEVICE1), device(DEVICE2)),
            one_device(SLICE1, NODE1, POOL1, DRIVER_B),
        ],
        expect=[local(r(REQ0, DEVICE1)), local(r(REQ0, DEVICE1, driver=DRIVER_B))],
    ),
    Case(
        "already-allocated-devices",
        [R0A],
        A,
        [one_device(SLICE1, NODE1, POOL1, DRIVER_A)],
        allocated=[(DRIVER_A, POOL1, DEVICE1), (DRIVER_A, POOL1, DEVICE2)],
    ),
    Case(
        "admin-access-disabled",
        [claim(CLAIM0, request(REQ0, CLASS_A, admin=True))],
        A,
        [one_device(SLICE1, NODE1, POOL1, DRIVER_A)],
        error="claim claim-0, request req-0: admin access is requested, but the feature "
        "is disabled",
    ),
    Case(
        "admin-access-enabled",
        [claim(CLAIM0, request(REQ0, CLASS_A, admin=True))],
        A,
        [one_device(SLICE1, NODE1, POOL1, DRIVER_A)],
        allocated=[(DRIVER_A, POOL1, DEVICE1), (DRIVER_A, POOL1, DEVICE2)],
        features=ADMIN,
        expect=[local(r(REQ0, DEVICE1, admin=True))],
    ),
]

_FOUR = {
    "driverVersion": ver("1.0.0"),
    "numa": {"int": 1},
    "stringAttribute": {"string": "stringAttributeValue"},
    "boolAttribute": {"bool": True},
}


def _two(
    attr: str,
    v1: dict[str, Any],
    v2: dict[str, Any],
    constraint: str = "matchAttribute",
    count: int = 2,
    mode: str = "ExactCount",
) -> tuple[ResourceClaim, ResourceSlice]:
    c = claim(
        CLAIM0,
        request(REQ0, CLASS_A, count if mode != "All" else 0, mode=mode),
        constraints=[{constraint: attr}],
    )
    s = slice_(SLICE1, NODE1, POOL1, DRIVER_A, device(DEVICE1, None, v1), device(DEVICE2, None, v2))
    return c, s


CASES += [
    Case(
        "with-constraint",
        [
            claim(
                CLAIM0,
                request(REQ0, CLASS_A),
                request(REQ1, CLASS_A),
                constraints=[
                    {"matchAttribute": INT_ATTR},
                    {"matchAttribute": VERSION_ATTR},
                    {"matchAttribute": STRING_ATTR},
                    {"matchAttribute": BOOL_ATTR},
                ],
            )
        ],
        A,
        [
            slice_(
                SLICE1,
                NODE1,
                POOL1,
                DRIVER_A,
                device(DEVICE1, None, _FOUR),
                device(DEVICE2, None, _FOUR),
            )
        ],
        expect=[local(r(REQ0, DEVICE1), r(REQ1, DEVICE2))],
    ),
    Case(
        "with-constraint-non-existent-attribute",
        [claim(CLAIM0, request(REQ0, CLASS_A), constraints=[{"matchAttribute": MISSING_ATTR}])],
        A,
        [one_device(SLICE1, NODE1, POOL1, DRIVER_A)],
    ),
]
for _label, _attr, _a, _b in [
    ("int", INT_ATTR, {"numa": {"int": 1}}, {"numa": {"int": 2}}),
    (
        "string",
        STRING_ATTR,
        {"stringAttribute": {"string": "stringAttributeValue"}},
        {"stringAttribute": {"string": "stringAttributeValue2"}},
    ),
    ("bool", BOOL_ATTR, {"boolAttribute": {"bool": True}}, {"boolAttribute": {"bool": False}}),
    ("version", VERSION_ATTR, {"driverVersion": ver("1.0.0")}, {"driverVersion": ver("2.0.0")}),
]:
    _c, _s = _two(_attr, _a, _b)
    CASES.append(Case(f"with-constraint-not-matching-{_label}-attribute", [_c], AB, [_s]))
_c, _s = _two(INT_ATTR, {"numa": {"int": 1}}, {"numa": {"int": 2}}, mode="All")
CASES.append(
    Case(
        "with-constraint-not-matching-int-attribute-all-devices",
        [_c],
        AB,
        [_s],
        error="claim claim-0, request req-0: cannot add device driver-a/pool-1/device-2 "
        "because a claim constraint would not be satisfied",
    )
)

_V12 = [
    device(DEVICE1, None, {"driverVersion": ver("1.0.0")}),
    device(DEVICE2, None, {"driverVersion": ver("2.0.0")}),
]
CASES += [
    Case(
        "with-constraint-for-request",
        [
            claim(
                CLAIM0,
                request(REQ0, CLASS_A),
                request(REQ1, CLASS_A),
                constraints=[{"requests": [REQ0], "matchAttribute": VERSION_ATTR}],
            )
        ],
        AB,
        [slice_(SLICE1, NODE1, POOL1, DRIVER_A, *_V12)],
        expect=[local(r(REQ0, DEVICE1), r(REQ1, DEVICE2))],
    ),
    Case(
        "with-constraint-for-request-retry",
        [
            claim(
                CLAIM0,
                request(REQ0, CLASS_A),
                request(REQ1, CLASS_A),
                constraints=[
                    {"requests": [REQ0], "matchAttribute": VERSION_ATTR},
                    {"matchAttribute": STRING_ATTR},
                ],
            )
        ],
        AB,
        [
            slice_(
                SLICE1,
                NODE1,
                POOL1,
                DRIVER_A,
                device(
                    DEVICE1,
                    None,
                    {"driverVersion": ver("1.0.0"), "stringAttribute": {"string": "a"}},
                ),
                device(
                    DEVICE2,
                    None,
                    {"driverVersion": ver("2.0.0"), "stringAttribute": {"string": "b"}},
                ),
                device(
                    DEVICE3,
                    None,
                    {"driverVersion": ver("3.0.0"), "stringAttribute": {"string": "b"}},
                ),
            )
        ],
        expect=[local(r(REQ0, DEVICE2), r(REQ1, DEVICE3))],
    ),
    Case(
        "with-class-device-config",
        [R0A],
        [device_class(CLASS_A, DRIVER_A, "classAttribute")],
        [one_device(SLICE1, NODE1, POOL1, DRIVER_A)],
        expect=[
            local(
                r(REQ0, DEVICE1),
                config=[
                    {
                        "source": "FromClass",
                        "requests": [REQ0],
                        "opaque": opaque(DRIVER_A, "classAttribute"),
                    }
                ],
            )
        ],
    ),
    Case(
        "with-class-device-config-with-multiple-request-and-configs",
        [
            claim(
                CLAIM0,
                request(REQ0, CLASS_A),
                request(REQ1, CLASS_A),
                request(REQ2, CLASS_B),
                constraints=[],
            )
        ],
        [
            device_class(CLASS_A, DRIVER_A, "classAttribute-A"),
            device_class(CLASS_B, DRIVER_B, "classAttribute-B"),
        ],
        [
            many_devices(SLICE1, NODE1, POOL1, DRIVER_A, 2),
            one_device(SLICE2, NODE1, POOL1, DRIVER_B),
        ],
        expect=[
            local(
                r(REQ0, DEVICE0),
                r(REQ1, DEVICE1),
                r(REQ2, DEVICE1, driver=DRIVER_B),
                config=[
                    {
                        "source": "FromClass",
                        "requests": [REQ0, REQ1],
                        "opaque": opaque(DRIVER_A, "classAttribute-A"),
                    },
                    {
                        "source": "FromClass",
                        "requests": [REQ2],
                        "opaque": opaque(DRIVER_B, "classAttribute-B"),
                    },
                ],
            )
        ],
    ),
    Case(
        "claim-with-device-config",
        [
            claim(
                CLAIM0,
                request(REQ0, CLASS_A),
                config=[{"opaque": opaque(DRIVER_A, "deviceAttribute")}],
            )
        ],
        A,
        [one_device(SLICE1, NODE1, POOL1, DRIVER_A)],
        expect=[
            local(
                r(REQ0, DEVICE1),
                config=[{"source": "FromClaim", "opaque": opaque(DRIVER_A, "deviceAttribute")}],
            )
        ],
    ),
    Case(
        "unknown-selector",
        [claim(CLAIM0, request(REQ0, CLASS_A, 1, {}))],
        A,
        [one_device(SLICE1, NODE1, POOL1, DRIVER_A)],
        error="CEL expression empty (unsupported selector type?)",
    ),
    Case(
        "unknown-allocation-mode",
        [claim(CLAIM0, request(REQ0, CLASS_A, mode="future-mode"))],
        A,
        [one_device(SLICE1, NODE1, POOL1, DRIVER_A)],
        error="unsupported count mode future-mode",
    ),
    Case(
        "unknown-constraint",
        [claim(CLAIM0, request(REQ0, CLASS_A), constraints=[{}])],
        A,
        [one_device(SLICE1, NODE1, POOL1, DRIVER_A)],
        error="empty constraint (unsupported constraint type?)",
    ),
    Case(
        "invalid-CEL-one-device",
        [claim(CLAIM0, request(REQ0, CLASS_A, 1, cel("noSuchVar")))],
        A,
        [one_device(SLICE1, NODE1, POOL1, DRIVER_A)],
        error="undeclared reference",
    ),
    Case(
        "invalid-CEL-one-device-class",
        [R0A],
        [device_class(CLASS_A, DRIVER_A, expression="noSuchVar")],
        [one_device(SLICE1, NODE1, POOL1, DRIVER_A)],
        error="undeclared reference",
    ),
    Case(
        "invalid-CEL-all-devices",
        [claim(CLAIM0, request(REQ0, CLASS_A, 1, cel("noSuchVar"), mode="All"))],
        A,
        [one_device(SLICE1, NODE1, POOL1, DRIVER_A)],
        error="undeclared reference",
    ),
    Case(
        "too-many-devices-single-request",
        [claim(CLAIM0, request(REQ0, CLASS_A, 500))],
        A,
        [],
        error="exceeds the claim limit",
    ),
    Case("many-devices-okay", [claim(CLAIM0, request(REQ0, CLASS_A, MAX))], A, []),
    Case(
        "too-many-devices-total",
        [claim(CLAIM0, request(REQ0, CLASS_A, MAX), request(REQ1, CLASS_A))],
        A,
        [many_devices(SLICE1, NODE1, POOL1, DRIVER_A, MAX + 1)],
        error="exceeds the claim limit",
    ),
    Case(
        "all-devices-invalid-CEL",
        [claim(CLAIM0, request(REQ0, CLASS_A, 500))],
        A,
        [],
        error="exceeds the claim limit",
    ),
]

_S01 = "req-0/subReq-1"
CASES += [
    Case(
        "prioritized-list-first-unavailable",
        [claim(CLAIM0, prioritized(REQ0, sub(SUB0, CLASS_B), sub(SUB1, CLASS_A)))],
        AB,
        [one_device(SLICE1, NODE1, POOL1, DRIVER_A)],
        features=PL,
        expect=[local(r(_S01, DEVICE1))],
    ),
    Case(
        "prioritized-list-non-available",
        [claim(CLAIM0, prioritized(REQ0, sub(SUB0, CLASS_B, 2), sub(SUB1, CLASS_A, 2)))],
        AB,
        [one_device(SLICE1, NODE1, POOL1, DRIVER_A), one_device(SLICE2, NODE1, POOL2, DRIVER_B)],
        features=PL,
    ),
    Case(
        "prioritized-list-device-config",
        [
            claim(
                CLAIM0,
                prioritized(REQ0, sub(SUB0, CLASS_A), sub(SUB1, CLASS_B, 2)),
                config=[
                    {"requests": ["req-0/subReq-0"], "opaque": opaque(DRIVER_A, "foo")},
                    {"requests": [_S01], "opaque": opaque(DRIVER_B, "bar")},
                ],
            )
        ],
        AB,
        [
            slice_(
                SLICE1, NODE1, POOL1, DRIVER_B, device(DEVICE1, None, {}), device(DEVICE2, None, {})
            )
        ],
        features=PL,
        expect=[
            local(
                r(_S01, DEVICE1, driver=DRIVER_B),
                r(_S01, DEVICE2, driver=DRIVER_B),
                config=[
                    {"source": "FromClaim", "requests": [_S01], "opaque": opaque(DRIVER_B, "bar")}
                ],
            )
        ],
    ),
    Case(
        "prioritized-list-class-config",
        [claim(CLAIM0, prioritized(REQ0, sub(SUB0, CLASS_A, 2), sub(SUB1, CLASS_B, 2)))],
        [device_class(CLASS_A, DRIVER_A, "foo"), device_class(CLASS_B, DRIVER_B, "bar")],
        [
            slice_(SLICE1, NODE1, POOL1, DRIVER_B, device(DEVICE1), device(DEVICE2)),
            slice_(SLICE2, NODE1, POOL2, DRIVER_A, device(DEVICE3)),
        ],
        features=PL,
        expect=[
            local(
                r(_S01, DEVICE1, driver=DRIVER_B),
                r(_S01, DEVICE2, driver=DRIVER_B),
                config=[
                    {"source": "FromClass", "requests": [_S01], "opaque": opaque(DRIVER_B, "bar")}
                ],
            )
        ],
    ),
    Case(
        "prioritized-list-subrequests-with-expressions",
        [
            claim(
                CLAIM0,
                request(REQ0, CLASS_A, 1, memory_at_least("1Gi")),
                prioritized(
                    REQ1,
                    sub(SUB0, CLASS_A, 1, memory_at_least("4Gi")),
                    sub(SUB1, CLASS_A, 2, memory_at_least("2Gi")),
                ),
            )
        ],
        A,
        [
            slice_(
                SLICE1,
                NODE1,
                POOL1,
                DRIVER_A,
                mem(DEVICE1, "2Gi"),
                mem(DEVICE2, "2Gi"),
                mem(DEVICE3, "1Gi"),
            )
        ],
        features=PL,
        expect=[
            local(r(REQ0, DEVICE3), r("req-1/subReq-1", DEVICE1), r("req-1/subReq-1", DEVICE2))
        ],
    ),
    Case(
        "prioritized-list-subrequests-with-constraints-ref-parent-request",
        [
            claim(
                CLAIM0,
                request(REQ0, CLASS_A, 1, memory_at_least("8Gi")),
                prioritized(
                    REQ1,
                    sub(SUB0, CLASS_A, 1, memory_at_least("2Gi")),
                    sub(SUB1, CLASS_A, 1, memory_at_least("1Gi")),
                ),
                constraints=[{"requests": [REQ0, REQ1], "matchAttribute": VERSION_ATTR}],
            )
        ],
        A,
        [
            slice_(
                SLICE1, NODE1, POOL1, DRIVER_A, mem(DEVICE1, "8Gi", {"driverVersion": ver("1.0.0")})
            ),
            slice_(
                SLICE2,
                NODE1,
                POOL2,
                DRIVER_A,
                mem(DEVICE2, "2Gi", {"driverVersion": ver("2.0.0")}),
                mem(DEVICE3, "1Gi", {"driverVersion": ver("1.0.0")}),
            ),
        ],
        features=PL,
        expect=[local(r(REQ0, DEVICE1), r("req-1/subReq-1", DEVICE3, POOL2))],
    ),
    Case(
        "prioritized-list-subrequests-with-constraints-ref-sub-request",
        [
            claim(
                CLAIM0,
                request(REQ0, CLASS_A, 1, memory_at_least("8Gi")),
                prioritized(
                    REQ1,
                    sub(SUB0, CLASS_A, 1, memory_at_least("2Gi")),
                    sub(SUB1, CLASS_A, 1, memory_at_least("1Gi")),
                ),
                constraints=[
                    {"requests": [REQ0, "req-1/subReq-0"], "matchAttribute": VERSION_ATTR}
                ],
            )
        ],
        A,
        [
            slice_(
                SLICE1, NODE1, POOL1, DRIVER_A, mem(DEVICE1, "8Gi", {"driverVersion": ver("1.0.0")})
            ),
            slice_(
                SLICE2, NODE1, POOL2, DRIVER_A, mem(DEVICE2, "2Gi", {"driverVersion": ver("2.0.0")})
            ),
        ],
        features=PL,
        expect=[local(r(REQ0, DEVICE1), r("req-1/subReq-1", DEVICE2, POOL2))],
    ),
    Case(
        "prioritized-list-subrequests-with-allocation-mode-all",
        [claim(CLAIM0, prioritized(REQ0, sub(SUB0, CLASS_A, 0, mode="All"), sub(SUB1, CLASS_A)))],
        A,
        [slice_(SLICE1, NODE1, POOL1, DRIVER_A, device(DEVICE1), device(DEVICE2))],
        allocated=[(DRIVER_A, POOL1, DEVICE1)],
        features=PL,
        expect=[local(r(_S01, DEVICE2))],
    ),
    Case(
        "prioritized-list-allocation-mode-all-multiple-requests",
        [
            claim(
                CLAIM0,
                request(REQ0, CLASS_A),
                prioritized(REQ1, sub(SUB0, CLASS_A, 0, mode="All"), sub(SUB1, CLASS_A)),
            )
        ],
        A,
        [slice_(SLICE1, NODE1, POOL1, DRIVER_A, device(DEVICE1), device(DEVICE2))],
        features=PL,
        expect=[local(r(REQ0, DEVICE1), r("req-1/subReq-1", DEVICE2))],
    ),
    Case(
        "prioritized-list-disabled",
        [claim(CLAIM0, prioritized(REQ0, sub(SUB0, CLASS_A)))],
        A,
        [one_device(SLICE1, NODE1, POOL1, DRIVER_A)],
        error="claim claim-0, request req-0: has subrequests, but the DRAPrioritizedList "
        "feature is disabled",
    ),
    Case(
        "prioritized-list-multi-request",
        [
            claim(
                CLAIM0,
                request(REQ1, CLASS_A, 1, memory_at_least("8Gi")),
                prioritized(
                    REQ0,
                    sub(SUB0, CLASS_A, 1, memory_at_least("8Gi")),
                    sub(SUB1, CLASS_A, 1, memory_at_least("4Gi")),
                ),
            )
        ],
        A,
        [
            slice_(SLICE1, NODE1, POOL1, DRIVER_A, mem(DEVICE1, "8Gi", {})),
            slice_(SLICE2, NODE1, POOL2, DRIVER_A, mem(DEVICE2, "4Gi", {})),
        ],
        features=PL,
        expect=[local(r(REQ1, DEVICE1), r(_S01, DEVICE2, POOL2))],
    ),
    Case(
        "prioritized-list-with-backtracking",
        [
            claim(
                CLAIM0,
                prioritized(
                    REQ0,
                    sub(SUB0, CLASS_A, 1, memory_at_least("8Gi")),
                    sub(SUB1, CLASS_A, 1, memory_at_least("4Gi")),
                ),
                request(REQ1, CLASS_A, 1, memory_at_least("8Gi")),
            )
        ],
        A,
        [
            slice_(SLICE1, NODE1, POOL1, DRIVER_A, mem(DEVICE1, "8Gi", {})),
            slice_(SLICE2, NODE1, POOL2, DRIVER_A, mem(DEVICE2, "4Gi", {})),
        ],
        features=PL,
        expect=[local(r(_S01, DEVICE2, POOL2), r(REQ1, DEVICE1))],
    ),
    Case(
        "prioritized-list-too-many-in-first-subrequest",
        [claim(CLAIM0, prioritized(REQ0, sub(SUB0, CLASS_B, 500), sub(SUB1, CLASS_A)))],
        AB,
        [one_device(SLICE1, NODE1, POOL1, DRIVER_A)],
        features=PL,
        expect=[local(r(_S01, DEVICE1))],
    ),
]

_CS8 = [(COUNTER_SET1, {"memory": "8Gi"})]
_CS18 = [(COUNTER_SET1, {"memory": "18Gi"})]
_C4_6_4 = [
    counter_dev(DEVICE1, memory="4Gi"),
    counter_dev(DEVICE2, memory="6Gi"),
    counter_dev(DEVICE3, memory="4Gi"),
]


def _pd_slices(
    *devices: dict[str, Any], sets: list[tuple[str, dict[str, str]]] = _CS8, selection: Any = NODE1
) -> list[ResourceSlice]:
    return [
        slice_(SLICE1, selection, POOL1, DRIVER_A, *devices, count=2),
        counter_slice(SLICE2, sets, selection),
    ]


def _two_counter_sets(name: str, c1: dict[str, str], c2: dict[str, str]) -> dict[str, Any]:
    return device(name, counters=[(COUNTER_SET1, c1), (COUNTER_SET2, c2)], from_counters=True)


_PL_6_4 = prioritized(
    REQ1,
    sub(SUB0, CLASS_A, 1, memory_at_least("6Gi")),
    sub(SUB1, CLASS_A, 1, memory_at_least("4Gi")),
)
CASES += [
    Case(
        "partitionable-devices-single-device",
        [claim(CLAIM0, request(REQ0, CLASS_A))],
        A,
        _pd_slices(counter_dev(DEVICE1, from_counters=False, memory="4Gi")),
        features=PD,
        expect=[local(r(REQ0, DEVICE1))],
    ),
    Case(
        "partitionable-devices-prioritized-list",
        [claim(CLAIM0, request(REQ0, CLASS_A), _PL_6_4)],
        A,
        _pd_slices(*_C4_6_4),
        features=PDPL,
        expect=[local(r(REQ0, DEVICE1), r("req-1/subReq-1", DEVICE3))],
    ),
    Case(
        "partitionable-devices-multiple-devices",
        [claim(CLAIM0, request(REQ0, CLASS_A), request(REQ1, CLASS_A))],
        A,
        _pd_slices(*_C4_6_4),
        features=PD,
        expect=[local(r(REQ0, DEVICE1), r(REQ1, DEVICE3))],
    ),
    Case(
        "partitionable-devices-multiple-capacity-pools",
        [claim(CLAIM0, request(REQ0, CLASS_A), _PL_6_4)],
        A,
        _pd_slices(
            _two_counter_sets(DEVICE1, {"memory": "4Gi"}, {"cpus": "4"}),
            _two_counter_sets(DEVICE2, {"memory": "6Gi"}, {"cpus": "6"}),
            _two_counter_sets(DEVICE3, {"memory": "4Gi"}, {"cpus": "4"}),
            sets=[(COUNTER_SET1, {"memory": "18Gi"}), (COUNTER_SET2, {"cpus": "8"})],
        ),
        features=PDPL,
        expect=[local(r(REQ0, DEVICE1), r("req-1/subReq-1", DEVICE3))],
    ),
    Case(
        "partitionable-devices-multiple-counters",
        [claim(CLAIM0, request(REQ0, CLASS_A), request(REQ1, CLASS_A))],
        A,
        _pd_slices(
            _two_counter_sets(
                DEVICE1, {"memory": "4Gi", "cpus": "6"}, {"cpus": "4", "memory": "2Gi"}
            ),
            _two_counter_sets(
                DEVICE2, {"memory": "6Gi", "cpus": "4"}, {"cpus": "6", "memory": "6Gi"}
            ),
            _two_counter_sets(
                DEVICE3, {"memory": "4Gi", "cpus": "4"}, {"cpus": "4", "memory": "4Gi"}
            ),
            sets=[
                (COUNTER_SET1, {"cpus": "8", "memory": "18Gi"}),
                (COUNTER_SET2, {"cpus": "12", "memory": "18Gi"}),
            ],
        ),
        features=PD,
        expect=[local(r(REQ0, DEVICE2), r(REQ1, DEVICE3))],
    ),
    Case(
        "partitionable-devices-multiple-pools",
        [claim(CLAIM0, request(REQ0, CLASS_A), request(REQ1, CLASS_A))],
        A,
        [
            slice_(
                SLICE1,
                NODE1,
                POOL1,
                DRIVER_A,
                counter_dev(DEVICE1, cpus="6", memory="4Gi"),
                counter_dev(DEVICE2, cpus="4", memory="6Gi"),
                counter_dev(DEVICE3, cpus="4", memory="4Gi"),
                count=2,
            ),
            counter_slice(SLICE2, [(COUNTER_SET1, {"cpus": "8", "memory": "18Gi"})]),
            slice_(
                SLICE3,
                NODE1,
                POOL2,
                DRIVER_A,
                counter_dev(DEVICE1, cpus="6", memory="4Gi"),
                counter_dev(DEVICE2, cpus="1", memory="7Gi"),
                counter_dev(DEVICE3, cpus="1", memory="7Gi"),
                count=2,
            ),
            counter_slice(SLICE4, [(COUNTER_SET1, {"cpus": "8", "memory": "18Gi"})], pool=POOL2),
        ],
        allocated=[
            (DRIVER_A, POOL1, DEVICE2),
            (DRIVER_A, POOL1, DEVICE3),
            (DRIVER_A, POOL2, DEVICE1),
        ],
        features=PD,
        expect=[local(r(REQ0, DEVICE2, POOL2), r(REQ1, DEVICE3, POOL2))],
    ),
    Case(
        "partitionable-devices-unused-counters-in-counter-set",
        [claim(CLAIM0, request(REQ0, CLASS_A, 2))],
        A,
        _pd_slices(
            counter_dev(DEVICE1, from_counters=False, memory="5Gi"),
            counter_dev(DEVICE2, from_counters=False, memory="4Gi"),
            counter_dev(DEVICE3, from_counters=False, memory="4Gi"),
            sets=[(COUNTER_SET1, {"memory": "8Gi", "unused": "1Gi"})],
        ),
        features=PD,
        expect=[local(r(REQ0, DEVICE2), r(REQ0, DEVICE3))],
    ),
    Case(
        "partitionable-devices-no-capacity-available",
        [claim(CLAIM0, request(REQ0, CLASS_A))],
        A,
        [
            slice_(
                SLICE1,
                NODE1,
                POOL1,
                DRIVER_A,
                counter_dev(DEVICE1, memory="4Gi"),
                counter_dev(DEVICE2, memory="16Gi"),
            ),
            counter_slice(SLICE2, _CS18, count=1),
        ],
        allocated=[(DRIVER_A, POOL1, DEVICE2)],
        features=PD,
    ),
    Case(
        "partitionable-devices-overallocated-capacity-pool",
        [claim(CLAIM0, request(REQ0, CLASS_A))],
        A,
        [
            slice_(
                SLICE1,
                NODE1,
                POOL1,
                DRIVER_A,
                counter_dev(DEVICE1, memory="4Gi"),
                counter_dev(DEVICE2, memory="20Gi"),
            ),
            counter_slice(SLICE2, _CS18, count=1),
        ],
        allocated=[(DRIVER_A, POOL1, DEVICE2)],
        features=PD,
    ),
    Case(
        "partitionable-devices-disabled-device-consumes-counters",
        [claim(CLAIM0, request(REQ0, CLASS_A))],
        A,
        [
            slice_(
                SLICE1,
                NODE1,
                POOL1,
                DRIVER_A,
                counter_dev(DEVICE1, from_counters=False, memory="4Gi"),
            ),
            counter_slice(SLICE2, _CS18, count=1),
        ],
    ),
    Case(
        "partitionable-devices-disabled-other-device-do-not-consume-counters",
        [claim(CLAIM0, request(REQ0, CLASS_A))],
        A,
        _pd_slices(
            counter_dev(DEVICE1, from_counters=False, memory="4Gi"), device(DEVICE2), sets=_CS18
        ),
        expect=[local(r(REQ0, DEVICE2))],
    ),
    Case(
        "partitionable-devices-disabled-per-device-node-selection",
        [claim(CLAIM0, request(REQ0, CLASS_A))],
        A,
        [slice_(SLICE1, PER_DEVICE, POOL1, DRIVER_A, device(DEVICE2, node_selection=NODE1))],
    ),
    Case(
        "partitionable-devices-per-device-node-selection-nodename",
        [
            claim(
                CLAIM0,
                prioritized(
                    REQ0,
                    sub(SUB0, CLASS_A, 1, memory_at_least("6Gi")),
                    sub(SUB1, CLASS_A, 1, memory_at_least("4Gi")),
                ),
            )
        ],
        A,
        [
            slice_(
                SLICE1,
                PER_DEVICE,
                POOL1,
                DRIVER_A,
                device(
                    DEVICE1,
                    counters=[(COUNTER_SET1, {"memory": "4Gi"})],
                    from_counters=True,
                    node_selection=NODE1,
                ),
                device(
                    DEVICE2,
                    counters=[(COUNTER_SET1, {"memory": "6Gi"})],
                    from_counters=True,
                    node_selection=NODE2,
                ),
                count=2,
            ),
            counter_slice(SLICE2, _CS18, PER_DEVICE),
        ],
        features=PDPL,
        expect=[local(r(_S01, DEVICE1))],
    ),
    Case(
        "partitionable-devices-per-device-node-selection-node-selector",
        [claim(CLAIM0, request(REQ0, CLASS_A))],
        A,
        [
            slice_(
                SLICE1,
                PER_DEVICE,
                POOL1,
                DRIVER_A,
                device(
                    DEVICE1,
                    counters=[(COUNTER_SET1, {"memory": "4Gi"})],
                    from_counters=True,
                    node_selection=label_selector("region", REGION1),
                ),
                count=2,
            ),
            counter_slice(SLICE2, _CS18, PER_DEVICE),
        ],
        features=PDPL,
        expect=[allocation(label_selector("region", REGION1), r(REQ0, DEVICE1))],
    ),
    Case(
        "partitionable-devices-per-device-node-selection-node-selector-multiple-devices",
        [claim(CLAIM0, request(REQ0, CLASS_A, 3), request(REQ1, CLASS_B, 3))],
        AB,
        [
            slice_(
                SLICE1,
                PER_DEVICE,
                POOL1,
                DRIVER_A,
                device(
                    DEVICE1,
                    counters=[(COUNTER_SET1, {"memory": "4Gi"})],
                    from_counters=True,
                    node_selection=label_selector("region", REGION1),
                ),
                device(
                    DEVICE2,
                    counters=[(COUNTER_SET1, {"memory": "4Gi"})],
                    from_counters=True,
                    node_selection=NODE1,
                ),
                device(
                    DEVICE3,
                    counters=[(COUNTER_SET1, {"memory": "4Gi"})],
                    from_counters=True,
                    node_selection=ALL_NODES,
                ),
                count=2,
            ),
            counter_slice(SLICE2, _CS18, PER_DEVICE),
            slice_(
                SLICE3,
                NODE1,
                POOL2,
                DRIVER_B,
                *(counter_dev(d, COUNTER_SET2, memory="4Gi") for d in (DEVICE1, DEVICE2, DEVICE3)),
                count=2,
            ),
            counter_slice(
                SLICE4, [(COUNTER_SET2, {"memory": "12Gi"})], pool=POOL2, driver=DRIVER_B
            ),
        ],
        features=PDPL,
        expect=[
            local(
                r(REQ0, DEVICE1),
                r(REQ0, DEVICE2),
                r(REQ0, DEVICE3),
                r(REQ1, DEVICE1, POOL2, DRIVER_B),
                r(REQ1, DEVICE2, POOL2, DRIVER_B),
                r(REQ1, DEVICE3, POOL2, DRIVER_B),
            )
        ],
    ),
    Case(
        "partitionable-devices-with-attribute-selector",
        [
            claim(
                CLAIM0,
                request(REQ0, CLASS_A, 2),
                request(REQ1, CLASS_A, 1, cel(f'device.attributes["{DRIVER_A}"].special')),
            )
        ],
        A,
        [
            slice_(
                SLICE1,
                NODE1,
                POOL1,
                DRIVER_A,
                *(
                    device(
                        d,
                        None,
                        {"special": {"bool": special}},
                        counters=[(COUNTER_SET1, {cpu: "1"}), (COUNTER_SET2, {"mem": "10Gi"})],
                    )
                    for d, special, cpu in (
                        (DEVICE1, True, "cpu1"),
                        (DEVICE2, False, "cpu2"),
                        (DEVICE3, False, "cpu3"),
                    )
                ),
                count=2,
            ),
            counter_slice(
                SLICE2,
                [
                    (COUNTER_SET1, {"cpu1": "1", "cpu2": "1", "cpu3": "1"}),
                    (COUNTER_SET2, {"mem": "30Gi"}),
                ],
            ),
        ],
        features=PD,
        expect=[local(r(REQ0, DEVICE2), r(REQ0, DEVICE3), r(REQ1, DEVICE1))],
    ),
]

_T12 = [
    slice_(
        SLICE1,
        NODE1,
        POOL1,
        DRIVER_A,
        device(DEVICE1, taints=[TAINT_NO_SCHEDULE]),
        device(DEVICE2, taints=[TAINT_NO_EXECUTE]),
    )
]
_T1 = [
    slice_(
        SLICE1,
        NODE1,
        POOL1,
        DRIVER_A,
        device(DEVICE1, taints=[TAINT_NO_SCHEDULE, TAINT_NO_EXECUTE]),
    )
]
_TS = [slice_(SLICE1, NODE1, POOL1, DRIVER_A, device(DEVICE1, taints=[TAINT_NO_SCHEDULE]))]
_PL_BA = claim(CLAIM0, prioritized(REQ0, sub(SUB0, CLASS_B), sub(SUB1, CLASS_A)))
CASES += [
    Case("tainted-two-devices", [R0A], A, _T12, features=TAINTS),
    Case("tainted-one-device-two-taints", [R0A], A, _T1, features=TAINTS),
    Case(
        "tainted-two-devices-tolerated",
        [claim(CLAIM0, request(REQ0, CLASS_A, tolerations=[TOLERATE_NO_EXECUTE]))],
        A,
        _T12,
        features=TAINTS,
        expect=[local(r(REQ0, DEVICE2, tolerations=[TOLERATE_NO_EXECUTE]))],
    ),
    Case(
        "tainted-two-devices-prioritized-list-tolerated",
        [
            claim(
                CLAIM0,
                prioritized(
                    REQ0, sub(SUB0, CLASS_A), sub(SUB1, CLASS_A, tolerations=[TOLERATE_NO_EXECUTE])
                ),
            )
        ],
        A,
        _T12,
        features=features(device_taints=True, prioritized_list=True),
        expect=[local(r(_S01, DEVICE2, tolerations=[TOLERATE_NO_EXECUTE]))],
    ),
    Case(
        "tainted-no-effect",
        [R0A],
        A,
        [slice_(SLICE1, NODE1, POOL1, DRIVER_A, device(DEVICE1, taints=[TAINT_NONE]))],
        features=TAINTS,
        expect=[local(r(REQ0, DEVICE1))],
    ),
    Case(
        "tainted-one-device-two-taints-both-tolerated",
        [
            claim(
                CLAIM0,
                request(REQ0, CLASS_A, tolerations=[TOLERATE_NO_SCHEDULE, TOLERATE_NO_EXECUTE]),
            )
        ],
        A,
        _T1,
        features=TAINTS,
        expect=[local(r(REQ0, DEVICE1, tolerations=[TOLERATE_NO_SCHEDULE, TOLERATE_NO_EXECUTE]))],
    ),
    Case("tainted-disabled", [R0A], A, _T1, expect=[local(r(REQ0, DEVICE1))]),
    Case(
        "tainted-prioritized-list",
        [_PL_BA],
        AB,
        _TS,
        features=features(device_taints=True, prioritized_list=True),
    ),
    Case(
        "tainted-prioritized-list-disabled",
        [_PL_BA],
        AB,
        _TS,
        features=PL,
        expect=[local(r(_S01, DEVICE1))],
    ),
    Case(
        "tainted-admin-access",
        [claim(CLAIM0, request(REQ0, CLASS_A, admin=True))],
        A,
        _TS,
        allocated=[(DRIVER_A, POOL1, DEVICE1), (DRIVER_A, POOL1, DEVICE2)],
        features=features(device_taints=True, admin_access=True),
    ),
    Case(
        "tainted-admin-access-disabled",
        [claim(CLAIM0, request(REQ0, CLASS_A, admin=True))],
        A,
        _TS,
        allocated=[(DRIVER_A, POOL1, DEVICE1), (DRIVER_A, POOL1, DEVICE2)],
        features=ADMIN,
        expect=[local(r(REQ0, DEVICE1, admin=True))],
    ),
    Case(
        "tainted-all-devices-single",
        [claim(CLAIM0, all_request(REQ0, CLASS_A))],
        A,
        _TS,
        features=TAINTS,
    ),
    Case(
        "tainted-all-devices-single-disabled",
        [claim(CLAIM0, all_request(REQ0, CLASS_A))],
        A,
        _TS,
        expect=[local(r(REQ0, DEVICE1))],
    ),
]

_GEN = {"generation": {"string": "v5"}}
_V6_V5 = claim(
    CLAIM0,
    prioritized(
        REQ0,
        sub(
            SUB0, CLASS_A, 0, cel(f'device.attributes["{DRIVER_A}"].generation == "v6"'), mode="All"
        ),
        sub(
            SUB1, CLASS_A, 0, cel(f'device.attributes["{DRIVER_A}"].generation == "v5"'), mode="All"
        ),
    ),
)
CASES += [
    Case(
        "prioritized-list-allocation-mode-all",
        [claim(CLAIM0, prioritized(REQ0, sub(SUB0, CLASS_A, 0, mode="All"), sub(SUB1, CLASS_A)))],
        A,
        [slice_(SLICE1, NODE1, POOL1, DRIVER_A, device(DEVICE1), device(DEVICE2))],
        allocated=[(DRIVER_A, POOL1, DEVICE2)],
        features=PL,
        expect=[local(r(_S01, DEVICE1))],
    ),
    Case(
        "prioritized-list-allocation-mode-all-with-selectors",
        [_V6_V5],
        A,
        [slice_(SLICE1, NODE1, POOL1, DRIVER_A, device(DEVICE1, None, _GEN))],
        features=PL,
        expect=[local(r(_S01, DEVICE1))],
    ),
    Case(
        "prioritized-list-allocation-mode-all-with-selectors-multiple-pools",
        [_V6_V5],
        A,
        [
            slice_(SLICE1, NODE1, POOL1, DRIVER_A, device(DEVICE1, None, _GEN)),
            slice_(SLICE2, NODE1, POOL2, DRIVER_A, device(DEVICE1, None, _GEN)),
        ],
        features=PL,
        expect=[local(r(_S01, DEVICE1), r(_S01, DEVICE1, POOL2))],
    ),
    Case(
        "prioritized-list-allocation-mode-all-with-selectors-multiple-pools-across-nodes",
        [_V6_V5],
        A,
        [
            slice_(SLICE1, NODE1, POOL1, DRIVER_A, device(DEVICE1, None, _GEN)),
            slice_(
                SLICE2,
                NODE2,
                POOL2,
                DRIVER_A,
                device(DEVICE1, None, _GEN),
                device(DEVICE2, None, {"generation": {"string": "v6"}}),
            ),
        ],
        features=PL,
        expect=[local(r(_S01, DEVICE1))],
    ),
    Case(
        "prioritized-list-allocation-mode-all-with-selectors-deviceclass-subset",
        [_V6_V5],
        [
            device_class(
                CLASS_A,
                DRIVER_A,
                expression=(
                    f'device.driver == "{DRIVER_A}" && device.attributes["{DRIVER_A}"].selected'
                ),
            )
        ],
        [
            slice_(
                SLICE1,
                NODE1,
                POOL1,
                DRIVER_A,
                device(
                    DEVICE1, None, {"generation": {"string": "v6"}, "selected": {"bool": False}}
                ),
                device(
                    DEVICE2, None, {"generation": {"string": "v5"}, "selected": {"bool": False}}
                ),
                device(DEVICE3, None, {"generation": {"string": "v5"}, "selected": {"bool": True}}),
            )
        ],
        features=PL,
        expect=[local(r(_S01, DEVICE3))],
    ),
    Case(
        "max-number-devices",
        [claim(CLAIM0, request(REQ0, CLASS_A, MAX))],
        A,
        [many_devices(SLICE1, NODE1, POOL1, DRIVER_A, MAX)],
        expect=[local(*many_results(REQ0, DRIVER_A, POOL1, MAX, 0))],
    ),
    Case(
        "prioritized-list-max-allocation-limit-request",
        [
            claim(
                CLAIM0,
                prioritized(REQ0, sub(SUB0, CLASS_A, MAX), sub(SUB1, CLASS_A, MAX // 2)),
                prioritized(REQ1, sub(SUB0, CLASS_A, MAX), sub(SUB1, CLASS_A, MAX // 2)),
            )
        ],
        A,
        [many_devices(SLICE1, NODE1, POOL1, DRIVER_A, MAX * 2)],
        features=PL,
        expect=[
            local(
                *many_results(_S01, DRIVER_A, POOL1, MAX // 2, 0),
                *many_results("req-1/subReq-1", DRIVER_A, POOL1, MAX // 2, MAX // 2),
            )
        ],
    ),
    Case(
        "prioritized-list-max-allocation-allocation-mode-all",
        [
            claim(
                CLAIM0,
                prioritized(REQ0, sub(SUB0, CLASS_A, 0, mode="All"), sub(SUB1, CLASS_A, 2)),
                request(REQ1, CLASS_B, 2),
            )
        ],
        AB,
        [
            many_devices(SLICE1, NODE1, POOL1, DRIVER_A, MAX - 1),
            many_devices(SLICE2, NODE1, POOL2, DRIVER_B, 2),
        ],
        features=PL,
        expect=[
            local(
                r(_S01, DEVICE0),
                r(_S01, DEVICE1),
                r(REQ1, DEVICE0, POOL2, DRIVER_B),
                r(REQ1, DEVICE1, POOL2, DRIVER_B),
            )
        ],
    ),
]

_B1 = (["IsPrepare"], ["BindingFailed"])
_B2 = (["IsPrepare2"], ["BindingFailed2"])
_B3 = (["IsPrepare3"], ["BindingFailed3"])
CASES += [
    Case(
        "device-binding-conditions",
        [R0A],
        A,
        [slice_(SLICE1, NODE1, POOL1, DRIVER_A, device(DEVICE1, binding=_B1))],
        features=BIND,
        expect=[local(r(REQ0, DEVICE1, binding=_B1))],
    ),
    Case(
        "binding-conditions-multiple-devices",
        [claim(CLAIM0, request(REQ0, CLASS_A, 2), request(REQ1, CLASS_A))],
        A,
        [
            slice_(
                SLICE1,
                NODE1,
                POOL1,
                DRIVER_A,
                device(DEVICE1, binding=_B1),
                device(DEVICE2, binding=_B2),
                device(DEVICE3, binding=_B3),
            )
        ],
        features=BIND,
        expect=[
            local(
                r(REQ0, DEVICE1, binding=_B1),
                r(REQ0, DEVICE2, binding=_B2),
                r(REQ1, DEVICE3, binding=_B3),
            )
        ],
    ),
    Case(
        "binding-conditions-with-and-without",
        [claim(CLAIM0, request(REQ0, CLASS_A), request(REQ1, CLASS_A))],
        A,
        [slice_(SLICE1, NODE1, POOL1, DRIVER_A, device(DEVICE1), device(DEVICE2, binding=_B1))],
        features=BIND,
        expect=[local(r(REQ0, DEVICE1), r(REQ1, DEVICE2, binding=_B1))],
    ),
    Case(
        "binding-conditions-without-feature-gate",
        [R0A],
        A,
        [slice_(SLICE1, NODE1, POOL1, DRIVER_A, device(DEVICE1, binding=_B1))],
    ),
    Case(
        "node-restriction",
        [R0A],
        A,
        [
            slice_(
                SLICE1,
                label_selector("planet", "earth"),
                POOL1,
                DRIVER_A,
                device(DEVICE1, binds_to_node=True),
            )
        ],
        features=BIND,
        expect=[local(r(REQ0, DEVICE1))],
    ),
    Case(
        "partitionable-devices-with-binding-conditions",
        [R0A],
        A,
        _pd_slices(
            device(
                DEVICE1,
                counters=[(COUNTER_SET1, {"memory": "4Gi"})],
                from_counters=True,
                binding=_B1,
            )
        ),
        features=features(partitionable_devices=True, device_binding=True),
        expect=[local(r(REQ0, DEVICE1, binding=_B1))],
    ),
    Case(
        "partitionable-devices-with-binding-conditions-multiple",
        [claim(CLAIM0, request(REQ0, CLASS_A, 2))],
        A,
        _pd_slices(
            device(
                DEVICE1,
                counters=[(COUNTER_SET1, {"memory": "4Gi"})],
                from_counters=True,
                binding=_B1,
            ),
            device(
                DEVICE2,
                counters=[(COUNTER_SET1, {"memory": "4Gi"})],
                from_counters=True,
                binding=_B2,
            ),
        ),
        features=features(partitionable_devices=True, device_binding=True),
        expect=[local(r(REQ0, DEVICE1, binding=_B1), r(REQ0, DEVICE2, binding=_B2))],
    ),
    Case(
        "partitionable-devices-with-binding-conditions-some-devices-no-conditions",
        [claim(CLAIM0, request(REQ0, CLASS_A, 3))],
        A,
        _pd_slices(
            device(
                DEVICE1,
                counters=[(COUNTER_SET1, {"memory": "2Gi"})],
                from_counters=True,
                binding=_B1,
            ),
            counter_dev(DEVICE2, memory="2Gi"),
            device(
                DEVICE3,
                counters=[(COUNTER_SET1, {"memory": "4Gi"})],
                from_counters=True,
                binding=(["IsReady"], ["BindingTimeout"]),
            ),
        ),
        features=features(partitionable_devices=True, device_binding=True),
        expect=[
            local(
                r(REQ0, DEVICE1, binding=_B1),
                r(REQ0, DEVICE2),
                r(REQ0, DEVICE3, binding=(["IsReady"], ["BindingTimeout"])),
            )
        ],
    ),
    Case(
        "partitionable-devices-with-binding-conditions-multi-slices",
        [claim(CLAIM0, request(REQ0, CLASS_A, 2))],
        A,
        [
            slice_(
                SLICE4,
                NODE1,
                POOL1,
                DRIVER_A,
                device(
                    DEVICE1,
                    counters=[(COUNTER_SET1, {"memory": "4Gi"})],
                    from_counters=True,
                    binding=_B1,
                ),
                count=4,
            ),
            counter_slice(SLICE3, _CS8, count=4),
            slice_(
                SLICE2,
                NODE1,
                POOL1,
                DRIVER_A,
                counter_dev(DEVICE2, COUNTER_SET2, memory="4Gi"),
                count=4,
            ),
            counter_slice(SLICE1, [(COUNTER_SET2, {"memory": "8Gi"})], count=4),
        ],
        features=features(partitionable_devices=True, device_binding=True),
        expect=[local(r(REQ0, DEVICE2), r(REQ0, DEVICE1, binding=_B1))],
    ),
    Case(
        "partitionable-devices-with-binding-conditions-and-taints",
        [claim(CLAIM0, request(REQ0, CLASS_A, 2))],
        A,
        [
            slice_(
                SLICE1,
                NODE1,
                POOL1,
                DRIVER_A,
                device(
                    DEVICE1,
                    counters=[(COUNTER_SET1, {"memory": "4Gi"})],
                    from_counters=True,
                    binding=_B1,
                    taints=[{"key": "key1", "value": "value1", "effect": "NoSchedule"}],
                ),
                counter_dev(DEVICE2, memory="4Gi"),
            ),
            counter_slice(SLICE2, _CS8, count=1),
        ],
        features=features(partitionable_devices=True, device_binding=True, device_taints=True),
    ),
    Case(
        "partitionable-devices-with-binding-conditions-and-taints-tolerated",
        [claim(CLAIM0, request(REQ0, CLASS_A, 2, tolerations=[TOLERATE_KEY1]))],
        A,
        _pd_slices(
            device(
                DEVICE1,
                counters=[(COUNTER_SET1, {"memory": "4Gi"})],
                from_counters=True,
                binding=_B1,
                taints=[{"key": "key1", "value": "value1", "effect": "NoSchedule"}],
            ),
            counter_dev(DEVICE2, memory="4Gi"),
        ),
        features=features(partitionable_devices=True, device_binding=True, device_taints=True),
        expect=[
            local(
                r(REQ0, DEVICE1, binding=_B1, tolerations=[TOLERATE_KEY1]),
                r(REQ0, DEVICE2, tolerations=[TOLERATE_KEY1]),
            )
        ],
    ),
    Case(
        "consumable-capacity-disabled-feature",
        [
            claim(
                CLAIM0,
                {
                    "name": REQ0,
                    "exactly": {
                        "deviceClassName": CLASS_A,
                        "capacity": {"requests": {"capacity-0": "1"}},
                    },
                },
            )
        ],
        A,
        [one_device(SLICE1, NODE1, POOL1, DRIVER_A)],
        features=BIND,
        error="claim claim-0, request req-0: has capacity requests, but the "
        "DRAConsumableCapacity feature is disabled",
    ),
]

CASES += [
    Case(
        "allocation-mode-all-with-multi-host-resource-pool",
        [claim(CLAIM0, all_request(REQ0, CLASS_A))],
        A,
        [
            slice_(SLICE1, NODE1, POOL1, DRIVER_A, device(DEVICE1), count=2),
            slice_(SLICE2, NODE2, POOL1, DRIVER_A, device(DEVICE2), count=2),
        ],
        expect=[local(r(REQ0, DEVICE1))],
    ),
    Case(
        "multi-host-resource-pool-with-stale-slice-for-current-node",
        [R0A],
        A,
        [gen(SLICE1, NODE1, DEVICE1, 1), gen(SLICE2, NODE2, DEVICE2, 2)],
    ),
    Case(
        "multi-host-resource-pool-complete-update-from-node-1-to-node-2",
        [R0A],
        A,
        [
            gen(SLICE1, NODE1, DEVICE1, 1),
            gen(SLICE1, NODE1, DEVICE2, 1),
            gen(SLICE2, NODE2, DEVICE1, 2),
            gen(SLICE2, NODE2, DEVICE2, 2),
        ],
        expect=[local(r(REQ0, DEVICE1))],
    ),
    Case(
        "multi-host-resource-pool-complete-update-from-node-2-to-node-1",
        [R0A],
        A,
        [
            gen(SLICE1, NODE2, DEVICE1, 1),
            gen(SLICE1, NODE2, DEVICE2, 1),
            gen(SLICE2, NODE1, DEVICE1, 2),
            gen(SLICE2, NODE1, DEVICE2, 2),
        ],
        expect=[local(r(REQ0, DEVICE1))],
    ),
    Case(
        "multi-host-resource-pool-incomplete-update-from-node-1-to-node-2",
        [R0A],
        A,
        [
            gen(SLICE1, NODE1, DEVICE1, 1),
            gen(SLICE1, NODE1, DEVICE2, 1),
            gen(SLICE2, NODE2, DEVICE1, 2),
        ],
        expect=[local(r(REQ0, DEVICE1))],
    ),
    Case(
        "multi-host-resource-pool-incomplete-update-from-node-2-to-node-1",
        [R0A],
        A,
        [
            gen(SLICE1, NODE2, DEVICE1, 1),
            gen(SLICE1, NODE2, DEVICE2, 1),
            gen(SLICE2, NODE1, DEVICE1, 2),
        ],
    ),
    Case(
        "partitionable-devices-same-counter-set-name-in-different-resource-slices",
        [R0A],
        A,
        [
            slice_(SLICE1, NODE1, POOL1, DRIVER_A, device(DEVICE1), count=4),
            counter_slice(SLICE2, [(COUNTER_SET1, {})], count=4),
            slice_(SLICE3, NODE1, POOL1, DRIVER_A, device(DEVICE2), count=4),
            counter_slice(SLICE4, [(COUNTER_SET1, {})], count=4),
        ],
        features=PD,
        error="invalid resource pools were encountered",
    ),
    Case(
        "partitionable-devices-device-counter-consumption-references-unknown-counter-set",
        [R0A],
        A,
        [
            slice_(
                SLICE1,
                NODE1,
                POOL1,
                DRIVER_A,
                device(DEVICE1, counters=[(COUNTER_SET2, {})]),
                count=2,
            ),
            counter_slice(SLICE2, [(COUNTER_SET1, {})]),
        ],
        features=PD,
        error="invalid resource pools were encountered",
    ),
    Case(
        "partitionable-devices-device-counter-consumption-references-unknown-counter-in-counter-set",
        [R0A],
        A,
        _pd_slices(
            counter_dev(DEVICE1, from_counters=False, memory="8Gi"),
            sets=[(COUNTER_SET1, {"other-memory": "8Gi"})],
        ),
        features=PD,
        error="invalid resource pools were encountered",
    ),
    Case(
        "partitionable-devices-device-counter-consumption-references-counter-set-in-other-pool",
        [R0A],
        A,
        [
            slice_(
                SLICE1,
                NODE1,
                POOL1,
                DRIVER_A,
                counter_dev(DEVICE1, from_counters=False, memory="8Gi"),
            ),
            counter_slice(SLICE2, _CS8, pool=POOL2, count=1),
        ],
        features=PD,
        error="invalid resource pools were encountered",
    ),
    Case(
        "partitionable-devices-devices-on-different-nodes-consume-same-counter-set",
        [
            claim(
                CLAIM0,
                prioritized(
                    REQ0,
                    sub(SUB0, CLASS_A, 1, memory_at_least("6Gi")),
                    sub(SUB1, CLASS_A, 1, memory_at_least("2Gi")),
                ),
            )
        ],
        A,
        [
            counter_slice(SLICE1, _CS8, count=3),
            slice_(
                SLICE2,
                NODE1,
                POOL1,
                DRIVER_A,
                counter_dev(DEVICE1, memory="6Gi"),
                counter_dev(DEVICE2, memory="2Gi"),
                count=3,
            ),
            slice_(
                SLICE3,
                NODE2,
                POOL1,
                DRIVER_A,
                counter_dev(DEVICE3, from_counters=False, memory="6Gi"),
                count=3,
            ),
        ],
        allocated=[(DRIVER_A, POOL1, DEVICE3)],
        features=PDPL,
        expect=[local(r(_S01, DEVICE2))],
    ),
    Case(
        "partitionable-devices-validation-error-on-non-targeting-slice",
        [claim(CLAIM0, request(REQ0, CLASS_A))],
        A,
        [
            counter_slice(SLICE1, _CS8, count=3),
            slice_(SLICE2, NODE1, POOL1, DRIVER_A, counter_dev(DEVICE1, memory="6Gi"), count=3),
            slice_(
                SLICE3,
                NODE2,
                POOL1,
                DRIVER_A,
                counter_dev(DEVICE3, COUNTER_SET2, from_counters=False, memory="6Gi"),
                count=3,
            ),
        ],
        features=PD,
        error="invalid resource pools were encountered",
    ),
    Case(
        "different-resourceslices-in-pool-can-target-different-nodes",
        [claim(CLAIM0, request(REQ0, CLASS_A))],
        A,
        [
            slice_(SLICE1, NODE2, POOL1, DRIVER_A, device(DEVICE1), count=2),
            slice_(SLICE2, NODE1, POOL1, DRIVER_A, device(DEVICE2), count=2),
        ],
        expect=[local(r(REQ0, DEVICE2))],
    ),
    Case(
        "invalid-pool-is-ok-if-devices-can-be-allocated-from-other",
        [claim(CLAIM0, request(REQ0, CLASS_A))],
        A,
        [
            slice_(SLICE1, NODE1, POOL1, DRIVER_A, device(DEVICE1), count=2),
            slice_(SLICE2, NODE1, POOL1, DRIVER_A, device(DEVICE1), count=2),
            slice_(SLICE3, NODE1, POOL2, DRIVER_A, device(DEVICE2)),
        ],
        expect=[local(r(REQ0, DEVICE2, POOL2))],
    ),
    Case(
        "invalid-pool-is-error-if-no-other-device-can-be-allocated",
        [claim(CLAIM0, request(REQ0, CLASS_A))],
        A,
        [
            slice_(SLICE1, NODE1, POOL1, DRIVER_A, device(DEVICE1), count=2),
            slice_(SLICE2, NODE1, POOL1, DRIVER_A, device(DEVICE1), count=2),
            slice_(SLICE3, NODE1, POOL2, DRIVER_A, device(DEVICE2)),
        ],
        allocated=[(DRIVER_A, POOL2, DEVICE2)],
        error="invalid resource pools were encountered",
    ),
    Case(
        "no-allocation-from-incomplete-pools",
        [claim(CLAIM0, request(REQ0, CLASS_A))],
        A,
        [slice_(SLICE1, NODE1, POOL1, DRIVER_A, device(DEVICE1), count=2)],
    ),
    Case(
        "check-combinations-within-single-request-single-pool-single-slice",
        [claim(CLAIM0, request(REQ0, CLASS_A, 5))],
        A,
        [
            slice_(
                SLICE1,
                NODE1,
                POOL1,
                DRIVER_A,
                *(device(d) for d in (DEVICE1, DEVICE2, DEVICE3, DEVICE4)),
            )
        ],
    ),
    Case(
        "check-combinations-within-single-request-single-pool-multiple-slices",
        [claim(CLAIM0, request(REQ0, CLASS_A, 5))],
        A,
        [
            slice_(SLICE1, NODE1, POOL1, DRIVER_A, device(DEVICE1), device(DEVICE2), count=2),
            slice_(SLICE2, NODE1, POOL1, DRIVER_A, device(DEVICE3), device(DEVICE4), count=2),
        ],
    ),
    Case(
        "check-combinations-within-single-request-multiple-pools-multiple-slices",
        [claim(CLAIM0, request(REQ0, CLASS_A, 5))],
        A,
        [
            slice_(SLICE1, NODE1, POOL1, DRIVER_A, device(DEVICE1), count=2),
            slice_(SLICE2, NODE1, POOL1, DRIVER_A, device(DEVICE2), count=2),
            slice_(SLICE3, NODE1, POOL2, DRIVER_A, device(DEVICE3), device(DEVICE4)),
        ],
    ),
    Case(
        "check-combinations-with-backtracking",
        [
            claim(
                CLAIM0,
                request(REQ0, CLASS_A, 2),
                request(REQ1, CLASS_A, 1, cel(f'device.attributes["{DRIVER_A}"].special')),
            )
        ],
        A,
        [
            slice_(
                SLICE1,
                NODE1,
                POOL1,
                DRIVER_A,
                device(DEVICE1, None, {"special": {"bool": True}}),
                device(DEVICE2, None, {"special": {"bool": False}}),
                device(DEVICE3, None, {"special": {"bool": False}}),
            )
        ],
        expect=[local(r(REQ0, DEVICE2), r(REQ0, DEVICE3), r(REQ1, DEVICE1))],
        reconstructed=True,
    ),
    Case(
        "lexicographical-sorting-pools",
        [claim(CLAIM0, request(REQ0, CLASS_A))],
        A,
        [
            one_device(SLICE1, NODE1, "pool-b", DRIVER_A),
            one_device(SLICE2, NODE1, "pool-a", DRIVER_A),
            one_device(SLICE3, NODE1, "pool-10", DRIVER_A),
        ],
        expect=[local(r(REQ0, DEVICE1, "pool-10"))],
        reconstructed=True,
    ),
]
