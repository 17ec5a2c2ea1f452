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

from bosun.api.errors import BosunError
from bosun.api.workspace import Quantization
from bosun.catalog.presets import MLA, ModelSpec

__all__ = ["safetensors_parameters", "spec_from_directory"]

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


def _sliding_layers(c: dict[str, Any]) -> int:
    """Layers that attend through the sliding window, as the config places them."""
    layers = int(c["num_hidden_layers"])
    if not c.get("sliding_window") or c.get("use_sliding_window") is False:
        return 0
    if c.get("layer_types"):
        return sum(t == "sliding_attention" for t in c["layer_types"])
    if c.get("model_type") == "gemma2":  # local and global alternate
        return layers - layers // 2
    pattern = c.get("sliding_window_pattern")
    if pattern:  # Gemma 3: every pattern-th layer is global
        return layers - layers // int(pattern)
    return layers  # Mistral-style: every layer


def _quantization(c: dict[str, Any]) -> tuple[Quantization, str]:
    """The checkpoint's own format (``quantization_config.quant_method``) and which weights
    it covers: every layer's, or only the experts' when attention is left out of it."""
    q = c.get("quantization_config") or {}
    try:
        method = Quantization(str(q.get("quant_method", "none")).lower())
    except ValueError:
        return Quantization.NONE, "layers"  # a format sizing does not know: 16-bit bytes
    skipped = " ".join(str(m) for m in q.get("modules_to_not_convert") or [])
    return method, "experts" if "self_attn" in skipped or "attn" in skipped else "layers"


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
    c = {**c, **c.get("text_config", {})}
    missing = [
        k
        for k in ("hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size")
        if k not in c
    ]
    if missing:
        raise BosunError(f"{config_file}: missing {', '.join(missing)}; cannot size this model")
    heads = c["num_attention_heads"]
    head_dim = c.get("head_dim") or c["hidden_size"] // heads
    c.setdefault("intermediate_size", 4 * c["hidden_size"])
    counted = safetensors_parameters(directory)
    index = directory / "model.safetensors.index.json"
    on_disk = None
    if counted is not None:
        params, on_disk = counted
    elif index.is_file():
        total = json.loads(index.read_text("utf-8")).get("metadata", {}).get("total_size")
        dtype_bytes = 4 if c.get("torch_dtype") == "float32" else 2
        params = int(total) // dtype_bytes if total else _estimate_parameters(c, head_dim)
        on_disk = int(total) if total else None
    else:
        params = _estimate_parameters(c, head_dim)
    mla = None
    if c.get("kv_lora_rank"):
        mla = MLA(
            kv_lora_rank=c["kv_lora_rank"],
            q_lora_rank=c.get("q_lora_rank"),
            qk_rope_head_dim=c["qk_rope_head_dim"],
            qk_nope_head_dim=c["qk_nope_head_dim"],
            v_head_dim=c["v_head_dim"],
        )
    architectures = c.get("architectures") or ["unknown"]
    dtype = c.get("torch_dtype") or c.get("dtype") or "bfloat16"
    quantization, quantized = _quantization(c)
    experts = c.get("num_local_experts") or c.get("n_routed_experts") or c.get("num_experts")
    return ModelSpec(
        name=directory.name,
        architecture=architectures[0],
        parameters=params,
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
        experts_per_token=c.get("num_experts_per_tok"),
        shared_experts=c.get("n_shared_experts") or 0,
        moe_intermediate_size=c.get("moe_intermediate_size"),
        mla=mla,
        sliding_window=c.get("sliding_window"),
        sliding_layers=_sliding_layers(c),
        dtype=dtype if dtype in ("bfloat16", "float16", "float32") else "bfloat16",
        quantization=quantization,
        quantized=quantized,
        tunable=True,
        source=str(config_file),
        weight_bytes_on_disk=on_disk,
    )
