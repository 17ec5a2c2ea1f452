"""Soak: many concurrent streams against a real `bosun serve` (SmolLM2-135M-Instruct) for
minutes, with a share of bad and disconnecting clients mixed in (issue 16).

Good clients stream chat completions one after another; every one must complete. Bad
clients, one request in ``--bad-share``, send one of: a prompt with a token id outside
the vocabulary, an empty prompt, a 6 MB body, a stream they drop after two chunks, or a
request without its body (the server must time it out). Reported: good requests done and
failed (the target is zero failed), their latency p50/p99, the server's resident memory
after warm-up and at the end (the target is under 5% growth), and what each bad kind got.

    python benchmarks/soak.py --duration 600 --streams 64 --json benchmarks/results/soak.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from machine import cpu_name  # benchmarks/machine.py

MODEL = "smollm2-135m-instruct"
QUESTIONS = [
    "What is the capital of France?",
    "Name three colours.",
    "Write one sentence about the sea.",
    "What is two plus two?",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text(encoding="utf-8").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


async def good_client(url: str, stop: float, latencies: list[float], failures: Counter[str]) -> int:
    done = 0
    async with httpx.AsyncClient(base_url=url, timeout=300) as client:
        while time.monotonic() < stop:
            body = {
                "model": MODEL,
                "messages": [{"role": "user", "content": random.choice(QUESTIONS)}],
                "max_tokens": 24,
                "stream": True,
            }
            started = time.monotonic()
            finished = False
            try:
                async with client.stream("POST", "/v1/chat/completions", json=body) as r:
                    if r.status_code != 200:
                        failures[f"status {r.status_code}"] += 1
                        continue
                    async for line in r.aiter_lines():
                        if line == "data: [DONE]":
                            finished = True
                        elif '"error"' in line:
                            failures["error event"] += 1
            except httpx.HTTPError as exc:
                failures[type(exc).__name__] += 1
                continue
            if finished:
                done += 1
                latencies.append(time.monotonic() - started)
            else:
                failures["no [DONE]"] += 1
    return done


async def bad_request(url: str, kind: str) -> str:
    """One bad request; what the server answered."""
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        if kind == "token id":
            r = await client.post(
                "/v1/completions", json={"model": MODEL, "prompt": [10**6], "max_tokens": 4}
            )
            return str(r.status_code)
        if kind == "empty prompt":
            r = await client.post("/v1/completions", json={"model": MODEL, "prompt": ""})
            return str(r.status_code)
        if kind == "6 MB body":
            r = await client.post(
                "/v1/completions", json={"model": MODEL, "prompt": "x " * 3_000_000}
            )
            return str(r.status_code)
        if kind == "dropped stream":
            body = {"model": MODEL, "prompt": "Once upon a time", "max_tokens": 200, "stream": True}
            async with client.stream("POST", "/v1/completions", json=body) as r:
                chunks = 0
                async for _ in r.aiter_lines():
                    chunks += 1
                    if chunks >= 2:
                        break
            return "dropped"
    # A body announced and never sent: the server times it out (408) or we give up.
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100\r\n\r\n{"
    )
    await writer.drain()
    try:
        status = await asyncio.wait_for(reader.readline(), 45)
    except TimeoutError:
        status = b"no answer"
    writer.close()
    return status.decode(errors="replace").split(" ")[1] if b"HTTP" in status else "closed"


async def bad_client(
    url: str, stop: float, share: float, outcomes: dict[str, Counter[str]]
) -> None:
    kinds = ["token id", "empty prompt", "6 MB body", "dropped stream", "missing body"]
    while time.monotonic() < stop:
        await asyncio.sleep(random.expovariate(1 / (2 / share)))
        kind = random.choice(kinds)
        try:
            outcomes[kind][await bad_request(url, kind)] += 1
        except httpx.HTTPError as exc:
            outcomes[kind][type(exc).__name__] += 1


async def soak(
    url: str, pid: int, streams: int, duration: float, share: float, warmup: float
) -> dict[str, Any]:
    latencies: list[float] = []
    failures: Counter[str] = Counter()
    outcomes: dict[str, Counter[str]] = {}
    for kind in ("token id", "empty prompt", "6 MB body", "dropped stream", "missing body"):
        outcomes[kind] = Counter()
    # Warm up under the same load (the KV cache's memory is touched as blocks are first
    # used), then measure memory from there: growth after that is what a leak would be.
    warm_stop = time.monotonic() + warmup
    await asyncio.gather(*(good_client(url, warm_stop, [], Counter()) for _ in range(streams)))
    rss_start = rss_bytes(pid)
    stop = time.monotonic() + duration
    bad = max(1, streams // 8)
    samples: list[int] = []

    async def sample_memory() -> None:  # the curve: a leak climbs, a warm cache is flat
        while time.monotonic() < stop:
            samples.append(rss_bytes(pid))
            await asyncio.sleep(min(60.0, duration / 10))

    results = await asyncio.gather(
        *(good_client(url, stop, latencies, failures) for _ in range(streams)),
        *(bad_client(url, stop, share, outcomes) for _ in range(bad)),
        sample_memory(),
    )
    rss_end = rss_bytes(pid)
    done = sum(r for r in results if isinstance(r, int))
    ordered = sorted(latencies)
    return {
        "streams": streams,
        "badClients": bad,
        "durationS": duration,
        "warmupS": warmup,
        "goodDone": done,
        "goodFailed": sum(failures.values()),
        "failures": dict(failures),
        "latencyP50S": round(statistics.median(ordered), 3) if ordered else None,
        "latencyP99S": round(ordered[int(0.99 * (len(ordered) - 1))], 3) if ordered else None,
        "rssStartBytes": rss_start,
        "rssEndBytes": rss_end,
        "rssGrowth": round(rss_end / rss_start - 1, 4) if rss_start else None,
        "rssSamplesBytes": samples,
        "bad": {k: dict(v) for k, v in outcomes.items()},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=600, help="seconds of load")
    parser.add_argument("--streams", type=int, default=64, help="concurrent good clients")
    parser.add_argument("--bad-share", type=float, default=0.1, help="bad requests per good")
    parser.add_argument("--warmup", type=float, default=60, help="seconds of load before")
    parser.add_argument("--json", type=Path, help="write the result here")
    args = parser.parse_args()
    port = free_port()
    bosun = Path(sys.executable).parent / "bosun"
    server = subprocess.Popen(
        [
            str(bosun),
            "serve",
            "-m",
            MODEL,
            "--port",
            str(port),
            "--max-concurrency",
            "16",
            "--max-waiting",
            "1024",
            "--log-level",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None:
                print(server.stderr.read().decode() if server.stderr else "", file=sys.stderr)
                return 1
            time.sleep(0.5)
        result = asyncio.run(
            soak(url, server.pid, args.streams, args.duration, args.bad_share, args.warmup)
        )
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
    result["cpu"] = cpu_name()
    result["cores"] = os.cpu_count()
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0 if result["goodFailed"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
