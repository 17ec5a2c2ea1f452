"""The RAGEngine resource (``bosun.dev/v1alpha1``): answer from your documents.

A kind of its own, as KAITO's ``RAGEngine`` is, rather than a ``spec.rag`` section of a
Workspace: one RAG engine answers through any inference Workspace (or any
OpenAI-compatible server), several engines may share one Workspace, and its life is not
the model's (its index is data on a volume, kept when the Workspace is replaced). Its
parts: the embedding model, the vector store, chunking, the inference Workspace (by
name) that answers, and the storage the index lives on.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import ConfigDict, Field, field_validator, model_validator

from bosun.api.conditions import Condition
from bosun.api.meta import DnsLabel, DnsSubdomain, KubeModel, ObjectMeta, Quantity, cel_rules
from bosun.api.quantity import parse_quantity
from bosun.api.workspace import PresetRef

__all__ = [
    "DEFAULT_EMBEDDING",
    "RAG_KIND",
    "Chunking",
    "Embedding",
    "RAGEngine",
    "RAGEngineSpec",
    "RAGEngineStatus",
    "RAGInference",
    "RAGStorage",
    "VectorStore",
]

RAG_KIND = "RAGEngine"
DEFAULT_EMBEDDING = "all-minilm-l6-v2"
# The index grows with its documents: 2 GiB holds about 450,000 chunks of 384
# dimensions with their text (catalog.embeddings sizes it).
DEFAULT_STORAGE = "2Gi"


class _Model(KubeModel):
    """RAGEngine models: KubeModel's conventions (camelCase, unknown fields rejected)."""


class Embedding(_Model):
    """The model that turns passages and questions into vectors: a preset (served by the
    engine itself, on CPU) or a directory holding a sentence-transformers model."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            (
                "has(self.preset) != has(self.directory)",
                "set exactly one of preset and directory",
            )
        )
    )

    preset: PresetRef | None = Field(
        default=None, description=f"An embedding preset from `bosun models` ({DEFAULT_EMBEDDING})."
    )
    directory: str | None = Field(
        default=None,
        min_length=1,
        max_length=4096,
        description="A local directory (one machine) or a path in the engine's image.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> Embedding:
        if (self.preset is None) == (self.directory is None):
            raise ValueError("set exactly one of 'preset' and 'directory'")
        return self

    @property
    def model(self) -> str:
        """What `bosun rag serve --embedding-model` gets."""
        return self.preset.name if self.preset is not None else str(self.directory)


def _http(url: str | None, example: str) -> str | None:
    """``url`` if it is an http(s) URL with a host; else the error says so, with ``example``."""
    if url is not None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{url!r} is not an http(s) URL, as {example}")
    return url


class VectorStore(_Model):
    """Where the vectors live (docs/rag.md). ``local``: SQLite holds documents and chunks,
    usearch's HNSW graph and SQLite's full-text index are derived from them, on the
    engine's own volume. ``qdrant``: a Qdrant server's collections, one per index, named
    ``{collectionPrefix}{index}``; the engine then needs no volume of its own."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            (
                "(has(self.type) && self.type == 'qdrant') == has(self.url)",
                "url: type qdrant needs it, type local has none",
            ),
            (
                "(has(self.type) && self.type == 'qdrant')"
                " || (!has(self.accessSecret) && !has(self.collectionPrefix))",
                "accessSecret and collectionPrefix are for type qdrant",
            ),
        )
    )

    type: Literal["local", "qdrant"] = Field(default="local", description="local or qdrant.")
    url: str | None = Field(
        default=None,
        max_length=2048,
        description="With qdrant: the server's URL, as http://qdrant.vectors.svc:6333.",
    )
    access_secret: DnsSubdomain | None = Field(
        default=None,
        description="With qdrant: a Secret whose QDRANT_API_KEY key holds the server's key.",
    )
    collection_prefix: str | None = Field(
        default=None,
        max_length=128,
        pattern=r"^[A-Za-z0-9_-]*$",
        description="With qdrant: the collections' name prefix (default: NAMESPACE-NAME-, "
        "so engines sharing a server never share an index).",
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        return _http(value, "http://qdrant:6333")

    @model_validator(mode="after")
    def _qdrant_fields(self) -> VectorStore:
        if self.type == "qdrant" and self.url is None:
            raise ValueError("type qdrant needs 'url', the server's, as http://qdrant:6333")
        if self.type == "local":
            extra = [
                name
                for name, value in (
                    ("url", self.url),
                    ("accessSecret", self.access_secret),
                    ("collectionPrefix", self.collection_prefix),
                )
                if value is not None
            ]
            if extra:
                raise ValueError(f"{', '.join(extra)}: for type qdrant only")
        return self


class Chunking(_Model):
    """How documents are cut before they are embedded. Chunks follow headings, keep code
    blocks whole and never pass the embedding model's own limit."""

    max_tokens: int | None = Field(
        default=None,
        ge=32,
        le=8192,
        description="Tokens per chunk at most (default: the embedding model's limit, less "
        "room for the heading path).",
    )


class RAGInference(_Model):
    """Who answers: a Workspace by name (in the same namespace, or among `bosun up`'s), or
    any OpenAI-compatible server by URL."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            ("has(self.workspace) != has(self.url)", "set exactly one of workspace and url")
        )
    )

    workspace: DnsLabel | None = Field(default=None, description="An inference Workspace.")
    url: str | None = Field(
        default=None,
        max_length=2048,
        description="An OpenAI-compatible server's base URL, as http://host:8000/v1.",
    )
    model: str | None = Field(
        default=None,
        min_length=1,
        max_length=253,
        description="The model it answers with (default: the Workspace's, or the server's first).",
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        return _http(value, "http://host:8000/v1")

    @model_validator(mode="after")
    def _one_target(self) -> RAGInference:
        if (self.workspace is None) == (self.url is None):
            raise ValueError("set exactly one of 'workspace' and 'url'")
        return self


class RAGStorage(_Model):
    """The volume the index lives on (a PersistentVolumeClaim in a cluster; a directory
    under the state directory on one machine)."""

    size: Quantity = Field(default=DEFAULT_STORAGE, description="As 10Gi.")
    storage_class_name: DnsLabel | None = Field(
        default=None, description="The StorageClass (default: the cluster's default)."
    )

    @field_validator("size")
    @classmethod
    def _positive(cls, value: str) -> str:
        if parse_quantity(value) < 2**20:
            raise ValueError(f"{value} is too small for an index (at least 1Mi)")
        return value


class RAGEngineSpec(_Model):
    embedding: Embedding = Field(
        default_factory=lambda: Embedding(preset=PresetRef(name=DEFAULT_EMBEDDING))
    )
    vector_store: VectorStore = Field(default_factory=VectorStore)
    chunking: Chunking = Field(default_factory=Chunking)
    inference: RAGInference
    storage: RAGStorage = Field(default_factory=RAGStorage)
    cpu: Quantity | None = Field(default=None, description="CPU for the engine (default: sized).")
    memory: Quantity | None = Field(
        default=None, description="Memory for the engine (default: sized from the model)."
    )

    @field_validator("cpu", "memory")
    @classmethod
    def _more_than_nothing(cls, value: str | None) -> str | None:
        if value is not None and parse_quantity(value) <= 0:
            raise ValueError(f"{value} is not more than zero")
        return value


class RAGEngineStatus(_Model):
    conditions: list[Condition] = Field(default_factory=list)
    endpoint: str | None = None
    observed_generation: int | None = None
    state: str | None = None


class RAGEngine(_Model):
    """An embedding model, a vector index and an inference Workspace behind one API."""

    api_version: Literal["bosun.dev/v1alpha1"] = "bosun.dev/v1alpha1"
    kind: Literal["RAGEngine"] = "RAGEngine"
    metadata: ObjectMeta
    spec: RAGEngineSpec
    status: RAGEngineStatus | None = None

    @property
    def name(self) -> str:
        return self.metadata.name
