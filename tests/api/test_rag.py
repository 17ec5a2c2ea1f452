"""The RAGEngine resource: the example parses, bad fields are named (by the models and by
the generated CRD's schema and CEL rules alike), and the CRD is valid for Kubernetes."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from bosun.api import WorkspaceError
from bosun.api.crd import rag_engine_crd, rag_engine_openapi_schema
from bosun.api.load import load_resource, parse_resource
from bosun.api.rag import RAGEngine
from tests.crdcheck import cel_errors, schema_errors

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "10-rag-engine" / "ragengine.yaml"


def example() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    return data


def test_the_example_parses_with_its_defaults() -> None:
    rag = load_resource(EXAMPLE)
    assert isinstance(rag, RAGEngine)
    assert rag.spec.embedding.model == "all-minilm-l6-v2"
    assert rag.spec.inference.workspace == "smollm2"
    assert rag.spec.vector_store.type == "local"
    assert rag.spec.storage.size == "2Gi"


def test_the_crd_is_a_valid_kubernetes_object_and_accepts_the_example() -> None:
    kubernetes_validate.validate(rag_engine_crd(), "1.34.0", strict=True)
    schema = rag_engine_openapi_schema()
    assert schema_errors(schema, example()) + cel_errors(schema, example()) == []


BAD: list[tuple[str, dict[str, Any], str, str]] = [
    (
        "both a workspace and a url",
        {"inference": {"workspace": "a", "url": "http://b/v1"}},
        "spec.inference: set exactly one of 'workspace' and 'url'",
        "exactly one of workspace and url",
    ),
    (
        "no embedding source",
        {"embedding": {}, "inference": {"workspace": "a"}},
        "spec.embedding: set exactly one of 'preset' and 'directory'",
        "exactly one of preset and directory",
    ),
    (
        "a store not built",
        {"vectorStore": {"type": "pgvector"}, "inference": {"workspace": "a"}},
        "spec.vectorStore.type: Input should be 'local' or 'qdrant'",
        "is not one of",
    ),
    (
        "qdrant without its server",
        {"vectorStore": {"type": "qdrant"}, "inference": {"workspace": "a"}},
        "spec.vectorStore: type qdrant needs 'url'",
        "url: type qdrant needs it",
    ),
    (
        "a server for the local store",
        {"vectorStore": {"url": "http://q:6333"}, "inference": {"workspace": "a"}},
        "spec.vectorStore: url: for type qdrant only",
        "url: type qdrant needs it, type local has none",
    ),
    (
        "a prefix for the local store",
        {"vectorStore": {"collectionPrefix": "x-"}, "inference": {"workspace": "a"}},
        "spec.vectorStore: collectionPrefix: for type qdrant only",
        "accessSecret and collectionPrefix are for type qdrant",
    ),
    (
        "a prefix Qdrant would refuse",
        {
            "vectorStore": {"type": "qdrant", "url": "http://q:6333", "collectionPrefix": "a/b"},
            "inference": {"workspace": "a"},
        },
        "spec.vectorStore.collectionPrefix: String should match pattern",
        "does not match",
    ),
    (
        "chunks too small",
        {"chunking": {"maxTokens": 4}, "inference": {"workspace": "a"}},
        "spec.chunking.maxTokens: Input should be greater than or equal to 32",
        "less than the minimum",
    ),
    (
        "a typo",
        {"inference": {"workspace": "a"}, "storag": {"size": "1Gi"}},
        "spec.storag: unknown field",
        "Additional properties",
    ),
]


@pytest.mark.parametrize(("case", "spec", "message", "crd_message"), BAD, ids=[b[0] for b in BAD])
def test_bad_fields_are_named_by_the_model_and_the_crd(
    case: str, spec: dict[str, Any], message: str, crd_message: str
) -> None:
    document = copy.deepcopy(example())
    document["spec"] = spec
    with pytest.raises(WorkspaceError) as raised:
        parse_resource(document, "rag.yaml")
    assert f"rag.yaml: invalid RAGEngine\n  {message}" in str(raised.value)
    schema = rag_engine_openapi_schema()
    errors = schema_errors(schema, document) + cel_errors(schema, document)
    assert any(crd_message in e for e in errors), errors


@pytest.mark.parametrize(
    ("url", "words"),
    [("ftp://host/v1", "is not an http(s) URL"), ("http:///v1", "is not an http(s) URL")],
)
def test_an_inference_url_must_be_http(url: str, words: str) -> None:
    document = example()
    document["spec"]["inference"] = {"url": url}
    with pytest.raises(WorkspaceError, match=r"spec\.inference\.url: .*" + re.escape(words)):
        parse_resource(document)


def test_a_qdrant_url_must_be_http() -> None:
    document = example()
    document["spec"]["vectorStore"] = {"type": "qdrant", "url": "qdrant:6333"}
    with pytest.raises(WorkspaceError, match=r"spec\.vectorStore\.url: .*is not an http\(s\) URL"):
        parse_resource(document)


def test_a_storage_too_small_for_an_index_is_refused() -> None:
    document = example()
    document["spec"]["storage"] = {"size": "100Ki"}
    with pytest.raises(WorkspaceError, match=r"spec\.storage\.size: 100Ki is too small"):
        parse_resource(document)


def test_a_workspace_file_read_as_a_rag_engine_is_named_by_kind() -> None:
    document = example()
    document["kind"] = "RagEngine"
    with pytest.raises(
        WorkspaceError,
        match=re.escape(
            "kind: expected apiVersion: bosun.dev/v1alpha1 and kind: Workspace or RAGEngine"
        ),
    ):
        parse_resource(document)
