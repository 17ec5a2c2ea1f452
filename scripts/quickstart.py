"""The quick start: serve the bundled SmolLM2 with `bosun serve` and ask it one question.

Until `bosun up` (the local runtime) lands, this starts the server, waits for /health,
sends a chat request with the official openai client, prints the answer and stops the
server. The first run converts the GGUF weights once (about 30 s); later runs reuse the
cache.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai

MODEL = "smollm2-135m-instruct"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> int:
    port = free_port()
    bosun = Path(sys.executable).parent / "bosun"
    server = subprocess.Popen(
        [
            str(bosun),
            "serve",
            "--model",
            MODEL,
            "--port",
            str(port),
            "--max-model-len",
            "2048",
            "--log-level",
            "warning",
        ],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            if server.poll() is not None:
                print("bosun serve exited early", file=sys.stderr)
                return 1
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        else:
            print("bosun serve did not become ready in 10 minutes", file=sys.stderr)
            return 1
        client = openai.OpenAI(base_url=f"{base}/v1", api_key="unused")
        question = "What is the capital of France? Answer in one sentence."
        answer = client.chat.completions.create(
            model=MODEL,
            temperature=0,
            max_tokens=64,
            messages=[{"role": "user", "content": question}],
        )
        print(f"\nQ: {question}\nA: {answer.choices[0].message.content}\n")
        print(
            f"Served at {base}/v1 (stopped now). Serve it yourself with:\n"
            f"  .venv/bin/bosun serve --model {MODEL} --port 8000"
        )
        return 0
    finally:
        server.terminate()
        server.wait(timeout=60)


if __name__ == "__main__":
    sys.exit(main())
