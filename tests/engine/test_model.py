"""The decoder on a tiny random Llama, against transformers' LlamaForCausalLM holding the
same weights: a whole prompt, a prompt in chunks on top of cached positions, a batch
mixing prompt chunks and decode tokens, and blocks out of order all give the logits
transformers gives for the same text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from bosun.engine.loader import LocalModel
from bosun.engine.model import (
    Decoder,
    PagedKVCache,
    PagedSeq,
    PagedStep,
    unsupported,
)
from bosun.engine.runner import RunItem, RunnerOptions, load_runner
from tests.engine.tiny import CFG, GEMMA2, GEMMA3, MISTRAL, QWEN3, expected, hf_twin, variant

CPU = torch.device("cpu")
BLOCK = 4


def step(
    model: Decoder,
    cache: PagedKVCache,
    parts: list[tuple[list[int], int, list[int]]],
    window: int = 0,
) -> torch.Tensor:
    """One forward pass: (new tokens, start position, block table) per sequence."""
    seqs = [PagedSeq(start, len(tokens), table) for tokens, start, table in parts]
    plan = PagedStep.plan(seqs, BLOCK, CPU, cache.null_slot, window=window)
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


def test_decoding_and_prompts_in_one_step_are_attended_apart(
    model: Decoder, reference: Any
) -> None:
    """Decoding sequences first, then prompt chunks: planned as two groups, so a decode
    token is not padded to a chunk's length; the logits are transformers'."""
    cache = PagedKVCache.allocate(CFG, 16, BLOCK, torch.float32, CPU)
    step(model, cache, [(A, 0, [3, 1, 9]), (B, 0, [0, 6])])
    c = [30, 31, 32, 33, 34, 35]
    parts = [([20], len(A), [3, 1, 9]), ([21], len(B), [0, 6]), (c, 0, [7, 8])]
    seqs = [PagedSeq(start, len(tokens), table) for tokens, start, table in parts]
    plan = PagedStep.plan(seqs, BLOCK, CPU, cache.null_slot)
    assert plan.parts is not None and [(lo, hi) for lo, hi, _ in plan.parts] == [(0, 2), (2, 8)]
    assert plan.parts[0][2].q_index.shape == (2, 1)  # one query each, not padded to 6
    logits = step(model, cache, parts)
    torch.testing.assert_close(logits[0], expected(reference, [*A, 20]), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(logits[1], expected(reference, [*B, 21]), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(logits[2], expected(reference, c), atol=1e-4, rtol=1e-4)


def test_a_decode_batch_of_equal_contexts(model: Decoder, reference: Any) -> None:
    cache = PagedKVCache.allocate(CFG, 8, BLOCK, torch.float32, CPU)
    c = [30, 31, 32, 33, 34, 35, 36]
    step(model, cache, [(B, 0, [0, 1]), (c, 0, [4, 2])])
    plan = PagedStep.plan([PagedSeq(7, 1, [0, 1]), PagedSeq(7, 1, [4, 2])], BLOCK, CPU)
    assert plan.mask is None  # nothing to hide: every query sees its whole context
    logits = step(model, cache, [([20], 7, [0, 1]), ([21], 7, [4, 2])])
    torch.testing.assert_close(logits[0], expected(reference, [*B, 20]), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(logits[1], expected(reference, [*c, 21]), atol=1e-4, rtol=1e-4)


# The tiny Llama's shape as a Phi-3 checkpoint (fused q/k/v and gate/up projections).
PHI3 = variant(
    architectures=["Phi3ForCausalLM"],
    model_type="phi3",
    original_max_position_embeddings=64,
    tie_word_embeddings=False,
    pad_token_id=0,
    drop=["head_dim"],
)


@pytest.mark.parametrize(
    "config",
    [PHI3, GEMMA2, MISTRAL, QWEN3, GEMMA3],
    ids=["phi3", "gemma2", "mistral-sliding", "qwen3", "gemma3"],
)
def test_other_architectures_decode_as_transformers(config: dict[str, Any]) -> None:
    """A prompt longer than the sliding windows, in two chunks on blocks out of order,
    then decode steps: the logits transformers gives for the same text."""
    hf, decoder = hf_twin(config)
    if config is PHI3:
        assert "model.layers.0.self_attn.qkv_proj.weight" in hf.state_dict()
    if config is GEMMA2 or config is GEMMA3:
        assert [layer.window for layer in decoder.layers] == [4, 0]  # local, global
    if config is QWEN3 or config is GEMMA3:
        assert "model.layers.0.self_attn.q_norm.weight" in hf.state_dict()
    window = decoder.cfg.sliding_window
    cache = PagedKVCache.allocate(decoder.cfg, 8, BLOCK, torch.float32, CPU)
    table = [2, 0, 5, 7]
    step(decoder, cache, [(A[:3], 0, table)], window)
    logits = step(decoder, cache, [(A[3:], 3, table)], window)
    torch.testing.assert_close(logits[0], expected(hf, A), atol=1e-4, rtol=1e-4)
    text = list(A)
    for token in (7, 30, 2):
        logits = step(decoder, cache, [([token], len(text), table)], window)
        text.append(token)
        torch.testing.assert_close(logits[0], expected(hf, text), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({}, None),
        ({"architectures": ["GemmaForCausalLM"]}, "does not run GemmaForCausalLM"),
        ({"rope_scaling": {"type": "longrope"}}, "longrope rotary scaling"),
        (
            {"rope_parameters": {"full_attention": {"rope_type": "yarn"}}},
            "yarn rotary scaling",
        ),
        ({"partial_rotary_factor": 0.75}, "partial rotary"),
        ({"hidden_act": "relu2"}, "relu2 activation"),
        ({"sliding_window": 32}, None),
    ],
)
def test_what_the_decoder_cannot_run_is_named(change: dict[str, Any], reason: str | None) -> None:
    why = unsupported({**PHI3, **change})
    assert why == reason if reason is None else (why is not None and reason in why)


@pytest.mark.parametrize("config", [GEMMA2, QWEN3, GEMMA3], ids=["gemma2", "qwen3", "gemma3"])
def test_a_saved_checkpoint_is_served_by_the_bosun_decoder(
    tmp_path: Path, config: dict[str, Any]
) -> None:
    """From a directory as transformers saves it: auto picks the Bosun decoder, whose
    logits are transformers'."""
    hf, _ = hf_twin(config)
    hf.save_pretrained(tmp_path)
    options = RunnerOptions("auto", "float32", "cpu", "none", 2, 32)
    runner = load_runner(LocalModel("gemma2-tiny", tmp_path), options)
    assert runner.backend == "bosun"
    logits = runner.run([RunItem(0, A, 0, [0, 1, 2])])
    torch.testing.assert_close(logits[0], expected(hf, A), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("config", [QWEN3, GEMMA3], ids=["qwen3", "gemma3"])
def test_greedy_decoding_matches_transformers_generate(
    tmp_path: Path, config: dict[str, Any]
) -> None:
    """The runner the engine drives, step by step: a prompt past the sliding window, then
    20 greedy tokens, each the one transformers' generate picks."""
    hf, _ = hf_twin(config, seed=3)
    hf.save_pretrained(tmp_path)
    runner = load_runner(
        LocalModel("tiny", tmp_path), RunnerOptions("auto", "float32", "cpu", "none", 16, 32)
    )
    assert runner.backend == "bosun"
    prompt, table = A[:7], list(range(16))
    logits = runner.run([RunItem(0, prompt, 0, table)])
    ours = [int(logits[0].argmax())]
    for _ in range(19):
        logits = runner.run([RunItem(0, [ours[-1]], len(prompt) + len(ours) - 1, table)])
        ours.append(int(logits[0].argmax()))
    with torch.inference_mode():
        theirs = hf.generate(
            torch.tensor([prompt]), max_new_tokens=20, min_new_tokens=20, do_sample=False
        )[0, len(prompt) :].tolist()
    assert ours == theirs
