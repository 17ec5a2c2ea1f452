"""A tiny random Llama for the engine tests: the Bosun decoder and transformers'
LlamaForCausalLM holding the same weights."""

from __future__ import annotations

from typing import Any

import torch

from bosun.engine.model import Decoder, DecoderConfig

HF_CONFIG: dict[str, Any] = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "vocab_size": 64,
    "hidden_size": 32,
    "intermediate_size": 48,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 8,
    "rms_norm_eps": 1e-6,
    "rope_theta": 10000.0,
    "max_position_embeddings": 64,
    "tie_word_embeddings": True,
}
CFG = DecoderConfig.from_hf(HF_CONFIG)


def _weights() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    h, d, c = CFG.hidden_size, CFG.head_dim, CFG
    names = {
        "model.embed_tokens.weight": (c.vocab_size, h),
        "model.norm.weight": (h,),
    }
    for i in range(c.layers):
        p = f"model.layers.{i}."
        names |= {
            p + "self_attn.q_proj.weight": (c.heads * d, h),
            p + "self_attn.k_proj.weight": (c.kv_heads * d, h),
            p + "self_attn.v_proj.weight": (c.kv_heads * d, h),
            p + "self_attn.o_proj.weight": (h, c.heads * d),
            p + "mlp.gate_proj.weight": (c.intermediate_size, h),
            p + "mlp.up_proj.weight": (c.intermediate_size, h),
            p + "mlp.down_proj.weight": (h, c.intermediate_size),
            p + "input_layernorm.weight": (h,),
            p + "post_attention_layernorm.weight": (h,),
        }
    return {n: torch.randn(shape) * 0.3 for n, shape in names.items()}


WEIGHTS = _weights()


def tiny_decoder() -> Decoder:
    """A 2-layer Llama with random weights (seed 0), Hugging Face-named on load."""
    with torch.device("meta"):
        decoder = Decoder(CFG)
    decoder.load_hf_state_dict({k: v.clone() for k, v in WEIGHTS.items()})
    return decoder.eval()


def hf_reference() -> Any:
    """transformers' LlamaForCausalLM holding the same weights."""
    from transformers import LlamaConfig, LlamaForCausalLM

    hf = LlamaForCausalLM(LlamaConfig(**HF_CONFIG))
    hf.load_state_dict({**WEIGHTS, "lm_head.weight": WEIGHTS["model.embed_tokens.weight"]})
    return hf.eval()


def expected(reference: Any, tokens: list[int]) -> torch.Tensor:
    """transformers' logits after the last of ``tokens``."""
    with torch.inference_mode():
        return reference(torch.tensor([tokens])).logits[0, -1].float()


def hf_twin(config: dict[str, Any], seed: int = 1) -> tuple[Any, Decoder]:
    """transformers' model for ``config`` (AutoModelForCausalLM, eager attention) with
    random weights, and the Bosun decoder loaded from its state dict."""
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(seed)
    hf_config = AutoConfig.for_model(**config)
    hf = AutoModelForCausalLM.from_config(hf_config, attn_implementation="eager").eval()
    with torch.no_grad():
        for param in hf.parameters():
            param.normal_(0, 0.3)
    with torch.device("meta"):
        decoder = Decoder(DecoderConfig.from_hf(config))
    decoder.load_hf_state_dict({k: v.clone() for k, v in hf.state_dict().items()})
    return hf, decoder.eval()


def variant(**changes: Any) -> dict[str, Any]:
    """The tiny Llama's shape under another architecture's config keys."""
    return {**{k: v for k, v in HF_CONFIG.items() if k not in changes.pop("drop", ())}, **changes}


# What Gemma 2 and 3 share: wider heads, GELU, a query scale of their own, a 4-token window.
_GEMMA = dict(
    head_dim=16, hidden_activation="gelu_pytorch_tanh", query_pre_attn_scalar=12, sliding_window=4
)
# Gemma-2: sandwich norms, GELU, soft-capped scores and logits, and local (sliding, 4
# tokens) and global attention alternating; caps small enough to matter here.
GEMMA2 = variant(
    architectures=["Gemma2ForCausalLM"],
    model_type="gemma2",
    **_GEMMA,
    attn_logit_softcapping=2.0,
    final_logit_softcapping=3.0,
    pad_token_id=0,
)
# Mistral with a 4-token sliding window on every layer.
MISTRAL = variant(
    architectures=["MistralForCausalLM"], model_type="mistral", sliding_window=4, drop=["head_dim"]
)
# Qwen3: RMSNorm over each head's q and k before rotary.
QWEN3 = variant(architectures=["Qwen3ForCausalLM"], model_type="qwen3", tie_word_embeddings=False)
# Gemma 3: Gemma 2's norms plus q/k norms, local (4-token window, its own rotary base) and
# global layers (another base, positions scaled linearly), no soft-capping.
GEMMA3 = variant(
    architectures=["Gemma3ForCausalLM"],
    model_type="gemma3_text",
    **_GEMMA,
    layer_types=["sliding_attention", "full_attention"],
    rope_parameters={
        "sliding_attention": {"rope_type": "default", "rope_theta": 10.0},
        "full_attention": {"rope_type": "linear", "rope_theta": 1000.0, "factor": 2.0},
    },
    pad_token_id=0,
)


def reference_attention(
    q: torch.Tensor, context: torch.Tensor, kv_heads: int, window: int, softcap: float
) -> torch.Tensor:
    """One query [H, D] over its context [T, 2K, D], written out in full."""
    heads, dim = q.shape
    if window:
        context = context[-window:]
    k = context[:, :kv_heads].repeat_interleave(heads // kv_heads, dim=1)
    v = context[:, kv_heads:].repeat_interleave(heads // kv_heads, dim=1)
    scores = torch.einsum("hd,thd->ht", q, k) * dim**-0.5
    if softcap:
        scores = softcap * torch.tanh(scores / softcap)
    return torch.einsum("ht,thd->hd", scores.softmax(-1), v)


# Shapes a paged decode kernel must get right: grouped, multi-query and multi-head
# attention, a head width that is no power of two, a sliding window, soft-capped scores.
PAGED_CASES: dict[str, Any] = {
    "argvalues": [
        (4, 2, 16, 0, 0.0),
        (8, 1, 16, 0, 0.0),
        (2, 2, 16, 0, 0.0),
        (4, 2, 24, 0, 0.0),
        (4, 2, 16, 20, 0.0),
        (4, 2, 16, 0, 30.0),
    ],
    "ids": ["gqa", "mqa", "mha", "head-dim-24", "sliding-window", "softcap"],
}


def check_paged_decode(
    paged_decode: Any, heads: int, kv_heads: int, dim: int, window: int, softcap: float
) -> None:
    """``paged_decode`` (paged_attention's contract) against attention written out over
    each context gathered from its blocks (in random order)."""
    torch.manual_seed(0)
    block, blocks = 16, 24
    cache = torch.randn(blocks, block, 2 * kv_heads, dim)
    lengths = [1, 16, 17, 150, 0]  # block edges, several tiles, and a padding row
    tables = torch.stack([torch.randperm(blocks)[:10] for _ in lengths]).int()
    q = torch.randn(len(lengths), heads, dim)
    out = paged_decode(
        q,
        cache,
        tables,
        torch.tensor(lengths, dtype=torch.int32),
        scale=dim**-0.5,
        window=window,
        softcap=softcap,
    )
    flat = cache.view(-1, 2 * kv_heads, dim)
    for row, length in enumerate(lengths):
        if length == 0:
            assert torch.equal(out[row], torch.zeros(heads, dim)), "a padding row gets zeros"
            continue
        slots = [int(tables[row, t // block]) * block + t % block for t in range(length)]
        expected = reference_attention(q[row], flat[slots], kv_heads, window, softcap)
        torch.testing.assert_close(out[row], expected, atol=1e-5, rtol=1e-5)
