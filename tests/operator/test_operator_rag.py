"""RAGEngines reconciled by the operator, run as a process against the emulated API server:
its claim, Deployment and Service applied, status conditions that say what it waits for
(its Workspace, its pod), drift restored, bad specs named, and the claim left alone."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.operator.cluster import EmulatedCluster, Operator, wait_for

RAG = "/apis/bosun.dev/v1alpha1/namespaces/{ns}/ragengines"
WS = "/apis/bosun.dev/v1alpha1/namespaces/{ns}/workspaces"
DEPLOYMENTS = "/apis/apps/v1/namespaces/{ns}/deployments"
CLAIMS = "/api/v1/namespaces/{ns}/persistentvolumeclaims"
SERVICES = "/api/v1/namespaces/{ns}/services"


@pytest.fixture(scope="module")
def cluster() -> Iterator[EmulatedCluster]:
    emulated = EmulatedCluster(dra=False).start()
    yield emulated
    emulated.stop()


@pytest.fixture(scope="module")
def operator(
    cluster: EmulatedCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Operator]:
    running = Operator(cluster, tmp_path_factory.mktemp("operator")).start()
    yield running
    running.stop()


def create_rag(cluster: EmulatedCluster, ns: str, name: str, spec: dict[str, Any]) -> None:
    cluster.create(
        RAG.format(ns=ns),
        {
            "apiVersion": "bosun.dev/v1alpha1",
            "kind": "RAGEngine",
            "metadata": {"name": name, "namespace": ns},
            "spec": spec,
        },
    )


def condition(
    cluster: EmulatedCluster, operator: Operator, ns: str, name: str, kind: str, status: str
) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        rag = cluster.get(f"{RAG.format(ns=ns)}/{name}") or {}
        for c in (rag.get("status") or {}).get("conditions") or []:
            if c["type"] == kind and c["status"] == status:
                return dict(c)
        return None

    found: dict[str, Any] = wait_for(check, f"{ns}/{name} {kind}={status}", operator)
    return found


def test_an_engine_is_applied_waits_for_its_workspace_and_pod_then_is_ready(
    cluster: EmulatedCluster, operator: Operator
) -> None:
    ns = "rag"
    create_rag(cluster, ns, "docs", {"inference": {"workspace": "smollm2"}})
    deployment = wait_for(
        lambda: cluster.get(f"{DEPLOYMENTS.format(ns=ns)}/docs"), "the Deployment", operator
    )
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--generation-url") + 1] == "http://smollm2.rag.svc/v1"
    assert deployment["metadata"]["ownerReferences"][0]["kind"] == "RAGEngine"
    claim = cluster.get(f"{CLAIMS.format(ns=ns)}/docs-index")
    assert claim is not None and "ownerReferences" not in claim["metadata"]
    assert cluster.get(f"{SERVICES.format(ns=ns)}/docs") is not None

    applied = condition(cluster, operator, ns, "docs", "Applied", "True")
    assert applied["message"] == "3 object(s) applied"
    missing = condition(cluster, operator, ns, "docs", "InferenceReady", "False")
    assert missing["reason"] == "WorkspaceNotFound"
    assert "spec.inference.workspace: no Workspace 'smollm2'" in missing["message"]
    starting = condition(cluster, operator, ns, "docs", "Ready", "False")
    assert starting["reason"] == "Starting"

    # Its pod becomes ready: the engine is Ready, and its endpoint is the Service's.
    cluster.patch(
        f"{DEPLOYMENTS.format(ns=ns)}/docs/status",
        {"status": {"replicas": 1, "readyReplicas": 1, "availableReplicas": 1}},
    )
    condition(cluster, operator, ns, "docs", "Ready", "True")
    rag = cluster.get(f"{RAG.format(ns=ns)}/docs")
    assert rag["status"]["endpoint"] == "http://docs.rag.svc.cluster.local/v1"
    assert rag["status"]["state"] == "Ready"

    # Deleted by hand: applied again.
    cluster.delete(f"{DEPLOYMENTS.format(ns=ns)}/docs")
    wait_for(
        lambda: cluster.get(f"{DEPLOYMENTS.format(ns=ns)}/docs"),
        "the restored Deployment",
        operator,
    )


def test_an_engine_over_its_models_limit_is_refused_by_field(
    cluster: EmulatedCluster, operator: Operator
) -> None:
    ns = "rag-bad"
    create_rag(
        cluster,
        ns,
        "long",
        {"inference": {"url": "http://llm.example.com/v1"}, "chunking": {"maxTokens": 1000}},
    )
    refused = condition(cluster, operator, ns, "long", "Applied", "False")
    assert refused["reason"] == "PlanFailed"
    assert refused["message"].startswith("spec.chunking.maxTokens: 1000 is more than")
    assert cluster.get(f"{DEPLOYMENTS.format(ns=ns)}/long") is None
    # Fixed: applied, and a URL needs no Workspace.
    cluster.patch(f"{RAG.format(ns=ns)}/long", {"spec": {"chunking": {"maxTokens": 200}}})
    external = condition(cluster, operator, ns, "long", "InferenceReady", "True")
    assert external["reason"] == "ExternalServer"
    deployment = cluster.get(f"{DEPLOYMENTS.format(ns=ns)}/long")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--chunk-tokens") + 1] == "200"


def test_an_engine_follows_its_workspace_becoming_ready(
    cluster: EmulatedCluster, operator: Operator
) -> None:
    ns = "rag-ws"
    cluster.create(
        WS.format(ns=ns),
        {
            "apiVersion": "bosun.dev/v1alpha1",
            "kind": "Workspace",
            "metadata": {"name": "smollm2", "namespace": ns},
            "spec": {
                "resource": {"cpu": "2", "memory": "4Gi"},
                "inference": {"preset": {"name": "smollm2-135m-instruct"}},
            },
        },
    )
    create_rag(cluster, ns, "docs", {"inference": {"workspace": "smollm2"}})
    waiting = condition(cluster, operator, ns, "docs", "InferenceReady", "False")
    assert waiting["reason"] == "WorkspaceNotReady"
    # The Workspace's pod is scheduled and its model answers: the engine says so.
    deployment = wait_for(
        lambda: cluster.get(f"{DEPLOYMENTS.format(ns=ns)}/smollm2"), "its Deployment", operator
    )
    cluster.create(
        f"/api/v1/namespaces/{ns}/pods",
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "smollm2-abc",
                "namespace": ns,
                "labels": deployment["spec"]["template"]["metadata"]["labels"],
            },
            "spec": {"containers": [{"name": "server", "image": "x"}]},
            "status": {
                "phase": "Running",
                "conditions": [{"type": "PodScheduled", "status": "True"}],
            },
        },
    )
    cluster.patch(
        f"{DEPLOYMENTS.format(ns=ns)}/smollm2/status",
        {"status": {"replicas": 1, "readyReplicas": 1, "availableReplicas": 1}},
    )
    wait_for(
        lambda: any(
            c["type"] == "WorkspaceSucceeded" and c["status"] == "True"
            for c in (cluster.get(f"{WS.format(ns=ns)}/smollm2").get("status") or {}).get(
                "conditions"
            )
            or []
        ),
        "the Workspace Ready",
        operator,
    )
    ready = condition(cluster, operator, ns, "docs", "InferenceReady", "True")
    assert ready["reason"] == "WorkspaceReady"
