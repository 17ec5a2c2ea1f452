"""In-process throughput of the Bosun engine under concurrent load, no HTTP: C requests of
~120-token prompts (120 random words, seed 0) and 64 forced output tokens each (greedy, EOS
ignored) on SmolLM2-135M-Instruct, all submitted at once; output tokens per second, with
the kernels that ran, the CPU and its flags (``cpu_roofline.py --results`` puts each
figure beside this machine's compute bound).

    .venv/bin/python benchmarks/engine_batch.py [--concurrency 8 32] [--json FILE]

Compare two versions of the engine by running it on each, one after the other.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time
from pathlib import Path

from machine import cpu_flags, cpu_name  # benchmarks/machine.py

from bosun.engine import native
from bosun.engine.client import GenerationRequest, SamplingParams
from bosun.engine.engine import BosunEngine, EngineOptions

WORDS = ("river stone cloud garden lamp window silver orange forest paper").split()  # noqa: SIM905


async def run(levels: list[int], model: str) -> list[dict[str, float]]:
    rng = random.Random(0)
    engine = BosunEngine(EngineOptions(model=model, max_num_seqs=max(levels), max_model_len=1024))
    await engine.start()
    prompts = [
        engine.tokenize(" ".join(rng.choice(WORDS) for _ in range(120))) for _ in range(max(levels))
    ]
    params = SamplingParams(max_tokens=64, temperature=0, ignore_eos=True)

    async def one(i: int) -> int:
        n = 0
        async for event in engine.generate(GenerationRequest(f"r{i}", prompts[i], params)):
            n += len(event.token_ids)
        return n

    results = []
    for c in levels:
        start = time.perf_counter()
        counts = await asyncio.gather(*(one(i) for i in range(c)))
        elapsed = time.perf_counter() - start
        stats = engine.stats()
        results.append(
            {
                "backend": "bosun",
                "precision": "int8",
                "kernels": native.kernels(),
                "concurrency": c,
                "prompt_tokens": round(statistics.mean(len(p) for p in prompts[:c]), 1),
                "output_tokens": params.max_tokens,
                "output_tok_s": round(sum(counts) / elapsed, 1),
                "prefix_cache_hits": stats.prefix_cache_hits,
                "preemptions": stats.preemptions,
                "cpu": cpu_name(),
                "flags": cpu_flags(),
            }
        )
    await engine.shutdown()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--json", help="append the results to this JSON-lines file")
    args = parser.parse_args()
    native.load()  # built once for this machine (BOSUN_NATIVE=0: ATen)
    for row in asyncio.run(run(args.concurrency, args.model)):
        print(json.dumps(row))
        if args.json:
            with Path(args.json).open("a", encoding="utf-8") as out:
                out.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
