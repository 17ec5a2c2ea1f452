"""The decoder's cache paths on a tiny random Llama: every way a decode step reads the
cache (one sequence's view, a window of slots in order, a window with idle rows, a gather)
gives each sequence the logits it gets when its whole text is prefilled alone."""

from __future__ import annotations

import pytest
import torch

from bosun.engine.model import Decoder, DecoderConfig, KVCache, Step

CFG = DecoderConfig(
    vocab_size=64,
    hidden_size=32,
    intermediate_size=48,
    layers=2,
    heads=4,
    kv_heads=2,
    head_dim=8,
    rms_eps=1e-6,
    rope_theta=10000.0,
    max_position=64,
    tie_embeddings=True,
    attention_bias=False,
)
PROMPTS = {0: [5, 9, 3], 1: [7, 1, 1, 8, 2], 3: [4, 4], 5: [11, 12, 13, 14, 15, 16]}


@pytest.fixture(scope="module")
def model() -> Decoder:
    return tiny_decoder()


def tiny_decoder() -> Decoder:
    """A 2-layer Llama with random weights (seed 0), Hugging Face-named on load."""
    torch.manual_seed(0)
    with torch.device("meta"):
        decoder = Decoder(CFG)
    names = {
        "model.embed_tokens.weight": (CFG.vocab_size, CFG.hidden_size),
        "model.norm.weight": (CFG.hidden_size,),
    }
    h, d = CFG.hidden_size, CFG.head_dim
    for i in range(CFG.layers):
        p = f"model.layers.{i}."
        names |= {
            p + "self_attn.q_proj.weight": (CFG.heads * d, h),
            p + "self_attn.k_proj.weight": (CFG.kv_heads * d, h),
            p + "self_attn.v_proj.weight": (CFG.kv_heads * d, h),
            p + "self_attn.o_proj.weight": (h, CFG.heads * d),
            p + "mlp.gate_proj.weight": (CFG.intermediate_size, h),
            p + "mlp.up_proj.weight": (CFG.intermediate_size, h),
            p + "mlp.down_proj.weight": (h, CFG.intermediate_size),
            p + "input_layernorm.weight": (h,),
            p + "post_attention_layernorm.weight": (h,),
        }
    decoder.load_hf_state_dict({n: torch.randn(shape) * 0.3 for n, shape in names.items()})
    return decoder.eval()


def alone(model: Decoder, tokens: list[int]) -> torch.Tensor:
    cache = KVCache.allocate(CFG, 1, 32, torch.float32, torch.device("cpu"))
    cache.clear_slot(0)
    ids = torch.tensor([tokens])
    return model(ids, torch.arange(len(tokens))[None], cache, torch.tensor([0]), prefill=True)[0]


@pytest.mark.parametrize(
    ("slots", "path"),
    [
        ([3], "single"),
        ([0, 1], "window"),
        ([1, 3], "rows"),
        ([0, 5], "gather"),
        ([0, 1, 3, 5], "rows"),
    ],
)
def test_each_cache_path_decodes_as_if_alone(model: Decoder, slots: list[int], path: str) -> None:
    cache = KVCache.allocate(CFG, 6, 32, torch.float32, torch.device("cpu"))
    for slot in range(6):
        cache.clear_slot(slot)
    for slot, prompt in PROMPTS.items():
        ids = torch.tensor([prompt])
        model(ids, torch.arange(len(prompt))[None], cache, torch.tensor([slot]), prefill=True)
    nxt = {slot: 20 + slot for slot in slots}
    tokens = torch.tensor([[nxt[s]] for s in slots])
    positions = torch.tensor([[len(PROMPTS[s])] for s in slots])
    slot_ids = torch.tensor(slots)
    step = Step.plan(slot_ids, positions, prefill=False)
    chosen = (
        "single"
        if step.single
        else "gather"
        if step.window is None
        else "window"
        if step.rows is None
        else "rows"
    )
    assert chosen == path
    logits = model(tokens, positions, cache, slot_ids, prefill=False)
    for row, slot in enumerate(slots):
        expected = alone(model, [*PROMPTS[slot], nxt[slot]])
        torch.testing.assert_close(logits[row], expected, atol=1e-4, rtol=1e-4)
