"""What handing out used KV blocks before never-used ones costs, on SmolLM2-135M-Instruct.

On CPUs the cache's memory is committed as blocks are first written, so the block manager
reuses freed blocks before it touches new ones (``BlockManager.fresh_last``): the memory a
server holds follows its peak load instead of growing with every request served (see
``benchmarks/soak.py``). Reused blocks lie scattered, where fresh ones lie in order, and
freed prefixes are evicted sooner. This measures both orders in the same run, alternating:
64 chat prompts (four questions, each asked 16 times) arriving one per step, 24 greedy
tokens each, 16 at once; the time, the prefix-cache hits and the blocks touched.

    .venv/bin/python benchmarks/kv_reuse.py --json benchmarks/results/kv_reuse.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch
from machine import cpu_name  # benchmarks/machine.py

from bosun.engine import offline
from bosun.engine.blocks import BlockManager
from bosun.engine.loader import load_tokenizer, resolve_model
from bosun.engine.runner import RunnerOptions, load_runner

QUESTIONS = [
    "What is the capital of France?",
    "Name three colours.",
    "Write one sentence about the sea.",
    "What is two plus two?",
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    local = resolve_model("smollm2-135m-instruct")
    runner = load_runner(local, RunnerOptions("bosun", "auto", "cpu", "auto", 16, None))
    tokenizer = load_tokenizer(local)
    prompts = []
    for i in range(64):
        encoded = tokenizer.apply_chat_template(
            [{"role": "user", "content": f"{QUESTIONS[i % 4]} ({i})"}],
            add_generation_prompt=True,
        )
        prompts.append(list(encoded if isinstance(encoded, list) else encoded["input_ids"]))
    managers: list[BlockManager] = []
    made = offline.BlockManager

    def keep(*a: Any, **k: Any) -> BlockManager:  # to read what each run touched
        managers.append(made(*a, **k))
        return managers[-1]

    offline.BlockManager = keep  # type: ignore[misc]
    seconds: dict[str, list[float]] = {"used first": [], "fresh first": []}
    touched: dict[str, int] = {}
    hits: dict[str, int] = {}
    for _ in range(args.repeats):
        for order, lazy in (("used first", True), ("fresh first", False)):
            runner.lazy_memory = lazy
            start = time.perf_counter()
            result = offline.generate_greedy(runner, prompts, 24, max_num_seqs=16, staggered=True)
            seconds[order].append(time.perf_counter() - start)
            touched[order] = managers[-1].touched_blocks
            hits[order] = result.prefix_cache_hits
    best = {k: min(v) for k, v in seconds.items()}
    report = {
        "prompts": len(prompts),
        "maxTokens": 24,
        "concurrency": 16,
        "secondsBest": {k: round(v, 3) for k, v in best.items()},
        "secondsAll": {k: [round(x, 3) for x in v] for k, v in seconds.items()},
        "ratioUsedFirstOverFreshFirst": round(best["used first"] / best["fresh first"], 3),
        "prefixCacheHitTokens": hits,
        "blocksTouched": touched,
        "blocksInCache": runner.num_blocks,
        "cpu": cpu_name(),
        "cores": torch.get_num_threads(),
    }
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
