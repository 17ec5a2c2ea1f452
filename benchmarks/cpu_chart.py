"""The chart of cpu_compare.sh: one stream's decode speed of each engine and kernel on this
CPU, quiet and with a busy process beside, against the bandwidth bounds of int8 and 4-bit
weights that cpu_roofline.py measured.

    python benchmarks/cpu_chart.py RESULTS.jsonl ROOFLINE.json OUT.png
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def label(row: dict[str, object]) -> str:
    busy = " + 1 busy" if row.get("busy") else ""
    return f"{row['backend']} {row['precision']}\n{row['kernels']}{busy}"


def main() -> None:
    results, roofline, out = (Path(a) for a in sys.argv[1:4])
    rows = [json.loads(line) for line in results.read_text(encoding="utf-8").splitlines() if line]
    bounds = json.loads(roofline.read_text(encoding="utf-8"))["smollm2_bounds"]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
