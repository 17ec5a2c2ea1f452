"""The paged KV cache end to end on a tiny random Llama: the scheduler's batches (chunked
prefill, shared prefixes, preemption and recompute) decode every sequence to exactly the
greedy tokens it gets alone, with its whole text prefilled at each step."""

from __future__ import annotations

import pytest
import torch

from bosun.engine.blocks import BlockManager
from bosun.engine.model import Decoder, PagedKVCache, PagedSeq, PagedStep
from bosun.engine.scheduler import Scheduler, Sequence
from tests.engine.test_model import CFG, alone, tiny_decoder

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def model() -> Decoder:
    return tiny_decoder()


def greedy_alone(decoder: Decoder, prompt: list[int], n: int) -> list[int]:
    tokens = list(prompt)
    for _ in range(n):
        tokens.append(int(alone(decoder, tokens).argmax()))
    return tokens[len(prompt) :]


def run(
    decoder: Decoder, scheduler: Scheduler, cache: PagedKVCache, arrivals: list[Sequence]
) -> None:
    """Step until done; one new sequence arrives before each of the first steps."""
    arrivals = list(arrivals)
    while arrivals or not scheduler.idle:
        if arrivals:
            scheduler.add(arrivals.pop(0))
        batch = scheduler.schedule()
        assert batch.items, "the scheduler made no progress"
        seqs = [PagedSeq(i.start, i.count, list(i.seq.block_table)) for i in batch.items]
        tokens = torch.tensor(
            [t for i in batch.items for t in i.seq.tokens[i.start : i.start + i.count]]
        )
        step = PagedStep.plan(seqs, cache.block_size, CPU, cache.null_slot)
        logits = decoder.forward_paged(tokens, cache, step)
        sampled = {
            item.seq.id: int(logits[row].argmax())
            for row, item in enumerate(batch.items)
            if item.samples
        }
        scheduler.update(batch, sampled)


PROMPTS = [
    [5, 9, 3, 1, 2, 3, 4, 5, 6],
    [5, 9, 3, 1, 2, 3, 4, 5, 7, 8],  # shares two blocks of 4 with the first
    [11, 12],
    [40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52],
]


@pytest.mark.parametrize(
    ("num_blocks", "budget", "prefix"),
    [(64, 512, True), (64, 5, True), (64, 512, False), (9, 512, True), (9, 6, False)],
    ids=["batched", "chunked-prefill", "no-prefix-cache", "preemption", "preemption-chunked"],
)
def test_paged_decoding_matches_decoding_alone(
    model: Decoder,
    num_blocks: int,
    budget: int,
    prefix: bool,
) -> None:
    blocks = BlockManager(num_blocks=num_blocks, block_size=4, prefix_caching=prefix)
    scheduler = Scheduler(blocks, max_num_seqs=8, max_batched_tokens=budget)
    cache = PagedKVCache.allocate(CFG, num_blocks, 4, torch.float32, CPU)
    seqs = [Sequence(i, list(p), max_tokens=8) for i, p in enumerate(PROMPTS)]
    run(model, scheduler, cache, seqs)
    for s, prompt in zip(seqs, PROMPTS, strict=True):
        assert s.tokens[len(prompt) :] == greedy_alone(model, prompt, 8), f"sequence {s.id}"
    if num_blocks == 9:
        assert scheduler.preemptions > 0
    if prefix and num_blocks == 64:
        assert blocks.stats.hits > 0
