"""The indexes of one RAG service, kept by a :class:`~bosun.rag.store.Stores` (a directory
each, or a Qdrant collection each), filled with documents read and cut by ingest.py and
embedded by an :class:`Embedder`.

Adding documents is all or nothing per call: every document is read and chunked first
(one bad document fails the call, naming it, before anything is stored), then embedded
in batches (``progress`` is told how far), then stored in one transaction. A document
whose content another stored document has already is not stored again: the answer says
which it duplicates.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from bosun.api.validators import check_dns1123_label
from bosun.catalog.embeddings import HEADING_TOKENS
from bosun.rag.ingest import Block, DocumentError, blocks_of, chunk, content_hash, kind_of
from bosun.rag.store import (
    Chunk,
    Hit,
    Store,
    StoredDocument,
    StoreError,
    Stores,
    StoreUnavailableError,
)

__all__ = ["Added", "Embedder", "Library", "LibraryError", "NewDocument", "search"]

EMBED_BATCH = 64  # chunks embedded per call (a progress step)
MAX_ID = 512


class LibraryError(Exception):
    """A request the library refuses: its HTTP status and what is wrong."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class Embedder(Protocol):
    name: str
    dimensions: int
    max_tokens: int

    def count(self, text: str) -> int:
        """Tokens of ``text`` as the model counts them."""
        ...

    async def embed(self, texts: list[str]) -> list[list[float]]: ...


@dataclass(frozen=True)
class NewDocument:
    data: bytes
    name: str  # a file name or URL: its suffix says the type where no content type does
    id: str | None = None  # default: the name, else the content hash
    content_type: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Added:
    id: str
    chunks: int
    duplicate_of: str | None = None  # stored already under this id: not stored again
    unchanged: bool = False  # stored already under this id, with this content


Progress = Callable[[int, int], None]  # (chunks embedded, chunks in all)


def _check_metadata(metadata: Mapping[str, Any], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in metadata.items():
        if not isinstance(key, str) or not key:
            raise LibraryError(422, f"{where}: metadata keys are non-empty strings")
        if not isinstance(value, str | int | float | bool) and value is not None:
            raise LibraryError(
                422, f"{where}.{key}: a metadata value is a string, number, boolean or null"
            )
        out[key] = value
    return out


async def search(
    index: Store,
    embedder: Embedder,
    text: str,
    top_k: int,
    where: Mapping[str, Any] | None = None,
) -> list[Hit]:
    """A query of ``index``: its words are ranked (in a thread: SQLite, or a call to
    Qdrant) while its vector is embedded (torch); both let go of the GIL, so a query
    costs about the longer of the two, then the vector search and the fusion."""
    words = asyncio.ensure_future(asyncio.to_thread(index.words, text, top_k, where))
    try:
        vector = (await embedder.embed([text]))[0]
    finally:
        ranked = await words
    return await asyncio.to_thread(
        index.search, np.asarray(vector, np.float32), top_k, where, text, ranked
    )


class Library:
    """The indexes ``stores`` keeps, embedded by ``embedder``."""

    def __init__(self, stores: Stores, embedder: Embedder, budget: int | None = None) -> None:
        self.stores, self.embedder = stores, embedder
        self.budget = budget or max(16, embedder.max_tokens - HEADING_TOKENS)
        self._open: dict[str, Store] = {}
        self._lock = asyncio.Lock()  # writes, one at a time (each is one transaction)

    # ------------------------------------------------------------------ indexes

    def _name(self, name: str) -> str:
        try:
            return check_dns1123_label(name)
        except ValueError as exc:
            raise LibraryError(422, f"index name {name!r}: {exc}") from None

    def names(self) -> list[str]:
        return self.stores.names()

    def index(self, name: str) -> Store:
        name = self._name(name)
        if name not in self._open:
            if not self.stores.exists(name):
                raise LibraryError(404, f"no index named {name!r} (create it first)")
            try:
                self._open[name] = self.stores.open(name)
            except StoreUnavailableError:
                raise
            except StoreError as exc:
                raise LibraryError(409, str(exc)) from None
        return self._open[name]

    def create(self, name: str) -> Store:
        name = self._name(name)
        if self.stores.exists(name):
            raise LibraryError(409, f"an index named {name!r} exists already")
        self._open[name] = self.stores.create(name)
        return self._open[name]

    async def delete(self, name: str) -> None:
        index = self.index(name)
        async with self._lock:
            index.close()
            del self._open[name]
            await asyncio.to_thread(self.stores.drop, name)

    def summary(self, name: str) -> dict[str, Any]:
        documents, chunks = self.index(name).count()
        return {"name": name, "documents": documents, "chunks": chunks, "model": self.embedder.name}

    # ------------------------------------------------------------------ documents

    def _chunks(self, document: NewDocument, where: str) -> tuple[str, list[Chunk]]:
        kind = kind_of(document.name, document.content_type)
        try:
            blocks: list[Block] = blocks_of(document.data, document.name, kind)
        except DocumentError as exc:
            raise LibraryError(422, f"{where}: {exc}") from None
        text = "\n\n".join(b.text for b in blocks)
        return content_hash(text), chunk(blocks, self.embedder.count, self.budget)

    def _embedded_text(self, piece: Chunk) -> str:
        """What is embedded of a chunk: its heading path, then its text (the path alone
        dropped when both would not fit)."""
        joined = f"{piece.heading}\n{piece.text}" if piece.heading else piece.text
        if self.embedder.count(joined) <= self.embedder.max_tokens:
            return joined
        return piece.text

    async def add(
        self, name: str, documents: list[NewDocument], progress: Progress | None = None
    ) -> list[Added]:
        """Read, cut, embed and store ``documents`` in index ``name``, all or nothing."""
        index = self.index(name)
        if not documents:
            raise LibraryError(422, "documents: give at least one document")
        prepared: list[tuple[StoredDocument, list[Chunk]]] = []
        answers: list[Added | None] = []
        seen: dict[str, str] = {}
        for i, document in enumerate(documents):
            where = f"documents[{i}] ({document.name})"
            metadata = _check_metadata(document.metadata, f"documents[{i}].metadata")
            digest, pieces = await asyncio.to_thread(self._chunks, document, where)
            doc_id = document.id or document.name or digest[:16]
            if not doc_id or len(doc_id) > MAX_ID:
                raise LibraryError(422, f"documents[{i}].id: 1 to {MAX_ID} characters")
            stored = index.same_content(digest)
            if stored == doc_id:
                answers.append(Added(doc_id, index.document(doc_id).chunks, unchanged=True))  # type: ignore[union-attr]
                continue
            duplicate = stored or seen.get(digest)
            if duplicate is not None:
                answers.append(Added(doc_id, 0, duplicate_of=duplicate))
                continue
            seen[digest] = doc_id
            source = document.name
            prepared.append((StoredDocument(doc_id, digest, source, metadata, len(pieces)), pieces))
            answers.append(None)
        texts = [self._embedded_text(p) for _, pieces in prepared for p in pieces]
        vectors = await self._embed(texts, progress)
        entries = []
        start = 0
        for stored_doc, pieces in prepared:
            entries.append((stored_doc, pieces, vectors[start : start + len(pieces)]))
            start += len(pieces)
        if entries:
            async with self._lock:
                await asyncio.to_thread(index.put, entries, time.time())
        added = iter(Added(d.id, d.chunks) for d, _ in prepared)
        return [a if a is not None else next(added) for a in answers]

    async def _embed(self, texts: list[str], progress: Progress | None) -> np.ndarray:
        out: list[list[float]] = []
        for start in range(0, len(texts), EMBED_BATCH):
            out += await self.embedder.embed(texts[start : start + EMBED_BATCH])
            if progress is not None:
                progress(len(out), len(texts))
        if not out:
            return np.zeros((0, self.embedder.dimensions), dtype=np.float32)
        return np.asarray(out, dtype=np.float32)

    async def remove(self, name: str, document_id: str) -> None:
        index = self.index(name)
        async with self._lock:
            if not await asyncio.to_thread(index.delete, document_id):
                raise LibraryError(404, f"index {name!r} has no document {document_id!r}")

    async def query(
        self, name: str, text: str, top_k: int = 5, where: Mapping[str, Any] | None = None
    ) -> list[Hit]:
        index = self.index(name)
        if not text.strip():
            raise LibraryError(422, "query: an empty query")
        if index.count()[1] == 0:
            raise LibraryError(409, f"index {name!r} holds no documents yet: add some first")
        return await search(index, self.embedder, text, top_k, where)

    def close(self) -> None:
        for index in self._open.values():
            index.close()
        self._open.clear()
