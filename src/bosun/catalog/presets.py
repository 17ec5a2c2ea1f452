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

__all__ = [
    "BOSUN_ARCHITECTURES",
    "MLA",
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

_DATA_FILES = ("smollm2", "qwen2.5", "llama", "mistral", "phi", "gemma2", "deepseek")


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
    hf_id: str | None = None
    license: str = "unknown"
    architecture: str
    parameters: int = Field(gt=0)
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
    dtype: str = "bfloat16"
    tunable: bool = False
    # How the model writes tool calls: vLLM's --tool-call-parser name (Bosun's engine
    # parses the same formats); None where the model has no tool-calling format.
    tool_parser: Literal["hermes", "llama3_json", "mistral"] | None = None
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
        return self.parameters * (4 if self.dtype == "float32" else 2)

    @property
    def is_moe(self) -> bool:
        return self.experts is not None and self.experts > 1

    @property
    def runtimes(self) -> tuple[str, ...]:
        """Runtimes that can serve this model."""
        if self.architecture in BOSUN_ARCHITECTURES and not self.is_moe and self.mla is None:
            return ("vllm", "bosun")
        return ("vllm",)

    def kv_bytes_per_token(self, element_bytes: float) -> float:
        """KV cache bytes one token occupies over all layers.

        Standard attention: ``2 (K and V) x layers x kv_heads x head_dim x bytes``.
        MLA caches one latent: ``(kv_lora_rank + qk_rope_head_dim) x layers x bytes``.
        """
        if self.mla is not None:
            return (self.mla.kv_lora_rank + self.mla.qk_rope_head_dim) * self.layers * element_bytes
        return 2 * self.layers * self.kv_heads * self.head_dim * element_bytes

    @property
    def embedding_parameters(self) -> int:
        """Input embedding plus the output head when it is not tied."""
        return self.vocab_size * self.hidden_size * (1 if self.tied_embeddings else 2)

    @property
    def layer_parameters(self) -> float:
        """Mean parameters of one decoder layer (what pipeline stages split)."""
        return (self.parameters - self.embedding_parameters) / self.layers

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
    return [ModelSpec.model_validate(row) for row in rows]


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
