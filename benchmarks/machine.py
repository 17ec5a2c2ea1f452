"""What a benchmark records beside its figures: the CPU they were measured on, and the
instruction-set extensions that decide which kernels run there. Standalone (no bosun
import): the peers' environment runs it too."""

from __future__ import annotations

import platform
from pathlib import Path


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


# The extensions CPU kernels choose between (AVX2 or AVX-512 vectors, int8 dot products,
# bfloat16, Intel's AMX tiles).
FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")


def cpu_flags() -> list[str]:
    for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
        if line.startswith("flags"):
            have = set(line.split(":", 1)[1].split())
            return [f for f in FLAGS if f in have]
    return []
