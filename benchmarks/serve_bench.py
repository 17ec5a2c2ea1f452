"""An OpenAI-protocol load generator for any OpenAI-compatible server.

Sends streaming ``/v1/completions`` requests with random-word prompts of about
``--input-len`` tokens and ``--output-len`` output tokens (``ignore_eos`` where the server
accepts it; otherwise the tokens actually returned are counted), at fixed concurrency
levels or a Poisson request rate, and reports per level: TTFT, TPOT and ITL (p50/p90/p99),
output tok/s, request throughput and goodput (requests meeting every SLO per second), as a
table and JSON; with several levels, also a PNG of throughput against concurrency.
Definitions as in `vllm bench serve` (PEERS.md).

    python benchmarks/serve_bench.py --url http://127.0.0.1:8000 --model NAME \\
        --concurrency 1 8 32 --label bosun --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

WORDS = [
    "river",
    "stone",
    "cloud",
    "garden",
    "lamp",
    "window",
    "silver",
    "orange",
    "forest",
    "paper",
    "market",
    "engine",
    "music",
    "winter",
    "pocket",
    "ladder",
    "candle",
    "bridge",
    "harbor",
    "planet",
]


@dataclass
class Sample:
    ok: bool
    ttft: float = 0.0
    latency: float = 0.0
    output_tokens: int = 0
    prompt_tokens: int = 0
    itl: list[float] = field(default_factory=list)
    error: str = ""

    @property
    def tpot(self) -> float | None:
        if self.output_tokens < 2:
            return None
        return (self.latency - self.ttft) / (self.output_tokens - 1)


def prompt(rng: random.Random, tokens: int) -> str:
    # About 1.3 tokens per English word for common BPE vocabularies.
    return " ".join(rng.choice(WORDS) for _ in range(max(1, int(tokens / 1.3))))


async def one(
    client: httpx.AsyncClient, url: str, model: str, text: str, output_len: int, ignore_eos: bool
) -> Sample:
    body: dict[str, Any] = {
        "model": model,
        "prompt": text,
        "max_tokens": output_len,
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": 0,
    }
    if ignore_eos:
        body["ignore_eos"] = True
    start = time.perf_counter()
    sample = Sample(ok=False)
    last = None
    chunks = 0
    try:
        async with client.stream("POST", f"{url}/v1/completions", json=body) as r:
            if r.status_code != 200:
                sample.error = f"HTTP {r.status_code}: {(await r.aread())[:200]!r}"
                return sample
            async for line in r.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                data = json.loads(line[6:])
                if data.get("usage"):
                    sample.output_tokens = data["usage"].get("completion_tokens", 0)
                    sample.prompt_tokens = data["usage"].get("prompt_tokens", 0)
                choices = data.get("choices") or []
                if choices and choices[0].get("text"):
                    now = time.perf_counter()
                    if last is None:
                        sample.ttft = now - start
                    else:
                        sample.itl.append(now - last)
                    last = now
                    chunks += 1
    except httpx.HTTPError as exc:
        sample.error = str(exc)
        return sample
    sample.latency = time.perf_counter() - start
    sample.output_tokens = sample.output_tokens or chunks
    sample.ok = last is not None
    return sample


async def accepts_ignore_eos(url: str, model: str) -> bool:
    async with httpx.AsyncClient(timeout=600) as client:
        r = await client.post(
            f"{url}/v1/completions",
            json={"model": model, "prompt": "hello", "max_tokens": 1, "ignore_eos": True},
        )
        return r.status_code == 200


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


async def level(
    url: str,
    model: str,
    concurrency: int,
    requests: int,
    input_len: int,
    output_len: int,
    rate: float | None,
    seed: int,
    ignore_eos: bool,
    slo_ttft: float,
    slo_tpot: float,
) -> dict[str, Any]:
    rng = random.Random(seed)
    texts = [prompt(rng, input_len) for _ in range(requests)]
    limit = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(
        timeout=httpx.Timeout(600.0), limits=httpx.Limits(max_connections=concurrency + 8)
    ) as client:

        async def run(i: int) -> Sample:
            if rate:
                await asyncio.sleep(arrivals[i])
            async with limit:
                return await one(client, url, model, texts[i], output_len, ignore_eos)

        arrivals, t = [], 0.0
        for _ in range(requests):
            arrivals.append(t)
            t += rng.expovariate(rate) if rate else 0.0
        start = time.perf_counter()
        samples = await asyncio.gather(*(run(i) for i in range(requests)))
        wall = time.perf_counter() - start
    good = [s for s in samples if s.ok]
    tpots = [s.tpot for s in good if s.tpot is not None]
    itls = [x for s in good for x in s.itl]
    ttfts = [s.ttft for s in good]
    meeting = [s for s in good if s.ttft <= slo_ttft and (s.tpot or 0) <= slo_tpot]
    out_tokens = sum(s.output_tokens for s in good)
    return {
        "concurrency": concurrency,
        "rate": rate,
        "requests": requests,
        "completed": len(good),
        "errors": [s.error for s in samples if not s.ok][:5],
        "wall_s": wall,
        "output_tokens": out_tokens,
        "output_tok_s": out_tokens / wall,
        "request_s": len(good) / wall,
        "goodput_request_s": len(meeting) / wall,
        "mean_prompt_tokens": statistics.mean(s.prompt_tokens for s in good) if good else 0,
        **{f"ttft_p{q}_ms": pct(ttfts, q) * 1e3 for q in (50, 90, 99)},
        **{f"tpot_p{q}_ms": pct(tpots, q) * 1e3 for q in (50, 90, 99)},
        **{f"itl_p{q}_ms": pct(itls, q) * 1e3 for q in (50, 90, 99)},
    }


def chart(results: dict[str, list[dict[str, Any]]], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no chart (pip install matplotlib)")
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, levels in results.items():
        ax.plot(
            [lv["concurrency"] for lv in levels],
            [lv["output_tok_s"] for lv in levels],
            marker="o",
            label=label,
        )
    ax.set_xscale("log", base=2)
    ax.set_xlabel("concurrent requests")
    ax.set_ylabel("output tokens / s")
    ax.set_title("Serving throughput against concurrency")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="Base URL, without /v1.")
    parser.add_argument("--model")
    parser.add_argument("--label", default="server")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument(
        "--requests", type=int, default=0, help="Per level (default 4 x concurrency, at least 8)."
    )
    parser.add_argument("--input-len", type=int, default=128)
    parser.add_argument("--output-len", type=int, default=64)
    parser.add_argument("--rate", type=float, default=None, help="Poisson arrivals per second.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-ignore-eos", action="store_true")
    parser.add_argument("--slo-ttft", type=float, default=2.0, help="Seconds.")
    parser.add_argument("--slo-tpot", type=float, default=0.2, help="Seconds per output token.")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--png", type=Path)
    parser.add_argument(
        "--chart-from", type=Path, help="Only draw --png from this results file (no run)."
    )
    args = parser.parse_args()
    if args.chart_from:
        if not args.png:
            parser.error("--chart-from needs --png")
        chart(json.loads(args.chart_from.read_text(encoding="utf-8")), args.png)
        return
    if not args.url or not args.model:
        parser.error("--url and --model are required")
    ignore_eos = not args.no_ignore_eos and asyncio.run(
        accepts_ignore_eos(args.url.rstrip("/"), args.model)
    )
    if not args.no_ignore_eos and not ignore_eos:
        print(f"{args.label}: the server refuses ignore_eos; counting the tokens it returns")
    levels = []
    for c in args.concurrency:
        n = args.requests or max(8, 4 * c)
        levels.append(
            asyncio.run(
                level(
                    args.url.rstrip("/"),
                    args.model,
                    c,
                    n,
                    args.input_len,
                    args.output_len,
                    args.rate,
                    args.seed,
                    ignore_eos,
                    args.slo_ttft,
                    args.slo_tpot,
                )
            )
        )
    print(
        f"{'label':>12} {'conc':>5} {'done':>5} {'out tok/s':>10} {'req/s':>7} {'good/s':>7} "
        f"{'TTFT p50':>9} {'p99':>8} {'TPOT p50':>9} {'p99':>8} {'ITL p50':>8} {'p99':>8}"
    )
    for lv in levels:
        print(
            f"{args.label:>12} {lv['concurrency']:>5} {lv['completed']:>5} "
            f"{lv['output_tok_s']:>10.1f} {lv['request_s']:>7.2f} {lv['goodput_request_s']:>7.2f} "
            f"{lv['ttft_p50_ms']:>9.0f} {lv['ttft_p99_ms']:>8.0f} {lv['tpot_p50_ms']:>9.1f} "
            f"{lv['tpot_p99_ms']:>8.1f} {lv['itl_p50_ms']:>8.1f} {lv['itl_p99_ms']:>8.1f}"
        )
        for error in lv["errors"]:
            print(f"  error: {error}")
    if args.json:
        existing = json.loads(args.json.read_text(encoding="utf-8")) if args.json.exists() else {}
        existing[args.label] = levels
        args.json.write_text(json.dumps(existing, indent=2) + "\n", encoding="utf-8")
        if args.png:
            chart(existing, args.png)


if __name__ == "__main__":
    main()
