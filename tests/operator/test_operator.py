"""The operator, run as a process against an emulated API server over HTTP.

One emulator and one operator serve the whole module (as one cluster would); each test
works in a namespace of its own. The cluster publishes two GPU nodes through DRA
(tests/devices/data/two-nodes.yaml: node-a with 2 x H100, node-b with 1 x L4).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.operator.cluster import EmulatedCluster, Operator, wait_for

DATA = Path(__file__).parents[1] / "devices" / "data" / "two-nodes.yaml"
WS = "/apis/bosun.dev/v1alpha1/namespaces/{ns}/workspaces"
DEPLOYMENTS = "/apis/apps/v1/namespaces/{ns}/deployments"
CPU_SPEC: dict[str, Any] = {
    "resource": {"cpu": "2", "memory": "4Gi"},
    "inference": {"preset": {"name": "smollm2-135m-instruct"}},
}
GPU_SPEC: dict[str, Any] = {"inference": {"preset": {"name": "llama-3.1-8b-instruct"}}}


def _seed(cluster: EmulatedCluster) -> None:
    for doc in yaml.safe_load_all(DATA.read_text(encoding="utf-8")):
        kind = doc["kind"]
        if kind == "ResourceClaim":
            continue
        plural = {"DeviceClass": "deviceclasses", "ResourceSlice": "resourceslices"}[kind]
        cluster.create(f"/apis/resource.k8s.io/v1/{plural}", doc)
    for name in ("node-a", "node-b"):
        cluster.create(
            "/api/v1/nodes",
            {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": {}}},
        )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatedCluster]:
    emulated = EmulatedCluster(dra=True).start()
    _seed(emulated)
    yield emulated
    emulated.stop()


@pytest.fixture(scope="module")
def operator(
    cluster: EmulatedCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Operator]:
    running = Operator(cluster, tmp_path_factory.mktemp("operator")).start()
    yield running
    running.stop()


# --------------------------------------------------------------------------- helpers


def _ws(cluster: EmulatedCluster, ns: str, name: str) -> dict[str, Any]:
    ws = cluster.workspace(ns, name)
    assert ws is not None, f"Workspace {ns}/{name} is gone"
    return ws


def _condition(ws: dict[str, Any], kind: str) -> dict[str, Any]:
    for c in (ws.get("status") or {}).get("conditions") or []:
        if c["type"] == kind:
            return dict(c)
    return {}


def _wait_condition(
    cluster: EmulatedCluster,
    operator: Operator,
    ns: str,
    name: str,
    kind: str,
    status: str,
    reason: str | None = None,
) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        c = _condition(_ws(cluster, ns, name), kind)
        if c.get("status") == status and (reason is None or c.get("reason") == reason):
            return c
        return None

    result: dict[str, Any] = wait_for(
        check, f"{ns}/{name} {kind}={status} {reason or ''}", operator
    )
    return result


def _get(cluster: EmulatedCluster, operator: Operator, path: str) -> dict[str, Any]:
    result: dict[str, Any] = wait_for(lambda: cluster.get(path), path, operator)
    return result


def _pod(
    cluster: EmulatedCluster, ns: str, name: str, labels: dict[str, str], **status: Any
) -> None:
    """A pod as the Deployment's ReplicaSet and the scheduler would leave it."""
    cluster.create(
        f"/api/v1/namespaces/{ns}/pods",
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"containers": [{"name": "server", "image": "x"}]},
            "status": status,
        },
    )


def _scheduled(cluster: EmulatedCluster, ns: str, name: str, labels: dict[str, str]) -> None:
    _pod(
        cluster,
        ns,
        name,
        labels,
        phase="Running",
        conditions=[{"type": "PodScheduled", "status": "True"}],
    )


def _template_labels(deployment: dict[str, Any]) -> dict[str, str]:
    return dict(deployment["spec"]["template"]["metadata"]["labels"])


# --------------------------------------------------------------------------- scenarios


def test_create_applies_every_object_owned_by_the_workspace(
    cluster: EmulatedCluster, operator: Operator
) -> None:
    ns = "create"
    cluster.apply_workspace(ns, "smollm2", CPU_SPEC)
    deployment = _get(cluster, operator, f"{DEPLOYMENTS.format(ns=ns)}/smollm2")
    service = _get(cluster, operator, f"/api/v1/namespaces/{ns}/services/smollm2")
    ws = _ws(cluster, ns, "smollm2")
    uid = ws["metadata"]["uid"]
    for obj in (deployment, service):
        (owner,) = obj["metadata"]["ownerReferences"]
        assert owner == {
            "apiVersion": "bosun.dev/v1alpha1",
            "kind": "Workspace",
            "name": "smollm2",
            "uid": uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }
        assert obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "bosun"
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert "smollm2-135m-instruct" in " ".join(
        container.get("args", []) + container.get("command", [])
    )
    # status.plan and the endpoint are written, conditions start False with a reason.
    ws = wait_for(
        lambda: (
            (_ws(cluster, ns, "smollm2").get("status") or {}).get("plan")
            and _ws(cluster, ns, "smollm2")
        ),
        "status.plan",
        operator,
    )
    assert ws["status"]["plan"]["runtime"] == "bosun"
    assert ws["status"]["plan"]["devices"].startswith("cpu")
    assert ws["status"]["endpoint"] == f"http://smollm2.{ns}.svc.cluster.local"
    assert _condition(ws, "ResourceReady")["reason"] == "WaitingForPods"
    assert _condition(ws, "WorkspaceSucceeded")["status"] == "False"
    # Nothing of a Workspace without NodeClaims outlives it but by owner references: no
    # finalizer, so deleting it costs no patch (and a stopped operator does not block it).
    assert "bosun.dev/finalizer" not in (ws["metadata"].get("finalizers") or [])


def test_health_and_metrics_endpoints_answer(cluster: EmulatedCluster, operator: Operator) -> None:
    import httpx

    cluster.apply_workspace("metrics", "smollm2", CPU_SPEC)
    _get(cluster, operator, f"{DEPLOYMENTS.format(ns='metrics')}/smollm2")
    health = wait_for(
        lambda: _try(f"http://127.0.0.1:{operator.health_port}/healthz"), "/healthz", operator
    )
    assert health.status_code == 200
    text = httpx.get(f"http://127.0.0.1:{operator.metrics_port}/metrics").text
    applied = [
        line
        for line in text.splitlines()
        if line.startswith('bosun_operator_reconciles_total{result="applied"}')
    ]
    assert applied and float(applied[0].split()[-1]) >= 1


def _try(url: str) -> Any:
    import httpx

    try:
        return httpx.get(url)
    except httpx.HTTPError:
        return None


def test_conditions_go_true_in_order_as_pods_become_ready(
    cluster: EmulatedCluster, operator: Operator
) -> None:
    ns = "ready"
    cluster.apply_workspace(ns, "smollm2", CPU_SPEC)
    deployment = _get(cluster, operator, f"{DEPLOYMENTS.format(ns=ns)}/smollm2")
    _wait_condition(cluster, operator, ns, "smollm2", "ResourceReady", "False", "WaitingForPods")

    _scheduled(cluster, ns, "smollm2-abc", _template_labels(deployment))
    _wait_condition(cluster, operator, ns, "smollm2", "ResourceReady", "True")
    ws = _ws(cluster, ns, "smollm2")
    assert _condition(ws, "InferenceReady")["status"] == "False"
    assert _condition(ws, "WorkspaceSucceeded")["status"] == "False"

    cluster.patch(
        f"{DEPLOYMENTS.format(ns=ns)}/smollm2/status",
        {"status": {"replicas": 1, "readyReplicas": 1, "availableReplicas": 1}},
    )
    _wait_condition(
        cluster, operator, ns, "smollm2", "WorkspaceSucceeded", "True", "WorkspaceReady"
    )
    ws = _ws(cluster, ns, "smollm2")
    assert _condition(ws, "InferenceReady")["status"] == "True"
    assert ws["status"]["state"] == "Ready"
    assert ws["status"]["replicas"] == 1
    times = [
        _condition(ws, k)["lastTransitionTime"]
        for k in ("ResourceReady", "InferenceReady", "WorkspaceSucceeded")
    ]
    assert times == sorted(times)


def test_a_crash_looping_server_is_named_in_the_condition(
    cluster: EmulatedCluster, operator: Operator
) -> None:
    ns = "crash"
    cluster.apply_workspace(ns, "smollm2", CPU_SPEC)
    deployment = _get(cluster, operator, f"{DEPLOYMENTS.format(ns=ns)}/smollm2")
    waiting = {"reason": "CrashLoopBackOff", "message": "back-off 5m0s restarting failed container"}
    _pod(
        cluster,
        ns,
        "smollm2-xyz",
        _template_labels(deployment),
        phase="Running",
        conditions=[{"type": "PodScheduled", "status": "True"}],
        containerStatuses=[{"name": "server", "ready": False, "state": {"waiting": waiting}}],
    )
    c = _wait_condition(
        cluster, operator, ns, "smollm2", "InferenceReady", "False", "CrashLoopBackOff"
    )
    assert "smollm2-xyz" in c["message"] and "back-off" in c["message"]
    assert _ws(cluster, ns, "smollm2")["status"]["state"] == "Failed"


def test_a_tuning_workspace_runs_a_job(cluster: EmulatedCluster, operator: Operator) -> None:
    ns = "tuning"
    spec = {
        "resource": {"accelerator": {"count": 1}},
        "tuning": {
            "preset": {"name": "qwen2.5-0.5b-instruct"},
            "input": {"uris": ["pvc://data/chats.jsonl"]},
            "output": {"volume": {"persistentVolumeClaim": {"claimName": "adapters"}}},
        },
    }
    cluster.apply_workspace(ns, "tune", spec)
    job = _get(cluster, operator, f"/apis/batch/v1/namespaces/{ns}/jobs/tune-tuning")
    assert _get(cluster, operator, f"/api/v1/namespaces/{ns}/configmaps/tune-config")
    assert job["metadata"]["ownerReferences"][0]["kind"] == "Workspace"
    assert cluster.get(f"/api/v1/namespaces/{ns}/services/tune") is None
    _wait_condition(cluster, operator, ns, "tune", "JobStarted", "False", "JobPending")
    labels = dict(job["spec"]["template"]["metadata"]["labels"])
    _scheduled(cluster, ns, "tune-pod", labels)
    cluster.patch(
        f"/apis/batch/v1/namespaces/{ns}/jobs/tune-tuning/status",
        {"status": {"startTime": "2026-11-22T10:00:00Z", "active": 1}},
    )
    _wait_condition(cluster, operator, ns, "tune", "JobStarted", "True")
    cluster.patch(
        f"/apis/batch/v1/namespaces/{ns}/jobs/tune-tuning/status",
        {
            "status": {
                "active": 0,
                "succeeded": 1,
                "conditions": [{"type": "Complete", "status": "True"}],
            }
        },
    )
    _wait_condition(cluster, operator, ns, "tune", "WorkspaceSucceeded", "True", "TuningSucceeded")
    assert _ws(cluster, ns, "tune")["status"]["state"] == "Succeeded"

    # New data: the Job's pod template (its volumes) changes, and as the API server refuses
    # that for a Job, the Job is replaced.
    job_path = f"/apis/batch/v1/namespaces/{ns}/jobs/tune-tuning"
    uid = cluster.get(job_path)["metadata"]["uid"]
    cluster.patch(
        f"{WS.format(ns=ns)}/tune",
        {"spec": {"tuning": {"input": {"uris": ["pvc://data-v2/chats.jsonl"]}}}},
    )
    replaced = wait_for(
        lambda: (j := cluster.get(job_path)) and j["metadata"]["uid"] != uid and j,
        "a new Job",
        operator,
    )
    assert replaced["metadata"]["ownerReferences"][0]["name"] == "tune"


def test_an_object_the_cluster_refuses_is_named_in_the_condition(
    cluster: EmulatedCluster, operator: Operator
) -> None:
    ns = "denied"
    assert cluster.emulator is not None
    cluster.emulator.deny[("deployments", "smollm2")] = "images must come from registry.corp"
    try:
        cluster.apply_workspace(ns, "smollm2", CPU_SPEC)
        c = _wait_condition(
            cluster, operator, ns, "smollm2", "WorkspaceSucceeded", "False", "ApplyFailed"
        )
        assert "images must come from registry.corp" in c["message"]
        assert "deployments/smollm2" in c["message"]
    finally:
        cluster.emulator.deny.clear()


def test_node_claims_are_created_surface_errors_and_go_with_the_workspace(
    cluster: EmulatedCluster, operator: Operator
) -> None:
    ns = "nodes"
    spec = {
        "resource": {"count": 2, "instanceType": "Standard_NC24ads_A100_v4"},
        "inference": {"preset": {"name": "llama-3.1-8b-instruct"}},
    }
    cluster.apply_workspace(ns, "llama", spec)
    wanted = {f"nodes-llama-{i}" for i in range(2)}

    def claims() -> set[str]:
        return {
            c["metadata"]["name"] for c in cluster.list("/apis/karpenter.sh/v1/nodeclaims")
        } & wanted

    wait_for(lambda: claims() == wanted, "two NodeClaims", operator)
    claim = cluster.get("/apis/karpenter.sh/v1/nodeclaims/nodes-llama-0")
    assert claim["spec"]["requirements"][0]["values"] == ["Standard_NC24ads_A100_v4"]
    assert claim["metadata"]["annotations"]["bosun.dev/workspace"] == f"{ns}/llama"
    assert "bosun.dev/finalizer" in cluster.workspace(ns, "llama")["metadata"]["finalizers"]
    _wait_condition(cluster, operator, ns, "llama", "ResourceReady", "False", "ProvisioningNodes")

    cluster.patch(
        "/apis/karpenter.sh/v1/nodeclaims/nodes-llama-1/status",
        {
            "status": {
                "conditions": [
                    {
                        "type": "Launched",
                        "status": "False",
                        "reason": "InsufficientCapacity",
                        "message": "no Standard_NC24ads_A100_v4 capacity in eastus",
                    }
                ]
            }
        },
    )
    c = _wait_condition(cluster, operator, ns, "llama", "ResourceReady", "False", "NodeClaimFailed")
    assert "no Standard_NC24ads_A100_v4 capacity" in c["message"]

    cluster.delete(f"{WS.format(ns=ns)}/llama")
    wait_for(lambda: not claims(), "the NodeClaims deleted by the finalizer", operator)
    wait_for(lambda: cluster.workspace(ns, "llama") is None, "the Workspace gone", operator)


def test_spec_changes_roll_out_and_prune_what_is_no_longer_rendered(
    cluster: EmulatedCluster, operator: Operator
) -> None:
    ns = "rollout"
    spec = {**CPU_SPEC, "inference": {**CPU_SPEC["inference"], "config": {"maxNumSeqs": 8}}}
    cluster.apply_workspace(ns, "smollm2", spec)
    config_path = f"/api/v1/namespaces/{ns}/configmaps/smollm2-config"
    config = _get(cluster, operator, config_path)
    assert "max-num-seqs: 8" in config["data"]["engine.yaml"]
    path = f"{WS.format(ns=ns)}/smollm2"

    cluster.patch(path, {"spec": {"inference": {"config": {"maxNumSeqs": 32}}}})
    wait_for(
        lambda: "max-num-seqs: 32" in cluster.get(config_path)["data"]["engine.yaml"],
        "the ConfigMap updated",
        operator,
    )

    cluster.patch(path, {"spec": {"resource": {"count": 3}}})
    deployment = f"{DEPLOYMENTS.format(ns=ns)}/smollm2"
    wait_for(lambda: cluster.get(deployment)["spec"]["replicas"] == 3, "3 replicas", operator)

    cluster.patch(path, {"spec": {"inference": {"config": None}}})
    wait_for(lambda: cluster.get(config_path) is None, "the ConfigMap pruned", operator)
    assert cluster.get(deployment) is not None


def test_a_layout_change_replaces_the_workload_and_prunes_the_old_one(
    cluster: EmulatedCluster, operator: Operator
) -> None:
    ns = "layout"
    path = f"{WS.format(ns=ns)}/llama"
    spec = {
        "inference": {"preset": {"name": "llama-3.3-70b-instruct"}, "maxModelLen": 8192},
        "resource": {"accelerator": {"count": 2}},
    }
    cluster.apply_workspace(ns, "llama", spec)
    deployment = f"{DEPLOYMENTS.format(ns=ns)}/llama"
    lws = f"/apis/leaderworkerset.x-k8s.io/v1/namespaces/{ns}/leaderworkersets/llama"
    _get(cluster, operator, deployment)
    # 4 GPUs on nodes of 2 (node-a): two nodes per replica, a LeaderWorkerSet.
    cluster.patch(path, {"spec": {"resource": {"accelerator": {"count": 4}}}})
    group = _get(cluster, operator, lws)
    assert group["spec"]["leaderWorkerTemplate"]["size"] == 2
    wait_for(lambda: cluster.get(deployment) is None, "the Deployment pruned", operator)
    cluster.delete(lws)  # drift on a LeaderWorkerSet is restored like any other
    _get(cluster, operator, lws)
    cluster.patch(path, {"spec": {"resource": {"accelerator": {"count": 2}}}})
    _get(cluster, operator, deployment)
    wait_for(lambda: cluster.get(lws) is None, "the LeaderWorkerSet pruned", operator)
    # From GPUs to CPUs: the ResourceClaimTemplate goes.
    claims = f"/apis/resource.k8s.io/v1/namespaces/{ns}/resourceclaimtemplates"
    cluster.apply_workspace(
        ns, "small", {"inference": {"preset": {"name": "smollm2-135m-instruct"}}}
    )
    wait_for(
        lambda: [c for c in cluster.list(claims) if "small" in c["metadata"]["name"]],
        "a ResourceClaimTemplate",
        operator,
    )
    cluster.patch(
        f"{WS.format(ns=ns)}/small", {"spec": {"resource": {"cpu": "2", "memory": "4Gi"}}}
    )
    wait_for(
        lambda: not [c for c in cluster.list(claims) if "small" in c["metadata"]["name"]],
        "the ResourceClaimTemplate pruned",
        operator,
    )


def test_an_immutable_field_is_refused_with_a_condition_and_nothing_changes(
    cluster: EmulatedCluster, operator: Operator
) -> None:
    ns = "immutable"
    cluster.apply_workspace(ns, "smollm2", CPU_SPEC)
    deployment = f"{DEPLOYMENTS.format(ns=ns)}/smollm2"
    before = _get(cluster, operator, deployment)
    cluster.patch(
        f"{WS.format(ns=ns)}/smollm2",
        {"spec": {"inference": {"preset": {"name": "qwen2.5-0.5b-instruct"}}}},
    )
    c = _wait_condition(
        cluster, operator, ns, "smollm2", "WorkspaceSucceeded", "False", "ImmutableField"
    )
    assert "spec.inference.preset.name" in c["message"]
    after = cluster.get(deployment)
    assert after["spec"]["template"] == before["spec"]["template"]


def test_hand_deleted_or_edited_objects_are_restored(
    cluster: EmulatedCluster, operator: Operator
) -> None:
    ns = "drift"
    cluster.apply_workspace(ns, "smollm2", CPU_SPEC)
    service = f"/api/v1/namespaces/{ns}/services/smollm2"
    original = _get(cluster, operator, service)
    _wait_condition(cluster, operator, ns, "smollm2", "ResourceReady", "False")
    cluster.delete(service)
    restored = _get(cluster, operator, service)
    assert restored["spec"] == original["spec"]

    deployment = f"{DEPLOYMENTS.format(ns=ns)}/smollm2"
    cluster.patch(deployment, {"spec": {"replicas": 7}})
    wait_for(
        lambda: cluster.get(deployment)["spec"]["replicas"] == 1, "replicas restored", operator
    )


def test_a_status_written_by_someone_else_is_written_back(
    cluster: EmulatedCluster, operator: Operator
) -> None:
    # The operator remembers the status it wrote until its watch shows it; a status
    # changed after that (another controller, a restore) is corrected at once, not left.
    ns = "drift-status"
    cluster.apply_workspace(ns, "smollm2", CPU_SPEC)
    _wait_condition(cluster, operator, ns, "smollm2", "ResourceReady", "False")
    endpoint = _ws(cluster, ns, "smollm2")["status"]["endpoint"]
    assert endpoint
    path = f"{WS.format(ns=ns)}/smollm2/status"
    for _ in range(2):  # twice: the first correction must not stop the next
        cluster.patch(path, {"status": {"endpoint": "http://elsewhere", "conditions": []}})
        ws = wait_for(
            lambda: (w := _ws(cluster, ns, "smollm2"))["status"]["endpoint"] == endpoint and w,
            "the status written back",
            operator,
            timeout=20,
        )
        assert _condition(ws, "ResourceReady")["status"] == "False"


@pytest.mark.parametrize(
    ("spec", "reason", "field"),
    [
        (
            {"inference": {"preset": {"name": "smollm2-135m-instruct"}, "bogus": 1}},
            "InvalidSpec",
            "spec.inference.bogus",
        ),
        ({"inference": {"preset": {"name": "no-such-model"}}}, "PlanFailed", "no-such-model"),
        (
            {
                "resource": {"cpu": "2", "memory": "1Gi"},
                "inference": {"preset": {"name": "llama-3.1-8b-instruct"}},
            },
            "DoesNotFit",
            "spec.resource",
        ),
    ],
    ids=["unknown-field", "unknown-preset", "does-not-fit"],
)
def test_an_invalid_workspace_gets_a_condition_not_a_crash_loop(
    cluster: EmulatedCluster, operator: Operator, spec: dict[str, Any], reason: str, field: str
) -> None:
    ns = f"invalid-{reason.lower()}"
    cluster.apply_workspace(ns, "bad", spec)
    c = _wait_condition(cluster, operator, ns, "bad", "WorkspaceSucceeded", "False", reason)
    assert field in c["message"]
    assert _ws(cluster, ns, "bad")["status"]["state"] == "Invalid"
    assert cluster.get(f"{DEPLOYMENTS.format(ns=ns)}/bad") is None
    # The operator is still serving others.
    cluster.apply_workspace(ns, "good", CPU_SPEC)
    _get(cluster, operator, f"{DEPLOYMENTS.format(ns=ns)}/good")


def test_a_source_whose_name_resolves_inside_is_refused(
    cluster: EmulatedCluster, operator: Operator
) -> None:
    """This machine's own name passes every check a name alone allows, but resolves to
    an address of this machine: the operator resolves it and refuses the Workspace."""
    from bosun.api.validators import check_public_host, is_internal_address, literal_address

    host = socket.gethostname()
    try:
        check_public_host(host)
        addresses = {str(i[4][0]) for i in socket.getaddrinfo(host, None)}
    except (ValueError, OSError) as exc:
        pytest.skip(f"this machine's name {host!r} cannot serve here: {exc}")
    if not all(is_internal_address(literal_address(a)) for a in addresses):  # type: ignore[arg-type]
        pytest.skip(f"this machine's name {host!r} resolves to {addresses}, not all internal")
    ns = "resolved"
    spec = {
        "resource": {"accelerator": {"count": 1}},
        "tuning": {
            "preset": {"name": "qwen2.5-0.5b-instruct"},
            "input": {"uris": [f"http://{host}:8000/chats.jsonl"]},
            "output": {"volume": {"persistentVolumeClaim": {"claimName": "adapters"}}},
        },
    }
    cluster.apply_workspace(ns, "inside", spec)
    c = _wait_condition(
        cluster, operator, ns, "inside", "WorkspaceSucceeded", "False", "InvalidSpec"
    )
    assert c["message"].startswith(f"spec.tuning.input.uris[0]: host {host} resolves to")
    assert cluster.get(f"/apis/batch/v1/namespaces/{ns}/jobs/inside-tuning") is None


def test_scale_subresource_scales_the_deployment(
    cluster: EmulatedCluster, operator: Operator
) -> None:
    ns = "scale"
    cluster.apply_workspace(ns, "smollm2", CPU_SPEC)
    deployment = f"{DEPLOYMENTS.format(ns=ns)}/smollm2"
    _get(cluster, operator, deployment)
    # What `kubectl scale ws smollm2 --replicas 3` sends.
    cluster.patch(f"{WS.format(ns=ns)}/smollm2/scale", {"spec": {"replicas": 3}})
    wait_for(lambda: cluster.get(deployment)["spec"]["replicas"] == 3, "3 replicas", operator)
    cluster.patch(f"{deployment}/status", {"status": {"replicas": 3, "readyReplicas": 3}})
    scale = wait_for(
        lambda: (
            (s := cluster.get(f"{WS.format(ns=ns)}/smollm2/scale"))["status"]["replicas"] == 3 and s
        ),
        "the scale status",
        operator,
    )
    assert scale["spec"]["replicas"] == 3
    assert scale["status"]["selector"] == "bosun.dev/workspace=smollm2"


def test_allocated_devices_are_reported(cluster: EmulatedCluster, operator: Operator) -> None:
    ns = "allocated"
    cluster.apply_workspace(ns, "llama", GPU_SPEC)
    deployment = _get(cluster, operator, f"{DEPLOYMENTS.format(ns=ns)}/llama")
    (reference,) = deployment["spec"]["template"]["spec"]["resourceClaims"]
    template = _get(
        cluster,
        operator,
        f"/apis/resource.k8s.io/v1/namespaces/{ns}/resourceclaimtemplates/"
        f"{reference['resourceClaimTemplateName']}",
    )
    # The claim allocated from the template for pod llama-0, before the pod is bound:
    # Kubernetes copies the template's labels onto it (the operator finds it by them).
    cluster.create(
        f"/apis/resource.k8s.io/v1/namespaces/{ns}/resourceclaims",
        {
            "apiVersion": "resource.k8s.io/v1",
            "kind": "ResourceClaim",
            "metadata": {
                "name": "llama-0-accelerator-x7k2p",
                "namespace": ns,
                "labels": template["spec"]["metadata"]["labels"],
                "ownerReferences": [
                    {"apiVersion": "v1", "kind": "Pod", "name": "llama-0", "uid": "p"}
                ],
            },
            "spec": {"devices": {"requests": []}},
            "status": {
                "allocation": {
                    "devices": {
                        "results": [
                            {
                                "request": "gpu",
                                "driver": "gpu.nvidia.com",
                                "pool": "node-a",
                                "device": "gpu-1",
                            }
                        ]
                    }
                }
            },
        },
    )
    _scheduled(cluster, ns, "llama-0", _template_labels(deployment))
    c = _wait_condition(cluster, operator, ns, "llama", "ResourceReady", "True")
    assert "gpu.nvidia.com/node-a/gpu-1" in c["message"]
    ws = wait_for(
        lambda: (w := _ws(cluster, ns, "llama"))["status"].get("allocatedDevices") and w,
        "status.allocatedDevices",
        operator,
    )
    assert ws["status"]["allocatedDevices"] == ["gpu.nvidia.com/node-a/gpu-1"]


def test_pending_pods_are_explained_per_node(cluster: EmulatedCluster, operator: Operator) -> None:
    ns = "pending"
    spec = {
        "inference": {"preset": {"name": "llama-3.3-70b-instruct"}, "maxModelLen": 8192},
        "resource": {"accelerator": {"count": 2}},
    }
    cluster.apply_workspace(ns, "llama", spec)
    deployment = _get(cluster, operator, f"{DEPLOYMENTS.format(ns=ns)}/llama")
    assert deployment["spec"]["template"]["spec"]["resourceClaims"]
    _pod(
        cluster,
        ns,
        "llama-abc",
        _template_labels(deployment),
        phase="Pending",
        conditions=[
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": "0/2 nodes are available: cannot allocate all claims",
            }
        ],
    )
    c = _wait_condition(
        cluster, operator, ns, "llama", "ResourceReady", "False", "DevicesUnavailable"
    )
    assert "cannot allocate all claims" in c["message"]
    assert "node-a:" in c["message"] and "node-b:" in c["message"]


def test_a_hundred_workspaces_at_once(cluster: EmulatedCluster, operator: Operator) -> None:
    ns = "many"
    names = [f"ws-{i:03d}" for i in range(100)]
    for name in names:
        cluster.apply_workspace(ns, name, CPU_SPEC)

    def done() -> bool:
        deployments = {d["metadata"]["name"] for d in cluster.list(DEPLOYMENTS.format(ns=ns))}
        services = {
            s["metadata"]["name"] for s in cluster.list(f"/api/v1/namespaces/{ns}/services")
        }
        planned = {
            w["metadata"]["name"]
            for w in cluster.list(WS.format(ns=ns))
            if (w.get("status") or {}).get("plan")
        }
        return deployments == services == planned == set(names)

    wait_for(done, "100 Workspaces applied and planned", operator, timeout=180)


def test_a_killed_operator_converges_after_restart_without_duplicates(
    cluster: EmulatedCluster, operator: Operator, tmp_path: Path
) -> None:
    ns = "restart"
    operator.kill()  # kill -9: no cleanup, peering record left behind
    try:
        second = Operator(cluster, tmp_path, priority=200).start()
        names = [f"ws-{i:02d}" for i in range(30)]
        for name in names:
            cluster.apply_workspace(
                ns, name, {**CPU_SPEC, "resource": {**CPU_SPEC["resource"], "count": 1}}
            )
        wait_for(lambda: cluster.list(DEPLOYMENTS.format(ns=ns)), "the first Deployment", second)
        second.kill()  # mid-reconcile: some Workspaces are done, others not started
        third = Operator(cluster, tmp_path, priority=300).start()
        try:

            def done() -> bool:
                items = cluster.list(DEPLOYMENTS.format(ns=ns))
                return sorted(d["metadata"]["name"] for d in items) == names and all(
                    (w.get("status") or {}).get("plan") for w in cluster.list(WS.format(ns=ns))
                )

            wait_for(done, "every Workspace applied once", third, timeout=120)

            def services() -> list[str]:
                listed = cluster.list(f"/api/v1/namespaces/{ns}/services")
                return sorted(s["metadata"]["name"] for s in listed)

            wait_for(lambda: services() == names, "one Service per Workspace", third)
        finally:
            third.stop()
    finally:
        # The module's operator, for whatever runs after; above the killed peers' priority,
        # whose peering records stay until they expire.
        operator.priority = 400
        operator.start()
