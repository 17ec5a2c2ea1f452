"""LoRA adapters in the Bosun decoder: several loaded at once, mixed in one batch.

A PEFT adapter's low-rank pairs (A [r, in], B [out, r] per projection) are mapped onto the
decoder's fused projections: q, k and v share ``qkv_proj`` (the A matrices stacked, the B
matrices placed block-diagonally, q and k rows reordered as the decoder reorders them for
rotary embedding), gate and up share ``gate_up_proj``. The scale (alpha / r, or alpha /
sqrt(r) with rsLoRA) times the adapter's strength is folded into B.

Each step, every token belongs to one sequence and each sequence to one adapter (or the
base model): a forward hook on each projection adds, for each adapter present in the
step, ``(x[rows] @ A.T) @ B.T`` to its tokens' rows. Tokens of the base model cost
nothing; the same weights serve every request.
"""

from __future__ import annotations

import json
import math
import re
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bosun.engine.client import InvalidRequestError
from bosun.engine.model import Decoder, _interleave_rotary

__all__ = ["LoraSet", "load_adapter"]

Pair = tuple[torch.Tensor, torch.Tensor]  # (A [R, in], B [out, R]), scale folded into B
_KEY = re.compile(r"layers\.(\d+)\.(?:self_attn|mlp)\.(\w+?)_proj\.lora_([AB])\.weight$")
# The decoder's fused projections and their parts, in the order of their output rows.
_TARGETS = {"qkv": ("q", "k", "v"), "gate_up": ("gate", "up")}
_TARGET_OF = {part: target for target, parts in _TARGETS.items() for part in parts}


def _read(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    from safetensors.torch import load_file

    config_file, weights_file = path / "adapter_config.json", path / "adapter_model.safetensors"
    if not config_file.is_file() or not weights_file.is_file():
        raise InvalidRequestError(
            f"{path} is not a PEFT LoRA adapter (adapter_config.json and "
            "adapter_model.safetensors)",
            "lora_path",
        )
    config: dict[str, Any] = json.loads(config_file.read_text(encoding="utf-8"))
    if config.get("peft_type", "LORA") != "LORA":
        raise InvalidRequestError(f"{path}: a {config['peft_type']} adapter, not LoRA", "lora_path")
    return config, load_file(str(weights_file))


def _pairs(path: Path, state: dict[str, torch.Tensor], layers: int) -> dict[tuple[int, str], Any]:
    """{(layer, part): {"A": ..., "B": ...}} from a PEFT state dict; part as in q_proj."""
    pairs: dict[tuple[int, str], dict[str, torch.Tensor]] = {}
    for key, tensor in state.items():
        match = _KEY.search(key)
        if match is None:
            raise InvalidRequestError(
                f"{path}: the adapter changes {key}, which the Bosun engine does not adapt "
                "(it adapts the attention and MLP projections)",
                "lora_path",
            )
        layer, part, which = int(match[1]), match[2], match[3]
        if layer >= layers:
            raise InvalidRequestError(f"{path}: layer {layer} is not in the model", "lora_path")
        pairs.setdefault((layer, part), {})[which] = tensor
    for (_, part), pair in pairs.items():
        if "A" not in pair or "B" not in pair:
            raise InvalidRequestError(f"{path}: {part}_proj lacks lora_A or lora_B", "lora_path")
    return pairs


def load_adapter(model: Decoder, path: Path, strength: float) -> dict[str, Pair]:
    """The adapter at ``path`` as low-rank pairs per decoder projection, keyed by module
    name (``layers.3.qkv_proj``), on the model's device and in its dtype."""
    config, state = _read(path)
    cfg = model.cfg
    rank = int(config["r"])
    alpha = float(config.get("lora_alpha", rank))
    scale = alpha / (math.sqrt(rank) if config.get("use_rslora") else rank) * strength
    pairs = _pairs(path, state, cfg.layers)
    rows = {
        "q": cfg.heads * cfg.head_dim,
        "k": cfg.kv_heads * cfg.head_dim,
        "v": cfg.kv_heads * cfg.head_dim,
        "gate": cfg.intermediate_size,
        "up": cfg.intermediate_size,
    }
    # A fused checkpoint's pair (Phi-3's qkv_proj, gate_up_proj): one pair per part,
    # sharing A.
    for (layer, target), pair in list(pairs.items()):
        if target in ("qkv", "gate_up"):
            del pairs[(layer, target)]
            parts = _TARGETS[target]
            for part, b in zip(parts, pair["B"].split([rows[p] for p in parts]), strict=True):
                pairs[(layer, part)] = {"A": pair["A"], "B": b}
    # Each projection of the decoder: its parts' A stacked, their B placed block-diagonally
    # at the parts' rows.
    grouped: dict[tuple[int, str], dict[str, Pair]] = {}
    for (layer, part), pair in pairs.items():
        target = _TARGET_OF.get(part, part)
        out_features, in_features = _shape(model.layers[layer].get_submodule(f"{target}_proj"))
        a, b = pair["A"].float(), pair["B"].float() * scale
        if a.shape[1] != in_features or b.shape != (rows.get(part, out_features), a.shape[0]):
            raise InvalidRequestError(
                f"{path}: {part}_proj of layer {layer} does not match the model's shape "
                f"(A {tuple(a.shape)}, B {tuple(b.shape)}; an adapter for another base model?)",
                "lora_path",
            )
        if part in ("q", "k"):  # the decoder's rotary row order (model._interleave_rotary)
            b = _interleave_rotary(b, cfg.heads if part == "q" else cfg.kv_heads, cfg.head_dim)
        grouped.setdefault((layer, target), {})[part] = (a, b)
    device, dtype = model.embed_tokens.weight.device, model.embed_tokens.weight.dtype
    out: dict[str, Pair] = {}
    for (layer, target), members in sorted(grouped.items()):
        order = [p for p in _TARGETS.get(target, (target,)) if p in members]
        a = torch.cat([members[p][0] for p in order])
        b = torch.zeros(_shape(model.layers[layer].get_submodule(f"{target}_proj"))[0], len(a))
        row = column = 0
        for part in _TARGETS.get(target, (target,)):
            if part in members:
                pa, pb = members[part]
                b[row : row + pb.shape[0], column : column + pa.shape[0]] = pb
                column += pa.shape[0]
            row += rows.get(part, 0)
        out[f"layers.{layer}.{target}_proj"] = (
            a.to(device=device, dtype=dtype),
            b.to(device=device, dtype=dtype),
        )
    if not out:
        raise InvalidRequestError(f"{path}: the adapter has no LoRA weights", "lora_path")
    return out


def _shape(module: nn.Module) -> tuple[int, int]:
    """(out, in) features of a linear layer, int8 or not."""
    out_features: int = getattr(module, "out_features")  # noqa: B009 - typed as Module attrs
    in_features: int = getattr(module, "in_features")  # noqa: B009
    return out_features, in_features


class LoraSet:
    """The adapters loaded into one decoder, by slot (1, 2, ...; 0 is the base model),
    and which tokens of the current step use which.

    All adapters are stacked: per projection one A [C, in] and one B [out, C], where each
    adapter owns a range of the C columns (its largest rank over the projections; smaller
    ones padded with zeros). A step computes ``x @ A.T`` for all tokens at once, keeps each
    token's own adapter's columns (a 0/1 mask, zero for base-model tokens) and adds
    ``(that) @ B.T``: two small matmuls per projection, whatever the number of adapters.
    """

    def __init__(self, model: Decoder) -> None:
        self.model = model
        self.adapters: dict[int, dict[str, Pair]] = {}
        self._stacked: dict[str, Pair] = {}
        self._columns: dict[int, tuple[int, int]] = {}  # slot -> its range of columns
        self.mask: torch.Tensor | None = None  # this step: [tokens, C], None: no adapter
        self._hooked = False

    def add(self, slot: int, path: Path, strength: float) -> None:
        weights = load_adapter(self.model, path, strength)
        if not self._hooked:
            for name, module in self.model.named_modules():
                if name.endswith(("qkv_proj", "o_proj", "gate_up_proj", "down_proj")):
                    module.register_forward_hook(partial(self._hook, name))
            self._hooked = True
        self.adapters[slot] = weights
        self._stack()

    def remove(self, slot: int) -> None:
        if self.adapters.pop(slot, None) is not None:
            self._stack()

    def _stack(self) -> None:
        """Rebuild the stacked A and B of every projection from the loaded adapters."""
        self._columns, width = {}, 0
        for slot, weights in sorted(self.adapters.items()):
            rank = max(a.shape[0] for a, _ in weights.values())
            self._columns[slot] = (width, width + rank)
            width += rank
        stacked: dict[str, Pair] = {}
        for name in {n for weights in self.adapters.values() for n in weights}:
            module = self.model.get_submodule(name)
            out_features, in_features = _shape(module)
            like = next(w[name][0] for w in self.adapters.values() if name in w)
            a = like.new_zeros(width, in_features)
            b = like.new_zeros(out_features, width)
            for slot, (lo, _) in self._columns.items():
                pair = self.adapters[slot].get(name)
                if pair is not None:
                    rank = pair[0].shape[0]
                    a[lo : lo + rank], b[:, lo : lo + rank] = pair
            stacked[name] = (a, b)
        self._stacked = stacked

    def route(self, slots: list[int], counts: list[int], device: torch.device) -> None:
        """This step's tokens: ``counts[i]`` tokens, one after another, of a sequence
        using adapter ``slots[i]`` (an empty list: no adapter in this step)."""
        if not any(slots) or not self._stacked:
            self.mask = None
            return
        width = max(hi for _, hi in self._columns.values())
        mask = torch.zeros(sum(counts), width)
        offset = 0
        for slot, count in zip(slots, counts, strict=True):
            if slot in self._columns:
                lo, hi = self._columns[slot]
                mask[offset : offset + count, lo:hi] = 1.0
            offset += count
        dtype = next(iter(self._stacked.values()))[0].dtype
        self.mask = mask.to(device=device, dtype=dtype)

    def _hook(
        self, name: str, module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor
    ) -> torch.Tensor | None:
        mask, pair = self.mask, self._stacked.get(name)
        if mask is None or pair is None:
            return None
        a, b = pair
        x = inputs[0].to(a.dtype)
        output.add_(((x @ a.T) * mask) @ b.T)
        return output
