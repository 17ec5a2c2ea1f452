"""The operator's pure parts: what a Workspace should be on a cluster, and its status."""

from __future__ import annotations

from typing import Any

import pytest

from bosun.api.conditions import Condition
from bosun.operator.desired import (
    InvalidWorkspaceError,
    desire,
    immutable_changes,
    subset,
)
from bosun.operator.discovery import ClusterView, profile_for_product
from bosun.operator.status import Observed, compute_status
from bosun.render import RenderOptions


def _body(spec: dict[str, Any], name: str = "ws") -> dict[str, Any]:
    return {
        "apiVersion": "bosun.dev/v1alpha1",
        "kind": "Workspace",
        "metadata": {"name": name, "namespace": "team", "uid": "u-1", "generation": 1},
        "spec": spec,
        "status": {"conditions": [], "kopf": {"progress": {}}},  # not the operator's to parse
    }


CPU = {
    "resource": {"cpu": "2", "memory": "4Gi"},
    "inference": {"preset": {"name": "smollm2-135m-instruct"}},
}
GPU = {"inference": {"preset": {"name": "llama-3.1-8b-instruct"}}}


def test_dra_and_gfd_spellings_name_the_same_catalog_gpu() -> None:
    assert profile_for_product("NVIDIA H100 80GB HBM3").name == "nvidia-h100-80gb"
    assert profile_for_product("NVIDIA-H100-80GB-HBM3").name == "nvidia-h100-80gb"
    odd = profile_for_product("NVIDIA RTX 6000 Ada Generation", 48 * 2**30)
    assert odd.kind == "gpu" and odd.memory_bytes == 48 * 2**30


def test_gpus_found_on_the_cluster_size_the_model() -> None:
    a10g = profile_for_product("NVIDIA A10G")
    want = desire(_body(GPU), ClusterView(dra=False, gpu=a10g, gpus_per_node=4), RenderOptions())
    assert want.plan.accelerator.name == "nvidia-a10g-24gb"
    pod = want.workload["spec"]["template"]["spec"]  # type: ignore[index]
    assert "nvidia.com/gpu" in pod["containers"][0]["resources"]["limits"]
    assert not any(o["kind"] == "ResourceClaimTemplate" for o in want.objects)
    # The owner reference carries the Workspace's uid.
    assert want.objects[0]["metadata"]["ownerReferences"][0]["uid"] == "u-1"


def test_with_dra_the_workspace_claims_devices() -> None:
    h100 = profile_for_product("NVIDIA H100 80GB HBM3")
    want = desire(_body(GPU), ClusterView(dra=True, gpu=None), RenderOptions())
    assert any(o["kind"] == "ResourceClaimTemplate" for o in want.objects)
    assert h100.name == want.plan.accelerator.name  # the default GPU when none is found


@pytest.mark.parametrize(
    ("spec", "reason", "needle"),
    [
        (
            {**CPU, "inference": {"preset": {"name": "smollm2-135m-instruct"}, "typo": 1}},
            "InvalidSpec",
            "spec.inference.typo",
        ),
        ({"inference": {"preset": {"name": "nope"}}}, "PlanFailed", "nope"),
        ({"resource": {"cpu": "1", "memory": "1Gi"}, **GPU}, "DoesNotFit", "spec.resource"),
    ],
)
def test_what_cannot_be_reconciled_says_why(spec: dict[str, Any], reason: str, needle: str) -> None:
    with pytest.raises(InvalidWorkspaceError) as caught:
        desire(_body(spec), ClusterView(dra=True), RenderOptions())
    assert caught.value.reason == reason
    assert needle in caught.value.message


def test_immutable_fields() -> None:
    old = _body(CPU)
    new = _body({**CPU, "inference": {"preset": {"name": "qwen2.5-0.5b-instruct"}}})
    assert immutable_changes(old, new) == ["spec.inference.preset.name"]
    scaled = _body({**CPU, "resource": {**CPU["resource"], "count": 3}})
    assert immutable_changes(old, scaled) == []


def test_subset_sees_drift_but_not_server_fields() -> None:
    want = {"spec": {"replicas": 1, "ports": [{"port": 80}]}}
    assert subset(
        want, {"spec": {"replicas": 1, "ports": [{"port": 80, "protocol": "TCP"}]}, "status": {}}
    )
    assert not subset(want, {"spec": {"replicas": 2, "ports": [{"port": 80}]}})
    assert not subset(want, {"spec": {"replicas": 1, "ports": []}})


def test_status_keeps_transition_times_and_names_the_first_failure() -> None:
    want = desire(_body(CPU), ClusterView(dra=True), RenderOptions())
    deployment = {"status": {"readyReplicas": 0}}
    scheduled = {
        "metadata": {"name": "p"},
        "status": {"conditions": [{"type": "PodScheduled", "status": "True"}]},
    }
    first = compute_status(want, Observed(deployment, [scheduled]), [], 1)
    assert first.state == "Running"
    by_type = {c.type: c for c in first.conditions}
    assert by_type["ResourceReady"].status == "True"
    assert by_type["WorkspaceSucceeded"].reason == "ReplicasNotReady"
    earlier = [
        c.model_copy(update={"last_transition_time": "2020-01-01T00:00:00Z"})
        for c in first.conditions
    ]
    again = compute_status(want, Observed(deployment, [scheduled]), earlier, 1)
    assert all(c.last_transition_time == "2020-01-01T00:00:00Z" for c in again.conditions)
    ready = compute_status(
        want, Observed({"status": {"readyReplicas": 1}}, [scheduled]), earlier, 1
    )
    assert ready.state == "Ready" and ready.replicas == 1
    assert all(isinstance(c, Condition) and c.status == "True" for c in ready.conditions)
