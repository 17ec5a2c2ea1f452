"""Seconds from `bosun up` to the first token of the first answer, with the model cache
warm (converted before) and cold (an empty $BOSUN_CACHE_DIR: the GGUF file is converted
first). Each run uses a fresh $BOSUN_HOME and ends with `bosun down`.

    python benchmarks/up_first_token.py [--repeat 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "01-cpu-smollm2.yaml"


def bosun(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "bosun.cli.main", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, check=True)


def once(cache: str | None) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "BOSUN_HOME": home}
        if cache is not None:
            env["BOSUN_CACHE_DIR"] = cache
        start = time.perf_counter()
        printed = bosun(env, "up", str(EXAMPLE)).stdout
        ready = time.perf_counter() - start
        found = re.search(r"(http://127\.0\.0\.1:\d+/v1) \(model (\S+)\)", printed)
        assert found, f"bosun up printed no endpoint: {printed}"
        endpoint, model = found.groups()
        body = {
            "model": model,
            "stream": True,
            "max_tokens": 8,
            "messages": [{"role": "user", "content": "What is the capital of France?"}],
        }
        first = None
        url = f"{endpoint}/chat/completions"
        with httpx.stream("POST", url, json=body, timeout=120) as response:
            for line in response.iter_lines():
                if line.startswith("data: ") and '"content"' in line:
                    first = time.perf_counter() - start
                    break
        bosun(env, "down", "--all")
        assert first is not None, "no token came back"
        return {"ready_s": ready, "first_token_s": first}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result: dict[str, object] = {}
    warm = [once(None) for _ in range(args.repeat)]
    with tempfile.TemporaryDirectory() as cache:
        cold = [once(cache)]  # the next runs would find it converted
    for label, runs in (("warm", warm), ("cold", cold)):
        result[label] = {
            "runs": runs,
            "median_first_token_s": statistics.median(r["first_token_s"] for r in runs),
            "median_ready_s": statistics.median(r["ready_s"] for r in runs),
        }
        print(
            f"{label}: up -> Ready {result[label]['median_ready_s']:.1f} s, "  # type: ignore[index]
            f"up -> first token {result[label]['median_first_token_s']:.1f} s "  # type: ignore[index]
            f"(median of {len(runs)})"
        )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
