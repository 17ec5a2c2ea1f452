"""What the operator asks of the API server per Workspace, bounded: a change that makes it
read or write more for each Workspace (a list per event, a status patch that changes
nothing, a re-read of every object) fails here before it makes a thousand Workspaces
slow (benchmarks/operator_bench.py measures the time)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.operator.cluster import EmulatedCluster, Operator, wait_for

N = 100
NS = "calls"
SPEC = {
    "resource": {"cpu": "2", "memory": "4Gi"},
    "inference": {"preset": {"name": "smollm2-135m-instruct"}},
}
WRITES = ("create", "update", "patch", "delete", "deletecollection")
# Calls per Workspace until it is applied and its status written, by verb and resource,
# as measured (2026-12-05) plus room for a loaded machine (one clean-clone run saw 1.16
# gets and 2.16 pod lists: extra refreshes), still short of a doubling; watches and the start's lists are not
# per Workspace.
BUDGET: dict[str, float] = {
    "get deployments": 1,
    "get workspaces": 1.5,
    "list pods": 2.5,
    "patch deployments": 1,
    "patch services": 1,
    "patch workspaces": 2,
    "patch workspaces/status": 1.5,
    "create events": 2,
}


@pytest.fixture(scope="module")
def cluster() -> Iterator[EmulatedCluster]:
    cluster = EmulatedCluster(dra=False).start()
    yield cluster
    cluster.stop()


def _applied(cluster: EmulatedCluster) -> bool:
    workspaces = cluster.list(f"/apis/bosun.dev/v1alpha1/namespaces/{NS}/workspaces")
    services = cluster.list(f"/api/v1/namespaces/{NS}/services")
    planned = [w for w in workspaces if (w.get("status") or {}).get("plan")]
    return len(planned) == len(services) == N


def _quiet(cluster: EmulatedCluster, operator: Operator, seconds: float = 2.0) -> Counter[str]:
    """Wait until the operator has sent nothing for ``seconds``; what it sent, by
    'verb resource'."""
    assert cluster.emulator is not None
    last, since = -1, time.monotonic()
    while time.monotonic() - since < seconds:
        total = sum(cluster.emulator.counts.values())
        if total != last:
            last, since = total, time.monotonic()
        assert operator.process is not None and operator.process.poll() is None, operator.tail()
        time.sleep(0.2)
    return Counter(
        {f"{verb} {resource}": n for (_, resource, verb), n in cluster.emulator.counts.items()}
    )


def test_each_workspace_costs_a_bounded_number_of_calls_and_a_restart_writes_nothing(
    cluster: EmulatedCluster, tmp_path: Path
) -> None:
    assert cluster.emulator is not None
    operator = Operator(cluster, tmp_path).start()
    try:
        wait_for(lambda: "Initial authentication has finished" in operator.tail(), "start")
        start = _quiet(cluster, operator)
        for i in range(N):
            cluster.apply_workspace(NS, f"ws-{i:02d}", SPEC)
        wait_for(lambda: _applied(cluster), f"{N} Workspaces applied", operator)
        calls = _quiet(cluster, operator) - start
        per_workspace = {  # the start's lists and the watches are not per Workspace
            call: n / N
            for call, n in calls.items()
            if call == "list pods" or not call.startswith(("watch", "list "))
        }
        over = {c: n for c, n in per_workspace.items() if n > BUDGET.get(c, 0)}
        assert not over, f"calls per Workspace over the budget: {over} (all: {per_workspace})"
    finally:
        operator.stop()

    before = Counter(cluster.emulator.counts)
    restarted = Operator(cluster, tmp_path, priority=101).start()
    try:
        wait_for(lambda: "Initial authentication has finished" in restarted.tail(), "restart")
        after = _quiet(cluster, restarted, seconds=3.0)
    finally:
        restarted.stop()
    writes = {
        call: n
        for call, n in (after - Counter({f"{v} {r}": n for (_, r, v), n in before.items()})).items()
        if call.split()[0] in WRITES and not call.endswith("kopfpeerings")
    }
    assert not writes, f"a restart over {N} applied Workspaces wrote: {writes}"
