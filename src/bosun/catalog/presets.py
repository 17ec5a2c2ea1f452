"""Model presets: architecture facts read from ``catalog/data/*.yaml``.

A :class:`ModelSpec` is what sizing needs to know about a model, whether it comes from the
catalog or from a local directory (:mod:`bosun.catalog.byo`).
"""

from __future__ import annotations

import difflib
from functools import cache
from importlib import resources
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field, model_validator
from pydantic.alias_generators import to_camel

from bosun.api.errors import BosunError
from bosun.api.load import load_yaml_documents
from bosun.api.workspace import Quantization

__all__ = [
    "BOSUN_ARCHITECTURES",
    "MLA",
    "QUANT_BYTES",
    "ModelSpec",
    "Recurrent",
    "UnknownPresetError",
    "all_presets",
    "find_by_hf_id",
    "get_preset",
]

# Architectures the Bosun engine runs (the generic decoder of the engine issue).
BOSUN_ARCHITECTURES = frozenset(
    {
        "LlamaForCausalLM",
        "Qwen2ForCausalLM",
        "Qwen3ForCausalLM",
        "MistralForCausalLM",
        "Phi3ForCausalLM",
        "Gemma2ForCausalLM",
        "Gemma3ForCausalLM",
    }
)

# One file per family; a preset's family is its file's name.
_DATA_FILES = (
    "smollm2",
    "qwen2.5",
    "qwen3",
    "qwen3.5",
    "llama",
    "mistral",
    "ministral",
    "phi",
    "gemma2",
    "gemma3",
    "gemma4",
    "gpt-oss",
    "deepseek",
    "nemotron",
    "minimax",
    "glm",
    "kimi",
    "granite",
)

# Bytes per weight of quantized formats: the packed value plus its scales (and zeros).
QUANT_BYTES = {
    Quantization.FP8: 1.0,
    Quantization.INT8: 1.0,
    Quantization.AWQ: 0.5 + 4 / 128,  # 4-bit, fp16 scale + zero per group of 128
    Quantization.GPTQ: 0.5 + 4 / 128,
    Quantization.BNB_4BIT: 0.5 + 4 / 64,  # nf4, fp32 absmax per block of 64
    Quantization.MXFP4: 0.5 + 1 / 32,  # fp4, an 8-bit power-of-two scale per 32
    Quantization.NVFP4: 0.5 + 1 / 16,  # fp4, an fp8 scale per 16 (and one fp32 per tensor)
    # int4, a bf16 scale per 32 (compressed-tensors as Kimi ships it; per 128 is 8% less)
    Quantization.INT4: 0.5 + 2 / 32,
}


class _Data(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class MLA(_Data):
    """Multi-head Latent Attention dimensions (DeepSeek-V2/V3)."""

    kv_lora_rank: int = Field(gt=0)
    q_lora_rank: int | None = None
    qk_rope_head_dim: int = Field(gt=0)
    qk_nope_head_dim: int = Field(gt=0)
    v_head_dim: int = Field(gt=0)


class Recurrent(_Data):
    """The state of linear-attention layers: Mamba-2's (Nemotron-H) or Gated DeltaNet's
    (Qwen3.5). Each such layer keeps a fixed state per sequence, however long: an SSM state
    of ``heads x head_dim x state_size`` (Mamba-2's value heads by its state; DeltaNet's
    value heads by its key head size) and a convolution window of the last
    ``conv_kernel - 1`` inputs, ``heads x head_dim + 2 x groups x state_size`` wide (x with
    B and C, or v with q and k). Names map from config.json: Mamba-2's ``mamba_num_heads``,
    ``mamba_head_dim``, ``ssm_state_size``, ``n_groups``; DeltaNet's
    ``linear_num_value_heads``, ``linear_value_head_dim``, ``linear_key_head_dim``,
    ``linear_num_key_heads``."""

    kind: Literal["mamba2", "gated-deltanet"]
    heads: int = Field(gt=0)
    head_dim: int = Field(gt=0)
    state_size: int = Field(gt=0)
    groups: int = Field(gt=0)
    conv_kernel: int = Field(default=4, gt=1)
    # The SSM state's dtype: float32 for both families (Qwen3.5's config sets
    # mamba_ssm_dtype; NVIDIA's cards ask vLLM for --mamba-ssm-cache-dtype float32).
    state_dtype: Literal["float32", "bfloat16"] = "float32"

    def bytes_per_sequence(self, conv_element_bytes: float) -> float:
        """One layer's state for one sequence: the SSM state in ``state_dtype``, the
        convolution window in the model's dtype."""
        width = self.heads * self.head_dim
        ssm = width * self.state_size * (4 if self.state_dtype == "float32" else 2)
        conv = (self.conv_kernel - 1) * (width + 2 * self.groups * self.state_size)
        return ssm + conv * conv_element_bytes


class ModelSpec(_Data):
    """Architecture facts of one model, enough to size it without loading weights."""

    name: str
    family: str = ""  # the catalog file it comes from: qwen3, gemma3, llama...
    hf_id: str | None = None
    license: str = "unknown"
    architecture: str
    parameters: int = Field(gt=0)
    # Of those, the multimodal encoders' (vision, and audio where a model has one) and
    # their projectors': resident in every replica, on the first pipeline stage.
    vision_parameters: int = Field(default=0, ge=0)
    layers: int = Field(gt=0)
    hidden_size: int = Field(gt=0)
    attention_heads: int = Field(gt=0)
    kv_heads: int = Field(gt=0)
    head_dim: int = Field(gt=0)
    intermediate_size: int = Field(gt=0)
    vocab_size: int = Field(gt=0)
    max_context: int = Field(gt=0)
    tied_embeddings: bool = False
    experts: int | None = Field(default=None, gt=0)
    experts_per_token: int | None = Field(default=None, gt=0)
    shared_experts: int = 0
    moe_intermediate_size: int | None = None
    first_dense_layers: int = 0
    # A shared expert wider than the routed ones (Nemotron-H, Qwen3.5 MoE).
    shared_intermediate_size: int | None = Field(default=None, gt=0)
    # Latent experts (Nemotron 3 Super): the routed experts work in a narrower space,
    # reached through one projection down and one back up per layer.
    moe_latent_size: int | None = Field(default=None, gt=0)
    # MLPs of gate, up and down projections (SwiGLU, GeGLU); False: up and down only
    # (Nemotron-H's squared ReLU).
    gated_mlp: bool = True
    mla: MLA | None = None
    # DeepSeek Sparse Attention (V3.2): a lightning indexer with its own heads keeps one FP8
    # key of indexer_head_dim per token and layer (with an fp32 scale) beside the latent.
    indexer_heads: int | None = Field(default=None, gt=0)
    indexer_head_dim: int | None = Field(default=None, gt=0)
    sliding_window: int | None = None
    # Layers with a KV cache that attend through the sliding window (the rest attend to
    # everything): with a hybrid KV allocator (vLLM's) they hold only their window's keys
    # and values. Layers that reuse another's cache (``=``) are not counted.
    sliding_layers: int = Field(default=0, ge=0)
    # Per-layer embeddings (Gemma 3n/4's E models, hidden_size_per_layer_input): a second
    # vocabulary table of ``layers x per_layer_input_size`` per token, looked up beside
    # the embedding; 0: none.
    per_layer_input_size: int = Field(default=0, ge=0)
    # Full-attention layers with KV heads of their own (Gemma 4: fewer and wider than the
    # sliding-window layers'); None: the same as every layer's.
    global_kv_heads: int | None = Field(default=None, gt=0)
    global_head_dim: int | None = Field(default=None, gt=0)
    # Hybrid models: what each layer is, one character per layer (Nemotron-H's
    # hybrid_override_pattern): ``*`` attention (a KV cache), ``M`` linear attention (a
    # fixed :class:`Recurrent` state per sequence), ``E`` a mixture-of-experts block, ``-``
    # an MLP block (Nemotron-H's blocks hold one of these each; Qwen3.5's layers pair a
    # mixer with an MLP and show only the mixer), ``=`` attention through an earlier
    # layer's keys and values, no cache of its own (Gemma 3n/4's num_kv_shared_layers).
    # None: every layer attends.
    layer_pattern: str | None = Field(default=None, pattern=r"^[*ME=-]+$")
    recurrent: Recurrent | None = None
    dtype: str = "bfloat16"
    # The checkpoint's own weight format when it ships quantized (AWQ, GPTQ, FP8, MXFP4,
    # NVFP4): what a plan sizes unless the Workspace says otherwise; vLLM reads it from the
    # checkpoint. ``quantized`` says which weights it covers: every decoder layer's linear
    # weights, or only the routed experts' (gpt-oss and Kimi keep attention, the router and
    # any shared expert in 16 bits).
    quantization: Quantization = Quantization.NONE
    quantized: Literal["layers", "experts"] = "layers"
    tunable: bool = False
    # How the model writes tool calls: vLLM's --tool-call-parser name (Bosun's engine
    # parses hermes, llama3_json and mistral); None where the model has no such format.
    tool_parser: (
        Literal[
            "hermes",
            "llama3_json",
            "mistral",
            "openai",
            "deepseek_v3",
            "deepseek_v32",
            "qwen3_coder",
            "minimax_m2",
            "kimi_k2",
        ]
        | None
    ) = None
    reasoning_parser: str | None = None  # vLLM's --reasoning-parser for thinking models
    trust_remote_code: bool = False  # vLLM needs --trust-remote-code for its code
    vllm_args: list[str] = Field(default_factory=list)  # more flags its vLLM needs
    gated: bool = False  # the repository asks users to accept a license before download
    source: str = ""
    weight_bytes_on_disk: int | None = Field(
        default=None, description="Exact bytes of the checkpoint's tensors, when known."
    )

    @model_validator(mode="after")
    def _pattern_matches_layers(self) -> ModelSpec:
        pattern = self.layer_pattern
        if pattern is not None and len(pattern) != self.layers:
            raise ValueError(f"layerPattern has {len(pattern)} layers, layers says {self.layers}")
        if (pattern is not None and "M" in pattern) != (self.recurrent is not None):
            raise ValueError("recurrent describes layerPattern's M layers: give both or neither")
        if self.sliding_layers > self.kv_layers:
            raise ValueError(f"slidingLayers {self.sliding_layers} exceeds the attention layers")
        return self

    @property
    def kv_layers(self) -> int:
        """Layers that keep a KV cache (all of them unless ``layer_pattern`` says: its
        ``*`` layers; ``=`` layers attend through another's cache)."""
        return self.layer_pattern.count("*") if self.layer_pattern else self.layers

    @property
    def state_layers(self) -> int:
        """Layers that keep a fixed recurrent state per sequence instead."""
        return self.layer_pattern.count("M") if self.layer_pattern else 0

    def state_bytes_per_sequence(self, conv_element_bytes: float) -> float:
        """Recurrent state of one sequence over every linear-attention layer."""
        if self.recurrent is None:
            return 0.0
        return self.state_layers * self.recurrent.bytes_per_sequence(conv_element_bytes)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def weight_bytes(self) -> int:
        """Bytes of the weights in the model's own dtype (what the checkpoint holds)."""
        if self.weight_bytes_on_disk is not None:
            return self.weight_bytes_on_disk
        wide = 4 if self.dtype == "float32" else 2
        if self.quantization is Quantization.NONE:
            return self.parameters * wide
        packed = (
            self.routed_expert_parameters
            if self.quantized == "experts"
            else self.parameters - self.embedding_parameters - self.vision_parameters
        )
        return round(packed * QUANT_BYTES[self.quantization] + (self.parameters - packed) * wide)

    @property
    def is_moe(self) -> bool:
        return self.experts is not None and self.experts > 1

    @property
    def runtimes(self) -> tuple[str, ...]:
        """Runtimes that can serve this model."""
        dense = not self.is_moe and self.mla is None
        own_weights = self.quantization is Quantization.NONE  # the engine loads 16-bit ones
        if self.architecture in BOSUN_ARCHITECTURES and dense and own_weights:
            return ("vllm", "bosun")
        return ("vllm",)

    def kv_bytes_per_sequence(self, tokens: int, element_bytes: float, tp: int = 1) -> float:
        """KV cache bytes of one sequence of ``tokens``: full-attention layers hold every
        token, sliding-window layers at most their window (vLLM's hybrid allocator). Per
        tensor-parallel rank when ``tp`` > 1 (see :meth:`kv_bytes_per_token`)."""
        if self.mla is not None:
            return self.kv_bytes_per_token(element_bytes, tp) * tokens
        full, sliding = self._kv_per_layer(element_bytes, tp)
        window = min(tokens, self.sliding_window or tokens)
        return (self.kv_layers - self.sliding_layers) * full * tokens + (
            self.sliding_layers * sliding * window
        )

    def kv_bytes_per_token(self, element_bytes: float, tp: int = 1) -> float:
        """KV cache bytes one token occupies over all layers, on one tensor-parallel rank
        of ``tp`` (each rank holds its share of the KV heads, or one replicated head when
        there are fewer heads than ranks).

        Standard attention: ``2 (K and V) x layers x kv_heads x head_dim x bytes``.
        MLA caches one latent, on every rank: ``(kv_lora_rank + qk_rope_head_dim) x
        layers x bytes``. Only attention layers count: a hybrid's linear-attention layers
        keep a state per sequence instead (:meth:`state_bytes_per_sequence`).
        """
        if self.mla is not None:
            latent = self.mla.kv_lora_rank + self.mla.qk_rope_head_dim
            indexer = self.indexer_head_dim + 4 if self.indexer_head_dim else 0
            return (latent * element_bytes + indexer) * self.kv_layers
        full, sliding = self._kv_per_layer(element_bytes, tp)
        return (self.kv_layers - self.sliding_layers) * full + self.sliding_layers * sliding

    def _kv_per_layer(self, element_bytes: float, tp: int) -> tuple[float, float]:
        """One token's K and V in one full-attention layer and one sliding-window layer,
        on one rank of ``tp``."""

        def layer(heads: int, dim: int) -> float:
            return 2 * max(heads / tp, 1) * dim * element_bytes

        sliding = layer(self.kv_heads, self.head_dim)
        full = layer(self.global_kv_heads or self.kv_heads, self.global_head_dim or self.head_dim)
        return full, sliding

    @property
    def expert_parameters(self) -> int:
        """Parameters of every layer's routed and shared experts (0 for a dense model)."""
        if not self.is_moe:
            return 0
        width = self.shared_intermediate_size or self.moe_intermediate_size
        projections = 3 if self.gated_mlp else 2
        shared = (
            self.shared_experts * projections * self.hidden_size * (width or self.intermediate_size)
        )
        return self.routed_expert_parameters + self.moe_layers * shared

    @property
    def routed_expert_parameters(self) -> int:
        """Parameters of the routed experts alone: what a checkpoint quantized only in its
        experts packs (gpt-oss, Kimi); shared experts stay with attention in 16 bits."""
        if not self.is_moe:
            return 0
        width = self.moe_intermediate_size or self.intermediate_size
        projections = 3 if self.gated_mlp else 2
        routed_in = self.moe_latent_size or self.hidden_size
        return self.moe_layers * (self.experts or 0) * projections * routed_in * width

    @property
    def moe_layers(self) -> int:
        """Layers (or blocks) with experts: Nemotron-H's ``E`` blocks, else every layer
        after the first dense ones."""
        if self.layer_pattern and "E" in self.layer_pattern:
            return self.layer_pattern.count("E")
        return self.layers - self.first_dense_layers

    @property
    def replicated_layer_parameters(self) -> int:
        """Parameters of one decoder layer that every tensor-parallel rank holds whole (vLLM
        replicates them): MLA's down-projections to the query and KV latents and their
        norms, and a mixture of experts' router."""
        replicated = 0
        if self.mla is not None:
            m = self.mla
            kv = m.kv_lora_rank + m.qk_rope_head_dim
            q = m.q_lora_rank or 0
            replicated += self.hidden_size * (q + kv) + q + m.kv_lora_rank
        if self.is_moe:
            replicated += self.hidden_size * (self.experts or 0) * self.moe_layers // self.layers
        return replicated

    @property
    def embedding_parameters(self) -> int:
        """Input embedding plus the output head when it is not tied, plus any per-layer
        embedding table (:attr:`per_layer_embedding_parameters`)."""
        head = self.vocab_size * self.hidden_size * (1 if self.tied_embeddings else 2)
        return head + self.per_layer_embedding_parameters

    @property
    def per_layer_embedding_parameters(self) -> int:
        """The per-layer embedding table (Gemma 3n/4's E models): a vocabulary-sized lookup
        like the embedding, kept beside it on the first pipeline stage."""
        return self.vocab_size * self.layers * self.per_layer_input_size

    @property
    def layer_parameters(self) -> float:
        """Mean parameters of one decoder layer (what pipeline stages split)."""
        return (self.parameters - self.embedding_parameters - self.vision_parameters) / self.layers

    @property
    def active_intermediate_size(self) -> int:
        """MLP width one token passes through (MoE: the routed and shared experts)."""
        if self.is_moe:
            width = self.moe_intermediate_size or self.intermediate_size
            shared = self.shared_experts * (self.shared_intermediate_size or width)
            return width * (self.experts_per_token or 1) + shared
        return self.intermediate_size


def _load_file(stem: str) -> list[ModelSpec]:
    text = resources.files("bosun.catalog").joinpath(f"data/{stem}.yaml").read_text("utf-8")
    (rows,) = load_yaml_documents(text)
    return [ModelSpec.model_validate({"family": stem, **row}) for row in rows]


@cache
def _catalog() -> dict[str, ModelSpec]:
    presets: dict[str, ModelSpec] = {}
    for stem in _DATA_FILES:
        for preset in _load_file(stem):
            if preset.name in presets:
                raise ValueError(f"preset {preset.name!r} is defined twice in the catalog")
            presets[preset.name] = preset
    return presets


def all_presets() -> list[ModelSpec]:
    """Every preset, in catalog order."""
    return list(_catalog().values())


class UnknownPresetError(BosunError):
    def __init__(self, name: str, suggestions: list[str]) -> None:
        self.name = name
        self.suggestions = suggestions
        hint = f"; did you mean {', '.join(suggestions)}?" if suggestions else ""
        super().__init__(f"unknown preset {name!r}{hint} (`bosun models` lists them all)")


def get_preset(name: str) -> ModelSpec:
    """The preset called ``name`` (case-insensitive; a Hugging Face id works too)."""
    catalog = _catalog()
    key = name.strip().lower()
    if key in catalog:
        return catalog[key]
    by_id = find_by_hf_id(name)
    if by_id is not None:
        return by_id
    suggestions = difflib.get_close_matches(key, list(catalog), n=3, cutoff=0.5)
    if not suggestions:
        suggestions = [n for n in catalog if key and key.split("-")[0] in n][:3]
    raise UnknownPresetError(name, suggestions)


def find_by_hf_id(hf_id: str) -> ModelSpec | None:
    """The preset whose Hugging Face id is ``hf_id`` (case-insensitive), if any."""
    wanted = hf_id.strip().lower()
    return next((p for p in _catalog().values() if (p.hf_id or "").lower() == wanted), None)
