"""The RAG engine's benchmark (docs/rag.md): retrieval quality on this project's own
documentation, indexing throughput, and query latency at 100k chunks.

**Quality.** README.md and docs/*.md are indexed as `bosun rag` indexes them (chunked
by headings, embedded by all-MiniLM-L6-v2). Each question of
``benchmarks/data/rag_questions.json`` names the document and a phrase of the passage
that answers it; a retrieved chunk is relevant when it is from that document and holds
that phrase. Reported: recall@5 (a relevant chunk among the first 5) and MRR (the mean of
1/rank of the first relevant chunk, 0 past 10). Target: recall@5 at least 0.9.

The same questions are asked of the same documents kept in Qdrant (its client's local
mode, in memory: the calls a server gets, answered in this process), which must rank them
as well (``quality_qdrant``; its speed is not the server's and is not reported).

**Indexing.** Chunks/s of that indexing: reading, chunking, embedding and storing.

**Latency at 100k chunks.** 100,000 chunks whose vectors are drawn around 2,000 topic
centres (embedding 100k real chunks would take this machine 15 minutes; the graph does
not care where vectors come from), stored through the same index; 1,000 queries. Reported:
the search alone (the graph and BM25 over the query's words, fused), the whole query as
the service answers it (the words ranked while the vector is embedded, then the graph and
the fusion) against the same run's baseline of embedding then searching one after the
other, p50 and p99, and a search filtered to a seventh of the documents. Target: p50
under 20 ms on 2 CPU cores.

    python benchmarks/rag_bench.py --json benchmarks/results/rag.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from machine import cpu_flags, cpu_name  # noqa: E402  (benchmarks/machine.py)

from bosun.rag.embedding import EngineEmbedder  # noqa: E402
from bosun.rag.library import Library, NewDocument  # noqa: E402
from bosun.rag.library import search as hybrid_search  # noqa: E402
from bosun.rag.local_store import LocalStore, LocalStores  # noqa: E402
from bosun.rag.qdrant_store import QdrantStores  # noqa: E402
from bosun.rag.store import Chunk, StoredDocument, Stores  # noqa: E402

QUESTIONS = ROOT / "benchmarks" / "data" / "rag_questions.json"
# The synthetic chunks' words: this project's own vocabulary (common words included).
WORDS = sorted(set((ROOT / "README.md").read_text(encoding="utf-8").lower().split()))


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def quality(embedder: EngineEmbedder, stores: Stores, budget: int | None) -> dict[str, Any]:
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    library = Library(stores, embedder, budget)
    library.create("docs")
    documents = [
        NewDocument(f.read_bytes(), str(f.relative_to(ROOT)), id=str(f.relative_to(ROOT)))
        for f in files
    ]
    began = time.perf_counter()
    added = await library.add("docs", documents)
    seconds = time.perf_counter() - began
    chunks = sum(a.chunks for a in added)
    questions = json.loads(QUESTIONS.read_text(encoding="utf-8"))
    ranks: list[int | None] = []
    misses = []
    for item in questions:
        hits = await library.query("docs", item["q"], top_k=10)
        rank = next(
            (
                i
                for i, h in enumerate(hits, 1)
                if h.document == item["doc"] and item["phrase"] in h.text
            ),
            None,
        )
        ranks.append(rank)
        if rank is None or rank > 5:
            misses.append(
                {"question": item["q"], "rank": rank, "first": hits[0].document if hits else None}
            )
    library.close()
    stores.close()
    return {
        "documents": len(files),
        "chunk_budget_tokens": library.budget,
        "chunks": chunks,
        "questions": len(questions),
        "recall_at_5": round(sum(1 for r in ranks if r is not None and r <= 5) / len(ranks), 3),
        "mrr": round(sum(1 / r for r in ranks if r is not None) / len(ranks), 3),
        "indexing_chunks_per_s": round(chunks / seconds, 1),
        "indexing_seconds": round(seconds, 1),
        "missed": misses,
    }


async def latency(
    embedder: EngineEmbedder, workdir: Path, size: int, queries: int
) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    dims = embedder.dimensions
    centres = rng.standard_normal((2000, dims)).astype(np.float32)
    index = LocalStore(workdir / "latency", dims, embedder.name)
    began = time.perf_counter()
    per_doc = 10
    for start in range(0, size, 10_000):
        entries = []
        for d in range(start // per_doc, (start + 10_000) // per_doc):
            vectors = centres[rng.integers(0, 2000, per_doc)] + rng.standard_normal(
                (per_doc, dims)
            ).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            words = [WORDS[j] for j in rng.integers(0, len(WORDS), (per_doc, 30)).ravel()]
            chunks = [
                Chunk(f"doc {d}", " ".join(words[i * 30 : (i + 1) * 30])) for i in range(per_doc)
            ]
            entries.append(
                (
                    StoredDocument(f"doc-{d}", f"h{d}", "synthetic", {"n": d % 7}, per_doc),
                    chunks,
                    vectors,
                )
            )
        index.put(entries, time.time())
    build = time.perf_counter() - began
    texts = [
        f"how do I configure option {i} of the gateway for tenant {i % 13}?" for i in range(queries)
    ]
    search, total, overlapped = [], [], []
    for text in texts:
        # The baseline: embed, then search, one after the other.
        t0 = time.perf_counter()
        vector = np.asarray((await embedder.embed([text]))[0], dtype=np.float32)
        t1 = time.perf_counter()
        hits = index.search(vector, 5, text=text)
        t2 = time.perf_counter()
        assert len(hits) == 5
        search.append((t2 - t1) * 1000)
        total.append((t2 - t0) * 1000)
        # The service's path: the words ranked while the vector is embedded.
        t3 = time.perf_counter()
        same = await hybrid_search(index, embedder, text, 5)
        overlapped.append((time.perf_counter() - t3) * 1000)
        assert [h.text for h in same] == [h.text for h in hits]
    filtered = []
    for text in texts[:200]:
        vector = np.asarray((await embedder.embed([text]))[0], dtype=np.float32)
        t1 = time.perf_counter()
        index.search(vector, 5, where={"n": 3}, text=text)
        filtered.append((time.perf_counter() - t1) * 1000)
    count = index.count()
    index.close()
    return {
        "chunks": count[1],
        "store_seconds": round(build, 1),
        "search_p50_ms": round(pct(search, 0.5), 2),
        "search_p99_ms": round(pct(search, 0.99), 2),
        "query_sequential_p50_ms": round(pct(total, 0.5), 2),
        "query_sequential_p99_ms": round(pct(total, 0.99), 2),
        "query_p50_ms": round(pct(overlapped, 0.5), 2),
        "query_p99_ms": round(pct(overlapped, 0.99), 2),
        "query_p50_vs_sequential": round(pct(overlapped, 0.5) / pct(total, 0.5), 3),
        "filtered_search_p50_ms": round(pct(filtered, 0.5), 2),
        "filtered_search_p99_ms": round(pct(filtered, 0.99), 2),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    embedder = EngineEmbedder(args.model)
    await embedder.start()
    report: dict[str, Any] = {"cpu": cpu_name(), "cpu_flags": cpu_flags(), "model": args.model}
    with tempfile.TemporaryDirectory() as workdir:
        local = LocalStores(Path(workdir) / "quality", embedder.dimensions, embedder.name)
        report["quality"] = await quality(embedder, local, args.budget)
        print("quality", report["quality"], flush=True)
        qdrant = QdrantStores(":memory:", embedder.dimensions, embedder.name)
        report["quality_qdrant"] = await quality(embedder, qdrant, args.budget)
        del (
            report["quality_qdrant"]["indexing_chunks_per_s"],
            report["quality_qdrant"]["indexing_seconds"],
        )
        print("quality_qdrant", report["quality_qdrant"], flush=True)
        if not args.skip_latency:
            report["latency"] = await latency(embedder, Path(workdir), args.chunks, args.queries)
            print("latency", report["latency"], flush=True)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="all-minilm-l6-v2")
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--budget", type=int, help="Tokens a chunk (default: the library's).")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    report = asyncio.run(run(args))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
