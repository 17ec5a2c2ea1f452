"""The chunk index on disk: nearest chunks first, documents replaced and deleted, metadata
filters (a narrow one searched exactly), and what survives a restart, a stale graph and
a `kill -9` in the middle of writing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bosun.rag.store import GRAPH_META, Chunk, Index, StoredDocument, StoreError

DIMENSIONS = 16
MODEL = "test-model"


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    vectors = rng.standard_normal((n, DIMENSIONS)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def entry(
    doc: str, vectors: np.ndarray, **metadata: object
) -> tuple[StoredDocument, list[Chunk], np.ndarray]:
    chunks = [Chunk(f"{doc} > part {i}", f"{doc} chunk {i}") for i in range(len(vectors))]
    return (
        StoredDocument(doc, f"hash-{doc}", f"file://{doc}", dict(metadata), len(chunks)),
        chunks,
        vectors,
    )


def test_the_nearest_chunks_come_first_and_documents_are_replaced_and_deleted(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(0)
    index = Index(tmp_path / "docs", DIMENSIONS, MODEL)
    vectors = {f"doc{i}": unit(rng, 3) for i in range(20)}
    index.put([entry(d, v, team="a") for d, v in vectors.items()], added=1.0)
    assert index.count() == (20, 60)
    hits = index.search(vectors["doc7"][1], top_k=3)
    assert (hits[0].document, hits[0].position, hits[0].text) == ("doc7", 1, "doc7 chunk 1")
    assert hits[0].score == pytest.approx(1.0, abs=1e-4)
    assert hits[0].heading == "doc7 > part 1" and hits[0].metadata == {"team": "a"}
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)

    index.put([entry("doc7", unit(rng, 2), team="b")], added=2.0)  # replaced: 2 new chunks
    assert index.count() == (20, 59)
    assert all(h.document != "doc7" or h.position < 2 for h in index.search(vectors["doc7"][2], 5))
    assert index.document("doc7") == StoredDocument(
        "doc7", "hash-doc7", "file://doc7", {"team": "b"}, 2
    )
    assert index.delete("doc3") and not index.delete("doc3")
    assert index.count() == (19, 56)
    assert "doc3" not in {h.document for h in index.search(vectors["doc3"][0], 10)}
    assert index.same_content("hash-doc5") == "doc5" and index.same_content("nope") is None
    assert [d.id for d in index.documents(limit=3)] == ["doc0", "doc1", "doc2"]
    index.close()


def test_a_filter_keeps_only_matching_documents_even_when_they_are_far(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    index = Index(tmp_path / "docs", DIMENSIONS, MODEL)
    many = [entry(f"a{i}", unit(rng, 2), team="a") for i in range(300)]
    few = [entry(f"b{i}", unit(rng, 1), team="b", year=2026) for i in range(2)]
    index.put(many + few, added=1.0)
    query = many[0][2][0]  # right on top of a team-a chunk
    hits = index.search(query, top_k=5, where={"team": "b"})
    assert sorted(h.document for h in hits) == ["b0", "b1"]  # all there are, searched exactly
    assert index.search(query, top_k=5, where={"team": ["b", "c"], "year": 2026})
    assert index.search(query, top_k=5, where={"team": "nobody"}) == []
    assert index.search(query, top_k=1, where={"team": "a"})[0].document == "a0"
    index.close()


def test_an_index_reopens_as_it_was_and_a_stale_graph_is_rebuilt(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    index = Index(tmp_path / "docs", DIMENSIONS, MODEL)
    index.put([entry(f"d{i}", unit(rng, 4)) for i in range(10)], added=1.0)
    query = unit(rng, 1)[0]
    before = index.search(query, 5)
    index.close()
    again = Index(tmp_path / "docs", DIMENSIONS, MODEL)
    assert again.search(query, 5) == before and again.count() == (10, 40)
    again.close()
    meta = tmp_path / "docs" / GRAPH_META
    meta.write_text(json.dumps({"generation": -1, "size": 0}), encoding="utf-8")
    rebuilt = Index(tmp_path / "docs", DIMENSIONS, MODEL)
    assert rebuilt.search(query, 5) == before
    rebuilt.close()
    with pytest.raises(StoreError, match="holds 16-dimension vectors of test-model"):
        Index(tmp_path / "docs", 384, "all-minilm-l6-v2")


WRITER = """
import sys, numpy as np
from bosun.rag.store import Chunk, Index, StoredDocument
index = Index(__import__("pathlib").Path(sys.argv[1]), 16, "test-model")
rng = np.random.default_rng(int(sys.argv[2]))
print("ready", flush=True)
for n in range(100000):
    vectors = rng.standard_normal((5, 16)).astype(np.float32)
    doc = f"w{n % 40}"  # replaces as often as it adds
    chunks = [Chunk("", f"{doc}/{i}") for i in range(5)]
    index.put([(StoredDocument(doc, str(n), "x", {"n": n}, 5), chunks, vectors)], added=n)
    if n % 7 == 3:
        index.delete(f"w{(n * 3) % 40}")
"""


@pytest.mark.parametrize("seconds", [0.3, 0.9, 1.7])
def test_a_kill_9_mid_write_loses_nothing_stored_and_leaves_it_consistent(
    tmp_path: Path, seconds: float
) -> None:
    where = tmp_path / "docs"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(where), str(int(seconds * 10))],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert writer.stdout is not None and writer.stdout.readline().strip() == b"ready"
    time.sleep(seconds)
    writer.send_signal(signal.SIGKILL)
    writer.wait(30)
    writer.stdout.close()
    index = Index(where, DIMENSIONS, MODEL)
    documents, chunks = index.count()
    stored = index.documents(limit=1000)
    assert documents == len(stored) > 0
    assert chunks == sum(d.chunks for d in stored) == 5 * documents  # graph == database
    for document in stored:  # every stored chunk is found by its own vector
        hits = index.search(_vector_of(index, document.id), top_k=1)
        assert hits[0].document == document.id and hits[0].score == pytest.approx(1.0, abs=1e-4)
    index.close()


def _vector_of(index: Index, document: str) -> np.ndarray:
    row = index._db.execute(
        "SELECT vector FROM chunks WHERE document = ? ORDER BY position", (document,)
    ).fetchone()
    return np.frombuffer(row[0], dtype=np.float32)


def test_a_rare_word_of_the_query_finds_its_chunk_beside_the_nearest_vectors(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(3)
    index = Index(tmp_path / "docs", DIMENSIONS, MODEL)
    entries = [entry(f"d{i}", unit(rng, 2)) for i in range(100)]
    rare = StoredDocument("errors", "hash-errors", "errors.md", {}, 1)
    entries.append((rare, [Chunk("Errors", "Error XQ-77 means the disk is full.")], unit(rng, 1)))
    index.put(entries, added=1.0)
    query = unit(rng, 1)[0]  # a vector near none in particular
    assert "errors" not in {h.document for h in index.search(query, 5)}  # by vector alone
    hits = index.search(query, 5, text="what does xq-77 mean?")
    # Ranked first by its words as the nearest vector is by its own: the two lead.
    assert "errors" in {h.document for h in hits[:2]}
    assert all(-1 <= h.score <= 1 for h in hits)
    index.delete("errors")
    assert "errors" not in {h.document for h in index.search(query, 5, text="xq-77")}
    index.close()
