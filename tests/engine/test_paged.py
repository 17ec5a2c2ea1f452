"""The paged KV cache end to end on a tiny random Llama: the scheduler's batches (chunked
prefill, shared prefixes, preemption and recompute) decode every sequence to exactly the
greedy tokens transformers gives it alone, its whole text run at each step."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from bosun.engine.model import Decoder
from bosun.engine.offline import generate_greedy
from bosun.engine.runner import BLOCK_SIZE, DecoderRunner, RunnerOptions
from tests.engine.tiny import expected

CPU = torch.device("cpu")


def greedy_alone(reference: Any, prompt: list[int], n: int) -> list[int]:
    """transformers' greedy tokens for ``prompt`` alone, its whole text run every step."""
    tokens = list(prompt)
    for _ in range(n):
        tokens.append(int(expected(reference, tokens).argmax()))
    return tokens[len(prompt) :]


PROMPTS = [
    [5, 9, 3, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16],
    [5, 9, 3, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 17, 18],  # shares a 16-token block
    [11, 12],
    [40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52],
]


@pytest.mark.parametrize(
    ("slots", "budget", "prefix"),
    [(4, 512, True), (4, 5, True), (4, 512, False), (1, 512, True), (1, 6, False)],
    ids=["batched", "chunked-prefill", "no-prefix-cache", "preemption", "preemption-chunked"],
)
def test_paged_decoding_matches_decoding_alone(
    model: Decoder, reference: Any, slots: int, budget: int, prefix: bool
) -> None:
    # The cache holds `slots` sequences of max_model_len (32) tokens: with 1, the four
    # sequences (up to 27 tokens each) cannot all stay, and the newest are preempted.
    options = RunnerOptions("bosun", "float32", "cpu", "none", slots, 32)
    runner = DecoderRunner(model, options, torch.float32, CPU)
    runner.prefix_caching = prefix
    assert runner.block_size == BLOCK_SIZE
    result = generate_greedy(
        runner, PROMPTS, 8, max_num_seqs=8, max_batched_tokens=budget, staggered=True
    )
    for i, prompt in enumerate(PROMPTS):
        assert result.outputs[i] == greedy_alone(reference, prompt, 8), f"sequence {i}"
    if slots == 1:
        assert result.preemptions > 0
    if prefix and slots == 4 and budget > len(PROMPTS[0]):  # whole prompts in one step
        assert result.prefix_cache_hits > 0
