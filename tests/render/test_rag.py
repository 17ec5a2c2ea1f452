"""A RAGEngine's manifests: valid for Kubernetes 1.34 (strict), one writer on its claim,
the Workspace's Service as the generation server, and a claim its deletion leaves."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest

from bosun.api.load import parse_resource
from bosun.api.rag import RAGEngine
from bosun.catalog.embeddings import plan_rag
from bosun.render.pods import RenderOptions
from bosun.render.rag import render_rag_engine


def engine(uid: str | None = None, **spec: Any) -> RAGEngine:
    metadata: dict[str, Any] = {"name": "docs", "namespace": "team"}
    if uid:
        metadata["uid"] = uid
    document = {
        "apiVersion": "bosun.dev/v1alpha1",
        "kind": "RAGEngine",
        "metadata": metadata,
        "spec": {"inference": {"workspace": "smollm2"}, **spec},
    }
    rag = parse_resource(document)
    assert isinstance(rag, RAGEngine)
    return rag


def rendered(rag: RAGEngine) -> dict[str, dict[str, Any]]:
    objects = render_rag_engine(rag, plan_rag(rag), RenderOptions())
    return {o["kind"]: o for o in objects}


@pytest.mark.parametrize(
    "spec",
    [
        {},
        {"storage": {"size": "20Gi", "storageClassName": "fast"}, "chunking": {"maxTokens": 128}},
        {"vectorStore": {"type": "qdrant", "url": "http://q:6333", "accessSecret": "qdrant-key"}},
    ],
    ids=["defaults", "storage", "qdrant"],
)
def test_every_object_is_valid_for_kubernetes(spec: dict[str, Any]) -> None:
    for obj in render_rag_engine(engine(uid="u-1", **spec), plan_rag(engine(**spec))):
        kubernetes_validate.validate(obj, "1.34.0", strict=True)


def test_the_engine_answers_through_the_workspace_service_with_one_writer() -> None:
    objects = rendered(engine(uid="u-1"))
    deployment = objects["Deployment"]
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    assert args[:3] == ["bosun", "rag", "serve"]
    assert args[args.index("--generation-url") + 1] == "http://smollm2.team.svc/v1"
    assert args[args.index("--served-name") + 1] == "docs"
    assert (
        container["resources"]["requests"]["memory"] == container["resources"]["limits"]["memory"]
    )
    key = next(e for e in container["env"] if e["name"] == "BOSUN_API_KEY")
    assert key["valueFrom"]["secretKeyRef"] == {
        "name": "docs-api-key",
        "key": "api-key",
        "optional": True,
    }
    assert objects["Service"]["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]


def test_the_claim_outlives_the_engine_and_the_rest_is_owned() -> None:
    objects = rendered(engine(uid="u-1", storage={"size": "20Gi", "storageClassName": "fast"}))
    claim = objects["PersistentVolumeClaim"]
    assert "ownerReferences" not in claim["metadata"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "20Gi"
    assert claim["spec"]["storageClassName"] == "fast"
    for kind in ("Deployment", "Service"):
        (owner,) = objects[kind]["metadata"]["ownerReferences"]
        assert owner["kind"] == "RAGEngine" and owner["uid"] == "u-1"


def test_a_url_target_is_used_as_given() -> None:
    args = rendered(engine(inference={"url": "https://llm.example.com", "model": "m"}))[
        "Deployment"
    ]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--generation-url") + 1] == "https://llm.example.com/v1"
    assert args[args.index("--generation-model") + 1] == "m"


QDRANT = {"type": "qdrant", "url": "http://qdrant.vectors.svc:6333", "accessSecret": "qdrant-key"}


def test_a_qdrant_engine_has_no_claim_and_takes_its_key_from_the_secret() -> None:
    objects = rendered(engine(uid="u-1", vectorStore=QDRANT))
    assert set(objects) == {"Deployment", "Service"}  # the server keeps the indexes
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    args = container["args"]
    assert args[args.index("--qdrant-url") + 1] == "http://qdrant.vectors.svc:6333"
    assert args[args.index("--qdrant-prefix") + 1] == "team-docs-"  # engines never share one
    key = next(e for e in container["env"] if e["name"] == "QDRANT_API_KEY")
    assert key["valueFrom"]["secretKeyRef"] == {"name": "qdrant-key", "key": "QDRANT_API_KEY"}
    assert not any("persistentVolumeClaim" in v for v in pod["volumes"])


def test_a_qdrant_prefix_given_is_used_as_given() -> None:
    args = rendered(engine(vectorStore={**QDRANT, "collectionPrefix": "shared_"}))["Deployment"][
        "spec"
    ]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--qdrant-prefix") + 1] == "shared_"
