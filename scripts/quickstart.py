"""The quick start: `bosun up` the bundled SmolLM2 example, ask it one question with
`bosun chat`, and leave it running (`bosun down smollm2` stops it).

The first run converts the GGUF weights once (about 30 s); later runs reuse the cache. A
second `make run` finds the workspace already Ready and just asks again.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "01-cpu-smollm2.yaml"
NAME = "smollm2"
QUESTION = "What is the capital of France? Answer in one sentence."


def bosun(*args: str, capture: bool = False) -> subprocess.CompletedProcess[str]:
    bosun_bin = Path(sys.executable).parent / "bosun"
    return subprocess.run([str(bosun_bin), *args], capture_output=capture, text=True, check=False)


def main() -> int:
    listed = bosun("ps", "-o", "json", capture=True)
    if listed.returncode != 0:
        print(listed.stderr, file=sys.stderr)
        return listed.returncode
    states = {row["name"]: row["state"] for row in json.loads(listed.stdout)}
    if states.get(NAME) == "Ready":
        print(f"{NAME} is already running (bosun ps)")
    else:
        if NAME in states:  # a stopped, failed or stale entry: start afresh
            bosun("down", NAME, capture=True)
        started = bosun("up", str(EXAMPLE))
        if started.returncode != 0:
            return started.returncode
    print(f"\nQ: {QUESTION}\nA: ", end="", flush=True)
    answered = bosun("chat", NAME, "-m", QUESTION, "--temperature", "0", "--max-tokens", "64")
    if answered.returncode != 0:
        return answered.returncode
    print(
        f"\n{NAME} keeps running: bosun ps, bosun chat {NAME}, bosun logs {NAME}; "
        f"stop it with: .venv/bin/bosun down {NAME}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
