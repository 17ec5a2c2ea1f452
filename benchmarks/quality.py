"""What each weight quantization of the Bosun engine costs in answers, against the
unquantized (float32) model of the same run, on SmolLM2-135M-Instruct:

- perplexity of a fixed text (``benchmarks/data/quality``: Shakespeare and Python, about
  4,500 tokens) computed three ways: as prompts (512-token chunks, the prefill path),
  token by token over its first 768 tokens (the decode path, one row per step), and token
  by token as 8 sequences of 512 decoding together (the decode path of a busy server: on
  CPUs with AMX, int8 activations from ``quant.int8_batch()`` sequences on);
- top-1 agreement: the share of the text's positions where the quantized model's most
  likely next token is the float32 model's;
- greedy answers: 48 tokens for each of a few prompts through the engine (chunked
  prefill, then decoding, as served), and how many tokens agree before the first
  difference.

The default (auto: int8 on CPUs) must stay within 1% of the float32 perplexity.

    .venv/bin/python benchmarks/quality.py --json benchmarks/results/quality.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import platform
from pathlib import Path
from typing import Any

import torch

from bosun.engine import native
from bosun.engine.client import GenerationRequest, SamplingParams
from bosun.engine.engine import BosunEngine, EngineOptions
from bosun.engine.loader import load_tokenizer, resolve_model
from bosun.engine.model import PagedSeq, PagedStep
from bosun.engine.quant import wide_precision
from bosun.engine.runner import BLOCK_SIZE, DecoderRunner, RunItem, RunnerOptions

PRESET = "smollm2-135m-instruct"
DATA = Path(__file__).parent / "data" / "quality"
CHUNK = 512
DECODED = 768  # tokens scored one step at a time
BATCH_SEQS, BATCH_LEN = 8, 512  # decoding together: 8 rows a step
PROMPTS = [
    "def fibonacci(n):",
    "The three primary colours are",
    "Once upon a time, in a small village by the sea,",
    "To make a cup of tea, first",
    "import json\n\ndef load_config(path):",
]
QUANTIZATIONS = ("none", "int8")


def text_tokens(tokenizer: Any) -> list[int]:
    text = (
        (DATA / "prose.txt").read_text(encoding="utf-8")
        + "\n\n"
        + (DATA / "code.txt").read_text(encoding="utf-8")
    )
    ids: list[int] = tokenizer(text)["input_ids"]
    return ids


def logits_as_prompts(runner: DecoderRunner, ids: list[int]) -> torch.Tensor:
    """[len(ids), vocab]: each chunk of CHUNK tokens as one prompt, every position's
    logits (a chunk starts a fresh context)."""
    out = []
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        n = len(chunk)
        table = list(range(-(-n // BLOCK_SIZE)))
        step = PagedStep.plan(
            [PagedSeq(0, n, table)], BLOCK_SIZE, torch.device("cpu"), runner.cache.null_slot
        )
        step.last = torch.arange(n)  # logits of every position, not only the last
        out.append(runner.model(torch.tensor(chunk), runner.cache, step))
    return torch.cat(out)


def logits_decoded(runner: DecoderRunner, ids: list[int]) -> torch.Tensor:
    """[len(ids), vocab]: the tokens fed one per step through the runner, as decoding does
    (the C++ step where it runs the model)."""
    table = list(range(-(-len(ids) // BLOCK_SIZE)))
    out = [runner.run([RunItem(0, [token], p, table)]) for p, token in enumerate(ids)]
    return torch.cat(out)


def logits_decoded_together(runner: DecoderRunner, ids: list[int]) -> torch.Tensor:
    """[BATCH_SEQS * BATCH_LEN, vocab]: the text's first BATCH_SEQS * BATCH_LEN tokens as
    that many sequences, each step feeding every sequence its next token, in text order."""
    per = -(-BATCH_LEN // BLOCK_SIZE)
    tables = [list(range(i * per, (i + 1) * per)) for i in range(BATCH_SEQS)]
    seqs = [ids[i * BATCH_LEN : (i + 1) * BATCH_LEN] for i in range(BATCH_SEQS)]
    steps = [
        runner.run([RunItem(i, [seqs[i][p]], p, tables[i]) for i in range(BATCH_SEQS)])
        for p in range(BATCH_LEN)
    ]
    return torch.stack(steps, dim=1).reshape(BATCH_SEQS * BATCH_LEN, -1)


def perplexity(logits: torch.Tensor, ids: list[int], chunk: int) -> float:
    """Each chunk's first token has no context: it is not scored."""
    targets = torch.tensor(ids)
    logprobs = torch.log_softmax(logits.double(), dim=-1)
    scored = [i for i in range(len(ids) - 1) if (i + 1) % chunk != 0]
    index = torch.tensor(scored)
    nll = -logprobs[index].gather(1, targets[index + 1][:, None]).sum().item()
    return math.exp(nll / len(scored))


async def greedy(quantization: str, prompts: list[str]) -> list[list[int]]:
    engine = BosunEngine(EngineOptions(model=PRESET, max_model_len=512, quantization=quantization))
    await engine.start()
    params = SamplingParams(max_tokens=48, temperature=0, ignore_eos=True)

    async def one(i: int, prompt: str) -> list[int]:
        request = GenerationRequest(f"q{i}", engine.tokenize(prompt), params)
        return [t async for event in engine.generate(request) for t in event.token_ids]

    outputs = [await one(i, p) for i, p in enumerate(prompts)]  # one at a time: no batching
    await engine.shutdown()
    return outputs


def _common_prefix(a: list[int], b: list[int]) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), len(a))


def _cpu() -> dict[str, str]:
    info = {"machine": platform.machine()}
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                info["cpu"] = value.strip()
            if key.strip() == "flags":
                wanted = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "fma")
                info["flags"] = " ".join(f for f in value.split() if f in wanted)
                break
    except OSError:
        pass
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.manual_seed(0)
    local = resolve_model(PRESET)
    tokenizer = load_tokenizer(local)
    ids = text_tokens(tokenizer)
    native.load()
    kernels = {
        "decode": native.kernels(),
        "wide_matmul": str(wide_precision()).removeprefix("torch."),
    }
    results: dict[str, Any] = {
        "text_tokens": len(ids),
        **_cpu(),
        "int8_kernels": kernels,
        "quantizations": {},
    }
    reference: dict[str, torch.Tensor] = {}
    answers: dict[str, list[list[int]]] = {}
    for quantization in QUANTIZATIONS:
        options = RunnerOptions("bosun", "float32", "cpu", quantization, BATCH_SEQS, 1024)
        runner = DecoderRunner.load(local, options, torch.float32, torch.device("cpu"))
        assert runner.quantization == quantization
        prompts_logits = logits_as_prompts(runner, ids)
        decoded_logits = logits_decoded(runner, ids[:DECODED])
        together = ids[: BATCH_SEQS * BATCH_LEN]
        together_logits = logits_decoded_together(runner, together)
        del runner
        answers[quantization] = asyncio.run(greedy(quantization, PROMPTS))
        row: dict[str, Any] = {
            "perplexity_prompts": perplexity(prompts_logits, ids, CHUNK),
            "perplexity_decoded": perplexity(decoded_logits, ids[:DECODED], DECODED),
            "perplexity_decoded_together": perplexity(together_logits, together, BATCH_LEN),
        }
        mine = {
            "prompts": prompts_logits,
            "decoded": decoded_logits,
            "decoded_together": together_logits,
        }
        if quantization == "none":
            reference = mine
        else:
            base = results["quantizations"]["none"]
            for kind in mine:
                row[f"perplexity_{kind}_vs_none"] = (
                    row[f"perplexity_{kind}"] / base[f"perplexity_{kind}"]
                )
            for kind, logits in mine.items():
                same = logits.argmax(-1) == reference[kind].argmax(-1)
                row[f"top1_agreement_{kind}"] = same.float().mean().item()
            prefixes = [
                _common_prefix(a, b)
                for a, b in zip(answers["none"], answers[quantization], strict=False)
            ]
            row["greedy_identical_answers"] = f"{sum(p == 48 for p in prefixes)}/{len(prefixes)}"
            row["greedy_tokens_before_first_difference"] = prefixes
            row["greedy_examples"] = {
                p: tokenizer.decode(a)
                for p, a in zip(PROMPTS[:2], answers[quantization][:2], strict=False)
            }
        results["quantizations"][quantization] = row
        print(quantization, json.dumps(row), flush=True)
    results["float32_examples"] = {
        p: tokenizer.decode(a) for p, a in zip(PROMPTS[:2], answers["none"][:2], strict=False)
    }
    int8 = results["quantizations"]["int8"]
    ratios = [int8[f"perplexity_{kind}_vs_none"] for kind in mine]
    results["default_within_1_percent"] = max(ratios) <= 1.01
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
