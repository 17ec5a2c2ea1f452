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
    "qwen3-0.6b",
    "qwen3-1.7b",
    "qwen3-4b",
    "qwen3-8b",
    "qwen3-14b",
    "qwen3-32b",
    "qwen3-8b-awq",
    "qwen3-30b-a3b",
    "qwen3-235b-a22b",
    "gemma-3-270m-it",
    "gemma-3-1b-it",
    "gpt-oss-20b",
    "gpt-oss-120b",
]


def test_catalog_covers_the_required_models() -> None:
    names = [p.name for p in all_presets()]
    assert len(names) >= 25
    assert sorted(REQUIRED) == sorted(set(REQUIRED) & set(names))
    assert len(names) == len(set(names))


QK_NORMS = (
    "Qwen3ForCausalLM",
    "Qwen3MoeForCausalLM",
    "Gemma3ForCausalLM",
    "Gemma3ForConditionalGeneration",
)


def _count_nemotron_h(p: ModelSpec) -> int:
    """Nemotron-H: each block a norm and one of Mamba-2, attention, MLP or MoE."""
    h, r = p.hidden_size, p.recurrent
    assert r is not None and p.layer_pattern is not None
    inner, bc = r.heads * r.head_dim, 2 * r.groups * r.state_size
    mamba = (
        h * (2 * inner + bc + r.heads)  # in_proj: z, x, B, C and dt
        + (inner + bc) * (r.conv_kernel + 1)  # depthwise conv1d with its bias
        + 3 * r.heads  # dt_bias, A_log, D
        + inner  # the gated RMSNorm
        + inner * h  # out_proj
    )
    attn = 2 * h * p.attention_heads * p.head_dim + 2 * h * p.kv_heads * p.head_dim
    mlp = 2 * h * p.intermediate_size  # up and down: squared ReLU has no gate
    moe = 0
    if p.experts:
        assert p.moe_intermediate_size and p.shared_intermediate_size
        width = p.moe_latent_size or h
        moe = p.experts * 2 * width * p.moe_intermediate_size  # routed experts
        moe += 2 * h * p.shared_intermediate_size + h * p.experts + p.experts  # + router
        if p.moe_latent_size:  # into the latent space and back
            moe += 2 * h * p.moe_latent_size
    per_kind = {"M": mamba, "*": attn, "-": mlp, "E": moe}
    body = sum(per_kind[kind] + h for kind in p.layer_pattern)
    return p.embedding_parameters + body + h


# Qwen3.5's vision encoders (depth, width, MLP width): the 4B's is smaller (the 2B's is
# assumed the same).
QWEN3_5_VISION = {"Qwen/Qwen3.5-2B": (24, 1024, 4096), "Qwen/Qwen3.5-4B": (24, 1024, 4096)}


def _qwen3_vl_vision(out: int, depth: int = 27, d: int = 1152, inter: int = 4304) -> int:
    """Qwen3-VL's vision encoder as Qwen3.5 ships it: a 2x16x16 patch embedding, 2,304
    learned positions, pre-norm blocks (biased LayerNorms and linears), and a merger from
    2x2 patches to the text width ``out``."""
    merged = 4 * d
    patch = 3 * 2 * 16 * 16 * d + d
    block = 4 * d + (d * 3 * d + 3 * d) + (d * d + d) + (d * inter + inter) + (inter * d + d)
    merger = 2 * d + merged * merged + merged + merged * out + out
    return patch + 2304 * d + depth * block + merger


def _count_qwen3_5(p: ModelSpec) -> int:
    """Qwen3.5: Gated DeltaNet layers (M) and gated attention layers (*), each with an MLP
    or a mixture of experts and two norms; a vision encoder."""
    h, r = p.hidden_size, p.recurrent
    assert r is not None and p.layer_pattern is not None
    qk, v = 2 * r.groups * r.state_size, r.heads * r.head_dim
    delta = (
        h * (qk + 2 * v)  # q, k, v and the output gate z
        + h * 2 * r.heads  # beta and the decay's input, per value head
        + (qk + v) * r.conv_kernel  # depthwise conv1d over q, k, v (no bias)
        + 2 * r.heads  # dt_bias, A_log
        + r.head_dim  # the gated RMSNorm
        + v * h  # out_proj
    )
    q = p.attention_heads * p.head_dim
    attn = h * 2 * q + 2 * h * p.kv_heads * p.head_dim + q * h + 2 * p.head_dim  # q + gate
    if p.experts:
        assert p.moe_intermediate_size and p.shared_intermediate_size
        mlp = p.experts * 3 * h * p.moe_intermediate_size + h * p.experts  # experts, router
        mlp += 3 * h * p.shared_intermediate_size + h  # the shared expert and its gate
    else:
        mlp = 3 * h * p.intermediate_size
    mixers = {"M": delta, "*": attn}
    body = sum(mixers[kind] + mlp + 2 * h for kind in p.layer_pattern)
    assert p.vision_parameters == _qwen3_vl_vision(h, *QWEN3_5_VISION.get(p.hf_id or "", ()))
    return p.embedding_parameters + body + h + p.vision_parameters


# Gemma 4 as each repository's config sets what the preset does not say: every how many
# layers one attends to everything (the rest through the window), the vision encoder
# (width, blocks, MLP width, head width, clipped linears, a standardizing scale and bias),
# the audio encoder (width, layers, heads, conv kernel, subsampling channels, output
# width) or None, and whether the layers that share KV have an MLP twice as wide.
_G4_VISION = (1152, 27, 4304, 72, False, True)
_G4_SMALL_VISION = (768, 16, 3072, 64, True, False)
_G4_AUDIO = (1024, 12, 8, 5, 128, 32, 1536)
GEMMA4 = {
    "google/gemma-4-31B-it": (6, _G4_VISION, None, False),
    "google/gemma-4-26B-A4B-it": (6, _G4_VISION, None, False),
    "google/gemma-4-E2B-it": (5, _G4_SMALL_VISION, _G4_AUDIO, True),
    "google/gemma-4-E4B-it": (6, _G4_SMALL_VISION, _G4_AUDIO, False),
    "google/gemma-4-12B-it": (6, None, None, False),
}
# Gemma 4 12B's encoder-free embedders: merged patches of 48 x 48 pixels, a factorized
# position table of 1,120 per axis, the embedding width, and audio frames of 640 samples.
GEMMA4_UNIFIED = {"google/gemma-4-12B-it": (48, 1120, 3840, 640)}


def _gemma4_unified(h: int, patch: int, positions: int, width: int, audio: int) -> int:
    """Raw patches through a LayerNorm, a dense projection and a LayerNorm, plus a
    position per axis and a LayerNorm, then the projection to the text (its norm has no
    scale); audio frames projected straight to the text."""
    pixels = 3 * patch * patch
    vision = 2 * pixels + pixels * width + width + 2 * width + positions * 2 * width + 2 * width
    return vision + width * h + audio * h


def _gemma4_vision(
    h: int, d: int, blocks: int, inter: int, head: int, clip: bool, std: bool
) -> int:
    """A 16x16 patch projection, a two-axis table of 10,240 positions, pre/post-normed
    blocks (q, k, v, o with q and k norms, a gated MLP; a clipped linear keeps four scalar
    bounds), an optional standardizing scale and bias, and the projection to the text."""
    bounds = 4 if clip else 0
    block = 4 * d * d + 2 * head + 3 * d * inter + 4 * d + 7 * bounds
    return 768 * d + 2 * 10240 * d + (2 * d if std else 0) + blocks * block + h * d


def _gemma4_audio(
    h: int, a: int, layers: int, heads: int, kernel: int, c0: int, c1: int, out: int
) -> int:
    """A conformer (Universal Speech Model): two strided 3x3 convolutions with norms and a
    projection; per layer two feed-forward blocks, chunked attention with a relative
    position projection and a per-dimension scale, a light depthwise convolution and
    three norms (every linear but two clipped: four scalar bounds each); an output
    projection and the projection to the text."""
    sub = c0 * 9 + c0 + c1 * c0 * 9 + c1 + (c0 // 4) * c1 * a
    ffn = 8 * a * a + 2 * a + 2 * 4
    attention = 4 * a * a + 4 * 4 + a * a + a // heads
    conv = 3 * a * a + 2 * 4 + a * kernel + 2 * a
    return sub + layers * (2 * ffn + attention + conv + 3 * a) + a * out + out + out * h


def _count_gemma4(p: ModelSpec) -> int:
    """Gemma 4: sliding-window layers and full-attention layers with their own KV heads
    (keys serve as values where there are global KV heads: no v_proj), each with q and k
    norms, a GeGLU MLP, four norms and a layer scalar; layers sharing another's KV keep
    only q and o; a mixture of experts beside the MLP (a router with its scales, three
    more norms); per-layer embeddings (the table, a projection to it and its norm, and in
    each layer a gate, a projection back and a norm); the multimodal encoders."""
    h, q, g = p.hidden_size, p.attention_heads, p.global_kv_heads
    assert p.global_head_dim and p.hf_id
    period, vision_config, audio_config, double_wide = GEMMA4[p.hf_id]
    pattern = p.layer_pattern or "*" * p.layers
    body = windowed = 0
    for i, kind in enumerate(pattern):
        full = i % period == period - 1
        d = p.global_head_dim if full else p.head_dim
        layer = 2 * h * q * d + d  # q, o and q's norm
        if kind == "*":
            windowed += not full
            layer += (h * g * d if full and g else 2 * h * p.kv_heads * d) + d  # k (v), k norm
        layer += 3 * h * p.intermediate_size * (2 if double_wide and kind == "=" else 1)
        layer += 4 * h + 1  # four norms and the layer scalar
        if p.experts and p.moe_intermediate_size:
            layer += p.experts * 3 * h * p.moe_intermediate_size + h * p.experts + h + p.experts
            layer += 3 * h
        if p.per_layer_input_size:
            layer += 2 * h * p.per_layer_input_size + h
        body += layer
    assert windowed == p.sliding_layers  # the preset's count: the windowed layers with a cache
    ple = p.per_layer_input_size * (h * p.layers + 1)  # the projection to the table, its norm
    if p.hf_id in GEMMA4_UNIFIED:
        encoders = _gemma4_unified(h, *GEMMA4_UNIFIED[p.hf_id])
    else:
        assert vision_config is not None
        encoders = _gemma4_vision(h, *vision_config)
    if audio_config:
        encoders += _gemma4_audio(h, *audio_config)
    assert p.vision_parameters == encoders
    return p.embedding_parameters + ple + body + h + encoders


def _pixtral_vision(out: int) -> int:
    """Pixtral as Ministral 3 ships it: a 14x14 patch convolution, a norm, 24 blocks 1,024
    wide (two norms, q/k/v/o, a gated MLP of 4,096), and the projector: a norm, the 2x2
    patch merger (4,096 -> 1,024) and two linears to the text width ``out``."""
    d = 1024
    encoder = 3 * 14 * 14 * d + d + 24 * (2 * d + 4 * d * d + 3 * d * 4096)
    return encoder + d + 4 * d * d + d * out + out * out


def _count_parameters(p: ModelSpec) -> int:
    """Parameters from the architecture alone, written out per family."""
    h, layers, inter = p.hidden_size, p.layers, p.intermediate_size
    if p.architecture == "NemotronHForCausalLM":
        return _count_nemotron_h(p)
    if p.architecture.startswith("Qwen3_5"):
        return _count_qwen3_5(p)
    if p.architecture.startswith("Gemma4"):
        return _count_gemma4(p)
    if p.architecture == "Mistral3ForConditionalGeneration":
        assert p.vision_parameters == _pixtral_vision(h)
    if p.mla is not None:
        m = p.mla
        q_dim = p.attention_heads * (m.qk_nope_head_dim + m.qk_rope_head_dim)
        if m.q_lora_rank:  # q through a low-rank bottleneck with its own norm
            q = h * m.q_lora_rank + m.q_lora_rank + m.q_lora_rank * q_dim
        else:
            q = h * q_dim
        attn = (
            q
            + h * (m.kv_lora_rank + m.qk_rope_head_dim)  # kv_a_proj_with_mqa
            + m.kv_lora_rank  # kv_a_layernorm
            + m.kv_lora_rank * p.attention_heads * (m.qk_nope_head_dim + m.v_head_dim)
            + p.attention_heads * m.v_head_dim * h  # o_proj
        )
        if p.indexer_heads and p.indexer_head_dim and m.q_lora_rank:  # V3.2's indexer
            i, d = p.indexer_heads, p.indexer_head_dim
            attn += m.q_lora_rank * i * d + h * d + 2 * d + h * i  # wq_b, wk, k_norm, weights
    else:
        attn = 2 * h * p.attention_heads * p.head_dim + 2 * h * p.kv_heads * p.head_dim
        if p.architecture in ("Qwen2ForCausalLM", "GptOssForCausalLM"):  # q, k, v biases
            attn += (p.attention_heads + 2 * p.kv_heads) * p.head_dim
        if p.architecture in QK_NORMS:  # an RMSNorm over each head's q and k
            attn += 2 * p.head_dim
        if p.architecture == "GptOssForCausalLM":  # o_proj's bias and one sink per head
            attn += h + p.attention_heads
        if p.architecture == "MiniMaxM2ForCausalLM":  # QK norm over the layer's q and k
            attn += (p.attention_heads + p.kv_heads) * p.head_dim
    norms = (4 if p.architecture.startswith("Gemma") else 2) * h
    if p.architecture == "GptOssForCausalLM":  # biased experts and router
        assert p.experts
        w = p.moe_intermediate_size or inter
        experts = p.experts * (3 * h * w + 2 * w + h) + (h + 1) * p.experts
        body = layers * (attn + experts + norms)
    elif p.mla is not None and p.experts:
        assert p.moe_intermediate_size is not None
        moe = (p.experts + p.shared_experts) * 3 * h * p.moe_intermediate_size + h * p.experts
        if p.architecture.startswith(("DeepseekV3", "Glm", "KimiK2")):  # routing bias
            moe += p.experts
        dense = p.first_dense_layers * (attn + 3 * h * inter + norms)
        body = dense + (layers - p.first_dense_layers) * (attn + moe + norms)
    elif p.experts:
        width = p.moe_intermediate_size or inter  # Qwen3-MoE's experts are narrower
        router = h * p.experts
        if p.architecture == "MiniMaxM2ForCausalLM":  # the routing bias
            router += p.experts
        body = layers * (attn + p.experts * 3 * h * width + router + norms)
    else:
        body = layers * (attn + 3 * h * inter + norms)
    return p.embedding_parameters + body + h + p.vision_parameters  # + the final norm


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


@pytest.mark.parametrize(
    ("name", "published"),
    [
        # Totals as the model cards print them (Qwen3's, Google's, OpenAI's), in billions.
        ("qwen3-0.6b", "0.6"),
        ("qwen3-1.7b", "1.7"),
        ("qwen3-4b", "4.0"),
        ("qwen3-8b", "8.2"),
        ("qwen3-14b", "14.8"),
        ("qwen3-32b", "32.8"),
        ("qwen3-30b-a3b", "30.5"),
        ("qwen3-235b-a22b", "235"),
        ("gemma-3-270m-it", "0.27"),
        ("gemma-3-1b-it", "1.0"),
        ("gpt-oss-20b", "20.91"),
        ("gpt-oss-120b", "116.83"),
        ("gemma-3-4b-it", "4.3"),
        ("gemma-3-27b-it", "27.4"),
        ("deepseek-v3-0324", "671"),
        ("phi-3-mini-4k-instruct", "3.8"),
        ("phi-3-medium-4k-instruct", "14"),
        # NVIDIA's cards: 9B and 31.6B total (the first rounds 8.89B).
        ("nemotron-nano-9b-v2", "9"),
        ("nemotron-3-nano-30b-a3b", "31.6"),
    ],
)
def test_parameter_counts_agree_with_the_model_cards(name: str, published: str) -> None:
    """The counts above come from the architecture; the cards' own figures, to the digits
    they print, pin them."""
    digits = len(published.partition(".")[2])
    assert round(get_preset(name).parameters / 1e9, digits) == float(published)


def test_quantized_checkpoints_weigh_what_they_ship() -> None:
    """gpt-oss-20b ships 12.8 GiB (13.8 GB): MXFP4 experts, bf16 for the rest."""
    oss = get_preset("gpt-oss-20b")
    assert oss.weight_bytes / 2**30 == pytest.approx(12.82, abs=0.01)
    # AWQ: 4-bit layers with a scale and a zero per 128, 16-bit embeddings and head.
    awq = get_preset("qwen3-8b-awq")
    layers = awq.parameters - awq.embedding_parameters
    assert awq.weight_bytes == round(layers * 0.53125 + awq.embedding_parameters * 2)
    assert awq.runtimes == ("vllm",)  # the Bosun engine loads 16-bit weights


@pytest.mark.parametrize(
    ("name", "gib"),
    [
        # Checkpoint sizes as KAITO's catalog records them (modelFileSize, two decimals).
        ("nemotron-nano-9b-v2", 16.56),
        ("nemotron-3-nano-4b", 7.40),
        ("nemotron-3-nano-30b-a3b", 58.82),
        # FP8 linear layers, bf16 embeddings and vision encoder.
        ("ministral-3-3b-instruct-2512", 4.35),
        ("ministral-3-8b-instruct-2512", 9.70),
        ("ministral-3-14b-instruct-2512", 14.65),
    ],
)
def test_checkpoints_weigh_what_kaito_records(name: str, gib: float) -> None:
    assert round(get_preset(name).weight_bytes / 2**30, 2) == gib


def test_a_hybrid_keeps_kv_only_in_its_attention_layers() -> None:
    """Nemotron Nano 9B v2: 4 of its 56 blocks attend (2 x 8 heads x 128 x 2 bytes each per
    token); its 27 Mamba-2 layers hold 128 heads x 80 x 128 of float32 SSM state and a
    3-input window of 10,240 + 2 x 8 x 128 channels per sequence, however long."""
    nano = get_preset("nemotron-nano-9b-v2")
    assert (nano.kv_layers, nano.state_layers) == (4, 27)
    assert nano.kv_bytes_per_token(2) == 4 * 2 * 8 * 128 * 2
    per_layer = 128 * 80 * 128 * 4 + 3 * (10240 + 2 * 8 * 128) * 2
    assert nano.state_bytes_per_sequence(2) == 27 * per_layer
    assert nano.kv_bytes_per_sequence(131072, 2) == 131072 * 4 * 2 * 8 * 128 * 2


def test_a_layer_pattern_must_describe_every_layer() -> None:
    nano = get_preset("nemotron-nano-9b-v2").model_dump(by_alias=True, exclude={"weight_bytes"})
    with pytest.raises(ValueError, match="layerPattern has 55 layers"):
        ModelSpec.model_validate({**nano, "layerPattern": nano["layerPattern"][1:]})
    with pytest.raises(ValueError, match="recurrent"):
        ModelSpec.model_validate({**nano, "recurrent": None})


def _qwen3_5_mtp(p: ModelSpec) -> int:
    """The multi-token-prediction layer a Qwen3.5 checkpoint also holds: two input norms,
    a 2h -> h projection, one gated attention layer with its MLP and norms, a final norm."""
    h, q = p.hidden_size, p.attention_heads * p.head_dim
    attn = h * 2 * q + 2 * h * p.kv_heads * p.head_dim + q * h + 2 * p.head_dim
    mlp = 3 * h * p.intermediate_size
    if p.experts and p.moe_intermediate_size and p.shared_intermediate_size:
        mlp = p.experts * 3 * h * p.moe_intermediate_size + h * p.experts
        mlp += 3 * h * p.shared_intermediate_size + h
    return 2 * h + 2 * h * h + attn + mlp + 2 * h + h


@pytest.mark.parametrize(
    ("name", "elements"),
    [
        # The safetensors headers' totals (Qwen3.6-35B-A3B's: Qwen3.5-35B-A3B's, the same
        # architecture).
        ("qwen3.5-4b", 4_659_865_088),
        ("qwen3.6-27b", 27_781_427_952),
        ("qwen3.6-35b-a3b", 35_951_822_704),
    ],
)
def test_qwen3_5_reproduces_its_checkpoints(name: str, elements: int) -> None:
    preset = get_preset(name)
    assert preset.parameters + _qwen3_5_mtp(preset) == elements


def test_qwen3_5_9b_reproduces_its_checkpoint_bytes() -> None:
    """The 9B's index: 19,306,216,416 bytes, of which each DeltaNet layer's 32 decays
    (A_log) and 128-wide gated norm are float32 (24 x 160 parameters at 4 bytes)."""
    nine = get_preset("qwen3.5-9b")
    assert 2 * (nine.parameters + _qwen3_5_mtp(nine)) + 2 * 24 * (32 + 128) == 19_306_216_416
    # llama.cpp counts the language model alone: 8.95B.
    assert round((nine.parameters - nine.vision_parameters) / 1e9, 2) == 8.95


def test_minimax_m2_7_reproduces_its_checkpoint() -> None:
    """MiniMax-M2.7's headers count 228,703,644,928 elements: its parameters and one fp32
    scale per 128 x 128 block of each FP8 matrix (experts and attention projections)."""
    m = get_preset("minimax-m2.7")

    def blocks(rows: int, cols: int) -> int:
        return -(-rows // 128) * -(-cols // 128)

    h, q, kv = m.hidden_size, m.attention_heads * m.head_dim, m.kv_heads * m.head_dim
    experts = 3 * blocks(m.intermediate_size, h)
    attention = 2 * blocks(q, h) + 2 * blocks(kv, h)
    assert m.parameters + m.layers * ((m.experts or 0) * experts + attention) == 228_703_644_928


def test_the_sparse_attention_indexer_adds_its_keys_to_the_cache() -> None:
    """DeepSeek V3.2 caches V3's 576-wide latent and, per layer, a 128-dimension FP8
    indexer key with its fp32 scale."""
    v32 = get_preset("deepseek-v3.2")
    assert v32.kv_bytes_per_token(2) == 61 * (576 * 2 + 128 + 4)
    assert get_preset("deepseek-v3-0324").kv_bytes_per_token(2) == 61 * 576 * 2


@pytest.mark.parametrize(
    ("name", "elements"),
    [
        # Published tensor listings of the checkpoints (every safetensors header summed).
        ("qwen2.5-72b-instruct", 72_706_203_648),
        ("qwen2.5-3b-instruct", 3_085_938_688),
        ("qwen2.5-1.5b-instruct", 1_543_714_304),
        ("llama-3.2-3b-instruct", 3_212_749_824),
        ("gemma-4-31b-it", 31_273_088_876),
    ],
)
def test_parameter_counts_equal_the_checkpoints(name: str, elements: int) -> None:
    assert get_preset(name).parameters == elements


def test_gpt_oss_20b_weighs_its_checkpoint_to_the_byte() -> None:
    """Its listing: MXFP4 blocks and scales (uint8) for the experts, bf16 for the rest,
    13,761,264,768 bytes in all; the preset's bytes are the same number."""
    assert get_preset("gpt-oss-20b").weight_bytes == 13_761_264_768


def test_qwen3_0_6b_ships_a_copy_of_its_tied_head() -> None:
    """Its listing holds 751,632,384 elements: the 596M of the model and an lm_head.weight
    that the config ties to the embedding (vLLM loads the embedding once)."""
    small = get_preset("qwen3-0.6b")
    assert small.tied_embeddings
    assert small.parameters + small.vocab_size * small.hidden_size == 751_632_384
