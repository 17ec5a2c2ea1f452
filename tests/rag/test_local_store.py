"""The local store (SQLite and usearch's graph, on disk): what survives a restart, a
stale graph and a `kill -9` in the middle of writing. What every store does alike is
tests/rag/test_stores.py's."""

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

from bosun.rag.local_store import GRAPH_META, LocalStore
from bosun.rag.store import StoreError
from tests.rag.stores import DIMENSIONS, MODEL, entry, unit


def test_an_index_reopens_as_it_was_and_a_stale_graph_is_rebuilt(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    index = LocalStore(tmp_path / "docs", DIMENSIONS, MODEL)
    index.put([entry(f"d{i}", unit(rng, 4)) for i in range(10)], added=1.0)
    query = unit(rng, 1)[0]
    before = index.search(query, 5)
    index.close()
    again = LocalStore(tmp_path / "docs", DIMENSIONS, MODEL)
    assert again.search(query, 5) == before and again.count() == (10, 40)
    again.close()
    meta = tmp_path / "docs" / GRAPH_META
    meta.write_text(json.dumps({"generation": -1, "size": 0}), encoding="utf-8")
    rebuilt = LocalStore(tmp_path / "docs", DIMENSIONS, MODEL)
    assert rebuilt.search(query, 5) == before
    rebuilt.close()
    with pytest.raises(StoreError, match="holds 16-dimension vectors of test-model"):
        LocalStore(tmp_path / "docs", 384, "all-minilm-l6-v2")


WRITER = """
import sys, numpy as np
from bosun.rag.local_store import LocalStore
from bosun.rag.store import Chunk, StoredDocument
index = LocalStore(__import__("pathlib").Path(sys.argv[1]), 16, "test-model")
rng = np.random.default_rng(int(sys.argv[2]))
for n in range(100000):
    if n == 1:  # one change committed: the kill may land anywhere after it
        print("ready", flush=True)
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
    index = LocalStore(where, DIMENSIONS, MODEL)
    documents, chunks = index.count()
    stored = index.documents(limit=1000)
    assert documents == len(stored) > 0
    assert chunks == sum(d.chunks for d in stored) == 5 * documents  # graph == database
    for document in stored:  # every stored chunk is found by its own vector
        hits = index.search(_vector_of(index, document.id), top_k=1)
        assert hits[0].document == document.id and hits[0].score == pytest.approx(1.0, abs=1e-4)
    index.close()


def _vector_of(index: LocalStore, document: str) -> np.ndarray:
    row = index._db.execute(
        "SELECT vector FROM chunks WHERE document = ? ORDER BY position", (document,)
    ).fetchone()
    return np.frombuffer(row[0], dtype=np.float32)
