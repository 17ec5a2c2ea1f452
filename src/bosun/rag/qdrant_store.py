"""Indexes in Qdrant (a :class:`~bosun.rag.store.Stores`): one collection per index, for a
cluster whose indexes outgrow one engine's volume, or that runs Qdrant already.

Through the official client (``qdrant-client``): a server by URL (``--qdrant-url``), or its
local mode (a directory, or memory) where no server runs, which the tests use.

Each collection ``{prefix}{index}`` holds three kinds of points, told apart by the payload's
``kind``:

- ``chunk``: a dense vector (``dense``, cosine) and a sparse one of its words (``words``,
  with Qdrant's IDF modifier: BM25's weighting, computed by Qdrant at query time), and the
  chunk's text, heading, source, metadata and its document's id and content hash;
- ``document``: no vector; id, content hash, source, metadata, chunk count, when added;
- ``meta``: the model and dimensions the collection's vectors are of.

A chunk's point id is derived from its document's id, content hash and position; a
record's from the document's id. A change is written in three steps: the new versions'
chunks (new points, beside the old ones), then all the records in one upsert, which is
the commit, then the old versions' chunks are deleted. A reader keeps a chunk only when
its document's record has the chunk's content hash and counts past its position, and
counts are read from the records. So a change cut short (a crash, a lost connection)
shows either the old versions or the new ones, never a mix and never a document half
there; what it left behind is removed by the next write of that document.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

from bosun.rag.store import (
    Entry,
    Hit,
    StoredDocument,
    StoreError,
    StoreUnavailableError,
    Words,
    cosine,
    fuse,
    query_words,
)

if TYPE_CHECKING:
    from qdrant_client import QdrantClient
    from qdrant_client.http import models as qm

__all__ = ["QdrantStore", "QdrantStores"]

DENSE = "dense"
WORDS = "words"
NAMESPACE = uuid.UUID("6f0c8a52-8a4e-4f44-9d0e-3f3c2b1a9e77")  # of Bosun's point ids
META_ID = str(uuid.uuid5(NAMESPACE, "meta"))
OVERSAMPLE = 4  # candidates per result wanted when words are fused in
SCROLL = 256  # points per page when listing
UPSERT_BATCH = 512  # chunks per upsert: a request well under a server's 32 MiB limit
BM25_K1 = 1.2


def _point_id(document: str, digest: str | None = None, position: int = 0) -> str:
    """The id of a document's record (no ``digest``), or of chunk ``position`` of its
    version ``digest``."""
    part = "document" if digest is None else f"{digest}\x00{position}"
    return str(uuid.uuid5(NAMESPACE, f"{document}\x00{part}"))


def _word_index(word: str) -> int:
    """A word's dimension in the sparse vectors: a stable 32-bit hash."""
    return int.from_bytes(hashlib.blake2b(word.encode("utf-8"), digest_size=4).digest(), "big")


def _sparse(text: str, counts: bool) -> qm.SparseVector:
    """The words of ``text`` as a sparse vector: a chunk's weighted by how often each
    occurs, saturating as BM25's term frequency does (k1 = 1.2; Qdrant multiplies in the
    IDF), a query's each one. Two words that hash alike (rare in 2^32) add up."""
    from qdrant_client.http import models as qm

    words = Counter(query_words(text, each_once=False)) if counts else Counter(query_words(text))
    weights: dict[int, float] = {}
    for word, n in words.items():
        index = _word_index(word)
        weight = n * (BM25_K1 + 1) / (n + BM25_K1) if counts else 1.0
        weights[index] = weights.get(index, 0.0) + weight
    return qm.SparseVector(indices=list(weights), values=list(weights.values()))


@contextmanager
def _reached(where: str) -> Iterator[None]:
    """Qdrant's client errors as :class:`StoreUnavailableError` (a server down, a refused key,
    a time-out), naming the server."""
    from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

    try:
        yield
    except UnexpectedResponse as exc:
        raise StoreUnavailableError(
            f"{where} answered {exc.status_code}: {exc.reason_phrase}"
        ) from None
    except (ResponseHandlingException, ConnectionError, TimeoutError, OSError) as exc:
        raise StoreUnavailableError(f"{where} cannot be reached: {exc}") from None


def _impossible(where: Mapping[str, Any] | None) -> bool:
    """A filter no document matches: a key whose list of values is empty."""
    return any(isinstance(v, list) and not v for v in (where or {}).values())


def _filter(where: Mapping[str, Any] | None, *, kind: str = "chunk") -> qm.Filter:
    """Points of ``kind`` whose metadata matches ``where`` (:func:`~bosun.rag.store.matches`:
    each key equal; a list: any of its values; see :func:`_impossible` for an empty list)."""
    from qdrant_client.http import models as qm

    must: list[Any] = [qm.FieldCondition(key="kind", match=qm.MatchValue(value=kind))]
    for key, wanted in (where or {}).items():
        field = f"metadata.{key}"
        options = wanted if isinstance(wanted, list) else [wanted]
        alternatives: list[Any] = []
        for option in options:
            if option is None:  # missing or null, as metadata.get(key) is None
                alternatives.append(qm.IsEmptyCondition(is_empty=qm.PayloadField(key=field)))
            elif isinstance(option, float) and not option.is_integer():
                alternatives.append(
                    qm.FieldCondition(key=field, range=qm.Range(gte=option, lte=option))
                )
            else:
                value = int(option) if isinstance(option, float) else option
                alternatives.append(qm.FieldCondition(key=field, match=qm.MatchValue(value=value)))
        if alternatives:
            must.append(qm.Filter(should=alternatives))
    return qm.Filter(must=must)


class QdrantStore:
    """One index: a Qdrant collection (a :class:`~bosun.rag.store.Store`)."""

    def __init__(self, client: QdrantClient, collection: str, where: str) -> None:
        self.client, self.collection, self.where = client, collection, where
        self._lock = threading.RLock()  # writes, one at a time

    # ------------------------------------------------------------------ documents

    def _record(self, payload: Mapping[str, Any]) -> StoredDocument:
        return StoredDocument(
            str(payload["document"]),
            str(payload["hash"]),
            str(payload["source"]),
            dict(payload.get("metadata") or {}),
            int(payload["chunks"]),
        )

    def _records(self, documents: set[str]) -> dict[str, StoredDocument]:
        with _reached(self.where):
            points = self.client.retrieve(
                self.collection, [_point_id(d) for d in documents], with_payload=True
            )
        return {str(p.payload["document"]): self._record(p.payload) for p in points if p.payload}

    def document(self, document_id: str) -> StoredDocument | None:
        return self._records({document_id}).get(document_id)

    def documents(self, offset: int = 0, limit: int = 100) -> list[StoredDocument]:
        """In the order they were added: every record is read (documents, not chunks:
        a few thousand pages of 256 at most)."""
        payloads = sorted(
            self._scroll(_filter(None, kind="document")),
            key=lambda p: (float(p["added"]), int(p.get("order", 0))),
        )
        return [self._record(p) for p in payloads[offset : offset + limit]]

    def _scroll(self, selector: qm.Filter) -> Iterator[dict[str, Any]]:
        """The payloads of every point ``selector`` chooses, page by page."""
        page: Any = None
        while True:
            with _reached(self.where):
                points, page = self.client.scroll(
                    self.collection, selector, limit=SCROLL, offset=page, with_payload=True
                )
            yield from (dict(p.payload or {}) for p in points)
            if page is None:
                return

    def _meta(self) -> dict[str, Any]:
        with _reached(self.where):
            found = self.client.retrieve(self.collection, [META_ID], with_payload=True)
        return dict(found[0].payload or {}) if found else {}

    def count(self) -> tuple[int, int]:
        """From the totals the commits keep (see the module's notes)."""
        meta = self._meta()
        return int(meta.get("documents", 0)), int(meta.get("chunks", 0))

    def _totals(self, meta: dict[str, Any], documents: int, chunks: int) -> qm.PointStruct:
        """The meta point with its totals moved by ``documents`` and ``chunks``."""
        from qdrant_client.http import models as qm

        meta = {
            **meta,
            "documents": int(meta.get("documents", 0)) + documents,
            "chunks": int(meta.get("chunks", 0)) + chunks,
        }
        return qm.PointStruct(id=META_ID, vector={}, payload=meta)

    def same_content(self, digest: str) -> str | None:
        from qdrant_client.http import models as qm

        selector = _filter(None, kind="document")
        selector.must.append(qm.FieldCondition(key="hash", match=qm.MatchValue(value=digest)))  # type: ignore[union-attr]
        with _reached(self.where):
            points, _ = self.client.scroll(self.collection, selector, limit=1, with_payload=True)
        return str(points[0].payload["document"]) if points and points[0].payload else None

    def put(self, entries: list[Entry], added: float) -> None:
        """The new versions' chunks (new points: their ids hold the content hash), then
        every document's record in one upsert (the commit: readers see the new versions
        from here), then what is left of the old versions (see the module's notes)."""
        from qdrant_client.http import models as qm

        for document, chunks, vectors in entries:
            if not chunks or len(chunks) != len(vectors):
                raise StoreError(f"document {document.id}: no chunks to store")
        points = [
            qm.PointStruct(
                id=_point_id(document.id, document.hash, i),
                vector={
                    DENSE: np.asarray(vector, dtype=np.float32).tolist(),
                    WORDS: _sparse(f"{chunk.heading}\n{chunk.text}", counts=True),
                },
                payload={
                    "kind": "chunk",
                    "document": document.id,
                    "hash": document.hash,
                    "position": i,
                    "heading": chunk.heading,
                    "text": chunk.text,
                    "source": document.source,
                    "metadata": document.metadata,
                },
            )
            for document, chunks, vectors in entries
            for i, (chunk, vector) in enumerate(zip(chunks, vectors, strict=True))
        ]
        records = [
            qm.PointStruct(
                id=_point_id(document.id),
                vector={},
                payload={
                    "kind": "document",
                    "document": document.id,
                    "hash": document.hash,
                    "source": document.source,
                    "metadata": document.metadata,
                    "chunks": len(chunks),
                    "added": added,
                    "order": order,  # within one put: the order they were given
                },
            )
            for order, (document, chunks, _) in enumerate(entries)
        ]
        with self._lock:
            old = self._records({document.id for document, _, _ in entries})
            totals = self._totals(
                self._meta(),
                len(entries) - len(old),
                len(points) - sum(record.chunks for record in old.values()),
            )
            for start in range(0, len(points), UPSERT_BATCH):
                with _reached(self.where):
                    self.client.upsert(
                        self.collection, points[start : start + UPSERT_BATCH], wait=True
                    )
            with _reached(self.where):  # the commit
                self.client.upsert(self.collection, [*records, totals], wait=True)
            for document, chunks, _ in entries:
                self._remove_stale(document.id, document.hash, len(chunks))

    def _remove_stale(self, document_id: str, digest: str | None, chunks: int) -> None:
        """The chunks of ``document_id`` that are not of its version ``digest`` (all of
        them when None), or lie past its ``chunks``."""
        from qdrant_client.http import models as qm

        mine = [
            qm.FieldCondition(key="kind", match=qm.MatchValue(value="chunk")),
            qm.FieldCondition(key="document", match=qm.MatchValue(value=document_id)),
        ]
        stale: list[Any] = [qm.FieldCondition(key="position", range=qm.Range(gte=chunks))]
        if digest is not None:
            stale.append(
                qm.Filter(
                    must_not=[qm.FieldCondition(key="hash", match=qm.MatchValue(value=digest))]
                )
            )
        selector = qm.FilterSelector(filter=qm.Filter(must=mine, should=stale))
        with _reached(self.where):
            self.client.delete(self.collection, selector, wait=True)

    def delete(self, document_id: str) -> bool:
        """The record and the totals in one request (its chunks leave every answer at
        once), then the chunks."""
        from qdrant_client.http import models as qm

        with self._lock:
            stored = self.document(document_id)
            if stored is None:
                return False
            totals = self._totals(self._meta(), -1, -stored.chunks)
            commit: list[Any] = [
                qm.DeleteOperation(delete=qm.PointIdsList(points=[_point_id(document_id)])),
                qm.UpsertOperation(upsert=qm.PointsList(points=[totals])),
            ]
            with _reached(self.where):
                self.client.batch_update_points(self.collection, commit, wait=True)
            self._remove_stale(document_id, None, 0)
        return True

    # ------------------------------------------------------------------ search

    def words(self, text: str, top_k: int, where: Mapping[str, Any] | None = None) -> Words:
        pool = max(top_k * OVERSAMPLE, 20)
        return pool, self._lexical(text, pool, where)

    def _lexical(self, text: str, pool: int, where: Mapping[str, Any] | None) -> list[int | str]:
        query = _sparse(text, counts=False)
        if not query.indices or _impossible(where):
            return []
        with _reached(self.where):
            found = self.client.query_points(
                self.collection, query=query, using=WORDS, query_filter=_filter(where), limit=pool
            ).points
        return [str(p.id) for p in found]

    def search(
        self,
        vector: np.ndarray,
        top_k: int,
        where: Mapping[str, Any] | None = None,
        text: str | None = None,
        words: Words | None = None,
    ) -> list[Hit]:
        """Qdrant filters while it searches, so one pass finds ``top_k`` that match."""
        vector = np.asarray(vector, dtype=np.float32)
        if _impossible(where):
            return []
        pool = max(top_k * OVERSAMPLE, 20) if text else top_k
        with _reached(self.where):
            dense = self.client.query_points(
                self.collection,
                query=vector.tolist(),
                using=DENSE,
                query_filter=_filter(where),
                limit=pool,
            ).points
        lexical: list[int | str] = []
        if text:
            lexical = (
                words[1]
                if words is not None and words[0] == pool
                else self._lexical(text, pool, where)
            )
        order = fuse(([str(p.id) for p in dense], lexical))
        with _reached(self.where):
            points = self.client.retrieve(
                self.collection, order, with_payload=True, with_vectors=[DENSE]
            )
        by_id = {str(p.id): p for p in points}
        found = [by_id[i] for i in order if i in by_id and by_id[i].payload]
        records = self._records({str(p.payload["document"]) for p in found})  # type: ignore[index]
        hits = []
        for point in found:
            payload: dict[str, Any] = dict(point.payload or {})
            record = records.get(str(payload["document"]))
            if (
                record is None
                or record.hash != payload["hash"]
                or payload["position"] >= record.chunks
            ):
                continue  # a version cut short (see the module's notes)
            stored = np.asarray(
                point.vector[DENSE] if isinstance(point.vector, dict) else [], np.float32
            )
            hits.append(
                Hit(
                    cosine(stored, vector) if stored.size else 0.0,
                    record.id,
                    int(payload["position"]),
                    str(payload["heading"]),
                    str(payload["text"]),
                    str(payload["source"]),
                    dict(payload.get("metadata") or {}),
                )
            )
        return hits[:top_k]

    def close(self) -> None:
        pass  # the client is the Stores', shared by its indexes


class QdrantStores:
    """Indexes as collections ``{prefix}{name}`` of one Qdrant (a
    :class:`~bosun.rag.store.Stores`). ``location``: a server's URL, ``:memory:``, or a
    directory for Qdrant's local mode."""

    def __init__(
        self,
        location: str,
        dimensions: int,
        model: str,
        *,
        prefix: str = "",
        api_key: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        from qdrant_client import QdrantClient

        self.dimensions, self.model, self.prefix = dimensions, model, prefix
        self.server = location.startswith(("http://", "https://"))
        if location.startswith(("http://", "https://")):
            self.where = f"Qdrant at {location}"
            # No version check at start: the engine may start before the server does (a
            # check then only warns); every request's failure names the server instead.
            self.client = QdrantClient(
                url=location, api_key=api_key, timeout=int(timeout), check_compatibility=False
            )
        elif location == ":memory:":
            self.where = "Qdrant (in memory)"
            self.client = QdrantClient(location=":memory:")
        else:
            self.where = f"Qdrant (local mode, {location})"
            self.client = QdrantClient(path=location)

    def _collection(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def names(self) -> list[str]:
        with _reached(self.where):
            collections = self.client.get_collections().collections
        return sorted(
            c.name.removeprefix(self.prefix) for c in collections if c.name.startswith(self.prefix)
        )

    def exists(self, name: str) -> bool:
        with _reached(self.where):
            return bool(self.client.collection_exists(self._collection(name)))

    def open(self, name: str) -> QdrantStore:
        store = QdrantStore(self.client, self._collection(name), self.where)
        stored = store._meta()
        if stored.get("dimensions") != self.dimensions or stored.get("model") != self.model:
            raise StoreError(
                f"index {name} holds {stored.get('dimensions')}-dimension vectors of "
                f"{stored.get('model')}, not {self.dimensions} of {self.model}: make a new index"
            )
        return store

    def create(self, name: str) -> QdrantStore:
        from qdrant_client.http import models as qm

        collection = self._collection(name)
        with _reached(self.where):
            self.client.create_collection(
                collection,
                vectors_config={
                    DENSE: qm.VectorParams(size=self.dimensions, distance=qm.Distance.COSINE)
                },
                sparse_vectors_config={WORDS: qm.SparseVectorParams(modifier=qm.Modifier.IDF)},
            )
            for field, schema in (
                ()
                if not self.server
                else (
                    ("kind", qm.PayloadSchemaType.KEYWORD),
                    ("document", qm.PayloadSchemaType.KEYWORD),
                    ("hash", qm.PayloadSchemaType.KEYWORD),
                    ("position", qm.PayloadSchemaType.INTEGER),
                )
            ):  # a server's indexes for the filters every read has (local mode has none)
                self.client.create_payload_index(collection, field, schema)
            meta = {"kind": "meta", "model": self.model, "dimensions": self.dimensions}
            self.client.upsert(
                collection, [qm.PointStruct(id=META_ID, vector={}, payload=meta)], wait=True
            )
        return QdrantStore(self.client, collection, self.where)

    def drop(self, name: str) -> None:
        with _reached(self.where):
            self.client.delete_collection(self._collection(name))

    def close(self) -> None:
        self.client.close()
