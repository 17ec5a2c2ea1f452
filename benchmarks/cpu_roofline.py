"""This machine's limits for the Bosun engine on CPUs: memory bandwidth (what one decode
stream is bound by: every weight is read once per token) and matrix-multiply peaks in
float32, bfloat16 and int8 (what large batches are bound by), measured with the torch
kernels the engine uses, on the threads it would use.

From them, the bounds for SmolLM2-135M-Instruct: decode tokens/s of one stream at each
weight precision (bandwidth / bytes read per token) and tokens/s of a batch, prompt and
output tokens together (compute / FLOPs per token, about 0.27 GFLOP for either). With
``--results``, a single_stream.py or engine_batch.py JSON-lines file, each engine's figure
is printed as a share of the bound that applies, so figures from different machines
compare: one stream against the bandwidth bound of its weights, a batch's output tokens/s
against the float32 compute bound of its requests (each request computes its prompt and
its output: of P prompt and O output tokens, O / (P + O) of the bound's tokens are output).

    .venv/bin/python benchmarks/cpu_roofline.py [--json FILE] [--results FILE ...]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from collections.abc import Callable
from pathlib import Path

import torch
from machine import cpu_flags, cpu_name  # benchmarks/machine.py

# SmolLM2-135M-Instruct: 30 layers of q/k/v/o (576 x 960, 576 x 576) and a gated MLP
# (576 x 3072, 1536 x 576), a tied 49,152 x 576 head read once per token.
LAYER_WEIGHTS = 30 * (576 * 960 + 576 * 576 + 576 * 3072 + 1536 * 576)
HEAD_WEIGHTS = 49152 * 576
# Bytes per weight read per token, scales included (per output channel: negligible).
PRECISIONS = {
    "float32": 4.0,
    "bfloat16": 2.0,
    "int8": 1.0,
    "int4": 0.5 + 2 / 32,
    "q8_0": 1.0 + 2 / 32,  # llama.cpp's: an fp16 scale per 32
    "q4_1": 0.5 + 4 / 32,  # an fp16 scale and minimum per 32
}


def best_seconds(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm up
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def bandwidth(repeat: int) -> dict[str, float]:
    """GB/s reading (a sum over 512 MiB) and copying (512 MiB read, 512 MiB written)."""
    n = 128 * 2**20  # float32 elements: 512 MiB
    src, dst = torch.ones(n), torch.empty(n)
    read = best_seconds(lambda: src.sum(), repeat)
    copy = best_seconds(lambda: dst.copy_(src), repeat)
    return {"read_gbs": 4 * n / read / 1e9, "copy_gbs": 2 * 4 * n / copy / 1e9}


def matmul_peaks(repeat: int) -> dict[str, float]:
    """GFLOP/s (GOP/s for int8) of square products large enough to be compute-bound."""
    n = 1024
    flops = 2 * n**3
    a, b = torch.randn(n, n), torch.randn(n, n)
    peaks = {"float32_gflops": flops / best_seconds(lambda: a @ b, repeat) / 1e9}
    a16, b16 = a.bfloat16(), b.bfloat16()
    peaks["bfloat16_gflops"] = flops / best_seconds(lambda: a16 @ b16, repeat) / 1e9
    a8 = torch.randint(-127, 127, (n, n), dtype=torch.int8)
    b8 = torch.randint(-127, 127, (n, n), dtype=torch.int8)
    with contextlib.suppress(RuntimeError):  # no int8 product kernel for this CPU here
        peaks["int8_gops"] = flops / best_seconds(lambda: torch._int_mm(a8, b8), repeat) / 1e9
    return peaks


def bounds(measured: dict[str, float]) -> dict[str, float]:
    """SmolLM2-135M's bounds on this machine: one stream by bandwidth, batches by compute."""
    out: dict[str, float] = {}
    for name, per_weight in PRECISIONS.items():
        per_token = (LAYER_WEIGHTS + HEAD_WEIGHTS) * per_weight
        out[f"decode_{name}_tok_s"] = measured["read_gbs"] * 1e9 / per_token
    flops_per_token = 2 * (LAYER_WEIGHTS + HEAD_WEIGHTS)
    for kind in ("float32_gflops", "bfloat16_gflops", "int8_gops"):
        if kind in measured:
            precision = kind.split("_")[0]
            out[f"batch_{precision}_tok_s"] = measured[kind] * 1e9 / flops_per_token
    return out


def shares(results: list[Path], limits: dict[str, float]) -> list[dict[str, object]]:
    """Each result line's figure as a share of its bound: decode_tok_s against one
    stream's bandwidth bound at the engine's precision, output_tok_s against the float32
    compute bound of its requests' prompt and output tokens."""
    rows: list[dict[str, object]] = []
    for path in results:
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            row = json.loads(line)
            precision = row.get("precision", "int8")
            if "decode_tok_s" in row:
                bound = limits[f"decode_{precision}_tok_s"]
                rows.append({**row, "bound_tok_s": bound, "share": row["decode_tok_s"] / bound})
            elif "output_tok_s" in row:
                output = row["output_tokens"]
                bound = limits["batch_float32_tok_s"] * output / (row["prompt_tokens"] + output)
                rows.append({**row, "bound_tok_s": bound, "share": row["output_tok_s"] / bound})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", help="write the figures here too")
    parser.add_argument("--results", nargs="*", default=[], help="JSON-lines result files")
    args = parser.parse_args()
    measured = {**bandwidth(args.repeat), **matmul_peaks(args.repeat)}
    report: dict[str, object] = {
        "cpu": cpu_name(),
        "flags": cpu_flags(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        **{k: round(v, 1) for k, v in measured.items()},
        "smollm2_bounds": {k: round(v, 1) for k, v in bounds(measured).items()},
    }
    if args.results:
        report["shares"] = shares([Path(p) for p in args.results], bounds(measured))
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
