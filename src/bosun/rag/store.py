"""An index of document chunks and their vectors, on disk, that survives a restart and a
``kill -9`` mid-write.

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
import re
import sqlite3
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Chunk", "Hit", "Index", "StoreError", "StoredDocument"]

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
RRF_K = 60  # reciprocal rank fusion's constant (Cormack, Clarke and Buettcher, 2009)
COMMON_SHARE = 0.01  # a word in more of the chunks than this does not rank them ...
COMMON_FLOOR = 2000  # ... unless it is in fewer than this many (a small index)
MAX_TERMS = 8  # the rarest words of a query searched for
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
    """A request the index refuses: what is wrong, for the caller to show."""


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


def _matches(metadata: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    """Every key of the filter equal; a list in the filter means any of its values."""
    for key, value in wanted.items():
        have = metadata.get(key)
        if isinstance(value, list):
            if have not in value:
                return False
        elif have != value:
            return False
    return True


class Index:
    """One named index in ``directory``; vectors of ``dimensions`` floats, normalized."""

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
        words = {t for t in re.findall(r"\w+", text.lower()) if len(t) > 1}
        terms = self._telling(sorted(words - STOP_WORDS))
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

    def put(
        self, entries: list[tuple[StoredDocument, list[Chunk], np.ndarray]], added: float
    ) -> None:
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
        """How many candidates each ranking gives at first."""
        size = len(self._graph)
        return min(size, max(top_k * OVERSAMPLE, 20) if (where or text) else top_k)

    def words(
        self, text: str, top_k: int, where: Mapping[str, Any] | None = None
    ) -> tuple[int, list[int]]:
        """The BM25 ranking :meth:`search` starts from, and its pool size: computed on its
        own, it can run while the query's vector is being embedded."""
        with self._lock:
            pool = self._pool(top_k, where, text)
            return pool, self._lexical(text, pool, where)

    def search(
        self,
        vector: np.ndarray,
        top_k: int,
        where: Mapping[str, Any] | None = None,
        text: str | None = None,
        words: tuple[int, list[int]] | None = None,
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
                    lexical = []
                elif words is not None and words[0] == pool:
                    lexical = words[1]
                else:
                    lexical = self._lexical(text, pool, where)
                fused: dict[int, float] = {}
                for ranking in (dense, lexical):
                    for rank, key in enumerate(ranking, start=1):
                        fused[key] = fused.get(key, 0.0) + 1.0 / (RRF_K + rank)
                hits = self._hits(sorted(fused, key=lambda k: -fused[k]), vector, where)
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
        norm = max(float(np.linalg.norm(vector)), 1e-12)
        hits = []
        for key in keys:
            row = rows.get(key)
            if row is None:
                continue
            metadata = json.loads(row[6])
            if where and not _matches(metadata, where):
                continue
            stored = np.frombuffer(row[7], dtype=np.float32)
            score = float(stored @ vector) / max(float(np.linalg.norm(stored)) * norm, 1e-12)
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
    documents ``where`` matches, and their values; :func:`_matches` has the last word
    (JSON's true and 1 are alike to SQL)."""
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
