"""The seam between the RAG library and where its vectors live.

A :class:`Stores` keeps named indexes; each is a :class:`Store` of documents, their
chunks and the chunks' vectors. Two are built:

- ``local_store.LocalStores``: one directory per index, SQLite holding the truth and
  usearch's HNSW graph derived from it (the default, and what `bosun up` uses);
- ``qdrant_store.QdrantStores``: one Qdrant collection per index, for a cluster whose
  indexes outgrow one engine's volume, or that runs Qdrant already.

Both answer a query alike: the nearest chunks to the query's vector and the best matches
of its words, fused by reciprocal rank (:func:`fuse`), each hit scored by its cosine
similarity, and a metadata filter (:func:`matches`) applied to both rankings.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import numpy as np

__all__ = [
    "STOP_WORDS",
    "Chunk",
    "Entry",
    "Hit",
    "Store",
    "StoreError",
    "StoreUnavailableError",
    "StoredDocument",
    "Stores",
    "Words",
    "cosine",
    "fuse",
    "matches",
    "query_words",
]

RRF_K = 60  # reciprocal rank fusion's constant (Cormack, Clarke and Buettcher, 2009)
# Words a question is made of that say nothing of its subject (Lucene's English stop
# words, and the words questions are asked with): left out of the word search, where they
# would match most chunks and cost the most.
STOP_WORDS = frozenset(
    (  # noqa: SIM905 - a sentence of words reads better than one word a line
        "a an and are as at be but by for if in into is it no not of on or such that the "
        "their then there these they this to was will with how what which when where who "
        "whom why do does did can could should would me my we our you your am been has have "
        "had about from"
    ).split()
)


class StoreError(Exception):
    """A request the store refuses: what is wrong, for the caller to show."""


class StoreUnavailableError(StoreError):
    """The store cannot be reached now (a Qdrant server down, or refusing the key): the
    request may be tried again; nothing of it was stored."""


@dataclass(frozen=True)
class Chunk:
    heading: str  # the headings it sits under, "A > B"
    text: str


@dataclass(frozen=True)
class StoredDocument:
    id: str
    hash: str
    source: str
    metadata: dict[str, Any]
    chunks: int


@dataclass(frozen=True)
class Hit:
    score: float  # cosine similarity, -1 to 1
    document: str
    position: int
    heading: str
    text: str
    source: str
    metadata: dict[str, Any]


Entry = tuple[StoredDocument, list[Chunk], np.ndarray]  # a document, its chunks, their vectors
# A word ranking computed ahead of :meth:`Store.search` (while the query is embedded): the
# pool size it was computed for, and the chunks' keys, best first.
Words = tuple[int, list[int | str]]
Key = TypeVar("Key", bound=Hashable)


class Store(Protocol):
    """One index: documents, their chunks and vectors. A change is all or nothing as far
    as readers see: a document is there whole, at one version, or not at all."""

    def document(self, document_id: str) -> StoredDocument | None: ...

    def documents(self, offset: int = 0, limit: int = 100) -> list[StoredDocument]:
        """In the order they were added."""
        ...

    def count(self) -> tuple[int, int]:
        """Documents and chunks."""
        ...

    def same_content(self, digest: str) -> str | None:
        """The id of a document with this content hash, if one is stored."""
        ...

    def put(self, entries: list[Entry], added: float) -> None:
        """Store documents, each replacing one of the same id."""
        ...

    def delete(self, document_id: str) -> bool:
        """Remove a document and its chunks; False if it was not stored."""
        ...

    def words(self, text: str, top_k: int, where: Mapping[str, Any] | None = None) -> Words:
        """The word ranking :meth:`search` starts from, on its own (see :data:`Words`)."""
        ...

    def search(
        self,
        vector: np.ndarray,
        top_k: int,
        where: Mapping[str, Any] | None = None,
        text: str | None = None,
        words: Words | None = None,
    ) -> list[Hit]:
        """The ``top_k`` chunks most relevant to the query whose document matches
        ``where``, by ``vector`` and, when given, ``text``'s words."""
        ...

    def close(self) -> None: ...


class Stores(Protocol):
    """Named indexes, each a :class:`Store` of ``dimensions``-float vectors of one model."""

    where: str  # for messages: where the indexes are kept

    def names(self) -> list[str]: ...

    def exists(self, name: str) -> bool: ...

    def open(self, name: str) -> Store:
        """An index that exists; StoreError when it holds another model's vectors."""
        ...

    def create(self, name: str) -> Store: ...

    def drop(self, name: str) -> None:
        """Delete an index and everything in it (it is closed first by the caller)."""
        ...

    def close(self) -> None:
        """Let go of what the indexes share (a client); each index is closed apart."""
        ...


def matches(metadata: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    """A metadata filter: every key equal; a list in the filter means any of its values."""
    for key, value in wanted.items():
        have = metadata.get(key)
        if isinstance(value, list):
            if have not in value:
                return False
        elif have != value:
            return False
    return True


def query_words(text: str, each_once: bool = True) -> list[str]:
    """The words of ``text`` that may say what it is about: lower case, two letters or
    more, not stop words; sorted, each once (else in order, as often as they occur)."""
    words = [t for t in re.findall(r"\w+", text.lower()) if len(t) > 1 and t not in STOP_WORDS]
    return sorted(set(words)) if each_once else words


def fuse(rankings: Iterable[Sequence[Key]]) -> list[Key]:
    """Keys of several rankings (best first) in one order, by reciprocal rank fusion."""
    fused: dict[Key, float] = {}
    for ranking in rankings:
        for rank, key in enumerate(ranking, start=1):
            fused[key] = fused.get(key, 0.0) + 1.0 / (RRF_K + rank)
    return sorted(fused, key=lambda k: -fused[k])


def cosine(stored: np.ndarray, vector: np.ndarray) -> float:
    """The cosine similarity of two vectors (0 for a zero vector)."""
    norms = float(np.linalg.norm(stored)) * float(np.linalg.norm(vector))
    return float(stored @ vector) / max(norms, 1e-12)
