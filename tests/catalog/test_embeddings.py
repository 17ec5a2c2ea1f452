"""Sizing a RAG engine: memory from its model and the chunks its storage holds, and the
limits a user would trip over named."""

from __future__ import annotations

from typing import Any

import pytest

from bosun.api import BosunError
from bosun.api.load import parse_resource
from bosun.api.rag import RAGEngine
from bosun.catalog.embeddings import (
    PLANNED_CHUNKS,
    UnknownEmbeddingError,
    get_embedding,
    plan_rag,
)

MIB = 2**20


def engine(**spec: Any) -> RAGEngine:
    document = {
        "apiVersion": "bosun.dev/v1alpha1",
        "kind": "RAGEngine",
        "metadata": {"name": "docs"},
        "spec": {"inference": {"workspace": "smollm2"}, **spec},
    }
    rag = parse_resource(document)
    assert isinstance(rag, RAGEngine)
    return rag


def test_the_default_engine_is_sized_without_warnings() -> None:
    plan = plan_rag(engine())
    minilm = get_embedding("all-minilm-l6-v2")
    assert plan.embedding == minilm and minilm.dimensions == 384
    assert plan.weight_bytes == minilm.parameters * 4  # float32, as the package ships it
    assert plan.warnings == ()
    # The default 2 GiB holds a few hundred thousand chunks, and memory is sized for all.
    assert 300_000 < plan.chunks_on_disk == plan.chunks_in_memory < PLANNED_CHUNKS
    assert 1024 * MIB < plan.memory_bytes < 4096 * MIB


def test_memory_grows_with_the_index_up_to_the_planned_chunks_then_says_so() -> None:
    small = plan_rag(engine(storage={"size": "256Mi"}))
    default = plan_rag(engine())
    large = plan_rag(engine(storage={"size": "100Gi"}))
    assert small.memory_bytes < default.memory_bytes <= large.memory_bytes
    assert large.chunks_in_memory == PLANNED_CHUNKS < large.chunks_on_disk
    assert any("spec.memory for a larger index" in w for w in large.warnings)


def test_a_memory_below_the_sized_one_is_kept_and_warned_about() -> None:
    plan = plan_rag(engine(memory="512Mi"))
    assert plan.memory_bytes == 512 * MIB and plan.memory_from_spec
    assert any(w.startswith("spec.memory: 512Mi is less than") for w in plan.warnings)


def test_chunks_longer_than_the_model_reads_are_refused() -> None:
    assert plan_rag(engine(chunking={"maxTokens": 216})).chunk_tokens == 216
    with pytest.raises(BosunError, match=r"spec.chunking.maxTokens: 300 .* at most 216"):
        plan_rag(engine(chunking={"maxTokens": 300}))


def test_an_unknown_preset_names_the_close_ones() -> None:
    with pytest.raises(UnknownEmbeddingError, match="did you mean all-minilm-l6-v2"):
        plan_rag(engine(embedding={"preset": {"name": "all-minilm-l6"}}))


def test_a_model_from_a_directory_is_sized_roughly_and_says_so() -> None:
    plan = plan_rag(engine(embedding={"directory": "/models/e5"}))
    assert plan.embedding is None and plan.embedding_model == "/models/e5"
    assert any("spec.embedding.directory" in w for w in plan.warnings)


def test_a_qdrant_engine_needs_no_memory_for_a_graph_and_warns_of_an_unused_storage() -> None:
    server = {"type": "qdrant", "url": "http://qdrant:6333"}
    local, qdrant = plan_rag(engine()), plan_rag(engine(vectorStore=server))
    assert qdrant.storage_bytes == 0 and qdrant.chunks_on_disk == 0
    assert qdrant.memory_bytes < local.memory_bytes and qdrant.warnings == ()
    with_storage = plan_rag(engine(vectorStore=server, storage={"size": "20Gi"}))
    assert with_storage.warnings == (
        "spec.storage: unused with spec.vectorStore.type qdrant (the server keeps the index)",
    )
