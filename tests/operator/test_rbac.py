"""The installed ClusterRole allows every request the operator sent in the scenarios of
this directory, and nothing beyond them (least privilege, checked both ways).

It compares with what the emulator recorded while the operator scenarios
(``test_operator*.py``) ran. Where they all ran earlier in this session, their record is
used; otherwise (this file alone, another order, a ``-k`` that left some out) they are
run first in a pytest of their own, so the verdict never depends on test order.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bosun.render.install import install_manifests
from tests.conftest import ROOT
from tests.operator.cluster import RECORDED
from tests.operator.conftest import FINISHED

SCENARIOS = sorted(Path(__file__).parent.glob("test_operator*.py"))
# Granted though a run may not use them: the operator reads a workload whose status it
# refreshes, or an owned object at a restart, only when its watches have not shown it yet
# (a race the scenarios cannot pin down either way).
RACE_READS = {
    ("apps", "deployments", "get"),
    ("leaderworkerset.x-k8s.io", "leaderworkersets", "get"),
    ("batch", "jobs", "get"),
    ("", "services", "get"),
}


def _allowed() -> set[tuple[str, str, str]]:
    (role,) = [
        o
        for o in install_manifests()
        if o["kind"] == "ClusterRole" and o["metadata"]["name"] == "bosun-operator"
    ]
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


@pytest.fixture(scope="module")
def recorded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> set[tuple[str, str, str]]:
    names = {p.name for p in SCENARIOS}
    items = [i for i in request.session.items if Path(str(i.path)).name in names]
    everything_ran = (
        not request.config.getoption("keyword")
        and not request.config.getoption("markexpr")
        and {Path(str(i.path)).name for i in items} == names  # every scenario file...
        and {i.nodeid for i in items} <= FINISHED  # ... and each of its tests, before this
    )
    if everything_ran:
        return set(RECORDED)
    out = tmp_path_factory.mktemp("rbac") / "recorded.json"
    env = {**os.environ, "BOSUN_RECORDED_REQUESTS": str(out)}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *map(str, SCENARIOS)]
    run = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0, f"the operator scenarios failed:\n{run.stdout[-3000:]}"
    return {(g, r, v) for g, r, v in json.loads(out.read_text(encoding="utf-8"))}


def test_the_cluster_role_allows_exactly_what_the_operator_does(
    recorded: set[tuple[str, str, str]],
) -> None:
    assert recorded, "the operator scenarios sent no request"
    allowed = _allowed()
    missing = sorted(recorded - allowed)
    unused = sorted(allowed - recorded - RACE_READS)
    assert not missing, f"the operator sent requests its ClusterRole forbids: {missing}"
    assert not unused, f"the ClusterRole grants what the operator never did: {unused}"
