"""Model presets: architecture facts read from ``catalog/data/*.yaml``.

A :class:`ModelSpec` is what sizing needs to know about a model, whether it comes from the
catalog or from a local directory (:mod:`bosun.catalog.byo`).
"""

from __future__ import annotations

import difflib
from functools import cache
from importlib import resources
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field
from pydantic.alias_generators import to_camel

from bosun.api.errors import BosunError
from bosun.api.load import load_yaml_documents
from bosun.api.workspace import Quantization

__all__ = [
    "BOSUN_ARCHITECTURES",
    "MLA",
    "QUANT_BYTES",
    "ModelSpec",
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
    "llama",
    "mistral",
    "phi",
    "gemma2",
    "gemma3",
    "gpt-oss",
    "deepseek",
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


class ModelSpec(_Data):
    """Architecture facts of one model, enough to size it without loading weights."""

    name: str
    family: str = ""  # the catalog file it comes from: qwen3, gemma3, llama...
    hf_id: str | None = None
    license: str = "unknown"
    architecture: str
    parameters: int = Field(gt=0)
    # Of those, the vision encoder's and its projector's (multimodal models): resident in
    # every replica, on the first pipeline stage.
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
    mla: MLA | None = None
    sliding_window: int | None = None
    # Layers that attend through the sliding window (the rest attend to everything): with
    # a hybrid KV allocator (vLLM's) they hold only their window's keys and values.
    sliding_layers: int = Field(default=0, ge=0)
    dtype: str = "bfloat16"
    # The checkpoint's own weight format when it ships quantized (AWQ, GPTQ, FP8, MXFP4,
    # NVFP4): what a plan sizes unless the Workspace says otherwise; vLLM reads it from the
    # checkpoint. ``quantized`` says which weights it covers: every decoder layer's linear
    # weights, or only the experts' (gpt-oss keeps attention and the router in 16 bits).
    quantization: Quantization = Quantization.NONE
    quantized: Literal["layers", "experts"] = "layers"
    tunable: bool = False
    # How the model writes tool calls: vLLM's --tool-call-parser name (Bosun's engine
    # parses hermes, llama3_json and mistral); None where the model has no such format.
    tool_parser: Literal["hermes", "llama3_json", "mistral", "openai", "deepseek_v3"] | None = None
    reasoning_parser: str | None = None  # vLLM's --reasoning-parser for thinking models
    trust_remote_code: bool = False  # vLLM needs --trust-remote-code for its code
    vllm_args: list[str] = Field(default_factory=list)  # more flags its vLLM needs
    gated: bool = False  # the repository asks users to accept a license before download
    source: str = ""
    weight_bytes_on_disk: int | None = Field(
        default=None, description="Exact bytes of the checkpoint's tensors, when known."
    )

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
            self.expert_parameters
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

    def kv_bytes_per_sequence(self, tokens: int, element_bytes: float) -> float:
        """KV cache bytes of one sequence of ``tokens``: full-attention layers hold every
        token, sliding-window layers at most their window (vLLM's hybrid allocator)."""
        per_layer = self.kv_bytes_per_token(element_bytes) / self.layers
        window = min(tokens, self.sliding_window or tokens)
        full = self.layers - self.sliding_layers
        return per_layer * (full * tokens + self.sliding_layers * window)

    def kv_bytes_per_token(self, element_bytes: float) -> float:
        """KV cache bytes one token occupies over all layers.

        Standard attention: ``2 (K and V) x layers x kv_heads x head_dim x bytes``.
        MLA caches one latent: ``(kv_lora_rank + qk_rope_head_dim) x layers x bytes``.
        """
        if self.mla is not None:
            return (self.mla.kv_lora_rank + self.mla.qk_rope_head_dim) * self.layers * element_bytes
        return 2 * self.layers * self.kv_heads * self.head_dim * element_bytes

    @property
    def expert_parameters(self) -> int:
        """Parameters of every layer's routed and shared experts (0 for a dense model)."""
        if not self.is_moe:
            return 0
        width = self.moe_intermediate_size or self.intermediate_size
        experts = (self.experts or 0) + self.shared_experts
        return (self.layers - self.first_dense_layers) * experts * 3 * self.hidden_size * width

    @property
    def embedding_parameters(self) -> int:
        """Input embedding plus the output head when it is not tied."""
        return self.vocab_size * self.hidden_size * (1 if self.tied_embeddings else 2)

    @property
    def layer_parameters(self) -> float:
        """Mean parameters of one decoder layer (what pipeline stages split)."""
        return (self.parameters - self.embedding_parameters - self.vision_parameters) / self.layers

    @property
    def active_intermediate_size(self) -> int:
        """MLP width one token passes through (MoE: the routed and shared experts)."""
        if self.is_moe:
            width = self.moe_intermediate_size or self.intermediate_size
            return width * ((self.experts_per_token or 1) + self.shared_experts)
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
