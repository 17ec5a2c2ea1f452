"""What a benchmark records beside its figures: the CPU they were measured on, and the
instruction-set extensions that decide which kernels run there."""

from __future__ import annotations

import platform
from pathlib import Path

from bosun.engine import cpus


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


# The extensions CPU kernels choose between (AVX2 or AVX-512 vectors, int8 dot products,
# bfloat16, Intel's AMX tiles).
FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")


def cpu_flags() -> list[str]:
    have = cpus.cpu_flags()
    return [f for f in FLAGS if f in have]
