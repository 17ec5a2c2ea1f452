"""The decoder on a tiny random Llama, against transformers' LlamaForCausalLM holding the
same weights: a whole prompt, a prompt in chunks on top of cached positions, a batch
mixing prompt chunks and decode tokens, and blocks out of order all give the logits
transformers gives for the same text."""

from __future__ import annotations

from typing import Any

import torch

from bosun.engine.model import Decoder, PagedKVCache, PagedSeq, PagedStep
from tests.engine.tiny import CFG, expected

CPU = torch.device("cpu")
BLOCK = 4


def step(
    model: Decoder, cache: PagedKVCache, parts: list[tuple[list[int], int, list[int]]]
) -> torch.Tensor:
    """One forward pass: (new tokens, start position, block table) per sequence."""
    seqs = [PagedSeq(start, len(tokens), table) for tokens, start, table in parts]
    plan = PagedStep.plan(seqs, BLOCK, CPU, cache.null_slot)
    ids = torch.tensor([t for tokens, _, _ in parts for t in tokens])
    logits: torch.Tensor = model(ids, cache, plan)
    return logits


A = [5, 9, 3, 1, 2, 7, 7, 8, 10, 11]
B = [4, 4, 12, 13, 14, 15, 16]


def test_a_whole_prompt_in_order_and_out_of_order(model: Decoder, reference: Any) -> None:
    for table in ([0, 1, 2], [5, 2, 7]):  # the first is read as a view, the second gathered
        cache = PagedKVCache.allocate(CFG, 8, BLOCK, torch.float32, CPU)
        logits = step(model, cache, [(A, 0, table)])
        torch.testing.assert_close(logits[0], expected(reference, A), atol=1e-4, rtol=1e-4)


def test_chunks_on_cached_positions_and_a_mixed_batch(model: Decoder, reference: Any) -> None:
    cache = PagedKVCache.allocate(CFG, 16, BLOCK, torch.float32, CPU)
    a_table, b_table = [3, 1, 9], [0, 6]
    step(model, cache, [(A[:4], 0, a_table)])  # a chunk of A
    # A's next chunk and B's whole prompt in one pass.
    logits = step(model, cache, [(A[4:], 4, a_table), (B, 0, b_table)])
    torch.testing.assert_close(logits[0], expected(reference, A), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(logits[1], expected(reference, B), atol=1e-4, rtol=1e-4)
    # Then one decode token each, contexts of different lengths.
    logits = step(model, cache, [([20], len(A), a_table), ([21], len(B), b_table)])
    torch.testing.assert_close(logits[0], expected(reference, [*A, 20]), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(logits[1], expected(reference, [*B, 21]), atol=1e-4, rtol=1e-4)


def test_a_decode_batch_of_equal_contexts(model: Decoder, reference: Any) -> None:
    cache = PagedKVCache.allocate(CFG, 8, BLOCK, torch.float32, CPU)
    c = [30, 31, 32, 33, 34, 35, 36]
    step(model, cache, [(B, 0, [0, 1]), (c, 0, [4, 2])])
    plan = PagedStep.plan([PagedSeq(7, 1, [0, 1]), PagedSeq(7, 1, [4, 2])], BLOCK, CPU)
    assert plan.mask is None  # nothing to hide: every query sees its whole context
    logits = step(model, cache, [([20], 7, [0, 1]), ([21], 7, [4, 2])])
    torch.testing.assert_close(logits[0], expected(reference, [*B, 20]), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(logits[1], expected(reference, [*c, 21]), atol=1e-4, rtol=1e-4)
