"""Two operator replicas: kopf's peering lets only the one with the higher priority act;
when it stops, the other takes over."""

from __future__ import annotations

from pathlib import Path

from tests.operator.cluster import EmulatedCluster, Operator, wait_for
from tests.operator.test_operator import CPU_SPEC, DEPLOYMENTS

HANDLED = "Handler 'build_registry.<locals>.apply' succeeded"


def test_only_the_highest_priority_replica_acts(tmp_path: Path) -> None:
    cluster = EmulatedCluster(dra=False).start()
    low = Operator(cluster, tmp_path, priority=100).start()
    high = Operator(cluster, tmp_path, priority=200).start()
    try:
        wait_for(lambda: "Pausing operations" in low.tail(200), "the low replica pausing", low)
        cluster.apply_workspace("peers", "first", CPU_SPEC)
        wait_for(lambda: cluster.get(f"{DEPLOYMENTS.format(ns='peers')}/first"), "first", high)
        wait_for(lambda: HANDLED in high.tail(200), "the high replica's handler", high)
        assert HANDLED not in low.tail(200)

        high.stop()  # a clean stop removes its peering record: the other resumes
        cluster.apply_workspace("peers", "second", CPU_SPEC)
        wait_for(lambda: cluster.get(f"{DEPLOYMENTS.format(ns='peers')}/second"), "second", low)
        wait_for(lambda: f"[peers/second] {HANDLED}" in low.tail(400), "its handler", low)
        # Resumed, the low replica has caught up with every event: it never handled the
        # Workspace the high replica did (no fixed wait: its own handler is the barrier).
        assert "[peers/first]" not in low.tail(400)
    finally:
        high.stop()
        low.stop()
        cluster.stop()
