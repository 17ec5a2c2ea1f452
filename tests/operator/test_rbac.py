"""The installed ClusterRole allows every request the operator sent in the scenarios of
this directory, and nothing beyond them (least privilege, checked both ways).

It reads what the emulator recorded during ``test_operator*.py``, which pytest runs
before this file; run alone, there is nothing to compare and it says so.
"""

from __future__ import annotations

import pytest

from bosun.render.install import install_manifests
from tests.operator.cluster import RECORDED


def _allowed() -> set[tuple[str, str, str]]:
    (role,) = [o for o in install_manifests() if o["kind"] == "ClusterRole"]
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_the_cluster_role_allows_exactly_what_the_operator_does() -> None:
    if not RECORDED:
        pytest.skip("no operator requests recorded: run the whole tests/operator directory")
    allowed = _allowed()
    missing = sorted(RECORDED - allowed)
    unused = sorted(allowed - RECORDED)
    assert not missing, f"the operator sent requests its ClusterRole forbids: {missing}"
    assert not unused, f"the ClusterRole grants what the operator never did: {unused}"
