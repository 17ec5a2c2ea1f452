"""The gateway in a cluster: Workspaces and EndpointSlices read from the API server, and
scale from zero through the operator.

The pure part (a Workspace and its slices as a Workload) is tested alone. The rest runs
the real operator as a process against the emulated API server, the gateway with its
Kubernetes source (its own credentials, recorded apart), and a stand-in for what the
emulator lacks: the kubelet and the EndpointSlice controller. It starts a fake-engine
server for each replica a Deployment asks for and publishes it in an EndpointSlice with
the Service's labels, as the real controller does.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import kubernetes_validate
import openai
import pytest

from bosun.engine.fake import FakeEngine
from bosun.gateway.cluster import KubernetesSource, rag_workload_of, workload_of
from bosun.render.install import GATEWAY_RBAC_RULES
from tests.gateway.helpers import metric, running_gateway
from tests.operator.cluster import GATEWAY_TOKEN, EmulatedCluster, Operator, wait_for
from tests.serving.server import running_server

MODEL = "smollm2-135m-instruct"


def workspace(name: str = "chat", namespace: str = "team", **resource: Any) -> dict[str, Any]:
    return {
        "apiVersion": "bosun.dev/v1alpha1",
        "kind": "Workspace",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "resource": {"cpu": "2", "memory": "4Gi", **resource},
            "inference": {
                "preset": {"name": MODEL},
                "adapters": [{"name": "tenant-a", "source": {"uri": "hf://org/tenant-a"}}],
            },
        },
    }


def endpoint_slice(
    name: str, namespace: str, labels: dict[str, str], port: int, ready: list[bool]
) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "addressType": "IPv4",
        "endpoints": [
            {"addresses": [f"10.0.0.{i + 1}"], "conditions": {"ready": r}}
            for i, r in enumerate(ready)
        ],
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
    }


# --------------------------------------------------------------------------- pure


def test_a_workspace_and_its_slices_as_the_gateway_sees_them() -> None:
    labels = {"bosun.dev/workspace": "chat", "kubernetes.io/service-name": "chat"}
    piece = endpoint_slice("chat-x1", "team", labels, 8000, [True, False, True])
    kubernetes_validate.validate(piece, "1.34.0", strict=True)  # a slice as the API has it
    seen = workload_of(workspace(minReplicas=0, idleTimeoutSeconds=60), [piece])
    assert seen is not None
    assert seen.name == "team/chat" and seen.state == "Ready"
    assert seen.replicas == ("http://10.0.0.1:8000", "http://10.0.0.3:8000")  # not the unready
    assert seen.models == {MODEL: None, "tenant-a": MODEL}
    assert seen.scale_to_zero and seen.idle_timeout == 60

    idle = workload_of(workspace(count=0, minReplicas=0), [])
    assert idle is not None and idle.state == "Idle" and idle.replicas == ()
    assert idle.idle_timeout == 300  # the default
    starting = workload_of(workspace(), [])
    assert starting is not None and starting.state == "Starting" and not starting.scale_to_zero
    tuning = workspace()
    tuning["spec"] = {"tuning": {"method": "lora"}}
    assert workload_of(tuning, [piece]) is None  # a tuning job serves nothing


def test_a_rag_engine_is_one_model_named_after_it_and_never_scaled() -> None:
    rag = {
        "metadata": {"name": "docs", "namespace": "team"},
        "spec": {"inference": {"workspace": "chat"}},
        "status": {"conditions": [{"type": "Ready", "status": "False", "message": "pulling"}]},
    }
    labels = {"bosun.dev/rag-engine": "docs", "kubernetes.io/service-name": "docs"}
    seen = rag_workload_of(rag, [endpoint_slice("docs-x1", "team", labels, 8000, [True])])
    assert seen.name == "team/ragengine/docs"  # apart from a Workspace named docs
    assert seen.models == {"docs": None} and seen.replicas == ("http://10.0.0.1:8000",)
    assert seen.state == "Ready" and not seen.scale_to_zero
    starting = rag_workload_of(rag, [])
    assert starting.state == "Starting" and starting.message == "pulling"


def test_ipv6_endpoints_are_bracketed() -> None:
    piece = endpoint_slice("chat-x1", "team", {}, 8000, [True])
    piece["endpoints"][0]["addresses"] = ["fd00::7"]
    seen = workload_of(workspace(), [piece])
    assert seen is not None and seen.replicas == ("http://[fd00::7]:8000",)


# --------------------------------------------------------------------------- the cluster


class Kubelet:
    """What the emulator lacks: for each Deployment, a fake-engine server per replica it
    asks for (one at most here), published in an EndpointSlice with its Service's labels;
    none when it asks for none."""

    def __init__(self, cluster: EmulatedCluster, namespace: str) -> None:
        self.cluster, self.namespace = cluster, namespace
        self.servers: dict[str, ExitStack] = {}
        self.started = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Kubelet:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        for stack in self.servers.values():
            stack.close()

    def _run(self) -> None:
        ns = self.namespace
        while not self._stop.wait(0.2):
            for deployment in self.cluster.list(f"/apis/apps/v1/namespaces/{ns}/deployments"):
                name = deployment["metadata"]["name"]
                wanted = int(deployment["spec"].get("replicas", 1))
                if wanted and name not in self.servers:
                    self._start(name)
                elif not wanted and name in self.servers:
                    self.cluster.delete(
                        f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices/{name}-1"
                    )
                    self.servers.pop(name).close()

    def _start(self, name: str) -> None:
        ns = self.namespace
        service = self.cluster.get(f"/api/v1/namespaces/{ns}/services/{name}")
        if service is None:
            return  # not applied yet
        stack = ExitStack()
        rag = "bosun.dev/rag-engine" in service["metadata"]["labels"]
        served = name if rag else MODEL  # `bosun rag serve --served-name NAME`
        url = stack.enter_context(running_server(FakeEngine(name=served, answer="from the pod")))
        port = int(url.rsplit(":", 1)[1])
        labels = {**service["metadata"]["labels"], "kubernetes.io/service-name": name}
        piece = endpoint_slice(f"{name}-1", ns, labels, port, [True])
        piece["endpoints"][0]["addresses"] = ["127.0.0.1"]
        self.cluster.create(f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices", piece)
        self.servers[name] = stack
        self.started += 1


@pytest.fixture(scope="module")
def cluster() -> Iterator[EmulatedCluster]:
    emulated = EmulatedCluster(dra=True).start()
    yield emulated
    emulated.stop()


@pytest.fixture(scope="module")
def operator(
    cluster: EmulatedCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Operator]:
    running = Operator(cluster, tmp_path_factory.mktemp("operator")).start()
    yield running
    running.stop()


def listed(url: str) -> dict[str, dict[str, Any]]:
    return {m["id"]: m for m in httpx.get(f"{url}/v1/models").json()["data"]}


def test_a_workspace_scaled_to_zero_is_started_by_a_request_and_stopped_when_idle(
    cluster: EmulatedCluster, operator: Operator, tmp_path: Path
) -> None:
    ns = "team"
    cluster.create(
        f"/apis/bosun.dev/v1alpha1/namespaces/{ns}/workspaces",
        workspace(count=0, minReplicas=0, idleTimeoutSeconds=3),
    )
    deployment = f"/apis/apps/v1/namespaces/{ns}/deployments/chat"
    wait_for(lambda: cluster.get(deployment), "the operator's Deployment", operator)
    assert cluster.get(deployment)["spec"]["replicas"] == 0
    source = KubernetesSource(kubeconfig=cluster.kubeconfig(tmp_path, GATEWAY_TOKEN))
    with (
        Kubelet(cluster, ns) as kubelet,
        running_gateway([], refresh_seconds=0.3, source=source) as url,
    ):
        models = wait_for(lambda: listed(url) or None, "the gateway's listing", operator)
        assert models[MODEL]["state"] == "idle" and models[MODEL]["replicas"] == 0
        assert models["tenant-a"]["parent"] == MODEL

        # The first request waits while the gateway patches the scale subresource, the
        # operator scales the Deployment and its pod comes up; then it is answered.
        with openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0, timeout=90) as c:
            answer = c.completions.create(model=MODEL, prompt="hello", max_tokens=3)
        assert answer.choices[0].text == "from the pod"
        assert kubelet.started == 1
        assert cluster.workspace(ns, "chat")["spec"]["resource"]["count"] == 1
        assert metric(url, "bosun_gateway_cold_starts_total", model=MODEL) == 1

        # Idle for 3 s: scaled back to zero through the scale subresource.
        wait_for(
            lambda: cluster.get(deployment)["spec"]["replicas"] == 0,
            "the scale-down",
            operator,
            timeout=60,
        )
        assert cluster.workspace(ns, "chat")["spec"]["resource"]["count"] == 0
        wait_for(lambda: listed(url)[MODEL]["state"] == "idle", "the idle listing", operator)
        assert metric(url, "bosun_gateway_scale_downs_total", model=MODEL) == 1

    # The gateway's requests, with its own credentials: exactly what its ClusterRole allows.
    allowed = {
        (g, r, v) for g, resources, verbs in GATEWAY_RBAC_RULES for r in resources for v in verbs
    }
    assert cluster.emulator is not None
    assert cluster.emulator.gateway_calls == allowed


def test_a_workspace_the_gateway_does_not_scale_is_waited_for_with_a_clear_time_out(
    cluster: EmulatedCluster, operator: Operator, tmp_path: Path
) -> None:
    """Scaled to zero by hand (no minReplicas: 0): the gateway holds its requests for
    whoever scales it (KEDA on the queue depth), and says so when none does."""
    ns = "manual"
    cluster.create(
        f"/apis/bosun.dev/v1alpha1/namespaces/{ns}/workspaces", workspace("hand", ns, count=0)
    )
    source = KubernetesSource((ns,), cluster.kubeconfig(tmp_path, GATEWAY_TOKEN))
    with running_gateway([], refresh_seconds=0.3, source=source, cold_start_timeout=2) as url:
        wait_for(lambda: MODEL in listed(url), "the gateway's listing", operator)
        began = time.monotonic()
        reply = httpx.post(
            f"{url}/v1/completions", json={"model": MODEL, "prompt": "hi"}, timeout=30
        )
        assert reply.status_code == 503 and time.monotonic() - began >= 2
        message = reply.json()["error"]["message"]
        assert "manual/hand has no replica and does not start on demand" in message
        assert "minReplicas: 0" in message
    assert cluster.workspace(ns, "hand")["spec"]["resource"]["count"] == 0  # left alone


def test_a_rag_engine_is_routed_by_its_name(
    cluster: EmulatedCluster, operator: Operator, tmp_path: Path
) -> None:
    """The operator renders the engine, its pod comes up (the stand-in serves under the
    engine's name, as `bosun rag serve --served-name` does), and the gateway routes to it."""
    ns = "rag-route"
    cluster.create(
        f"/apis/bosun.dev/v1alpha1/namespaces/{ns}/ragengines",
        {
            "apiVersion": "bosun.dev/v1alpha1",
            "kind": "RAGEngine",
            "metadata": {"name": "docs", "namespace": ns},
            "spec": {"inference": {"url": "http://llm.example.com/v1"}},
        },
    )
    source = KubernetesSource((ns,), cluster.kubeconfig(tmp_path, GATEWAY_TOKEN))
    with Kubelet(cluster, ns), running_gateway([], refresh_seconds=0.3, source=source) as url:
        wait_for(
            lambda: listed(url).get("docs", {}).get("state") == "ready", "the engine", operator
        )
        with openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0) as client:
            answer = client.completions.create(model="docs", prompt="hello", max_tokens=3)
        assert answer.choices[0].text == "from the pod"
