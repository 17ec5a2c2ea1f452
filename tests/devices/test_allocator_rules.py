"""Allocator rules that upstream's cases leave unpinned, each by name: backtracking through
distinctAttribute, tolerations with an empty key or effect, pool generations and
completeness, slice order within a pool, the 32-device limit across firstAvailable
subrequests, and node selectors of several terms (DRA.md)."""

from __future__ import annotations

from typing import Any

import pytest

from bosun.devices.allocator import AllocationError, Allocator, Features
from bosun.devices.model import ResourceClaim, ResourceSlice, to_wire
from bosun.devices.nodes import NodeInfo
from tests.devices.builders import (
    ALL_NODES,
    CLAIM0,
    CLASS_A,
    DRIVER_A,
    INT_ATTR,
    NODE1,
    NODE2,
    PER_DEVICE,
    POOL1,
    POOL2,
    REGION1,
    REQ0,
    REQ1,
    SUB0,
    SUB1,
    TAINT_NO_EXECUTE,
    TAINT_NO_SCHEDULE,
    TAINT_NONE,
    all_request,
    cel,
    claim,
    device,
    device_class,
    features,
    label_selector,
    many_devices,
    node,
    prioritized,
    request,
    slice_,
    sub,
)

CLASSES = [device_class(CLASS_A, DRIVER_A)]
HERE = node(NODE1, REGION1)


def allocate(
    slices: list[ResourceSlice], *claims: ResourceClaim, feats: Features | None = None
) -> list[dict[str, Any]] | None:
    results = Allocator(CLASSES, slices, (), feats or features()).allocate(HERE, list(claims))
    return None if results is None else [to_wire(r) for r in results]


def devices_of(allocation: dict[str, Any]) -> list[tuple[str, str]]:
    return [(r["request"], r["device"]) for r in allocation["devices"]["results"]]


def numa(name: str, value: int) -> dict[str, Any]:
    return device(name, attributes={"numa": {"int": value}})


# --------------------------------------------------------------------------- distinctAttribute


def test_distinct_attribute_backtracks_until_the_values_differ() -> None:
    """req-0 takes any device, req-1 only a NUMA-1 device, and they must differ in NUMA.
    The first two choices for req-0 are NUMA 1; only after both are undone (and their
    value forgotten) does req-0 take the NUMA-2 device and leave device-a to req-1."""
    slices = [slice_("s", NODE1, POOL1, DRIVER_A, numa("a", 1), numa("b", 1), numa("c", 2))]
    wanted = claim(
        CLAIM0,
        request(REQ0, CLASS_A),
        request(REQ1, CLASS_A, 1, cel(f'device.attributes["{DRIVER_A}"].numa == 1')),
        constraints=[{"requests": [REQ0, REQ1], "distinctAttribute": INT_ATTR}],
    )
    result = allocate(slices, wanted)
    assert result is not None
    assert devices_of(result[0]) == [(REQ0, "c"), (REQ1, "a")]


def test_distinct_attribute_over_one_request_spreads_its_devices() -> None:
    slices = [slice_("s", NODE1, POOL1, DRIVER_A, numa("a", 1), numa("b", 1), numa("c", 2))]
    spread = [{"distinctAttribute": INT_ATTR}]  # no requests: the whole claim
    two = allocate(slices, claim(CLAIM0, request(REQ0, CLASS_A, 2), constraints=spread))
    assert two is not None and devices_of(two[0]) == [(REQ0, "a"), (REQ0, "c")]
    assert allocate(slices, claim(CLAIM0, request(REQ0, CLASS_A, 3), constraints=spread)) is None


def test_distinct_attribute_ignores_requests_outside_its_scope() -> None:
    slices = [slice_("s", NODE1, POOL1, DRIVER_A, numa("a", 1), numa("b", 1))]
    scoped = claim(
        CLAIM0,
        request(REQ0, CLASS_A),
        request(REQ1, CLASS_A),
        constraints=[{"requests": [REQ0], "distinctAttribute": INT_ATTR}],
    )
    result = allocate(slices, scoped)
    assert result is not None and devices_of(result[0]) == [(REQ0, "a"), (REQ1, "b")]


def test_distinct_attribute_refuses_devices_without_the_attribute() -> None:
    slices = [slice_("s", NODE1, POOL1, DRIVER_A, device("plain"), numa("a", 1))]
    wanted = claim(CLAIM0, request(REQ0, CLASS_A), constraints=[{"distinctAttribute": INT_ATTR}])
    result = allocate(slices, wanted)
    assert result is not None and devices_of(result[0]) == [(REQ0, "a")]


def test_match_attribute_backtracks_to_a_common_value() -> None:
    """req-1 exists only on NUMA 2, so req-0's first choice (NUMA 1) is undone."""
    slices = [slice_("s", NODE1, POOL1, DRIVER_A, numa("a", 1), numa("b", 2), numa("c", 2))]
    wanted = claim(
        CLAIM0,
        request(REQ0, CLASS_A),
        request(REQ1, CLASS_A, 1, cel(f'device.attributes["{DRIVER_A}"].numa == 2')),
        constraints=[{"requests": [REQ0, REQ1], "matchAttribute": INT_ATTR}],
    )
    result = allocate(slices, wanted)
    assert result is not None and devices_of(result[0]) == [(REQ0, "b"), (REQ1, "c")]


# --------------------------------------------------------------------------- taints


TAINTED = [
    slice_(
        "s",
        NODE1,
        POOL1,
        DRIVER_A,
        device("no-schedule", taints=[TAINT_NO_SCHEDULE]),
        device("no-execute", taints=[TAINT_NO_EXECUTE]),
        device("effect-none", taints=[TAINT_NONE]),
    )
]


@pytest.mark.parametrize(
    ("toleration", "usable", "why"),
    [
        (None, {"effect-none"}, "a taint of effect None prevents nothing"),
        (
            {"operator": "Exists"},
            {"no-schedule", "no-execute", "effect-none"},
            "empty key and effect: tolerates every taint",
        ),
        (
            {"operator": "Exists", "key": "taint-key"},
            {"no-schedule", "no-execute", "effect-none"},
            "empty effect: every effect of that key",
        ),
        (
            {"operator": "Exists", "effect": "NoSchedule"},
            {"no-schedule", "effect-none"},
            "empty key: every key, of that effect only",
        ),
        (
            {"operator": "Exists", "key": "other-key"},
            {"effect-none"},
            "another key tolerates nothing here",
        ),
        (
            {"operator": "Equal", "key": "taint-key", "value": "taint-value"},
            {"no-schedule", "effect-none"},
            "Equal: only the taint of that value (NoExecute's is taint-value-2)",
        ),
        (
            {"operator": "Equal", "key": "taint-key"},
            {"effect-none"},
            "Equal without a value matches only an empty value",
        ),
    ],
)
def test_tolerations(toleration: dict[str, Any] | None, usable: set[str], why: str) -> None:
    tolerations = [toleration] if toleration else None
    taken: set[str] = set()
    for _ in range(3):  # take devices one at a time until none is left for this claim
        allocator = Allocator(
            CLASSES,
            TAINTED,
            [(DRIVER_A, POOL1, d) for d in taken],
            features(device_taints=True),
        )
        result = allocator.allocate(
            HERE, [claim(CLAIM0, request(REQ0, CLASS_A, tolerations=tolerations))]
        )
        if result is None:
            break
        taken.add(to_wire(result[0])["devices"]["results"][0]["device"])
    assert taken == usable, why


def test_taints_are_ignored_without_the_feature() -> None:
    result = allocate(TAINTED, claim(CLAIM0, request(REQ0, CLASS_A, 3)))
    assert result is not None and len(devices_of(result[0])) == 3


# --------------------------------------------------------------------------- pools


def test_the_newest_generation_of_a_pool_replaces_the_older() -> None:
    slices = [
        slice_("old", NODE1, POOL1, DRIVER_A, device("old-device"), generation=1),
        slice_("new", NODE1, POOL1, DRIVER_A, device("new-device"), generation=2),
    ]
    for ordered in (slices, slices[::-1]):
        result = Allocator(CLASSES, ordered, (), features()).allocate(
            HERE, [claim(CLAIM0, request(REQ0, CLASS_A))]
        )
        assert result is not None
        assert devices_of(to_wire(result[0])) == [(REQ0, "new-device")]
    assert allocate(slices, claim(CLAIM0, request(REQ0, CLASS_A, 2))) is None


def test_a_pool_completed_by_another_nodes_slice_is_complete() -> None:
    """resourceSliceCount 2, one slice here and one on node-2: "All" may use the pool."""
    slices = [
        slice_("here", NODE1, POOL1, DRIVER_A, device("a"), count=2),
        slice_("there", NODE2, POOL1, DRIVER_A, device("b"), count=2),
    ]
    result = allocate(slices, claim(CLAIM0, all_request(REQ0, CLASS_A)))
    assert result is not None and devices_of(result[0]) == [(REQ0, "a")]


def test_a_pool_missing_a_slice_is_being_updated() -> None:
    slices = [slice_("here", NODE1, POOL1, DRIVER_A, device("a"), count=2)]
    with pytest.raises(
        AllocationError,
        match=r"asks for all devices, but resource pool .* "
        r"currently being updated",
    ):
        allocate(slices, claim(CLAIM0, all_request(REQ0, CLASS_A)))
    # An exact count skips the incomplete pool: nothing fits, and that is no error.
    assert allocate(slices, claim(CLAIM0, request(REQ0, CLASS_A))) is None


def test_an_incomplete_pool_with_a_newer_generation_elsewhere_is_ignored() -> None:
    """The driver is replacing generation 1 (its generation 2 lives on node-2 for now):
    generation 1 is not used and not an error either."""
    slices = [
        slice_("old", NODE1, POOL1, DRIVER_A, device("a"), count=2, generation=1),
        slice_("new", NODE2, POOL1, DRIVER_A, device("b"), count=1, generation=2),
        slice_("other", NODE1, POOL2, DRIVER_A, device("c")),
    ]
    result = allocate(slices, claim(CLAIM0, all_request(REQ0, CLASS_A)))
    assert result is not None and devices_of(result[0]) == [(REQ0, "c")]


def test_slices_of_a_pool_are_walked_by_name() -> None:
    slices = [
        slice_("slice-b", NODE1, POOL1, DRIVER_A, device("from-b"), count=2),
        slice_("slice-a", NODE1, POOL1, DRIVER_A, device("from-a"), count=2),
    ]
    result = allocate(slices, claim(CLAIM0, request(REQ0, CLASS_A)))
    assert result is not None and devices_of(result[0]) == [(REQ0, "from-a")]


def test_pools_are_walked_by_driver_then_name() -> None:
    slices = [
        slice_("s2", NODE1, POOL2, DRIVER_A, device("in-pool-2")),
        slice_("s1", NODE1, POOL1, DRIVER_A, device("in-pool-1")),
    ]
    result = allocate(slices, claim(CLAIM0, request(REQ0, CLASS_A)))
    assert result is not None and devices_of(result[0]) == [(REQ0, "in-pool-1")]


# --------------------------------------------------------------------------- the 32 limit

PRIORITIZED = features(prioritized_list=True)


def test_the_32_limit_counts_the_smallest_subrequest() -> None:
    """20 + min(20, 10) = 30 devices at least: allowed; the first subrequest would make 40,
    more than one claim may hold, so the second is chosen."""
    slices = [many_devices("s", NODE1, POOL1, DRIVER_A, 40)]
    wanted = claim(
        CLAIM0,
        prioritized(REQ0, sub(SUB0, CLASS_A, 20), sub(SUB1, CLASS_A, 10)),
        request(REQ1, CLASS_A, 20),
    )
    result = allocate(slices, wanted, feats=PRIORITIZED)
    assert result is not None
    chosen = devices_of(result[0])
    assert sum(1 for r, _ in chosen if r == f"{REQ0}/{SUB1}") == 10
    assert sum(1 for r, _ in chosen if r == REQ1) == 20


def test_the_32_limit_refuses_a_claim_whose_smallest_choice_is_too_many() -> None:
    slices = [many_devices("s", NODE1, POOL1, DRIVER_A, 40)]
    wanted = claim(
        CLAIM0,
        prioritized(REQ0, sub(SUB0, CLASS_A, 13), sub(SUB1, CLASS_A, 12)),
        request(REQ1, CLASS_A, 21),
    )
    with pytest.raises(
        AllocationError, match="number of requested devices 33 exceeds the claim limit of 32"
    ):
        allocate(slices, wanted, feats=PRIORITIZED)


def test_a_claim_of_exactly_32_devices_is_allocated() -> None:
    slices = [many_devices("s", NODE1, POOL1, DRIVER_A, 40)]
    result = allocate(slices, claim(CLAIM0, request(REQ0, CLASS_A, 32)))
    assert result is not None and len(devices_of(result[0])) == 32


def test_a_request_falls_back_when_no_later_subrequest_fits_within_32() -> None:
    """req-0 first takes 25 devices; then each of req-1's subrequests (10) passes 32, so
    req-0 falls back to its own second choice (10) and req-1 takes its first."""
    slices = [many_devices("s", NODE1, POOL1, DRIVER_A, 40)]
    wanted = claim(
        CLAIM0,
        prioritized(REQ0, sub(SUB0, CLASS_A, 25), sub(SUB1, CLASS_A, 10)),
        prioritized(REQ1, sub(SUB0, CLASS_A, 10), sub(SUB1, CLASS_A, 8)),
    )
    result = allocate(slices, wanted, feats=PRIORITIZED)
    assert result is not None
    requests = [r for r, _ in devices_of(result[0])]
    assert requests == [f"{REQ0}/{SUB1}"] * 10 + [f"{REQ1}/{SUB0}"] * 10


# --------------------------------------------------------------------------- node selectors


def test_a_slice_selector_of_several_terms_is_refused() -> None:
    two_terms = {
        "nodeSelectorTerms": [
            {"matchExpressions": [{"key": "region", "operator": "In", "values": [REGION1]}]},
            {"matchExpressions": [{"key": "planet", "operator": "In", "values": ["mars"]}]},
        ]
    }
    slices = [slice_("s", two_terms, POOL1, DRIVER_A, device("a"))]
    with pytest.raises(
        AllocationError, match=r"unsupported ResourceSlice\.NodeSelector with 2 terms"
    ):
        allocate(slices, claim(CLAIM0, request(REQ0, CLASS_A)))


def test_node_selectors_of_several_devices_merge_without_repeats() -> None:
    slices = [
        slice_("s1", label_selector("region", REGION1), POOL1, DRIVER_A, device("a")),
        slice_("s2", label_selector("region", REGION1), POOL2, DRIVER_A, device("b")),
        slice_("s3", label_selector("planet", "earth"), "pool-3", DRIVER_A, device("c")),
    ]
    result = allocate(slices, claim(CLAIM0, request(REQ0, CLASS_A, 3)))
    assert result is not None
    terms = result[0]["nodeSelector"]["nodeSelectorTerms"]
    assert terms == [
        {
            "matchExpressions": [
                {"key": "region", "operator": "In", "values": [REGION1]},
                {"key": "planet", "operator": "In", "values": ["earth"]},
            ]
        }
    ]


def test_a_device_on_a_named_node_pins_the_claim_to_it() -> None:
    slices = [
        slice_("s1", label_selector("region", REGION1), POOL1, DRIVER_A, device("a")),
        slice_("s2", NODE1, POOL2, DRIVER_A, device("b")),
    ]
    result = allocate(slices, claim(CLAIM0, request(REQ0, CLASS_A, 2)))
    assert result is not None
    assert result[0]["nodeSelector"] == {
        "nodeSelectorTerms": [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [NODE1]}]}
        ]
    }


# --------------------------------------------------------------------------- constraints, more
# Cases that separate a rule from its nearest wrong version (found by `make mutation`).


def numa_s(name: str, value: int, label: str) -> dict[str, Any]:
    return device(name, attributes={"numa": {"int": value}, "label": {"string": label}})


def test_a_constraint_added_before_another_fails_is_taken_back() -> None:
    """matchAttribute accepts b after a, distinctAttribute refuses it: the match must forget
    b, or after a and b are undone it still holds NUMA 1 and refuses c and d."""
    slices = [
        slice_(
            "s",
            NODE1,
            POOL1,
            DRIVER_A,
            numa_s("a", 1, "x"),
            numa_s("b", 1, "x"),
            numa_s("c", 2, "y"),
            numa_s("d", 2, "z"),
        )
    ]
    wanted = claim(
        CLAIM0,
        request(REQ0, CLASS_A, 2),
        constraints=[
            {"matchAttribute": INT_ATTR},
            {"distinctAttribute": f"{DRIVER_A}/label"},
        ],
    )
    result = allocate(slices, wanted)
    assert result is not None and devices_of(result[0]) == [(REQ0, "c"), (REQ0, "d")]


def test_match_attribute_forgets_its_value_once_every_device_is_undone() -> None:
    """req-0 first takes a and b (NUMA 1), then nothing for req-1 matches; only when both are
    undone may the value become NUMA 2."""
    slices = [
        slice_(
            "s",
            NODE1,
            POOL1,
            DRIVER_A,
            numa("a", 1),
            numa("b", 1),
            numa("c", 2),
            numa("d", 2),
            numa("e", 2),
        )
    ]
    wanted = claim(
        CLAIM0,
        request(REQ0, CLASS_A, 2),
        request(REQ1, CLASS_A, 1, cel(f'device.attributes["{DRIVER_A}"].numa == 2')),
        constraints=[{"matchAttribute": INT_ATTR}],
    )
    result = allocate(slices, wanted)
    assert result is not None
    assert devices_of(result[0]) == [(REQ0, "c"), (REQ0, "d"), (REQ1, "e")]


def test_match_attribute_holds_while_any_device_keeps_its_value() -> None:
    """a (NUMA 2) stays taken while req-1's first choice b is undone: req-1 may not then
    switch to NUMA 1, and no two NUMA-2 devices remain for it."""
    slices = [
        slice_("s", NODE1, POOL1, DRIVER_A, numa("a", 2), numa("b", 2), numa("c", 1), numa("e", 1))
    ]
    wanted = claim(
        CLAIM0,
        request(REQ0, CLASS_A),
        request(REQ1, CLASS_A, 2),
        constraints=[{"matchAttribute": INT_ATTR}],
    )
    assert allocate(slices, wanted) is None


@pytest.mark.parametrize(
    ("kind", "wanted_numa", "expected"),
    [
        ("distinctAttribute", 1, ["c", "a"]),
        # a (NUMA 1) is tried for the subrequest and undone with it.
        ("matchAttribute", 2, ["b", "c"]),
    ],
)
def test_constraints_may_name_a_subrequest(
    kind: str, wanted_numa: int, expected: list[str]
) -> None:
    numas = {"a": 1, "b": 1 if kind == "distinctAttribute" else 2, "c": 2}
    slices = [slice_("s", NODE1, POOL1, DRIVER_A, *(numa(n, v) for n, v in numas.items()))]
    wanted = claim(
        CLAIM0,
        prioritized(REQ0, sub(SUB0, CLASS_A)),
        request(REQ1, CLASS_A, 1, cel(f'device.attributes["{DRIVER_A}"].numa == {wanted_numa}')),
        constraints=[{"requests": [f"{REQ0}/{SUB0}", REQ1], kind: INT_ATTR}],
    )
    result = allocate(slices, wanted, feats=PRIORITIZED)
    assert result is not None
    assert devices_of(result[0]) == [(f"{REQ0}/{SUB0}", expected[0]), (REQ1, expected[1])]


def test_a_constraint_on_another_domain_finds_no_attribute() -> None:
    """The devices' "numa" is driver-a's; other.example.com/numa is another attribute."""
    slices = [slice_("s", NODE1, POOL1, DRIVER_A, numa("a", 1), numa("b", 1))]
    wanted = claim(
        CLAIM0,
        request(REQ0, CLASS_A, 2),
        constraints=[{"matchAttribute": "other.example.com/numa"}],
    )
    assert allocate(slices, wanted) is None


def test_selectors_read_attributes_and_capacity_of_other_domains() -> None:
    zoned = device(
        "zoned",
        capacity={"other.example.com/slots": "4"},
        attributes={"other.example.com/zone": {"string": "a"}},
    )
    slices = [slice_("s", NODE1, POOL1, DRIVER_A, zoned)]
    by_zone = cel('device.attributes["other.example.com"].zone == "a"')
    result = allocate(slices, claim(CLAIM0, request(REQ0, CLASS_A, 1, by_zone)))
    assert result is not None and devices_of(result[0]) == [(REQ0, "zoned")]
    by_slots = cel('device.capacity["other.example.com"].slots.compareTo(quantity("4")) == 0')
    result = allocate(slices, claim(CLAIM0, request(REQ0, CLASS_A, 1, by_slots)))
    assert result is not None and devices_of(result[0]) == [(REQ0, "zoned")]


def test_an_equal_toleration_without_a_value_tolerates_a_taint_without_one() -> None:
    bare = {"key": "taint-key", "effect": "NoSchedule"}
    slices = [slice_("s", NODE1, POOL1, DRIVER_A, device("a", taints=[bare]))]
    tolerate = [{"operator": "Equal", "key": "taint-key", "effect": "NoSchedule"}]
    result = allocate(
        slices,
        claim(CLAIM0, request(REQ0, CLASS_A, tolerations=tolerate)),
        feats=features(device_taints=True),
    )
    assert result is not None
    assert result[0]["devices"]["results"][0]["tolerations"] == [
        {"key": "taint-key", "operator": "Equal", "effect": "NoSchedule"}
    ]
    with_value = [{**tolerate[0], "value": "v"}]
    refused = allocate(
        slices,
        claim(CLAIM0, request(REQ0, CLASS_A, tolerations=with_value)),
        feats=features(device_taints=True),
    )
    assert refused is None


def test_toleration_seconds_are_kept_in_the_result() -> None:
    slices = [slice_("s", NODE1, POOL1, DRIVER_A, device("a", taints=[TAINT_NO_EXECUTE]))]
    tolerate = [{"operator": "Exists", "key": "taint-key", "tolerationSeconds": 30}]
    result = allocate(
        slices,
        claim(CLAIM0, request(REQ0, CLASS_A, tolerations=tolerate)),
        feats=features(device_taints=True),
    )
    assert result is not None
    assert result[0]["devices"]["results"][0]["tolerations"] == [
        {"key": "taint-key", "operator": "Exists", "tolerationSeconds": 30}
    ]


# --------------------------------------------------------------------------- requests, more


def test_a_request_without_a_count_takes_one_device() -> None:
    slices = [many_devices("s", NODE1, POOL1, DRIVER_A, 3)]
    result = allocate(slices, claim(CLAIM0, request(REQ0, CLASS_A, None)))
    assert result is not None and len(devices_of(result[0])) == 1


def test_the_32_limit_counts_the_smallest_subrequest_wherever_it_is() -> None:
    slices = [many_devices("s", NODE1, POOL1, DRIVER_A, 40)]
    smallest_first = claim(
        CLAIM0,
        prioritized(REQ0, sub(SUB0, CLASS_A, 10), sub(SUB1, CLASS_A, 20)),
        request(REQ1, CLASS_A, 20),
    )
    result = allocate(slices, smallest_first, feats=PRIORITIZED)
    assert result is not None and len(devices_of(result[0])) == 30
    exact_first = claim(
        CLAIM0,
        request(REQ1, CLASS_A, 21),
        prioritized(REQ0, sub(SUB0, CLASS_A, 13), sub(SUB1, CLASS_A, 12)),
    )
    with pytest.raises(AllocationError, match="number of requested devices 33 exceeds"):
        allocate(slices, exact_first, feats=PRIORITIZED)


def test_a_later_claim_falls_back_to_its_next_subrequest() -> None:
    slices = [slice_("s", NODE1, POOL1, DRIVER_A, numa("a", 1))]
    impossible = cel(f'device.attributes["{DRIVER_A}"].numa == 9')
    claims = [
        claim("claim-0", request(REQ0, CLASS_A, 0, mode="ExactCount")),
        claim("claim-1", prioritized(REQ0, sub(SUB0, CLASS_A, 1, impossible), sub(SUB1, CLASS_A))),
    ]
    result = Allocator(CLASSES, slices, (), PRIORITIZED).allocate(HERE, claims)
    assert result is not None
    assert devices_of(to_wire(result[1])) == [(f"{REQ0}/{SUB1}", "a")]


def test_admin_requests_of_one_claim_take_different_devices() -> None:
    slices = [slice_("s", NODE1, POOL1, DRIVER_A, device("a"), device("b"))]
    wanted = claim(
        CLAIM0, request(REQ0, CLASS_A, 1, admin=True), request(REQ1, CLASS_A, 1, admin=True)
    )
    result = allocate(slices, wanted, feats=features(admin_access=True))
    assert result is not None and devices_of(result[0]) == [(REQ0, "a"), (REQ1, "b")]


def test_a_selector_that_does_not_compile_is_reported_with_its_class() -> None:
    classes = [device_class(CLASS_A, DRIVER_A, expression="device.driver ==")]
    slices = [slice_("s", NODE1, POOL1, DRIVER_A, device("a"))]
    with pytest.raises(AllocationError, match=r"^class class-a: selector #0: CEL compile error: "):
        Allocator(classes, slices, (), features()).allocate(
            HERE, [claim(CLAIM0, request(REQ0, CLASS_A))]
        )


def test_errors_name_a_namespaced_claim_by_namespace() -> None:
    wanted = ResourceClaim.model_validate(
        {
            "metadata": {"name": "c", "namespace": "team-a"},
            "spec": {"devices": {"requests": [request(REQ0, "no-such-class")]}},
        }
    )
    with pytest.raises(AllocationError, match=r"^claim team-a/c, request req-0: could not"):
        allocate([], wanted)


def test_a_capacity_request_of_a_subrequest_is_named_as_one() -> None:
    capacity = {**sub(SUB0, CLASS_A), "capacity": {"requests": {"memory": "1Gi"}}}
    wanted = claim(CLAIM0, prioritized(REQ0, capacity))
    with pytest.raises(AllocationError, match=r"subrequest subReq-0: has capacity requests"):
        allocate([], wanted, feats=PRIORITIZED)


# --------------------------------------------------------------------------- pools, more


def test_an_irrelevant_slice_does_not_hide_the_ones_after_it() -> None:
    slices = [
        slice_("elsewhere", label_selector("region", "region-2"), POOL1, DRIVER_A, device("a")),
        slice_("everywhere", ALL_NODES, POOL2, DRIVER_A, device("b")),
    ]
    result = allocate(slices, claim(CLAIM0, request(REQ0, CLASS_A)))
    assert result is not None and devices_of(result[0]) == [(REQ0, "b")]


def test_per_device_node_selection_honours_all_nodes() -> None:
    slices = [
        slice_("s", PER_DEVICE, POOL1, DRIVER_A, device("a", node_selection=ALL_NODES)),
    ]
    result = allocate(
        slices, claim(CLAIM0, request(REQ0, CLASS_A)), feats=features(partitionable_devices=True)
    )
    assert result is not None and devices_of(result[0]) == [(REQ0, "a")]


def test_invalid_pools_say_why() -> None:
    twice = [slice_("s", NODE1, POOL1, DRIVER_A, device("a"), device("a"))]
    with pytest.raises(AllocationError) as info:
        allocate(twice, claim(CLAIM0, request(REQ0, CLASS_A)))
    assert str(info.value) == "invalid resource pools were encountered"
    unknown = [
        slice_(
            "s",
            NODE1,
            POOL1,
            DRIVER_A,
            device("a", counters=[("set", {"memory": "1Gi"})]),
            counter_sets=[("set", {"cores": "4"})],
        )
    ]
    allocator = Allocator(CLASSES, unknown, (), features(partitionable_devices=True))
    (pool,) = allocator.gather_pools(HERE)
    assert pool.invalid_reason == "device a consumes unknown counters of set"


def test_a_counter_nothing_consumes_may_be_zero() -> None:
    slices = [
        slice_(
            "s",
            NODE1,
            POOL1,
            DRIVER_A,
            device("a", counters=[("set", {"memory": "4Gi"})]),
            counter_sets=[("set", {"memory": "8Gi", "spare": "0"})],
        )
    ]
    result = allocate(
        slices, claim(CLAIM0, request(REQ0, CLASS_A)), feats=features(partitionable_devices=True)
    )
    assert result is not None and devices_of(result[0]) == [(REQ0, "a")]


# --------------------------------------------------------------------------- config, more

OPAQUE = {"driver": DRIVER_A, "parameters": {"k": "v"}}


def test_class_configs_list_every_request_of_their_class_only() -> None:
    classes = [
        device_class(CLASS_A, DRIVER_A, config="a"),
        device_class("class-b", DRIVER_A, config="b"),
    ]
    slices = [many_devices("s", NODE1, POOL1, DRIVER_A, 3)]
    wanted = claim(
        CLAIM0, request(REQ0, CLASS_A), request(REQ1, "class-b"), request("req-2", "class-b")
    )
    result = Allocator(classes, slices, (), features()).allocate(HERE, [wanted])
    assert result is not None
    configs = to_wire(result[0])["devices"]["config"]
    assert [(c["source"], c["requests"]) for c in configs] == [
        ("FromClass", [REQ0]),
        ("FromClass", [REQ1, "req-2"]),
    ]


def test_claim_configs_for_all_and_for_named_requests() -> None:
    slices = [many_devices("s", NODE1, POOL1, DRIVER_A, 3)]
    wanted = claim(
        CLAIM0,
        request(REQ0, CLASS_A),
        request(REQ1, CLASS_A),
        config=[{"opaque": OPAQUE}, {"requests": [REQ1], "opaque": OPAQUE}],
    )
    result = allocate(slices, wanted)
    assert result is not None
    configs = result[0]["devices"]["config"]
    assert [(c["source"], c.get("requests", [])) for c in configs] == [
        ("FromClaim", []),
        ("FromClaim", [REQ1]),
    ]


def test_a_claim_config_for_the_chosen_subrequest() -> None:
    slices = [many_devices("s", NODE1, POOL1, DRIVER_A, 2)]
    wanted = claim(
        CLAIM0,
        request(REQ0, CLASS_A),
        prioritized(REQ1, sub(SUB0, CLASS_A, 5), sub(SUB1, CLASS_A)),
        config=[
            {"requests": [f"{REQ1}/{SUB0}"], "opaque": OPAQUE},
            {"requests": [f"{REQ1}/{SUB1}"], "opaque": OPAQUE},
        ],
    )
    result = allocate(slices, wanted, feats=PRIORITIZED)
    assert result is not None
    configs = result[0]["devices"]["config"]
    assert configs == [{"source": "FromClaim", "requests": [f"{REQ1}/{SUB1}"], "opaque": OPAQUE}]


def test_node_selectors_keep_requirements_that_differ_only_in_key() -> None:
    here = NodeInfo(NODE1, {"a": "x", "b": "x"})
    slices = [
        slice_("s1", label_selector("a", "x"), POOL1, DRIVER_A, device("d1")),
        slice_("s2", label_selector("b", "x"), POOL2, DRIVER_A, device("d2")),
        slice_(
            "s3",
            {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["y"]}]}
                ]
            },
            "pool-3",
            DRIVER_A,
            device("d3"),
        ),
    ]
    result = Allocator(CLASSES, slices, (), features()).allocate(
        here, [claim(CLAIM0, request(REQ0, CLASS_A, 3))]
    )
    assert result is not None
    terms = to_wire(result[0])["nodeSelector"]["nodeSelectorTerms"]
    assert terms == [
        {
            "matchExpressions": [
                {"key": "a", "operator": "In", "values": ["x"]},
                {"key": "b", "operator": "In", "values": ["x"]},
                {"key": "a", "operator": "NotIn", "values": ["y"]},
            ]
        }
    ]


def test_a_scoped_constraint_is_taken_back_for_its_subrequest() -> None:
    """distinctAttribute accepts b's label, matchAttribute then refuses b's NUMA: the label
    must be forgotten, or c (same label as b) is refused and nothing fits."""
    slices = [
        slice_(
            "s",
            NODE1,
            POOL1,
            DRIVER_A,
            numa_s("a", 1, "x"),
            numa_s("b", 2, "y"),
            numa_s("c", 1, "y"),
        )
    ]
    scope = [f"{REQ0}/{SUB0}"]
    wanted = claim(
        CLAIM0,
        prioritized(REQ0, sub(SUB0, CLASS_A, 2)),
        constraints=[
            {"requests": scope, "distinctAttribute": f"{DRIVER_A}/label"},
            {"requests": scope, "matchAttribute": INT_ATTR},
        ],
    )
    result = allocate(slices, wanted, feats=PRIORITIZED)
    assert result is not None
    assert devices_of(result[0]) == [(f"{REQ0}/{SUB0}", "a"), (f"{REQ0}/{SUB0}", "c")]


def test_undoing_a_later_choice_keeps_the_earlier_ones() -> None:
    """req-1's first choice b leaves req-2 nothing distinct; b is undone, a (req-0) stays."""
    slices = [slice_("s", NODE1, POOL1, DRIVER_A, numa("a", 1), numa("b", 1), numa("c", 2))]
    wanted = claim(
        CLAIM0,
        request(REQ0, CLASS_A),
        request(REQ1, CLASS_A),
        request("req-2", CLASS_A, 1, cel(f'device.attributes["{DRIVER_A}"].numa == 1')),
        constraints=[{"requests": [REQ1, "req-2"], "distinctAttribute": INT_ATTR}],
    )
    result = allocate(slices, wanted)
    assert result is not None
    assert devices_of(result[0]) == [(REQ0, "a"), (REQ1, "c"), ("req-2", "b")]


def test_a_claim_config_naming_two_requests_is_listed_for_each_as_upstream_does() -> None:
    slices = [many_devices("s", NODE1, POOL1, DRIVER_A, 2)]
    wanted = claim(
        CLAIM0,
        request(REQ0, CLASS_A),
        request(REQ1, CLASS_A),
        config=[{"requests": [REQ0, REQ1], "opaque": OPAQUE}],
    )
    result = allocate(slices, wanted)
    assert result is not None
    entry = {"source": "FromClaim", "requests": [REQ0, REQ1], "opaque": OPAQUE}
    assert result[0]["devices"]["config"] == [entry, entry]


def test_all_devices_of_an_invalid_pool_is_an_error() -> None:
    twice = [slice_("s", NODE1, POOL1, DRIVER_A, device("a"), device("a"))]
    with pytest.raises(AllocationError) as info:
        allocate(twice, claim(CLAIM0, all_request(REQ0, CLASS_A)))
    assert str(info.value) == (
        f"claim {CLAIM0}, request {REQ0}: asks for all devices, but resource pool "
        f"{DRIVER_A}/{POOL1} is currently invalid"
    )


def test_a_selector_without_cel_is_an_error() -> None:
    slices = [slice_("s", NODE1, POOL1, DRIVER_A, device("a"))]
    with pytest.raises(AllocationError) as info:
        allocate(slices, claim(CLAIM0, request(REQ0, CLASS_A, 1, {})))
    assert str(info.value) == (
        f"claim {CLAIM0}, request {REQ0}, selector #0: CEL expression empty "
        "(unsupported selector type?)"
    )


def test_selectors_see_allow_multiple_allocations() -> None:
    shared = {**device("shared"), "allowMultipleAllocations": True}
    slices = [slice_("s", NODE1, POOL1, DRIVER_A, device("plain"), shared)]
    wanted = claim(CLAIM0, request(REQ0, CLASS_A, 1, cel("device.allowMultipleAllocations")))
    result = allocate(slices, wanted)
    assert result is not None and devices_of(result[0]) == [(REQ0, "shared")]
