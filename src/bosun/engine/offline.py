"""Offline generation: the engine's scheduler and a runner, driven to completion with
greedy decoding and no server (what benchmarks measure as the engine's own throughput,
and what the paged-cache tests compare with decoding alone)."""

from __future__ import annotations

from collections.abc import Sequence as Seq
from dataclasses import dataclass

import torch

from bosun.engine.blocks import BlockManager
from bosun.engine.runner import ModelRunner, run_batch
from bosun.engine.scheduler import Scheduler, Sequence

__all__ = ["OfflineResult", "generate_greedy"]


@dataclass(frozen=True)
class OfflineResult:
    outputs: list[list[int]]  # generated tokens, per prompt
    steps: int
    preemptions: int
    prefix_cache_hits: int


def generate_greedy(
    runner: ModelRunner,
    prompts: Seq[Seq[int]],
    max_tokens: int,
    *,
    max_num_seqs: int = 256,
    max_batched_tokens: int = 8192,
    staggered: bool = False,
) -> OfflineResult:
    """Generate ``max_tokens`` greedy tokens (EOS ignored) for every prompt, batched by the
    scheduler. ``staggered``: one prompt arrives before each step instead of all at once."""
    blocks = BlockManager(
        runner.num_blocks, runner.block_size, runner.prefix_caching, runner.lazy_memory
    )
    scheduler = Scheduler(blocks, max_num_seqs, max_batched_tokens)
    seqs = [Sequence(i, list(p), max_tokens) for i, p in enumerate(prompts)]
    arrivals = list(seqs) if staggered else []
    if not staggered:
        for seq in seqs:
            scheduler.add(seq)
    steps = 0
    while arrivals or not scheduler.idle:
        if arrivals:
            scheduler.add(arrivals.pop(0))
        batch = scheduler.schedule()
        logits = run_batch(runner, batch)
        if logits is None:
            continue
        picks = torch.argmax(logits, dim=-1).tolist()
        sampled = {i.seq.id: picks[row] for row, i in enumerate(batch.items) if i.samples}
        for seq in scheduler.update(batch, sampled):
            runner.release(seq.id)
        steps += 1
    return OfflineResult(
        [s.tokens[s.prompt_len :] for s in seqs],
        steps,
        scheduler.preemptions,
        blocks.stats.hits,
    )
