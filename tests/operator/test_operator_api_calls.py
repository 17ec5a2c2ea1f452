"""What the operator asks of the API server per Workspace, bounded: a change that makes it
read or write more for each Workspace (a list per event, a status patch that changes
nothing, a re-read of every object) fails here before it makes a thousand Workspaces
slow (benchmarks/operator_bench.py measures the time)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.operator.cluster import EmulatedCluster, Operator, calls, quiet, wait_for, writes

N = 100
NS = "calls"
SPEC = {
    "resource": {"cpu": "2", "memory": "4Gi"},
    "inference": {"preset": {"name": "smollm2-135m-instruct"}},
}
# Calls per Workspace until it is applied and its status written, by verb and resource,
# as measured (2026-12-05: exactly the writes below, no reads) plus room for a loaded
# machine where a few refreshes may run before a watch has shown their object; watches
# and the start's lists are not per Workspace. Pods come from the operator's index, never
# from a list; a Workspace without NodeClaims gets no finalizer, so one patch of it
# (kopf's record of the spec it handled).
BUDGET: dict[str, float] = {
    "get deployments": 0.2,
    "get workspaces": 0.2,
    "patch deployments": 1,
    "patch services": 1,
    "patch workspaces": 1,
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


def test_each_workspace_costs_a_bounded_number_of_calls_and_a_restart_writes_nothing(
    cluster: EmulatedCluster, tmp_path: Path
) -> None:
    assert cluster.emulator is not None
    operator = Operator(cluster, tmp_path).start()
    try:
        wait_for(lambda: "Initial authentication has finished" in operator.tail(), "start")
        start = quiet(cluster, operator)
        for i in range(N):
            cluster.apply_workspace(NS, f"ws-{i:02d}", SPEC)
        wait_for(lambda: _applied(cluster), f"{N} Workspaces applied", operator)
        sent = quiet(cluster, operator) - start
        per_workspace = {  # the start's lists and the watches are not per Workspace
            call: n / N
            for call, n in sent.items()
            if call == "list pods" or not call.startswith(("watch", "list "))
        }
        over = {c: n for c, n in per_workspace.items() if n > BUDGET.get(c, 0)}
        assert not over, f"calls per Workspace over the budget: {over} (all: {per_workspace})"
    finally:
        operator.stop()

    before = calls(cluster)
    restarted = Operator(cluster, tmp_path, priority=101).start()
    try:
        # Every Workspace resumed (its objects checked, its status refreshed), then quiet.
        wait_for(lambda: restarted.reconciled() >= N, f"{N} Workspaces resumed", restarted)
        after = quiet(cluster, restarted, seconds=3.0)
    finally:
        restarted.stop()
    wrote = writes(after - before)
    assert not wrote, f"a restart over {N} applied Workspaces wrote: {wrote}"
