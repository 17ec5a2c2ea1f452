"""The control plane's curves (issue 23): time against size for the operator
(operator_bench.py: Workspaces until all applied, against the API server's floor) and the
DRA allocator (allocator_bench.py: a whole-cluster search per claim, and the build).

matplotlib stays out of the project's lock; run it from any environment that has it:

    python benchmarks/scale_chart.py benchmarks/results/operator.json \\
        benchmarks/results/allocator.json benchmarks/results/
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def operator_chart(data: dict[str, Any], out: Path) -> None:
    import matplotlib.pyplot as plt

    rows = sorted(data["results"], key=lambda r: r["workspaces"])
    n = [r["workspaces"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    left.plot(n, [r["seconds"] for r in rows], "o-", label="bosun operator: all applied")
    left.plot(
        n, [r["baseline_seconds"] for r in rows], "s--", label="floor: objects created directly"
    )
    restarts = [r for r in rows if "restart_seconds" in r]
    if restarts:
        left.plot(
            [r["workspaces"] for r in restarts],
            [r["restart_seconds"] for r in restarts],
            "^:",
            label="a restart: every Workspace resumed",
        )
    left.set_xlabel("Workspaces created at once")
    left.set_ylabel("seconds")
    left.set_title("Time until every Workspace is applied")
    left.legend()
    left.grid(alpha=0.3)
    right.plot(n, [r["ratio_to_direct_create"] for r in rows], "o-", color="C3")
    right.axhline(3, color="grey", linestyle=":", label="target: 3x, flat")
    right.set_xlabel("Workspaces created at once")
    right.set_ylabel("x the floor")
    right.set_title("Operator time over the API server's floor")
    right.set_ylim(bottom=0)
    right.legend()
    right.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def allocator_chart(rows: list[dict[str, Any]], out: Path) -> None:
    import matplotlib.pyplot as plt

    rows = sorted(rows, key=lambda r: r["nodes"])
    nodes = [r["nodes"] for r in rows]
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for label, name in (
        ("1gpu", "1 GPU"),
        ("8gpu", "8 GPUs, one PCIe root"),
        ("prio", "prioritized list"),
    ):
        ax.plot(nodes, [r[label]["cluster_ms"] for r in rows], "o-", label=f"{name}: first claim")
        if "cluster_ms_reused" in rows[0][label]:
            ax.plot(
                nodes, [r[label]["cluster_ms_reused"] for r in rows], ".:", label=f"{name}: reused"
            )
    ax.plot(nodes, [r["build_ms"] for r in rows], "s--", color="black", label="build")
    ax.plot(
        nodes,
        [r["baseline"]["cluster_ms"] for r in rows],
        "x--",
        color="grey",
        label="hand-written filter",
    )
    ax.set_xlabel("nodes (8 GPUs each)")
    ax.set_ylabel("ms for the whole cluster")
    ax.set_title("DRA allocator: one claim searched over every node")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main() -> None:
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    operator, allocator, out = (Path(a) for a in sys.argv[1:])
    operator_chart(json.loads(operator.read_text(encoding="utf-8")), out / "operator_scale.png")
    allocator_chart(json.loads(allocator.read_text(encoding="utf-8")), out / "allocator_scale.png")


if __name__ == "__main__":
    main()
