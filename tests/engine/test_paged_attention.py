"""The GPU decode path, run on the CPU: the Triton paged-attention kernel under Triton's
interpreter, and decode steps over the static buffers that CUDA graphs replay (run
eagerly here). On a GPU the same code is compiled and captured."""

from __future__ import annotations

import os
from typing import Any

import pytest
import torch

from bosun.engine.cuda_graphs import capture_sizes
from bosun.engine.model import Decoder
from bosun.engine.offline import generate_greedy
from bosun.engine.runner import DecoderRunner, RunItem, RunnerOptions
from tests.engine.test_paged import PROMPTS, greedy_alone
from tests.engine.tiny import GEMMA2, MISTRAL, PAGED_CASES, check_paged_decode, hf_twin

triton = pytest.importorskip("triton", reason="the paged decode kernel needs Triton")
# tests/conftest.py sets it for the whole session, before anything imports Triton.
assert os.environ.get("TRITON_INTERPRET") == "1", "the kernel would be compiled for a GPU"
CPU = torch.device("cpu")


@pytest.mark.parametrize(("heads", "kv_heads", "dim", "window", "softcap"), **PAGED_CASES)
def test_kernel_matches_attention_over_gathered_context(
    heads: int, kv_heads: int, dim: int, window: int, softcap: float
) -> None:
    from bosun.engine.paged_attention import paged_decode

    check_paged_decode(paged_decode, heads, kv_heads, dim, window, softcap)


def test_capture_sizes_cover_every_batch_with_little_padding() -> None:
    assert capture_sizes(1) == [1]
    assert capture_sizes(6) == [1, 2, 4, 6]
    sizes = capture_sizes(256)
    assert sizes[:5] == [1, 2, 4, 8, 16] and sizes[-1] == 256
    for n in range(1, 257):
        assert 0 <= next(s for s in sizes if s >= n) - n < 8


@pytest.mark.parametrize(
    ("slots", "static"),
    [(4, False), (4, True), (3, True), (1, True)],
    ids=["kernel", "static-buffers", "static-padded", "static-preemption"],
)
def test_kernel_decoding_matches_decoding_alone(
    model: Decoder, reference: Any, slots: int, static: bool
) -> None:
    """Every sequence decodes the greedy tokens it gets alone: decode steps through the
    kernel (and over static buffers, padded to a captured size: 3 rows run as 4), prompt
    chunks through SDPA, with a shared prefix and, with one slot, preemption."""
    options = RunnerOptions("bosun", "float32", "cpu", "none", slots, 32)
    runner = DecoderRunner(
        model, options, torch.float32, CPU, paged_kernel=True, static_decode=static
    )
    assert (runner.graphs is not None) == static
    result = generate_greedy(runner, PROMPTS, 6, max_num_seqs=8, staggered=True)
    for i, prompt in enumerate(PROMPTS):
        assert result.outputs[i] == greedy_alone(reference, prompt, 6), f"sequence {i}"
    if slots == 1:
        assert result.preemptions > 0


@pytest.mark.parametrize(
    ("architecture", "static"),
    [("llama", False), ("llama", True), ("gemma2", True), ("mistral-sliding", False)],
    ids=["kernel", "static-padded", "gemma2-static", "mistral-sliding-window"],
)
def test_decode_step_logits_match_the_sdpa_path(
    model: Decoder, architecture: str, static: bool
) -> None:
    """The same decode step (three sequences, contexts of 19, 18 and 2 tokens, blocks out
    of order) gives the same logits through the kernel as through SDPA over gathered
    contexts; with Gemma-2's soft-capped scores and 4-token local layers, and Mistral's
    sliding window."""
    if architecture != "llama":
        model = hf_twin(GEMMA2 if architecture == "gemma2" else MISTRAL)[1]
    options = RunnerOptions("bosun", "float32", "cpu", "none", 4, 32)
    plain = DecoderRunner(model, options, torch.float32, CPU)
    kernel = DecoderRunner(
        model, options, torch.float32, CPU, paged_kernel=True, static_decode=static
    )
    tables = [[3, 0], [5, 1], [6]]
    prompts = [PROMPTS[0][:18], PROMPTS[1][:17], PROMPTS[2][:1]]
    prefill = [RunItem(i, p, 0, tables[i]) for i, p in enumerate(prompts)]
    decode = [RunItem(i, [7 + i], len(p), tables[i]) for i, p in enumerate(prompts)]
    for runner in (plain, kernel):
        runner.run(prefill)
    expected = plain.run(decode)
    torch.testing.assert_close(kernel.run(decode), expected, atol=1e-5, rtol=1e-5)
