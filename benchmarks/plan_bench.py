"""Planning speed over the whole catalog: every preset on every instance type (the matrix a
platform team's `bosun models --fits`, the console and the operator walk).

Each cell parses a Workspace naming the preset and plans it for the instance type, as
`bosun plan` does. The baseline, measured in the same run, is parsing alone (pydantic
validation of the same Workspaces); the ratio says what sizing costs on top. Target:
the whole matrix in under 2 s on a 2-core CPU.

    .venv/bin/python benchmarks/plan_bench.py [--repeat 3] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from machine import cpu_name  # benchmarks/machine.py

from bosun.api import BosunError, preset_workspace
from bosun.catalog import all_instance_types, all_presets, plan_workspace


def names() -> list[str]:
    return [p.name for p in all_presets()]


def parse_all(presets: list[str], types: int) -> float:
    start = time.perf_counter()
    for _ in range(types):
        for preset in presets:
            preset_workspace(preset, "bench")
    return time.perf_counter() - start


def plan_all(presets: list[str], types: list[str]) -> tuple[float, dict[str, int]]:
    counts = {"fits": 0, "short": 0, "refused": 0}
    start = time.perf_counter()
    for itype in types:
        for preset in presets:
            try:
                plan = plan_workspace(preset_workspace(preset, "bench"), instance_type=itype)
            except BosunError:
                counts["refused"] += 1
                continue
            counts["fits" if plan.fits else "short"] += 1
    return time.perf_counter() - start, counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    docs = names()
    types = [t.name for t in all_instance_types()]
    plan_all(docs[:2], types[:2])  # imports and caches warm
    plans, parses, counts = [], [], {}
    for _ in range(args.repeat):
        parses.append(parse_all(docs, len(types)))
        seconds, counts = plan_all(docs, types)
        plans.append(seconds)
    cells = len(docs) * len(types)
    result = {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "presets": len(docs),
        "instance_types": len(types),
        "cells": cells,
        "outcomes": counts,
        "matrix_s": round(statistics.median(plans), 3),
        "per_plan_us": round(statistics.median(plans) / cells * 1e6, 1),
        "baseline_parse_s": round(statistics.median(parses), 3),
        "ratio_to_parse": round(statistics.median(plans) / statistics.median(parses), 2),
        "target_s": 2.0,
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
