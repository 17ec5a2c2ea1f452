"""A RAGEngine's objects: the PersistentVolumeClaim its index lives on, the Deployment
that runs `bosun rag serve`, and the Service in front of it.

One replica, replaced with ``Recreate``: an index has one writer (SQLite and the graph
file, or the Qdrant store's commits), so an old and a new pod never write together. The
claim carries no owner reference: deleting the RAGEngine leaves the index, and a
RAGEngine of the same name finds it again (delete the claim to drop it). With a Qdrant
vector store there is no claim: the server keeps the indexes, and the engine's key for it
comes from the Secret ``spec.vectorStore.accessSecret`` names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bosun.api.rag import RAGEngine, VectorStore
from bosun.catalog.embeddings import MIB, RagPlan
from bosun.render.names import dns_label, labels, metadata, selector_labels
from bosun.render.pods import HTTP_PORT, RenderOptions, container_security, pod_security

__all__ = [
    "COMPONENT",
    "DATA_DIR",
    "RagTarget",
    "qdrant_prefix",
    "rag_api_key_secret",
    "rag_claim_name",
    "rag_command",
    "render_rag_engine",
]

COMPONENT = "rag"
DATA_DIR = "/data"  # the claim's mount: the indexes
CACHE_DIR = "/cache"  # the extracted embedding model


@dataclass(frozen=True)
class RagTarget:
    """Where the engine's answers come from: an OpenAI-compatible base URL (ending in
    /v1) and the model to ask (None: the server's first)."""

    url: str
    model: str | None = None


def rag_claim_name(rag: RAGEngine) -> str:
    return dns_label(rag.name, "index")


def qdrant_prefix(rag: RAGEngine, namespace: str | None) -> str:
    """The engine's collections' prefix: the spec's, else NAMESPACE-NAME- (engines that
    share a server never share an index)."""
    if rag.spec.vector_store.collection_prefix is not None:
        return rag.spec.vector_store.collection_prefix
    return f"{namespace}-{rag.name}-" if namespace else f"{rag.name}-"


def rag_api_key_secret(rag: RAGEngine) -> str:
    """The optional Secret (key ``api-key``) whose token the engine then requires."""
    return dns_label(rag.name, "api-key")


def workspace_target(rag: RAGEngine, namespace: str | None) -> RagTarget:
    """The inference Workspace's Service in the cluster (render.workloads.service), or
    the spec's URL."""
    inference = rag.spec.inference
    if inference.url is not None:
        return RagTarget(_v1(inference.url), inference.model)
    assert inference.workspace is not None  # one of the two, by validation
    host = dns_label(inference.workspace)
    if namespace:
        host += f".{namespace}.svc"
    return RagTarget(f"http://{host}/v1", inference.model)


def _v1(url: str) -> str:
    url = url.rstrip("/")
    return url if url.endswith("/v1") else f"{url}/v1"


def rag_command(
    plan: RagPlan,
    data: str,
    target: RagTarget,
    host: str,
    port: int,
    base: list[str],
    store: VectorStore | None = None,
    prefix: str = "",
) -> list[str]:
    """The `bosun rag serve` command line (``base``: how `bosun` is invoked). It serves
    as the model named after the engine (what the gateway routes by). Its indexes are
    under ``data``, or in the Qdrant ``store`` names, collections named ``prefix``..."""
    command = [*base, "rag", "serve", "--data", data, "--served-name", plan.name]
    if store is not None and store.type == "qdrant":
        assert store.url is not None  # by validation
        command += ["--qdrant-url", store.url, "--qdrant-prefix", prefix]
    command += ["--embedding-model", plan.embedding_model]
    if plan.chunk_tokens is not None:
        command += ["--chunk-tokens", str(plan.chunk_tokens)]
    command += ["--generation-url", target.url]
    if target.model is not None:
        command += ["--generation-model", target.model]
    command += ["--host", host, "--port", str(port)]
    return command


def _probe(period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": "/health", "port": "http"},
        "periodSeconds": period,
        "failureThreshold": failures,
    }


def _claim(rag: RAGEngine, plan: RagPlan, namespace: str | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": rag_claim_name(rag), "labels": labels(rag, COMPONENT)}
    if namespace:
        meta["namespace"] = namespace
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": rag.spec.storage.size}},
    }
    if rag.spec.storage.storage_class_name:
        spec["storageClassName"] = rag.spec.storage.storage_class_name
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta, "spec": spec}


def _container(
    rag: RAGEngine, plan: RagPlan, target: RagTarget, options: RenderOptions, namespace: str | None
) -> dict[str, Any]:
    memory = f"{-(-plan.memory_bytes // MIB)}Mi"
    store = rag.spec.vector_store
    args = rag_command(
        plan,
        DATA_DIR,
        target,
        "0.0.0.0",
        HTTP_PORT,
        ["bosun"],
        store,
        qdrant_prefix(rag, namespace),
    )
    env: list[dict[str, Any]] = [{"name": "BOSUN_CACHE_DIR", "value": CACHE_DIR}]
    if store.access_secret is not None:
        env.append(
            {
                "name": "QDRANT_API_KEY",
                "valueFrom": {
                    "secretKeyRef": {"name": store.access_secret, "key": "QDRANT_API_KEY"}
                },
            }
        )
    return {
        "name": "rag",
        "image": options.bosun_image,
        "args": args,
        "ports": [{"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"}],
        "env": [
            *env,
            {
                "name": "BOSUN_API_KEY",
                "valueFrom": {
                    "secretKeyRef": {
                        "name": rag_api_key_secret(rag),
                        "key": "api-key",
                        "optional": True,
                    }
                },
            },
        ],
        # Loading the model and opening (or rebuilding) the graph take a while.
        "startupProbe": _probe(10, 60),
        "readinessProbe": _probe(5, 3),
        "livenessProbe": _probe(10, 6),
        "resources": {
            "requests": {"cpu": plan.cpu, "memory": memory},
            "limits": {"memory": memory},
        },
        "volumeMounts": [
            {"name": "index", "mountPath": DATA_DIR},
            {"name": "cache", "mountPath": CACHE_DIR},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
        "securityContext": {**container_security(), "readOnlyRootFilesystem": True},
    }


def render_rag_engine(
    rag: RAGEngine, plan: RagPlan, options: RenderOptions | None = None
) -> list[dict[str, Any]]:
    """Every object the RAGEngine needs on a cluster, in the order to apply them."""
    options = options or RenderOptions()
    namespace = options.namespace or rag.metadata.namespace
    name = dns_label(rag.name)
    target = workspace_target(rag, namespace)
    local = rag.spec.vector_store.type == "local"
    index_volume: dict[str, Any] = (
        {"name": "index", "persistentVolumeClaim": {"claimName": rag_claim_name(rag)}}
        if local
        else {"name": "index", "emptyDir": {}}  # nothing kept: the server holds the indexes
    )
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(rag, name, COMPONENT, namespace),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": selector_labels(rag, COMPONENT)},
            "strategy": {"type": "Recreate"},  # one writer per index
            "template": {
                "metadata": {"labels": labels(rag, COMPONENT)},
                "spec": {
                    "securityContext": pod_security(),
                    "terminationGracePeriodSeconds": 30,
                    "containers": [_container(rag, plan, target, options, namespace)],
                    "volumes": [
                        index_volume,
                        {"name": "cache", "emptyDir": {}},
                        {"name": "tmp", "emptyDir": {}},
                    ],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(rag, name, COMPONENT, namespace),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(rag, COMPONENT),
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    }
    return [_claim(rag, plan, namespace), deployment, service] if local else [deployment, service]
