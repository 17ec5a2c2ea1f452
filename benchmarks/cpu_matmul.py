"""What each of the engine's int8 matmul paths costs on this CPU, by the number of rows a
step multiplies (1 for one decoding sequence, thousands for a prefill step): ATen's int8
weight kernel, oneDNN in bfloat16 and oneDNN in float32 (engine/quant.py). Times are the
sum over one layer of SmolLM2-135M (qkv, o, gate_up, down), median of the repeats, so the
rows where the paths cross (``quant.kernel_rows``) and the gain of bfloat16 can be read on
any machine.

    .venv/bin/python benchmarks/cpu_matmul.py [--rows 1 8 16 32 64 512 2048] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from machine import cpu_flags, cpu_name
from torch import nn

from bosun.engine import quant
from bosun.engine.quant import Int8Linear

# SmolLM2-135M: hidden 576, 9 query and 3 key/value heads of 64, MLP 1,536.
LAYER = [(576, 960), (576, 576), (576, 3072), (1536, 576)]
PATHS = {
    "int8_kernel": (10**9, torch.float32),
    "onednn_bfloat16": (0, torch.bfloat16),
    "onednn_float32": (0, torch.float32),
}


def median_seconds(fn: Callable[[], Any], repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(rows: list[int], repeat: int) -> list[dict[str, Any]]:
    torch.manual_seed(0)
    layers = [Int8Linear(nn.Linear(k, n, bias=False)) for k, n in LAYER]
    results = []
    for count in rows:
        inputs = [torch.randn(count, layer.in_features) for layer in layers]
        row: dict[str, Any] = {"rows": count}
        for name, (kernel_rows, precision) in PATHS.items():
            quant.KERNEL_ROWS = kernel_rows
            quant.wide_precision = lambda precision=precision: precision  # type: ignore[misc]

            def layer_step(inputs: list[torch.Tensor] = inputs) -> None:
                for layer, x in zip(layers, inputs, strict=True):
                    layer(x)

            row[f"{name}_ms"] = round(median_seconds(layer_step, repeat) * 1e3, 3)
        results.append(row)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1, 8, 16, 32, 64, 512, 2048])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    chosen = str(quant.wide_precision()).removeprefix("torch.")
    report = {
        "cpu": cpu_name(),
        "flags": cpu_flags(),
        "threads": torch.get_num_threads(),
        "engine_picks": {"wide_matmul": chosen, "kernel_rows": quant.kernel_rows()},
        "layer": "SmolLM2-135M, qkv + o + gate_up + down",
        "rows": measure(args.rows, args.repeat),
    }
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
