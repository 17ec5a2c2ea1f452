"""What every store behind the seam does alike (bosun.rag.store), checked on each: the
local one (SQLite and usearch) and Qdrant (its client's local mode: the same calls a
server gets, answered in this process). Nearest chunks first, documents replaced and
deleted, metadata filters, word matches fused with the vectors, indexes that reopen as
they were, and an index of another model refused."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from bosun.rag.local_store import LocalStores
from bosun.rag.qdrant_store import QdrantStores
from bosun.rag.store import Chunk, StoredDocument, StoreError, Stores
from tests.rag.stores import DIMENSIONS, MODEL, entry, unit

MakeStores = Callable[..., Stores]


@pytest.fixture(params=["local", "qdrant"])
def make_stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MakeStores]:
    """A factory of the store kind under test, kept in ``tmp_path``: called again, it
    opens what the first one kept (as a restarted engine does)."""
    made: list[Stores] = []

    def make(dimensions: int = DIMENSIONS, model: str = MODEL) -> Stores:
        for earlier in made:  # Qdrant's local mode locks its directory: one client at a time
            earlier.close()
        made.clear()
        if request.param == "local":
            stores: Stores = LocalStores(tmp_path / "indexes", dimensions, model)
        else:
            stores = QdrantStores(str(tmp_path / "qdrant"), dimensions, model, prefix="engine-")
        made.append(stores)
        return stores

    yield make
    for stores in made:
        stores.close()


def test_the_nearest_chunks_come_first_and_documents_are_replaced_and_deleted(
    make_stores: MakeStores,
) -> None:
    rng = np.random.default_rng(0)
    index = make_stores().create("docs")
    vectors = {f"doc{i}": unit(rng, 3) for i in range(20)}
    index.put([entry(d, v, team="a") for d, v in vectors.items()], added=1.0)
    assert index.count() == (20, 60)
    hits = index.search(vectors["doc7"][1], top_k=3)
    assert (hits[0].document, hits[0].position, hits[0].text) == ("doc7", 1, "doc7 chunk 1")
    assert hits[0].score == pytest.approx(1.0, abs=1e-4)
    assert hits[0].heading == "doc7 > part 1" and hits[0].metadata == {"team": "a"}
    assert hits[0].source == "file://doc7"
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
    assert [d.id for d in index.documents(offset=17)] == ["doc19", "doc7"]  # replaced last
    index.close()


def test_a_filter_keeps_only_matching_documents_even_when_they_are_far(
    make_stores: MakeStores,
) -> None:
    rng = np.random.default_rng(1)
    index = make_stores().create("docs")
    many = [entry(f"a{i}", unit(rng, 2), team="a") for i in range(300)]
    few = [entry(f"b{i}", unit(rng, 1), team="b", year=2026, final=True) for i in range(2)]
    index.put(many + few, added=1.0)
    query = many[0][2][0]  # right on top of a team-a chunk
    hits = index.search(query, top_k=5, where={"team": "b"})
    assert sorted(h.document for h in hits) == ["b0", "b1"]  # all there are
    assert len(index.search(query, top_k=5, where={"team": ["b", "c"], "year": 2026})) == 2
    assert len(index.search(query, top_k=5, where={"final": True, "year": 2026.0})) == 2
    assert index.search(query, top_k=5, where={"team": "nobody"}) == []
    assert index.search(query, top_k=5, where={"team": []}) == []
    assert index.search(query, top_k=5, where={"final": None}, text="a0 chunk")[0].document == "a0"
    assert index.search(query, top_k=1, where={"team": "a"})[0].document == "a0"
    index.close()


def test_a_rare_word_of_the_query_finds_its_chunk_beside_the_nearest_vectors(
    make_stores: MakeStores,
) -> None:
    rng = np.random.default_rng(3)
    index = make_stores().create("docs")
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
    words = index.words("what does xq-77 mean?", 5)  # computed ahead, as a query does
    assert index.search(query, 5, text="what does xq-77 mean?", words=words) == hits
    index.delete("errors")
    assert "errors" not in {h.document for h in index.search(query, 5, text="xq-77")}
    index.close()


def test_indexes_are_listed_reopened_as_they_were_and_dropped(make_stores: MakeStores) -> None:
    rng = np.random.default_rng(2)
    stores = make_stores()
    assert stores.names() == [] and not stores.exists("docs")
    index = stores.create("docs")
    stores.create("notes").close()
    index.put([entry(f"d{i}", unit(rng, 4)) for i in range(10)], added=1.0)
    query = unit(rng, 1)[0]
    before = index.search(query, 5)
    index.close()

    again = make_stores()  # a restart
    assert again.names() == ["docs", "notes"] and again.exists("docs")
    reopened = again.open("docs")
    after = reopened.search(query, 5)  # the same hits (scores to float32's precision)
    assert [(h.document, h.position, h.text) for h in after] == [
        (h.document, h.position, h.text) for h in before
    ]
    assert [h.score for h in after] == pytest.approx([h.score for h in before], abs=1e-6)
    assert reopened.count() == (10, 40)
    reopened.close()
    again.drop("notes")
    assert again.names() == ["docs"]

    other = make_stores(384, "all-minilm-l6-v2")
    with pytest.raises(StoreError, match="holds 16-dimension vectors of test-model"):
        other.open("docs")
