"""Every upstream allocator test case, same inputs, same outcome (DRA.md)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bosun.devices.allocator import AllocationError, Allocator
from bosun.devices.model import to_wire
from tests.devices.upstream_cases import CASES, Case


def _canonical(allocation: dict[str, Any]) -> dict[str, Any]:
    """Order-insensitive where upstream's matchers are (results, node selector parts)."""
    out = json.loads(json.dumps(allocation))
    devices = out.get("devices", {})
    devices["results"] = sorted(
        devices.get("results", []), key=lambda r: json.dumps(r, sort_keys=True)
    )
    for term in out.get("nodeSelector", {}).get("nodeSelectorTerms", []):
        for key in ("matchExpressions", "matchFields"):
            term[key] = sorted(
                ({**req, "values": sorted(req.get("values", []))} for req in term.get(key, [])),
                key=lambda q: json.dumps(q, sort_keys=True),
            )
    return out


def _dump(results: list[Any]) -> list[dict[str, Any]]:
    return [to_wire(r) for r in results]


def test_case_names_are_unique() -> None:
    names = [c.name for c in CASES]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_upstream_case(case: Case) -> None:
    allocator = Allocator(case.classes, case.slices, case.allocated, case.features)
    if case.error is not None:
        with pytest.raises(AllocationError) as info:
            allocator.allocate(case.node, case.claims)
        assert case.error in str(info.value)
        return
    results = allocator.allocate(case.node, case.claims)
    if case.expect is None:
        assert results is None
        return
    assert results is not None
    assert [_canonical(a) for a in _dump(results)] == [_canonical(e) for e in case.expect]
