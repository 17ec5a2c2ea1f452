"""Cold start of an OpenAI-compatible server: seconds from launching its command to the
first ``200`` from its health URL (median of ``--repeat`` launches, the model already
converted and cached).

    python benchmarks/cold_start.py --repeat 3 -- bosun serve --model smollm2-135m-instruct \\
        --port 18001
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time

import httpx


def launch_until_healthy(command: list[str], health: str, timeout: float) -> float:
    # Its output goes to a file, not a pipe: a chatty server would fill a pipe and stall.
    with tempfile.TemporaryFile() as log:
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            while time.perf_counter() - start < timeout:
                if process.poll() is not None:
                    log.seek(0)
                    err = log.read().decode(errors="replace")[-2000:]
                    raise SystemExit(f"the server exited with {process.returncode}:\n{err}")
                try:
                    if httpx.get(health, timeout=1.0).status_code == 200:
                        return time.perf_counter() - start
                except httpx.HTTPError:
                    pass
                time.sleep(0.05)
            raise SystemExit(f"no 200 from {health} within {timeout:.0f} s")
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--health", default="http://127.0.0.1:18001/health")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--label", default="server")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the server command")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the server command after --")
    times = [launch_until_healthy(command, args.health, args.timeout) for _ in range(args.repeat)]
    result = {"label": args.label, "seconds": times, "median_s": statistics.median(times)}
    json.dump(result, sys.stdout)
    print()


if __name__ == "__main__":
    main()
