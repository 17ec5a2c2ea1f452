"""A cluster without DRA: the operator reads NVIDIA GPU Feature Discovery's node labels,
plans for the GPUs they name and claims them as ``nvidia.com/gpu``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.operator.cluster import EmulatedCluster, Operator, wait_for

GFD = {
    "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB",
    "nvidia.com/gpu.memory": "81920",
    "nvidia.com/gpu.count": "4",
}


@pytest.fixture(scope="module")
def cluster() -> Iterator[EmulatedCluster]:
    emulated = EmulatedCluster(dra=False).start()
    emulated.create(
        "/api/v1/nodes",
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "gpu-1", "labels": GFD}},
    )
    yield emulated
    emulated.stop()


def test_gpus_from_node_labels_are_claimed_as_extended_resources(
    cluster: EmulatedCluster, tmp_path_factory: pytest.TempPathFactory
) -> None:
    operator = Operator(cluster, tmp_path_factory.mktemp("operator")).start()
    try:
        cluster.apply_workspace(
            "gfd", "llama", {"inference": {"preset": {"name": "llama-3.1-8b-instruct"}}}
        )
        path = "/apis/apps/v1/namespaces/gfd/deployments/llama"
        deployment = wait_for(lambda: cluster.get(path), "the Deployment", operator)
        pod = deployment["spec"]["template"]["spec"]
        assert "resourceClaims" not in pod
        limits = pod["containers"][0]["resources"]["limits"]
        assert limits["nvidia.com/gpu"] in (1, "1")
        ws = wait_for(
            lambda: (
                (w := cluster.workspace("gfd", "llama"))
                and (w.get("status") or {}).get("plan")
                and w
            ),
            "status.plan",
            operator,
        )
        assert ws["status"]["plan"]["accelerator"] == "nvidia-a100-80gb"
        assert cluster.list("/apis/resource.k8s.io/v1/resourceclaimtemplates") == []
    finally:
        operator.stop()
