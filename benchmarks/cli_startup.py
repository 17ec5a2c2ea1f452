"""CLI start-up: how long `bosun plan` and `bosun render` take, against a bare interpreter.

Each command runs in a fresh process REPEAT times (after one warm-up for the disk cache);
the median wall time is reported, and its ratio to `python -c pass` measured in the same
run, so the figure means the same on a fast or a slow machine.

    .venv/bin/python benchmarks/cli_startup.py [--repeat 15]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "03-llama-70b-multi-gpu.yaml"
BOSUN = [sys.executable, "-m", "bosun.cli"]


def median_seconds(command: list[str], repeat: int) -> float:
    subprocess.run(command, check=True, capture_output=True)  # warm the page cache
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    cases = {
        "python -c pass (baseline)": [sys.executable, "-c", "pass"],
        "bosun --help": [*BOSUN, "--help"],
        "bosun plan -o json": [*BOSUN, "plan", str(EXAMPLE), "-o", "json"],
        "bosun render": [*BOSUN, "render", str(EXAMPLE)],
    }
    baseline = None
    print(f"{'command':32s} {'median ms':>10s} {'x baseline':>11s}")
    for name, command in cases.items():
        seconds = median_seconds(command, args.repeat)
        baseline = baseline or seconds
        print(f"{name:32s} {seconds * 1000:10.1f} {seconds / baseline:11.2f}")


if __name__ == "__main__":
    main()
