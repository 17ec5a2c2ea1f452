"""Fine-tuning and adapter serving on SmolLM2-135M-Instruct, in one run (issue 8).

1. Training speed: `bosun tune` (LoRA r=8 on every projection, float32 on CPU) over 64
   chat rows, batch 8, for ``--steps`` steps; trained tokens (unpadded) per second, as
   the job reports it in ``bosun-tuning.json``.
2. Serving with adapters: the Bosun engine in process (float32, the same for every
   case), ``--requests`` concurrent requests of a ~60-token chat prompt and 32 forced
   output tokens (greedy, EOS ignored), all submitted at once; output tokens per second
   with 0 adapters (all base), 1 adapter (half the requests use it) and 4 adapters (the
   requests spread over base and four adapters, round robin). The baseline is the
   0-adapter case of the same run.

    .venv/bin/python benchmarks/tuning_bench.py --json benchmarks/results/tuning.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from bosun.engine.client import GenerationRequest, SamplingParams
from bosun.engine.engine import BosunEngine, EngineOptions
from bosun.tuning.train import TuneJob, run

PRESET = "smollm2-135m-instruct"
TOPICS = [
    "rivers",
    "stones",
    "clouds",
    "gardens",
    "lamps",
    "windows",
    "forests",
    "markets",
    "engines",
    "winters",
]


def write_data(path: Path, rows: int) -> Path:
    with path.open("w", encoding="utf-8") as f:
        for i in range(rows):
            topic = TOPICS[i % len(TOPICS)]
            chat = [
                {"role": "user", "content": f"Tell me something about {topic}, please ({i})."},
                {"role": "assistant", "content": f"BEEP BOOP. {topic.title()} are {i} beeps."},
            ]
            f.write(json.dumps({"messages": chat}) + "\n")
    return path


def train(root: Path, steps: int) -> dict[str, Any]:
    data = write_data(root / "train.jsonl", 64)
    job = TuneJob(
        PRESET,
        [str(data)],
        str(root / "adapter"),
        config={"max_steps": steps, "batch_size": 8, "learning_rate": 1e-3, "save_steps": 1000},
    )
    run(job, "cpu")
    summary: dict[str, Any] = json.loads(
        (root / "adapter" / "bosun-tuning.json").read_text(encoding="utf-8")
    )
    return summary


async def serve(adapter: Path, adapters: int, requests: int) -> float:
    names = [f"a{i}" for i in range(adapters)]
    options = EngineOptions(
        model=PRESET,
        quantization="none",
        max_num_seqs=requests,
        max_model_len=512,
        adapters=tuple((name, str(adapter), 1.0) for name in names),
    )
    engine = BosunEngine(options)
    await engine.start()
    choices: list[str | None] = [None, *names] if adapters else [None]
    params = SamplingParams(max_tokens=32, temperature=0, ignore_eos=True)

    async def one(i: int) -> int:
        question = f"Tell me a long story about {TOPICS[i % len(TOPICS)]} and {i} friends."
        ids = engine.apply_chat_template([{"role": "user", "content": question}])
        request = GenerationRequest(f"r{i}", ids, params, choices[i % len(choices)])
        return sum([len(e.token_ids) async for e in engine.generate(request)])

    await asyncio.gather(*(one(i) for i in range(2)))  # warm-up
    start = time.perf_counter()
    tokens = sum(await asyncio.gather(*(one(i) for i in range(requests))))
    seconds = time.perf_counter() - start
    await engine.shutdown()
    return tokens / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--requests", type=int, default=16)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        summary = train(root, args.steps)
        results: dict[str, Any] = {
            "train_tokens_per_second": summary["train_tokens_per_second"],
            "train_seconds": summary["train_seconds"],
            "train_steps": summary["steps"],
            "loss_first_final": [summary["first_loss"], summary["final_loss"]],
        }
        for adapters in (0, 1, 4):
            speed = asyncio.run(serve(root / "adapter", adapters, args.requests))
            results[f"serve_{adapters}_adapters_output_tok_s"] = speed
    base = results["serve_0_adapters_output_tok_s"]
    for adapters in (1, 4):
        results[f"serve_{adapters}_adapters_vs_base"] = (
            results[f"serve_{adapters}_adapters_output_tok_s"] / base
        )
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
