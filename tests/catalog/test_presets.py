"""The model catalog: coverage, and facts that check each other."""

from __future__ import annotations

import pytest

from bosun.catalog import all_presets, get_preset
from bosun.catalog.presets import ModelSpec, UnknownPresetError

REQUIRED = [
    "smollm2-135m-instruct",
    "smollm2-360m-instruct",
    "smollm2-1.7b-instruct",
    "qwen2.5-0.5b-instruct",
    "qwen2.5-1.5b-instruct",
    "qwen2.5-3b-instruct",
    "qwen2.5-7b-instruct",
    "qwen2.5-14b-instruct",
    "qwen2.5-32b-instruct",
    "qwen2.5-72b-instruct",
    "qwen2.5-coder-7b-instruct",
    "qwen2.5-coder-32b-instruct",
    "llama-3.2-1b-instruct",
    "llama-3.2-3b-instruct",
    "llama-3.1-8b-instruct",
    "llama-3.3-70b-instruct",
    "llama-3.1-405b-instruct",
    "mistral-7b-instruct-v0.3",
    "mixtral-8x7b-instruct",
    "phi-3.5-mini-instruct",
    "phi-4",
    "phi-4-mini-instruct",
    "gemma-2-2b-it",
    "gemma-2-9b-it",
    "gemma-2-27b-it",
    "deepseek-r1-distill-qwen-7b",
    "deepseek-r1-distill-qwen-32b",
    "deepseek-v2-lite-chat",
]


def test_catalog_covers_the_required_models() -> None:
    names = [p.name for p in all_presets()]
    assert len(names) >= 25
    assert sorted(REQUIRED) == sorted(set(REQUIRED) & set(names))
    assert len(names) == len(set(names))


def _count_parameters(p: ModelSpec) -> int:
    """Parameters from the architecture alone, written out per family."""
    h, layers, inter = p.hidden_size, p.layers, p.intermediate_size
    if p.mla is not None:
        m = p.mla
        attn = (
            h * p.attention_heads * (m.qk_nope_head_dim + m.qk_rope_head_dim)  # q_proj
            + h * (m.kv_lora_rank + m.qk_rope_head_dim)  # kv_a_proj_with_mqa
            + m.kv_lora_rank  # kv_a_layernorm
            + m.kv_lora_rank * p.attention_heads * (m.qk_nope_head_dim + m.v_head_dim)
            + p.attention_heads * m.v_head_dim * h  # o_proj
        )
    else:
        attn = 2 * h * p.attention_heads * p.head_dim + 2 * h * p.kv_heads * p.head_dim
        if p.architecture == "Qwen2ForCausalLM":  # q, k and v carry biases
            attn += (p.attention_heads + 2 * p.kv_heads) * p.head_dim
    norms = (4 if p.architecture == "Gemma2ForCausalLM" else 2) * h
    if p.mla is not None and p.experts:
        assert p.moe_intermediate_size is not None
        moe = (p.experts + p.shared_experts) * 3 * h * p.moe_intermediate_size + h * p.experts
        dense = p.first_dense_layers * (attn + 3 * h * inter + norms)
        body = dense + (layers - p.first_dense_layers) * (attn + moe + norms)
    elif p.experts:
        body = layers * (attn + p.experts * 3 * h * inter + h * p.experts + norms)
    else:
        body = layers * (attn + 3 * h * inter + norms)
    return p.embedding_parameters + body + h  # + the final norm


@pytest.mark.parametrize("preset", all_presets(), ids=lambda p: p.name)
def test_parameter_count_matches_the_architecture(preset: ModelSpec) -> None:
    """The published parameter count and the config values must agree exactly: a typo
    in any dimension would show here."""
    assert _count_parameters(preset) == preset.parameters


@pytest.mark.parametrize("preset", all_presets(), ids=lambda p: p.name)
def test_presets_are_consistent(preset: ModelSpec) -> None:
    assert preset.source.startswith("https://huggingface.co/")
    assert preset.hf_id and preset.hf_id in preset.source
    assert preset.attention_heads % preset.kv_heads == 0
    assert preset.license
    assert preset.runtimes[0] == "vllm"


def test_kv_cache_per_token_matches_known_figures() -> None:
    # PEERS.md: Llama-3.1-8B in bf16 holds 128 KiB of KV cache per token.
    assert get_preset("llama-3.1-8b-instruct").kv_bytes_per_token(2) == 128 * 1024
    # MLA caches (512 + 64) x 27 layers x 2 bytes instead of 2 x 27 x 16 x 192 x 2.
    lite = get_preset("deepseek-v2-lite-chat")
    assert lite.kv_bytes_per_token(2) == (512 + 64) * 27 * 2
    assert lite.kv_bytes_per_token(2) < 2 * 27 * 16 * 192 * 2 / 10


def test_lookup_by_name_or_hugging_face_id() -> None:
    assert get_preset("LLAMA-3.1-8B-INSTRUCT").name == "llama-3.1-8b-instruct"
    assert get_preset("meta-llama/Llama-3.1-8B-Instruct").name == "llama-3.1-8b-instruct"


def test_unknown_preset_suggests_close_names() -> None:
    with pytest.raises(UnknownPresetError) as info:
        get_preset("llama3-8b")
    assert "llama-3.1-8b-instruct" in info.value.suggestions
    assert "did you mean" in str(info.value)


def test_runtimes_follow_the_architecture() -> None:
    assert get_preset("qwen2.5-7b-instruct").runtimes == ("vllm", "bosun")
    assert get_preset("mixtral-8x7b-instruct").runtimes == ("vllm",)
    assert get_preset("deepseek-v2-lite-chat").runtimes == ("vllm",)


def test_the_catalog_knows_what_the_bosun_decoder_runs() -> None:
    """The catalog (which cannot import the engine) keeps its own list: the same one."""
    from bosun.catalog.presets import BOSUN_ARCHITECTURES
    from bosun.engine.model import SUPPORTED_ARCHITECTURES

    assert BOSUN_ARCHITECTURES == SUPPORTED_ARCHITECTURES
