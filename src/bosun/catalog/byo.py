"""Bring-your-own model: size a local Hugging Face directory without loading weights.

Reads ``config.json`` for the architecture and the safetensors headers (or the index's
``metadata.total_size``) for the exact parameter count; each safetensors file starts
with an 8-byte length and a JSON header listing every tensor's dtype and shape.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bosun.api.errors import BosunError
from bosun.api.workspace import Quantization
from bosun.catalog.presets import MLA, ModelSpec, Recurrent

__all__ = ["safetensors_parameters", "spec_from_config", "spec_from_directory"]

_SAFETENSORS_BYTES = {
    "F64": 8,
    "F32": 4,
    "BF16": 2,
    "F16": 2,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "I64": 8,
    "I32": 4,
    "I16": 2,
    "I8": 1,
    "U8": 1,
    "BOOL": 1,
}
_MAX_HEADER = 100 * 2**20


def safetensors_parameters(directory: Path) -> tuple[int, int] | None:
    """(parameters, bytes) over every ``*.safetensors`` file, from their headers alone."""
    files = sorted(directory.glob("*.safetensors"))
    if not files:
        return None
    params = size = 0
    for file in files:
        with file.open("rb") as handle:
            raw = handle.read(8)
            if len(raw) != 8:
                raise BosunError(f"{file}: not a safetensors file (too short)")
            (length,) = struct.unpack("<Q", raw)
            if length > _MAX_HEADER:
                raise BosunError(f"{file}: not a safetensors file (header of {length} bytes)")
            header: dict[str, Any] = json.loads(handle.read(length))
        for name, tensor in header.items():
            if name == "__metadata__":
                continue
            count = math.prod(tensor["shape"])
            params += count
            size += count * _SAFETENSORS_BYTES.get(tensor["dtype"], 2)
    return params, size


def _estimate_parameters(c: dict[str, Any], head_dim: int) -> int:
    """Parameters of a Llama-shaped decoder from its config (no checkpoint at hand)."""
    hidden, layers, inter = c["hidden_size"], c["num_hidden_layers"], c["intermediate_size"]
    heads = c["num_attention_heads"]
    kv = c.get("num_key_value_heads", heads)
    attn = hidden * head_dim * (2 * heads + 2 * kv)
    experts = c.get("num_local_experts") or c.get("n_routed_experts") or c.get("num_experts") or 1
    mlp = 3 * hidden * (c.get("moe_intermediate_size") or inter) * experts
    embed = c["vocab_size"] * hidden * (1 if c.get("tie_word_embeddings") else 2)
    return int(embed + layers * (attn + mlp + 2 * hidden))


def _kv_shared_layers(c: dict[str, Any]) -> int:
    """The last layers that attend through an earlier layer's cache (Gemma 3n/4)."""
    shared = int(c.get("num_kv_shared_layers") or 0)
    if not 0 <= shared < int(c["num_hidden_layers"]):
        raise ValueError(f"num_kv_shared_layers {shared} leaves no layer its own cache")
    return shared


def _sliding_layers(c: dict[str, Any]) -> int:
    """Layers with a cache of their own that attend through the sliding window, as the
    config places them."""
    layers = int(c["num_hidden_layers"])
    if not c.get("sliding_window") or c.get("use_sliding_window") is False:
        return 0
    if c.get("layer_types"):
        owners = c["layer_types"][: layers - _kv_shared_layers(c)]
        return sum(t == "sliding_attention" for t in owners)
    if c.get("model_type") == "gemma2":  # local and global alternate
        return layers - layers // 2
    pattern = c.get("sliding_window_pattern")
    if pattern:  # Gemma 3: every pattern-th layer is global
        return layers - layers // int(pattern)
    return layers  # Mistral-style: every layer


# compressed-tensors' weight schemes: (type, bits) -> the format it packs.
_COMPRESSED_TENSORS = {
    ("float", 8): Quantization.FP8,
    ("float", 4): Quantization.NVFP4,
    ("int", 8): Quantization.INT8,
    ("int", 4): Quantization.INT4,
}
# NVIDIA ModelOpt's quant_algo.
_MODELOPT = {"FP8": Quantization.FP8, "NVFP4": Quantization.NVFP4}


def _quant_method(q: dict[str, Any]) -> Quantization:
    """The format of a ``quantization_config``: its ``quant_method``, or for the container
    formats (compressed-tensors, ModelOpt) the scheme inside them."""
    method = str(q.get("quant_method", "none")).lower()
    if method == "compressed-tensors":
        groups = q.get("config_groups") or {}
        weights = [g.get("weights") or {} for g in groups.values() if isinstance(g, dict)]
        schemes = {(str(w.get("type")), int(w.get("num_bits") or 0)) for w in weights}
        if len(schemes) == 1:
            return _COMPRESSED_TENSORS.get(schemes.pop(), Quantization.NONE)
        return Quantization.NONE  # several schemes: not one format
    if method == "modelopt":
        return _MODELOPT.get(str(q.get("quant_algo", "")).upper(), Quantization.NONE)
    try:
        return Quantization(method)
    except ValueError:
        return Quantization.NONE


def _quantization(c: dict[str, Any]) -> tuple[Quantization, str]:
    """The checkpoint's own format (``quantization_config``) and which weights it covers:
    every layer's, or only the experts' when attention is left out of it. A format sizing
    does not know is sized as 16-bit weights."""
    q = c.get("quantization_config") or {}
    method = _quant_method(q)
    if method is Quantization.NONE:
        return Quantization.NONE, "layers"
    left_out = q.get("modules_to_not_convert") or q.get("ignore") or []
    skipped = " ".join(str(m) for m in left_out)
    return method, "experts" if "self_attn" in skipped or "attn" in skipped else "layers"


# Nemotron-H's layers_block_type spelling of its hybrid_override_pattern.
_BLOCK_TYPES = {"mamba": "M", "attention": "*", "moe": "E", "mlp": "-"}
_LAYER_TYPES = {"linear_attention": "M", "full_attention": "*", "sliding_attention": "*"}


def _layer_pattern(c: dict[str, Any]) -> str | None:
    """A hybrid's layers as :attr:`ModelSpec.layer_pattern` spells them, or None when every
    layer attends."""
    layers = int(c["num_hidden_layers"])
    if isinstance(c.get("hybrid_override_pattern"), str):  # Nemotron-H
        return str(c["hybrid_override_pattern"])
    if c.get("layers_block_type"):
        return "".join(_BLOCK_TYPES.get(str(t), "*") for t in c["layers_block_type"])
    types = c.get("layer_types") or []
    if "linear_attention" in types:  # Qwen3-Next, Qwen3.5
        return "".join(_LAYER_TYPES.get(str(t), "*") for t in types)
    interval = c.get("full_attention_interval")
    if interval and c.get("linear_num_value_heads"):
        return "".join("*" if (i + 1) % int(interval) == 0 else "M" for i in range(layers))
    shared = _kv_shared_layers(c)
    if shared:  # Gemma 3n/4: the last layers reuse earlier layers' keys and values
        return "*" * (layers - shared) + "=" * shared
    return None


def _recurrent(c: dict[str, Any]) -> Recurrent | None:
    """The linear-attention state's dimensions: Mamba-2's or Gated DeltaNet's."""
    state_dtype = "bfloat16" if c.get("mamba_ssm_dtype") == "bfloat16" else "float32"
    if c.get("mamba_num_heads"):
        return Recurrent(
            kind="mamba2",
            heads=c["mamba_num_heads"],
            head_dim=c["mamba_head_dim"],
            state_size=c.get("ssm_state_size") or c.get("mamba_d_state") or 128,
            groups=c.get("n_groups") or 1,
            conv_kernel=c.get("conv_kernel") or c.get("mamba_d_conv") or 4,
            state_dtype=state_dtype,
        )
    if c.get("linear_num_value_heads"):
        return Recurrent(
            kind="gated-deltanet",
            heads=c["linear_num_value_heads"],
            head_dim=c["linear_value_head_dim"],
            state_size=c["linear_key_head_dim"],
            groups=c["linear_num_key_heads"],
            conv_kernel=c.get("linear_conv_kernel_dim") or 4,
            state_dtype=state_dtype,
        )
    return None


def _flatten(config: dict[str, Any]) -> dict[str, Any]:
    """A config with its ``text_config`` (multimodal models) merged in."""
    text = config.get("text_config")
    return {**config, **(text if isinstance(text, dict) else {})}


def spec_from_config(
    config: dict[str, Any], name: str, source: str, parameters: int | None = None
) -> ModelSpec:
    """A :class:`ModelSpec` from a Hugging Face ``config.json`` (its ``text_config``
    merged in). ``parameters``: the checkpoint's exact count; without it, an estimate of a
    Llama-shaped decoder. Raises :class:`BosunError` naming the fields it lacks or cannot
    read (a config another tool wrote by hand may hold anything)."""
    try:
        return _spec_from_config(config, name, source, parameters)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise BosunError(
            f"{source}: {where}: {first['msg']} (from its config.json); cannot size this model"
        ) from None
    except (KeyError, TypeError, ValueError, ZeroDivisionError) as exc:
        detail = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
        raise BosunError(
            f"{source}: unreadable config.json ({detail}); cannot size this model"
        ) from None


def _spec_from_config(
    config: dict[str, Any], name: str, source: str, parameters: int | None
) -> ModelSpec:
    c = _flatten(config)
    missing = [
        k
        for k in ("hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size")
        if k not in c
    ]
    if missing:
        raise BosunError(f"{source}: missing {', '.join(missing)}; cannot size this model")
    heads = c["num_attention_heads"]
    head_dim = c.get("head_dim") or c["hidden_size"] // heads
    if c.get("kv_lora_rank") and not c.get("head_dim"):  # MLA: a query head's width
        head_dim = c["qk_nope_head_dim"] + c["qk_rope_head_dim"]
    experts = c.get("num_local_experts") or c.get("n_routed_experts") or c.get("num_experts")
    if c.get("enable_moe_block") is False:  # Gemma 4's dense models name experts anyway
        experts = None
    c.setdefault("intermediate_size", c.get("moe_intermediate_size") or 4 * c["hidden_size"])
    mla = None
    if c.get("kv_lora_rank"):
        mla = MLA(
            kv_lora_rank=c["kv_lora_rank"],
            q_lora_rank=c.get("q_lora_rank"),
            qk_rope_head_dim=c["qk_rope_head_dim"],
            qk_nope_head_dim=c["qk_nope_head_dim"],
            v_head_dim=c["v_head_dim"],
        )
    pattern = _layer_pattern(c)
    sliding = _sliding_layers(c)  # a window no layer uses (Qwen2's, switched off) is none
    architectures = c.get("architectures") or ["unknown"]
    dtype = c.get("torch_dtype") or c.get("dtype") or "bfloat16"
    quantization, quantized = _quantization(c)
    shared = c.get("n_shared_experts") or (1 if c.get("shared_expert_intermediate_size") else 0)
    shared_width = c.get("shared_expert_intermediate_size") or c.get(
        "moe_shared_expert_intermediate_size"
    )
    if c.get("enable_moe_block") and experts:  # Gemma 4: a dense MLP beside the experts
        shared, shared_width = 1, c["intermediate_size"]
    return ModelSpec(
        name=name,
        architecture=architectures[0],
        parameters=parameters or _estimate_parameters(c, head_dim),
        layers=c["num_hidden_layers"],
        hidden_size=c["hidden_size"],
        attention_heads=heads,
        kv_heads=c.get("num_key_value_heads") or heads,
        head_dim=head_dim,
        intermediate_size=c["intermediate_size"],
        vocab_size=c["vocab_size"],
        max_context=c.get("max_position_embeddings") or 4096,
        tied_embeddings=bool(c.get("tie_word_embeddings", False)),
        experts=experts,
        experts_per_token=c.get("num_experts_per_tok") or c.get("top_k_experts"),
        shared_experts=shared,
        shared_intermediate_size=shared_width,
        moe_intermediate_size=c.get("moe_intermediate_size"),
        moe_latent_size=c.get("moe_latent_size"),
        first_dense_layers=c.get("first_k_dense_replace") or 0,
        gated_mlp=c.get("mlp_hidden_act") != "relu2",
        mla=mla,
        sliding_window=c.get("sliding_window") if sliding else None,
        sliding_layers=sliding,
        indexer_heads=c.get("index_n_heads"),
        indexer_head_dim=c.get("index_head_dim"),
        global_kv_heads=c.get("num_global_key_value_heads"),
        global_head_dim=c.get("global_head_dim"),
        per_layer_input_size=c.get("hidden_size_per_layer_input") or 0,
        layer_pattern=pattern,
        recurrent=_recurrent(c) if pattern and "M" in pattern else None,
        dtype=dtype if dtype in ("bfloat16", "float16", "float32") else "bfloat16",
        quantization=quantization,
        quantized=quantized,
        tunable=True,
        source=source,
    )


def spec_from_directory(path: str | Path) -> ModelSpec:
    """A :class:`ModelSpec` for the Hugging Face model in ``path``.

    Raises ``FileNotFoundError`` when there is no ``config.json`` there, and
    :class:`BosunError` when it is unreadable or lacks the fields sizing needs.
    """
    directory = Path(path)
    config_file = directory / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(str(config_file))
    try:
        c: dict[str, Any] = json.loads(config_file.read_text("utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise BosunError(f"{config_file}: unreadable config.json ({exc})") from None
    if not isinstance(c, dict):
        raise BosunError(f"{config_file}: unreadable config.json (not an object)")
    flat = _flatten(c)
    counted = safetensors_parameters(directory)
    index = directory / "model.safetensors.index.json"
    params = on_disk = None
    if counted is not None:
        params, on_disk = counted
    elif index.is_file():
        total = json.loads(index.read_text("utf-8")).get("metadata", {}).get("total_size")
        dtype_bytes = 4 if flat.get("torch_dtype") == "float32" else 2
        params = int(total) // dtype_bytes if total else None
        on_disk = int(total) if total else None
    spec = spec_from_config(c, directory.name, str(config_file), params)
    return spec.model_copy(update={"weight_bytes_on_disk": on_disk})
