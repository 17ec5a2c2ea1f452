"""The console in a cluster, against the emulated API server: Workspaces listed with
their status, applied (created, then updated), planned, refused as the server words it,
and a pod's log read. The gateway's RBAC, which the console runs under, reads no Secret."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bosun.console.backends import ConsoleError
from bosun.console.cluster import ClusterBackend
from bosun.render.install import CONSOLE_RBAC_RULES
from bosun.render.names import WORKSPACE_LABEL
from tests.operator.cluster import GATEWAY_TOKEN, EmulatedCluster

WORKSPACES = "/apis/bosun.dev/v1alpha1"


def workspace_yaml(count: int = 1, **inference: Any) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "bosun.dev/v1alpha1",
            "kind": "Workspace",
            "metadata": {"name": "chat", "namespace": "team"},
            "spec": {
                "resource": {"count": count, "accelerator": {"count": 1}},
                "inference": {"preset": {"name": "llama-3.1-8b-instruct"}, **inference},
            },
        }
    )


@pytest.fixture(scope="module")
def cluster() -> Iterator[EmulatedCluster]:
    emulated = EmulatedCluster(dra=True).start()
    yield emulated
    emulated.stop()


def test_workspaces_applied_listed_planned_and_refused(
    cluster: EmulatedCluster, tmp_path: Path
) -> None:
    backend = ClusterBackend(("team",), cluster.kubeconfig(tmp_path))

    async def run() -> dict[str, Any]:
        try:
            created = await backend.apply(workspace_yaml())
            updated = await backend.apply(workspace_yaml(count=2))
            listed = await backend.workspaces()
            planned = await backend.plan("team/chat")
            with pytest.raises(ConsoleError) as elsewhere:
                await backend.plan("other/chat")
            cluster.emulator.deny[("workspaces", "denied")] = "no GPUs for this team"
            with pytest.raises(ConsoleError) as denied:
                await backend.apply(workspace_yaml().replace("name: chat", "name: denied"))
            with pytest.raises(ConsoleError) as invalid:
                await backend.apply(workspace_yaml(maxModelLen=3))
            return {
                "created": created,
                "updated": updated,
                "listed": listed,
                "planned": planned,
                "elsewhere": elsewhere.value,
                "denied": denied.value,
                "invalid": invalid.value,
            }
        finally:
            await backend.close()

    got = asyncio.run(run())
    assert got["created"]["output"] == "workspace team/chat created"
    assert got["updated"]["output"] == "workspace team/chat configured"
    stored = cluster.workspace("team", "chat")
    assert stored is not None and stored["spec"]["resource"]["count"] == 2
    assert [w["name"] for w in got["listed"]] == ["team/chat"]
    assert got["listed"][0]["wantedReplicas"] == 2
    plan = got["planned"]["plan"]
    assert plan["model"] == "llama-3.1-8b-instruct" and plan["devicesPerReplica"] >= 1
    assert got["elsewhere"].status == 403 and "only team" in got["elsewhere"].message
    assert got["denied"].status == 403 and "no GPUs for this team" in got["denied"].message
    assert cluster.workspace("team", "denied") is None
    assert got["invalid"].status == 422
    assert [p["path"] for p in got["invalid"].problems] == ["spec.inference.maxModelLen"]


def test_read_with_the_gateways_own_credentials_as_its_clusterrole_allows(
    cluster: EmulatedCluster, tmp_path: Path
) -> None:
    """A Workspace waiting for devices says why in its plan; a tuning job's log is its
    newest pod's; and the console's calls are exactly what its ClusterRole grants."""
    cluster.apply_workspace(
        "lab",
        "big",
        {
            "resource": {"accelerator": {"count": 1}},
            "inference": {"preset": {"name": "llama-3.1-8b-instruct"}},
        },
    )
    why = "pod big-0: 0/2 nodes are available. Per node: gpu-1: no device with memory >= 80Gi"
    cluster.patch(
        f"{WORKSPACES}/namespaces/lab/workspaces/big/status",
        {
            "status": {
                "conditions": [
                    {
                        "type": "ResourceReady",
                        "status": "False",
                        "reason": "DevicesUnavailable",
                        "message": why,
                        "lastTransitionTime": "2026-01-01T00:00:00Z",
                    }
                ]
            }
        },
    )
    for name in ("tune-old", "tune-new"):  # created in this order
        cluster.create(
            "/api/v1/namespaces/lab/pods",
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "namespace": "lab", "labels": {WORKSPACE_LABEL: "tune"}},
                "spec": {"containers": [{"name": "tune", "image": "x"}]},
            },
        )
        time.sleep(1.1)  # creationTimestamp has whole seconds
    # The kubelet's part, which the emulator lacks: the pod's log.
    log = b"step 1/4 loss 2.0\nstep 2/4 loss 1.0\n"
    cluster.emulator["/api/v1/namespaces/lab/pods/tune-new/log"] << log
    backend = ClusterBackend((), cluster.kubeconfig(tmp_path, GATEWAY_TOKEN))

    async def run() -> tuple[list[dict[str, Any]], dict[str, Any], list[str]]:
        try:
            listed = await backend.workspaces()
            return listed, await backend.plan("lab/big"), await backend.logs("lab/tune", 100)
        finally:
            await backend.close()

    listed, planned, lines = asyncio.run(run())
    assert "lab/big" in [w["name"] for w in listed]
    assert planned["unschedulable"] == [why]
    assert lines == ["step 1/4 loss 2.0", "step 2/4 loss 1.0"]
    allowed = {
        (group, resource, verb)
        for group, resources, verbs in CONSOLE_RBAC_RULES
        for resource in resources
        for verb in verbs
    }
    assert cluster.emulator is not None
    assert cluster.emulator.gateway_calls == allowed


def test_the_console_reads_no_secret() -> None:
    resources = {r for _group, names, _verbs in CONSOLE_RBAC_RULES for r in names}
    assert "secrets" not in resources and "*" not in resources
