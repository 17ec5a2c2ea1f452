"""The charts of cpu_compare.sh: one stream's decode speed of each engine and kernel on this
CPU, quiet and with a busy process beside, against the bandwidth bounds of int8 and 4-bit
weights that cpu_roofline.py measured; and, given engine_batch.py's results, output
tokens/s of each kernel by the number of requests, against the float32 compute bound of
those requests and 1.3x it.

    python benchmarks/cpu_chart.py RESULTS.jsonl ROOFLINE.json OUT.png [BATCH.jsonl OUT.png]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def label(row: dict[str, object]) -> str:
    busy = " + 1 busy" if row.get("busy") else ""
    return f"{row['backend']} {row['precision']}\n{row['kernels']}{busy}"


def read_rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def batch_chart(rows: list[dict[str, Any]], bounds: dict[str, float], out: Path) -> None:
    import matplotlib.pyplot as plt

    kernels = list(dict.fromkeys(str(r["kernels"]) for r in rows))
    levels = sorted({int(r["concurrency"]) for r in rows})
    fig, ax = plt.subplots(figsize=(9, 4.5))
    width = 0.8 / len(kernels)
    for k, name in enumerate(kernels):
        mine = [r for r in rows if r["kernels"] == name]
        got = {int(r["concurrency"]): float(r["output_tok_s"]) for r in mine}
        xs = [i + k * width for i, c in enumerate(levels) if c in got]
        ax.bar(xs, [got[c] for c in levels if c in got], width, label=name)
    widest = next(r for r in rows if int(r["concurrency"]) == levels[-1])
    output = float(widest["output_tokens"])
    bound = bounds["batch_float32_tok_s"] * output / (float(widest["prompt_tokens"]) + output)
    ax.axhline(bound, color="gray", linestyle="--", label="float32 compute bound")
    ax.axhline(1.3 * bound, color="gray", linestyle=":", label="1.3x it (the issue's target)")
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(levels))], [str(c) for c in levels])
    prompt = float(widest["prompt_tokens"])
    ax.set_xlabel(f"requests at once (~{prompt:.0f} prompt and {output:.0f} output tokens each)")
    ax.set_ylabel("output tokens / s")
    ax.set_title(f"SmolLM2-135M batches on {rows[0]['cpu']}, 2 threads")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)


def main() -> None:
    results, roofline, out = (Path(a) for a in sys.argv[1:4])
    rows = read_rows(results)
    bounds = json.loads(roofline.read_text(encoding="utf-8"))["smollm2_bounds"]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if len(sys.argv) > 5:
        batch_chart(read_rows(Path(sys.argv[4])), bounds, Path(sys.argv[5]))

    fig, ax = plt.subplots(figsize=(9, 4.5))
    colors = ["#1f77b4" if r["backend"] == "bosun" else "#ff7f0e" for r in rows]
    ax.bar(range(len(rows)), [r["decode_tok_s"] for r in rows], color=colors)
    ax.set_xticks(range(len(rows)), [label(r) for r in rows], fontsize=6)
    for name, style in (("decode_int8_tok_s", "--"), ("decode_int4_tok_s", ":")):
        ax.axhline(bounds[name], color="gray", linestyle=style, label=name.split("_")[1] + " bound")
    ax.set_ylabel("decode tokens / s (one stream)")
    ax.set_title(f"SmolLM2-135M on {rows[0]['cpu']}, 2 threads")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)


if __name__ == "__main__":
    main()
