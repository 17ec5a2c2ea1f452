"""The gateway's benchmark (docs/gateway.md): cache-aware routing against round-robin on
a workload of many tenants, and the proxy's own cost. Every process is real: `bosun
serve` replicas, `bosun gateway` in front of them, and an asyncio client.

**Routing.** Three `bosun serve` replicas of SmolLM2 (one CPU thread each). Each keeps
``--prefix-cache-tokens`` tokens of finished prompts: about 40% of all the tenants'
prompts together (what one replica's memory holds of many tenants). They run behind
`bosun gateway --policy cache-aware`, then behind `--policy round-robin`; the replicas
are restarted in between, so that each policy starts with empty caches.

- The workload: ``--tenants`` tenants, each with its own system prompt of about
  ``--prefix-tokens`` tokens. Each request picks a tenant at random (the same seeded
  sequence for both policies), asks a short question and streams ``--output-tokens``
  tokens, ``--concurrency`` at a time.
- Reported per policy:
  - the prefix-cache hit rate: the replicas' own `vllm:prefix_cache_hits` over
    `vllm:prefix_cache_queries`, in prompt tokens;
  - TTFT p50 and p99;
  - requests/s and output tokens/s.
- Targets: hit rate at least 2x round-robin's, TTFT p50 at least 30% lower.

**The proxy's cost.** 64 concurrent streams to a fake-engine server (its own process, a
token every 20 ms), directly and through the gateway, in alternating rounds.
- Reported: the p50 of what the gateway adds per request (time to the first token) and
  per streamed token (the gap between tokens).
- Target: under 1 ms each.

    python benchmarks/gateway_bench.py --json benchmarks/results/gateway.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).parent))
from machine import cpu_flags, cpu_name  # benchmarks/machine.py

MODEL = "smollm2-135m-instruct"
WORDS = [
    "ledger",
    "invoice",
    "refund",
    "policy",
    "account",
    "shipping",
    "warranty",
    "order",
    "customer",
    "billing",
    "renewal",
    "contract",
    "support",
    "ticket",
    "escalation",
    "priority",
    "region",
    "compliance",
    "audit",
    "subscription",
    "plan",
    "discount",
    "voucher",
    "delivery",
    "carrier",
    "tracking",
    "return",
    "exchange",
    "credit",
    "balance",
    "statement",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def process(
    command: list[str], health: str, timeout: float = 300, cpus: set[int] | None = None
) -> Iterator[None]:
    """A process that is up once ``health`` answers 200; stopped after. ``cpus``: the
    CPUs it may run on (default: any)."""
    pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
    proc = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=pin
    )
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                err = proc.stderr.read().decode() if proc.stderr else ""
                raise SystemExit(f"{' '.join(command[:6])} exited: {err[-2000:]}")
            try:
                if httpx.get(health, timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"{health} did not answer within {timeout} s")
            time.sleep(0.3)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


BOSUN = [sys.executable, "-m", "bosun.cli.main"]


@contextmanager
def replicas(count: int, retained: int, max_len: int) -> Iterator[list[str]]:
    """``count`` `bosun serve` replicas of SmolLM2, each keeping ``retained`` tokens of
    finished prompts in its prefix cache."""
    urls = []
    with ExitStack() as stack:
        for _ in range(count):
            port = free_port()
            command = [*BOSUN, "serve", "--model", MODEL, "--port", str(port)]
            command += ["--threads", "1", "--max-model-len", str(max_len)]
            command += ["--max-concurrency", "8", "--prefix-cache-tokens", str(retained)]
            command += ["--log-level", "warning"]
            url = f"http://127.0.0.1:{port}"
            stack.enter_context(process(command, f"{url}/health"))
            urls.append(url)
        yield urls


@contextmanager
def gateway(urls: list[str], policy: str, cpus: set[int] | None = None) -> Iterator[str]:
    port = free_port()
    command = [*BOSUN, "gateway", "--port", str(port), "--policy", policy, "--log-level", "warning"]
    for url in urls:
        command += ["--replica", url]
    base = f"http://127.0.0.1:{port}"
    with process(command, f"{base}/health", cpus=cpus):
        # Until the gateway has read every replica's models.
        deadline = time.monotonic() + 30
        while True:
            listed = httpx.get(f"{base}/v1/models").json()["data"]
            if listed and listed[0].get("replicas") == len(urls):
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"the gateway never listed {len(urls)} replicas: {listed}")
            time.sleep(0.2)
        yield base


def cache_counts(urls: list[str]) -> tuple[float, float]:
    """(prefix-cache queries, hits) summed over the replicas, in tokens."""
    queries = hits = 0.0
    for url in urls:
        for family in text_string_to_metric_families(httpx.get(f"{url}/metrics").text):
            for sample in family.samples:
                if sample.name == "vllm:prefix_cache_queries_total":
                    queries += sample.value
                elif sample.name == "vllm:prefix_cache_hits_total":
                    hits += sample.value
    return queries, hits


def routed_home(url: str) -> float:
    """The share of the gateway's routing decisions that sent a request to its key's own
    replica (the rest spilled under load, or had no key)."""
    counts = {"true": 0.0, "false": 0.0}
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics").text):
        for sample in family.samples:
            if sample.name == "bosun_gateway_routing_decisions_total":
                counts[sample.labels["home"]] += sample.value
    total = counts["true"] + counts["false"]
    return round(counts["true"] / total, 3) if total else 0.0


def system_prompt(tenant: int, tokens: int) -> str:
    """Tenant ``tenant``'s own instructions, about ``tokens`` tokens long; they differ
    from the first words on, as real tenants' do."""
    rng = random.Random(tenant)
    words = [rng.choice(WORDS) for _ in range(int(tokens * 0.8))]
    return f"You are the support assistant of tenant {tenant}. Rules: " + " ".join(words)


@dataclass
class Outcome:
    ttft: list[float] = field(default_factory=list)
    gaps: list[float] = field(default_factory=list)
    tokens: int = 0
    errors: int = 0


async def stream(
    client: aiohttp.ClientSession, url: str, path: str, body: dict[str, Any], out: Outcome
) -> None:
    began = time.perf_counter()
    last: float | None = None
    try:
        async with client.post(f"{url}{path}", json=body) as response:
            if response.status != 200:
                out.errors += 1
                await response.read()
                return
            async for raw in response.content:  # line by line
                line = raw.decode().strip()
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                now = time.perf_counter()
                if last is None:
                    out.ttft.append(now - began)
                else:
                    out.gaps.append(now - last)
                last = now
                out.tokens += 1
    except (aiohttp.ClientError, TimeoutError):
        out.errors += 1


async def run_requests(
    url: str, path: str, bodies: list[dict[str, Any]], concurrency: int, stagger: float = 0.0
) -> tuple[Outcome, float]:
    """Send ``bodies`` with ``concurrency`` streams at a time, each stream starting its
    next request when the last ends. ``stagger``: the streams start spread over this
    many seconds (a steady state), not in one burst. The client is aiohttp (its parser in
    C): the load generator shares a CPU with the server, and the less it takes of it, the
    less it delays the server's answers to the gateway (httpx took about 3x the CPU)."""
    out = Outcome()
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    connector = aiohttp.TCPConnector(limit=concurrency + 8)
    timeout = aiohttp.ClientTimeout(total=600, connect=10)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as client:

        async def worker(number: int) -> None:
            await asyncio.sleep(stagger * number / concurrency)
            while not queue.empty():
                await stream(client, url, path, queue.get_nowait(), out)

        began = time.perf_counter()
        await asyncio.gather(*(worker(n) for n in range(concurrency)))
        return out, time.perf_counter() - began


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def routing(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    prompts = [system_prompt(t, args.prefix_tokens) for t in range(args.tenants)]
    bodies = []
    for i in range(args.requests):
        tenant = rng.randrange(args.tenants)
        messages = [
            {"role": "system", "content": prompts[tenant]},
            {"role": "user", "content": f"Question {i}: how do I get a refund for order {i}?"},
        ]
        bodies.append(
            {
                "model": MODEL,
                "messages": messages,
                "max_tokens": args.output_tokens,
                "min_tokens": args.output_tokens,
                "temperature": 0,
                "stream": True,
            }
        )
    results: dict[str, Any] = {}
    for policy in ("cache-aware", "round-robin"):
        with (
            replicas(3, args.prefix_cache_tokens, args.max_len) as urls,
            gateway(urls, policy) as url,
        ):
            before = cache_counts(urls)
            out, seconds = asyncio.run(
                run_requests(url, "/v1/chat/completions", bodies, args.concurrency)
            )
            after = cache_counts(urls)
            home = routed_home(url)
        queries, hits = after[0] - before[0], after[1] - before[1]
        results[policy] = {
            "hit_rate": round(hits / queries, 4) if queries else 0.0,
            "prompt_tokens": int(queries),
            "ttft_p50_ms": round(pct(out.ttft, 0.5) * 1000, 1),
            "ttft_p99_ms": round(pct(out.ttft, 0.99) * 1000, 1),
            "requests_per_s": round(len(out.ttft) / seconds, 3),
            "output_tokens_per_s": round(out.tokens / seconds, 1),
            "errors": out.errors,
            "seconds": round(seconds, 1),
            "sent_to_home_replica": home,
        }
        print(policy, results[policy], flush=True)
    aware, rr = results["cache-aware"], results["round-robin"]
    results["hit_rate_ratio"] = round(aware["hit_rate"] / max(rr["hit_rate"], 1e-9), 2)
    results["ttft_p50_reduction"] = round(1 - aware["ttft_p50_ms"] / rr["ttft_p50_ms"], 3)
    return results


FAKE_SERVER = """
import sys, uvicorn
from bosun.engine.fake import FakeEngine
from bosun.serving.app import ServeSettings, build_app
engine = FakeEngine(name="fake", delay={delay}, max_running=256, max_waiting=1024)
uvicorn.run(build_app(ServeSettings(), engine), host="127.0.0.1", port={port}, log_level="warning")
"""


def proxy_cost(args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    server = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-c", FAKE_SERVER.format(delay=args.token_delay, port=port)]
    tokens = 32
    body = {"model": "fake", "prompt": "hello there", "max_tokens": tokens, "stream": True}
    # Each stream sends 4 requests; they start spread over one request's length, so that
    # requests arrive steadily (64 streams in flight), not all at once.
    bodies = [body] * (args.streams * 4)
    stagger = tokens * args.token_delay
    direct, through = Outcome(), Outcome()
    # The client and the server share the first CPU, the gateway has the second: as in a
    # cluster, where it runs in pods of its own. Without this, on 2 CPUs, the gateway's
    # run would also measure three busy processes sharing two CPUs.
    everything = sorted(os.sched_getaffinity(0))
    shared, own = ({everything[0]}, {everything[1]}) if len(everything) > 1 else (None, None)
    if shared:
        os.sched_setaffinity(0, shared)
    with (
        process(command, f"{server}/health", cpus=shared),
        gateway([server], "cache-aware", cpus=own) as url,
    ):
        for target in (url, server):  # warm up
            asyncio.run(run_requests(target, "/v1/completions", bodies, args.streams, stagger))
        for _ in range(args.rounds):  # alternating, so drifts hit both alike
            for target, out in ((server, direct), (url, through)):
                one, _ = asyncio.run(
                    run_requests(target, "/v1/completions", bodies, args.streams, stagger)
                )
                out.ttft += one.ttft
                out.gaps += one.gaps
                out.errors += one.errors
    if shared:
        os.sched_setaffinity(0, everything)
    return {
        "cpus": "client and server on one CPU, the gateway on another" if shared else "shared",
        "streams": args.streams,
        "token_delay_ms": args.token_delay * 1000,
        "direct_ttft_p50_ms": round(statistics.median(direct.ttft) * 1000, 3),
        "gateway_ttft_p50_ms": round(statistics.median(through.ttft) * 1000, 3),
        "added_per_request_p50_ms": round(
            (statistics.median(through.ttft) - statistics.median(direct.ttft)) * 1000, 3
        ),
        "direct_gap_p50_ms": round(statistics.median(direct.gaps) * 1000, 3),
        "gateway_gap_p50_ms": round(statistics.median(through.gaps) * 1000, 3),
        "added_per_token_p50_ms": round(
            (statistics.median(through.gaps) - statistics.median(direct.gaps)) * 1000, 3
        ),
        "errors": direct.errors + through.errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tenants", type=int, default=24)
    parser.add_argument("--prefix-tokens", type=int, default=320)
    parser.add_argument("--requests", type=int, default=288)
    parser.add_argument("--output-tokens", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=6)
    parser.add_argument(
        "--prefix-cache-tokens", type=int, default=4096, help="Each replica's finished prompts."
    )
    parser.add_argument("--max-len", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--streams", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--token-delay", type=float, default=0.02)
    parser.add_argument("--skip-routing", action="store_true")
    parser.add_argument("--skip-proxy", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    settings = {**vars(args), "json": str(args.json) if args.json else None}
    report: dict[str, Any] = {"cpu": cpu_name(), "cpu_flags": cpu_flags(), "args": settings}
    if not args.skip_proxy:
        report["proxy"] = proxy_cost(args)
        print("proxy", report["proxy"], flush=True)
    if not args.skip_routing:
        report["routing"] = routing(args)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
