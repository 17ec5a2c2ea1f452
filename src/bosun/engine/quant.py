"""Weight-only int8 linear layers for CPUs: int8 weights with one scale per output channel
(symmetric); activations are not quantized.

Decode on a CPU reads every weight once per step, so a quarter of the bytes of float32 is
most of the speed-up. A step of a few rows (decoding) multiplies through ATen's int8
weight kernel (``_weight_int8pack_mm``, bfloat16 activations, as gpt-fast's int8 mode
uses it); a larger one (a prompt chunk, a wide batch) is compute-bound, so it multiplies
through oneDNN: in bfloat16 where the CPU multiplies bfloat16 in hardware (AMX or AVX-512
BF16: the int8 weight converts to bfloat16 exactly, and its scale multiplies the float32
result), in float32 with the dequantized weight elsewhere. ``BOSUN_CPU_MATMUL``
(``bfloat16`` or ``float32``) overrides the choice.

Measured with ``benchmarks/quality.py`` on SmolLM2-135M-Instruct (docs/serving.md):
perplexity 1.004x float32's over prompts, 1.005x decoded. The dynamic int8 this replaced
(fbgemm's ``linear_dynamic``: 7-bit activations with one scale per call, so one outlier
token of a prompt chunk set every token's scale) was 3.3x over prompts and 1.06x decoded,
and changed the first greedy token of 4 of 5 prompts.
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor

import torch
from torch import nn

from bosun.engine.cpus import cpu_flags

__all__ = ["Int8Linear", "int8_batch", "kernel_rows", "quantize_int8", "wide_precision"]

# Up to this many rows a step multiplies through the int8 kernel; above it, through
# oneDNN (the kernel's cost grows with each row, the matmul's much less). They cross near
# 48 rows for SmolLM2's layers on a 2-core AVX2 CPU in float32, near 16 in bfloat16 on a
# Xeon with AMX. None: by the precision of the wide matmul.
KERNEL_ROWS: int | None = None
_BF16_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})


@functools.cache
def wide_precision() -> torch.dtype:
    """The precision of a wide step's matmul on this machine (see the module's notes)."""
    chosen = os.environ.get("BOSUN_CPU_MATMUL", "").strip().lower()
    if chosen in ("bfloat16", "bf16"):
        return torch.bfloat16
    if chosen in ("float32", "fp32"):
        return torch.float32
    if chosen:
        raise ValueError(f"BOSUN_CPU_MATMUL: expected bfloat16 or float32, got {chosen!r}")
    return torch.bfloat16 if cpu_flags() & _BF16_FLAGS else torch.float32


# From this many sequences a C++ decode step (engine/native) multiplies int8 weights by
# int8 activations on AMX tiles, where the CPU has them: activations get a scale per block
# of 64, as in the kernel's notes. Fewer sequences keep float32 activations (one stream is
# bound by reading the weights either way). Measured for SmolLM2's layers on a 2-core Xeon
# (benchmarks/cpu_matmul.py --decode): from 2 sequences on the tiles are faster, 1.6x at 4,
# 4x at 8 and 7-8x at 32.
INT8_BATCH = 4


@functools.cache
def int8_batch() -> int:
    """From how many sequences a C++ decode step multiplies in int8 (0: never), where the
    CPU has AMX; ``BOSUN_CPU_INT8_BATCH`` overrides (0 keeps float32 activations)."""
    chosen = os.environ.get("BOSUN_CPU_INT8_BATCH", "").strip()
    if not chosen:
        return INT8_BATCH
    if not (chosen.isascii() and chosen.isdigit()):
        raise ValueError(
            f"BOSUN_CPU_INT8_BATCH: expected a whole number (0: never), got {chosen!r}"
        )
    return min(int(chosen), 1 << 30)  # beyond any batch: never


def kernel_rows() -> int:
    """The most rows a step multiplies through the int8 weight kernel."""
    if KERNEL_ROWS is not None:
        return KERNEL_ROWS
    return 16 if wide_precision() == torch.bfloat16 else 48


class Int8Linear(nn.Module):
    """A drop-in for a float ``nn.Linear`` whose weight is stored in int8 (no training)."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        weight = linear.weight.detach().float()
        # The kernel takes bfloat16 scales: round them first, then quantize against the
        # rounded ones, so that dequantizing gives back what was quantized.
        scale = (weight.abs().amax(dim=1) / 127.0).clamp(min=1e-8).to(torch.bfloat16)
        ints = torch.round(weight / scale.float()[:, None]).clamp(-127, 127)
        self.register_buffer("weight_int8", ints.to(torch.int8))
        self.register_buffer("scale", scale)
        bias = None if linear.bias is None else linear.bias.detach().float()
        self.register_buffer("bias", bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: [..., in] -> [..., out]
        weight: torch.Tensor = self.weight_int8  # type: ignore[assignment]
        scale: torch.Tensor = self.scale  # type: ignore[assignment]
        bias: torch.Tensor | None = self.bias  # type: ignore[assignment]
        rows = x.numel() // self.in_features
        if rows <= kernel_rows():
            flat = x.reshape(rows, self.in_features).to(torch.bfloat16)
            out = torch._weight_int8pack_mm(flat, weight, scale).to(x.dtype)
            out = out.reshape(*x.shape[:-1], self.out_features)
            return out if bias is None else out + bias
        if x.dtype == torch.float32 and wide_precision() == torch.bfloat16:
            out = nn.functional.linear(x.to(torch.bfloat16), weight.to(torch.bfloat16))
            out = out.float().mul_(scale.float())
            return out if bias is None else out.add_(bias)
        dense = weight.to(x.dtype) * scale.to(x.dtype)[:, None]
        return nn.functional.linear(x, dense, bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8"


def quantize_int8(model: nn.Module, threads: int = 1) -> nn.Module:
    """Replace every ``nn.Linear`` of ``model`` with an :class:`Int8Linear`, in place.

    With ``threads`` > 1 the layers are quantized in parallel. The helper threads end
    before this returns."""
    found = [
        (parent, name, child)
        for parent in model.modules()
        for name, child in parent.named_children()
        if type(child) is nn.Linear
    ]

    def work(items: list[tuple[nn.Module, str, nn.Linear]]) -> None:
        for parent, name, child in items:
            setattr(parent, name, Int8Linear(child))

    if threads <= 1:
        work(found)
        return model
    with ThreadPoolExecutor(threads - 1, thread_name_prefix="bosun-int8") as pool:
        helpers = [pool.submit(work, found[i::threads]) for i in range(1, threads)]
        work(found[0::threads])
        for helper in helpers:
            helper.result()
    return model
