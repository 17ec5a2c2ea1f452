"""Indexes of document chunks and their vectors on the engine's own disk (the default
:class:`~bosun.rag.store.Stores`), each surviving a restart and a ``kill -9`` mid-write.

SQLite holds the truth: each document (its id, content hash and metadata) and each chunk
(its text, heading and vector), written in one transaction per change. The approximate
nearest-neighbour graph (usearch's HNSW) is derived from it: saved beside the database
through a temporary file renamed into place, with the database's generation it was
built at. A graph whose generation is not the database's (a process killed between the
two writes) is rebuilt from the vectors at open. So a crash loses at most the change in
flight, never what was stored, and never leaves the two disagreeing.

A query searches the graph for more candidates than it returns, keeps those whose
document matches the metadata filter, and falls back to an exact search over the
matching chunks when a narrow filter leaves too few.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from bosun.rag.store import (
    Entry,
    Hit,
    StoredDocument,
    StoreError,
    Words,
    cosine,
    fuse,
    matches,
    query_words,
)

__all__ = ["GRAPH_META", "LocalStore", "LocalStores"]

GRAPH = "graph.usearch"
GRAPH_META = "graph.json"
DATABASE = "index.db"
OVERSAMPLE = 4  # candidates searched per result wanted, before filtering (and growth)
MAX_POOL = 4096  # past this many candidates, a filter's chunks are scored exactly
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    id TEXT PRIMARY KEY,
    hash TEXT NOT NULL,
    source TEXT NOT NULL,
    metadata TEXT NOT NULL,
    chunks INTEGER NOT NULL,
    added REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS documents_hash ON documents(hash);
CREATE TABLE IF NOT EXISTS chunks (
    key INTEGER PRIMARY KEY AUTOINCREMENT,
    document TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    heading TEXT NOT NULL,
    text TEXT NOT NULL,
    vector BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_document ON chunks(document);
CREATE VIRTUAL TABLE IF NOT EXISTS words USING fts5(heading, text, tokenize='porter unicode61');
"""
COMMON_SHARE = 0.01  # a word in more of the chunks than this does not rank them ...
COMMON_FLOOR = 2000  # ... unless it is in fewer than this many (a small index)
MAX_TERMS = 8  # the rarest words of a query searched for


class LocalStore:
    """One index in ``directory`` (a :class:`~bosun.rag.store.Store`); vectors of
    ``dimensions`` floats, normalized."""

    def __init__(self, directory: Path, dimensions: int, model: str) -> None:
        from usearch.index import Index as Graph

        self.directory, self.dimensions, self.model = directory, dimensions, model
        directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(directory / DATABASE, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(SCHEMA)
        stored = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        if stored and (int(stored["dimensions"]) != dimensions or stored["model"] != model):
            raise StoreError(
                f"index {directory.name} holds {stored['dimensions']}-dimension vectors of "
                f"{stored['model']}, not {dimensions} of {model}: make a new index"
            )
        with self._db:
            for key, value in (("dimensions", str(dimensions)), ("model", model)):
                self._db.execute("INSERT OR IGNORE INTO meta VALUES (?, ?)", (key, value))
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('generation', '0')")
        self._check_words()
        self._graph = Graph(ndim=dimensions, metric="cos", dtype="f32")
        self._load_graph(Graph)

    # ------------------------------------------------------------------ the words

    def _check_words(self) -> None:
        """The full-text index holds every chunk (an index made before it had one gets it)."""
        (words,) = self._db.execute("SELECT COUNT(*) FROM words").fetchone()
        (chunks,) = self._db.execute("SELECT COUNT(*) FROM chunks").fetchone()
        if words == chunks:
            return
        with self._db:
            self._db.execute("DELETE FROM words")
            self._db.execute(
                "INSERT INTO words (rowid, heading, text) SELECT key, heading, text FROM chunks"
            )

    def _lexical(self, text: str, limit: int, where: Mapping[str, Any] | None) -> list[int]:
        """Chunk keys by BM25 over the query's words (any of them), best first, of the
        documents ``where`` chooses."""
        terms = self._telling(query_words(text))
        if not terms:
            return []
        query = " OR ".join(f'"{t}"' for t in terms)
        if not where:  # FTS5 alone: its ORDER BY rank stops at the limit
            rows = self._db.execute(
                "SELECT rowid FROM words WHERE words MATCH ? ORDER BY rank LIMIT ?",
                (query, limit),
            )
            return [int(r[0]) for r in rows]
        chosen, values = _where_sql(where)
        rows = self._db.execute(
            "SELECT w.rowid FROM words w JOIN chunks c ON c.key = w.rowid "
            f"JOIN documents d ON d.id = c.document WHERE words MATCH ? {chosen} "
            "ORDER BY w.rank LIMIT ?",
            (query, *values, limit),
        )
        return [int(r[0]) for r in rows]

    def _telling(self, terms: list[str]) -> list[str]:
        """The query's words that tell chunks apart: those in at most COMMON_SHARE of the
        chunks, or COMMON_FLOOR of them in a small index (the rest match too many to rank
        by, and cost the most to rank), at most MAX_TERMS of them, the rarest first."""
        common = max(COMMON_FLOOR, COMMON_SHARE * len(self._graph))
        counted = []
        for term in terms:
            (found,) = self._db.execute(
                "SELECT COUNT(*) FROM words WHERE words MATCH ?", (f'"{term}"',)
            ).fetchone()
            if 0 < found <= common:
                counted.append((found, term))
        return [term for _, term in sorted(counted)[:MAX_TERMS]]

    # ------------------------------------------------------------------ the graph

    def _generation(self) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
        return int(row[0])

    def _load_graph(self, graph_type: Any) -> None:
        meta = self.directory / GRAPH_META
        try:
            saved = json.loads(meta.read_text(encoding="utf-8"))
            if saved.get("generation") == self._generation():
                self._graph = graph_type.restore(str(self.directory / GRAPH), view=False)
                if self._graph is not None and len(self._graph) == saved.get("size"):
                    return
        except (OSError, ValueError, RuntimeError):
            pass  # missing, unreadable or stale: rebuilt below
        self._graph = graph_type(ndim=self.dimensions, metric="cos", dtype="f32")
        keys, vectors = [], []
        for key, blob in self._db.execute("SELECT key, vector FROM chunks"):
            keys.append(key)
            vectors.append(np.frombuffer(blob, dtype=np.float32))
        if keys:
            self._graph.add(np.array(keys, dtype=np.uint64), np.stack(vectors))
        self._save_graph()

    def _save_graph(self) -> None:
        """The graph and its generation, each through a temporary file renamed into place
        (the graph first: a crash between the two leaves a stale generation, rebuilt)."""
        temporary = self.directory / f".{GRAPH}.tmp"
        self._graph.save(str(temporary))
        temporary.replace(self.directory / GRAPH)
        meta = {"generation": self._generation(), "size": len(self._graph)}
        temporary = self.directory / f".{GRAPH_META}.tmp"
        temporary.write_text(json.dumps(meta), encoding="utf-8")
        temporary.replace(self.directory / GRAPH_META)

    def _bump(self, db: sqlite3.Connection) -> None:
        db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")

    # ------------------------------------------------------------------ documents

    def document(self, document_id: str) -> StoredDocument | None:
        row = self._db.execute(
            "SELECT id, hash, source, metadata, chunks FROM documents WHERE id = ?",
            (document_id,),
        ).fetchone()
        return _document(row) if row else None

    def documents(self, offset: int = 0, limit: int = 100) -> list[StoredDocument]:
        rows = self._db.execute(
            "SELECT id, hash, source, metadata, chunks FROM documents ORDER BY added, rowid "
            "LIMIT ? OFFSET ?",
            (limit, offset),
        )
        return [_document(r) for r in rows]

    def count(self) -> tuple[int, int]:
        """Documents and chunks."""
        documents = self._db.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
        return int(documents), len(self._graph)

    def same_content(self, digest: str) -> str | None:
        """The id of a document with this content hash, if one is stored."""
        row = self._db.execute("SELECT id FROM documents WHERE hash = ?", (digest,)).fetchone()
        return str(row[0]) if row else None

    def put(self, entries: list[Entry], added: float) -> None:
        """Store documents with their chunks and vectors, each replacing one of the same
        id, in one transaction; then the graph follows and is saved."""
        for document, chunks, vectors in entries:
            if not chunks or len(chunks) != len(vectors):
                raise StoreError(f"document {document.id}: no chunks to store")
            if vectors.shape[1] != self.dimensions:
                raise StoreError(f"vectors of {vectors.shape[1]} dimensions, not {self.dimensions}")
        with self._lock:
            old: list[int] = []
            new: list[tuple[list[int], np.ndarray]] = []
            with self._db as db:
                for document, chunks, vectors in entries:
                    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
                    old += self._keys(db, document.id)
                    db.execute("DELETE FROM documents WHERE id = ?", (document.id,))
                    db.execute(
                        "INSERT INTO documents VALUES (?, ?, ?, ?, ?, ?)",
                        (
                            document.id,
                            document.hash,
                            document.source,
                            json.dumps(document.metadata, sort_keys=True),
                            len(chunks),
                            added,
                        ),
                    )
                    keys = [
                        int(
                            db.execute(
                                "INSERT INTO chunks (document, position, heading, text, vector) "
                                "VALUES (?, ?, ?, ?, ?)",
                                (document.id, i, chunk.heading, chunk.text, vector.tobytes()),
                            ).lastrowid
                            or 0
                        )
                        for i, (chunk, vector) in enumerate(zip(chunks, vectors, strict=True))
                    ]
                    db.executemany(
                        "INSERT INTO words (rowid, heading, text) VALUES (?, ?, ?)",
                        [(k, c.heading, c.text) for k, c in zip(keys, chunks, strict=True)],
                    )
                    new.append((keys, vectors))
                self._bump(db)
            for key in old:
                self._graph.remove(key)
            for keys, vectors in new:
                self._graph.add(np.array(keys, dtype=np.uint64), vectors)
            self._save_graph()

    @staticmethod
    def _keys(db: sqlite3.Connection, document_id: str) -> list[int]:
        """A document's chunk keys, its chunks' words removed (the caller's transaction
        removes the chunks)."""
        rows = db.execute("SELECT key FROM chunks WHERE document = ?", (document_id,))
        keys = [int(k) for (k,) in rows]
        db.executemany("DELETE FROM words WHERE rowid = ?", [(k,) for k in keys])
        return keys

    def delete(self, document_id: str) -> bool:
        """Remove a document and its chunks; False if it was not stored."""
        with self._lock:
            with self._db as db:
                old = self._keys(db, document_id)
                gone = db.execute("DELETE FROM documents WHERE id = ?", (document_id,)).rowcount
                self._bump(db)
            for key in old:
                self._graph.remove(key)
            self._save_graph()
        return bool(gone)

    # ------------------------------------------------------------------ search

    def _pool(self, top_k: int, where: Mapping[str, Any] | None, text: str | None) -> int:
        """How many candidates each ranking gives at first: 20 at least, even for the
        vectors alone (the graph is approximate, and a graph that has had many chunks
        removed in place missed a chunk's own vector at k=1 about once in 20 runs of
        tests/rag/test_local_store.py; the nearest of 20 is ranked first)."""
        size = len(self._graph)
        return min(size, max(top_k * OVERSAMPLE, 20) if (where or text) else max(top_k, 20))

    def words(self, text: str, top_k: int, where: Mapping[str, Any] | None = None) -> Words:
        """The BM25 ranking :meth:`search` starts from, and its pool size: computed on its
        own, it can run while the query's vector is being embedded."""
        with self._lock:
            pool = self._pool(top_k, where, text)
            return pool, list(self._lexical(text, pool, where))

    def search(
        self,
        vector: np.ndarray,
        top_k: int,
        where: Mapping[str, Any] | None = None,
        text: str | None = None,
        words: Words | None = None,
    ) -> list[Hit]:
        """The ``top_k`` chunks most relevant to the query whose document matches
        ``where``: the graph's nearest to ``vector``, fused by reciprocal rank with the
        best BM25 matches of ``text``'s words when it is given (``words``: that ranking
        already found by :meth:`words`). Each hit's score is its cosine similarity; the
        order is the fused one."""
        vector = np.asarray(vector, dtype=np.float32)
        with self._lock:
            size = len(self._graph)
            if size == 0:
                return []
            pool = self._pool(top_k, where, text)
            while True:
                dense = [int(k) for k in self._graph.search(vector, pool).keys]
                if not text:
                    lexical: list[int] = []
                elif words is not None and words[0] == pool:
                    lexical = [int(k) for k in words[1]]
                else:
                    lexical = self._lexical(text, pool, where)
                hits = self._hits(fuse((dense, lexical)), vector, where)
                if not where or len(hits) >= top_k or pool >= size:
                    return hits[:top_k]
                if pool >= MAX_POOL:  # a narrow filter: its chunks, scored exactly
                    return self._exact(vector, where)[:top_k]
                pool = min(size, pool * OVERSAMPLE)

    def _rows(self, keys: Iterable[int]) -> dict[int, tuple[Any, ...]]:
        keys = list(keys)
        marks = ",".join("?" * len(keys))
        rows = self._db.execute(
            "SELECT c.key, c.document, c.position, c.heading, c.text, d.source, d.metadata, "
            "c.vector FROM chunks c JOIN documents d ON d.id = c.document "
            f"WHERE c.key IN ({marks})",
            keys,
        )
        return {row[0]: row for row in rows}

    def _hits(
        self, keys: list[int], vector: np.ndarray, where: Mapping[str, Any] | None
    ) -> list[Hit]:
        """Hits for ``keys`` in their order, scored by cosine similarity to ``vector``."""
        rows = self._rows(keys)
        hits = []
        for key in keys:
            row = rows.get(key)
            if row is None:
                continue
            metadata = json.loads(row[6])
            if where and not matches(metadata, where):
                continue
            score = cosine(np.frombuffer(row[7], dtype=np.float32), vector)
            hits.append(Hit(score, row[1], row[2], row[3], row[4], row[5], metadata))
        return hits

    def _exact(self, vector: np.ndarray, where: Mapping[str, Any]) -> list[Hit]:
        """Every chunk of the matching documents, scored exactly (a narrow filter)."""
        chosen, values = _where_sql(where)
        keys, vectors = [], []
        for key, blob in self._db.execute(
            "SELECT c.key, c.vector FROM chunks c JOIN documents d ON d.id = c.document "
            f"WHERE 1 {chosen}",
            values,
        ):
            keys.append(key)
            vectors.append(np.frombuffer(blob, dtype=np.float32))
        if not keys:
            return []
        matrix = np.stack(vectors)
        norms = np.linalg.norm(matrix, axis=1) * max(float(np.linalg.norm(vector)), 1e-12)
        scores = (matrix @ vector) / np.maximum(norms, 1e-12)
        return self._hits([keys[i] for i in np.argsort(-scores)], vector, None)

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _where_sql(where: Mapping[str, Any] | None) -> tuple[str, list[Any]]:
    """``AND ...`` conditions on ``d.metadata`` (SQLite's JSON functions) choosing the
    documents ``where`` matches, and their values; :func:`~bosun.rag.store.matches` has
    the last word (JSON's true and 1 are alike to SQL)."""
    if not where:
        return "", []
    parts, values = [], []
    for key, wanted in where.items():
        path = "$." + json.dumps(str(key))
        options = wanted if isinstance(wanted, list) else [wanted]
        tests = []
        for option in options:
            if option is None:
                tests.append("json_extract(d.metadata, ?) IS NULL")
                values.append(path)
            else:
                tests.append("json_extract(d.metadata, ?) = ?")
                values += [path, option]
        parts.append("(" + " OR ".join(tests or ["0"]) + ")")
    return " AND " + " AND ".join(parts), values


def _document(row: tuple[Any, ...]) -> StoredDocument:
    return StoredDocument(row[0], row[1], row[2], json.loads(row[3]), int(row[4]))


class LocalStores:
    """Indexes as directories under ``root`` (a :class:`~bosun.rag.store.Stores`)."""

    def __init__(self, root: Path, dimensions: int, model: str) -> None:
        self.root, self.dimensions, self.model = root, dimensions, model
        self.where = str(root)
        root.mkdir(parents=True, exist_ok=True)

    def names(self) -> list[str]:
        return sorted(
            p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")
        )

    def exists(self, name: str) -> bool:
        return (self.root / name).is_dir()

    def open(self, name: str) -> LocalStore:
        return LocalStore(self.root / name, self.dimensions, self.model)

    def create(self, name: str) -> LocalStore:
        (self.root / name).mkdir()
        return self.open(name)

    def drop(self, name: str) -> None:
        # Renamed first, so that a crash midway leaves no half-deleted index in use.
        doomed = self.root / f".deleted-{name}-{time.time_ns()}"
        (self.root / name).rename(doomed)
        shutil.rmtree(doomed, ignore_errors=True)

    def close(self) -> None:
        pass  # nothing shared: each index closes its own database
