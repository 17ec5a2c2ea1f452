"""The Qdrant store's own cases: a write cut short between its two steps never mixes two
versions of a document in an answer (and the next write cleans up), and a server that
cannot be reached is a clear 503 from the service, never a traceback, with nothing
stored lost."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from bosun.rag.qdrant_store import QdrantStores
from bosun.rag.service import RagSettings, build_rag
from bosun.rag.store import StoredDocument, StoreUnavailableError
from tests.rag.stores import DIMENSIONS, MODEL, entry, unit


@pytest.mark.parametrize("cut", ["before the commit", "after the commit"])
def test_a_replacement_cut_short_shows_one_whole_version_and_the_next_write_cleans_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cut: str
) -> None:
    rng = np.random.default_rng(5)
    stores = QdrantStores(str(tmp_path / "qdrant"), DIMENSIONS, MODEL)
    index = stores.create("docs")
    old_doc, old_chunks, old = entry("manual", unit(rng, 4), v=1)
    index.put([(old_doc, old_chunks, old)], added=1.0)
    _, chunks, new = entry("manual", unit(rng, 2))
    new_doc = StoredDocument("manual", "hash-v2", "file://manual", {"v": 2}, 2)

    # The process dies while writing the new version (2 chunks, other content): after its
    # chunks, before the records' upsert; or after it, before the old chunks are removed.
    real_upsert = index.client.upsert
    upserts: list[int] = []

    def upsert(*args: Any, **kwargs: Any) -> Any:
        upserts.append(1)
        if cut == "before the commit" and len(upserts) == 2:
            raise KeyboardInterrupt("killed")
        return real_upsert(*args, **kwargs)

    def remove_stale(*args: Any) -> None:
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(index.client, "upsert", upsert)
    if cut == "after the commit":
        monkeypatch.setattr(index, "_remove_stale", remove_stale)
    with pytest.raises(KeyboardInterrupt):
        index.put([(new_doc, chunks, new)], added=2.0)
    monkeypatch.undo()

    seen, shown = (old_doc, old) if cut == "before the commit" else (new_doc, new)
    assert index.document("manual") == seen and index.count() == (1, seen.chunks)
    for vectors in (old, new):  # both versions' chunks are in Qdrant: one is ever shown
        for vector in vectors:
            for hit in index.search(vector, top_k=10, text="manual chunk"):
                assert hit.metadata == seen.metadata and hit.position < seen.chunks
    assert index.search(shown[-1], top_k=1)[0].score == pytest.approx(1.0, abs=1e-4)

    index.put([entry("other", unit(rng, 1))], added=3.0)
    index.delete("manual")  # a delete takes what was left with the rest
    assert index.count() == (1, 1)
    left = index.client.count(index.collection, exact=True).count
    assert left == 3  # other's chunk and record, and the meta point: nothing of manual
    stores.close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_server_that_cannot_be_reached_is_named() -> None:
    stores = QdrantStores(f"http://127.0.0.1:{closed_port()}", DIMENSIONS, MODEL, timeout=2)
    with pytest.raises(
        StoreUnavailableError, match=r"Qdrant at http://127\.0\.0\.1:\d+ cannot be reached"
    ):
        stores.names()


class WordEmbedder:
    """A few dimensions from a text's letters: enough to store and find text, without a
    model (this test is of the service's errors, not of retrieval)."""

    name, dimensions, max_tokens = MODEL, DIMENSIONS, 256

    def count(self, text: str) -> int:
        return len(text.split())

    async def embed(self, texts: list[str]) -> list[list[float]]:
        out = []
        for text in texts:
            vector = np.zeros(DIMENSIONS, dtype=np.float32)
            for byte in text.encode():
                vector[byte % DIMENSIONS] += 1
            out.append((vector / max(float(np.linalg.norm(vector)), 1e-9)).tolist())
        return out


def test_the_service_answers_503_while_qdrant_is_down_and_keeps_what_it_stored(
    tmp_path: Path,
) -> None:
    port = closed_port()
    down = QdrantStores(f"http://127.0.0.1:{port}", DIMENSIONS, MODEL, timeout=2)
    app = build_rag(RagSettings(tmp_path), WordEmbedder(), stores=down)
    with TestClient(app) as client:
        answer = client.post("/v1/indexes", json={"name": "docs"})
        assert answer.status_code == 503, answer.text
        assert answer.headers["retry-after"]
        message = answer.json()["error"]["message"]
        assert message.startswith(f"the vector store: Qdrant at http://127.0.0.1:{port}")

    up = QdrantStores(str(tmp_path / "qdrant"), DIMENSIONS, MODEL)
    with TestClient(build_rag(RagSettings(tmp_path), WordEmbedder(), stores=up)) as client:
        assert client.post("/v1/indexes", json={"name": "docs"}).status_code == 201
        body = {"documents": [{"text": "Refunds take five days.", "name": "refunds.md"}]}
        assert client.post("/v1/indexes/docs/documents", json=body).status_code == 200
        found = client.post("/v1/indexes/docs/query", json={"query": "refunds"}).json()
        assert found["data"][0]["document"] == "refunds.md"
    up.close()
