"""What the store tests share: small vectors and documents to put in an index."""

from __future__ import annotations

import numpy as np

from bosun.rag.store import Chunk, Entry, StoredDocument

DIMENSIONS = 16
MODEL = "test-model"


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    vectors = rng.standard_normal((n, DIMENSIONS)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def entry(doc: str, vectors: np.ndarray, **metadata: object) -> Entry:
    chunks = [Chunk(f"{doc} > part {i}", f"{doc} chunk {i}") for i in range(len(vectors))]
    return (
        StoredDocument(doc, f"hash-{doc}", f"file://{doc}", dict(metadata), len(chunks)),
        chunks,
        vectors,
    )
