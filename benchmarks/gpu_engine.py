"""The Bosun engine against Hugging Face transformers on one GPU, in one run (issue 7).

For Llama-3.2-1B and Llama-3.1-8B architectures with random bf16 weights (built from
their configs, no download; EOS never ends a sequence), side by side:

- the copy bandwidth of the device and the roofline it sets for batch-1 decode
  (bandwidth / bytes of weights);
- batch-1 decode tok/s: Bosun (paged engine, offline) and transformers' static-cache
  ``generate``; decode time is the time for 1 + N tokens minus the time for 1;
- N concurrent requests (64 and 256) of 512 prompt and 256 output tokens, output tok/s:
  Bosun offline, and transformers' ``generate_batch`` (continuous batching) where the
  installed transformers has it.

    python3 benchmarks/gpu_engine.py --json benchmarks/results/gpu_engine.json
    python3 benchmarks/gpu_engine.py --tiny --device cpu   # checks the script itself

Not measured here yet: the same load through `bosun serve` over HTTP.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from bosun.engine.model import Decoder, DecoderConfig
from bosun.engine.offline import generate_greedy
from bosun.engine.runner import DecoderRunner, RunnerOptions

LLAMA3_ROPE = {
    "rope_type": "llama3",
    "factor": 32.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 8192,
}
CONFIGS: dict[str, dict[str, Any]] = {
    "llama-3.2-1b": {
        "vocab_size": 128256,
        "hidden_size": 2048,
        "intermediate_size": 8192,
        "num_hidden_layers": 16,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "head_dim": 64,
        "tie_word_embeddings": True,
        "rope_scaling": LLAMA3_ROPE,
    },
    "llama-3.1-8b": {
        "vocab_size": 128256,
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "head_dim": 128,
        "tie_word_embeddings": False,
        "rope_scaling": {**LLAMA3_ROPE, "factor": 8.0},
    },
}
TINY: dict[str, Any] = {
    "vocab_size": 512,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "tie_word_embeddings": True,
}
COMMON = {
    "model_type": "llama",
    "architectures": ["LlamaForCausalLM"],
    "rms_norm_eps": 1e-5,
    "rope_theta": 500000.0,
    "max_position_embeddings": 131072,
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def copy_bandwidth(device: torch.device, gib: float) -> float:
    """GB/s of a device-to-device copy (bytes read + written), best of 5."""
    n = int(gib * 2**30) // 2
    src = torch.empty(n, dtype=torch.bfloat16, device=device)
    dst = torch.empty_like(src)
    dst.copy_(src)
    best = min(timed(lambda: dst.copy_(src), device) for _ in range(5))
    return 2 * n * 2 / best / 1e9


def build(config: dict[str, Any], device: torch.device, dtype: torch.dtype) -> tuple[Any, Decoder]:
    """transformers' LlamaForCausalLM with random weights, and the Bosun decoder holding
    the same weights."""
    from transformers import LlamaConfig, LlamaForCausalLM

    hf_config = {**COMMON, **config}
    torch.manual_seed(0)
    with torch.device(device):
        hf = LlamaForCausalLM(LlamaConfig(**hf_config)).to(dtype).eval()
    with torch.device("meta"):
        decoder = Decoder(DecoderConfig.from_hf(hf_config))
    decoder.load_hf_state_dict({k: v.clone() for k, v in hf.state_dict().items()})
    return hf, decoder.to(device=device, dtype=dtype).eval()


def prompts(n: int, length: int, vocab: int) -> list[list[int]]:
    g = torch.Generator().manual_seed(1)
    return torch.randint(10, vocab, (n, length), generator=g).tolist()


def bosun_side(
    decoder: Decoder, device: torch.device, dtype: torch.dtype, args: argparse.Namespace
) -> dict[str, float]:
    max_len = args.prompt + args.output + 16
    options = RunnerOptions("bosun", str(dtype).split(".")[-1], device.type, "none", 8, max_len)
    runner = DecoderRunner(decoder, options, dtype, device)
    vocab = decoder.cfg.vocab_size
    one = prompts(1, args.prompt, vocab)
    generate_greedy(runner, one, 4)  # warm-up
    first = timed(lambda: generate_greedy(runner, one, 1), device)
    full = timed(lambda: generate_greedy(runner, one, 1 + args.output), device)
    out = {"batch1_decode_tok_s": args.output / (full - first), "kv_blocks": runner.num_blocks}
    for n in args.concurrency:
        batch = prompts(n, args.prompt, vocab)
        seconds = timed(
            lambda b=batch, n=n: generate_greedy(runner, b, args.output, max_num_seqs=n), device
        )
        out[f"c{n}_output_tok_s"] = n * args.output / seconds
    return out


def hf_side(hf: Any, device: torch.device, args: argparse.Namespace) -> dict[str, Any]:
    vocab = hf.config.vocab_size
    ids = torch.tensor(prompts(1, args.prompt, vocab), device=device)

    def gen(n: int) -> None:
        hf.generate(
            ids,
            max_new_tokens=n,
            min_new_tokens=n,
            do_sample=False,
            cache_implementation="static",
            pad_token_id=0,
        )

    gen(4)  # warm-up (and the static cache's allocation)
    first = timed(lambda: gen(1), device)
    full = timed(lambda: gen(1 + args.output), device)
    out: dict[str, Any] = {"static_batch1_decode_tok_s": args.output / (full - first)}
    if not hasattr(hf, "generate_batch"):
        out["generate_batch"] = "not in this transformers"
        return out
    from transformers import GenerationConfig

    config = GenerationConfig(
        max_new_tokens=args.output,
        min_new_tokens=args.output,
        do_sample=False,
        eos_token_id=None,
        pad_token_id=0,
    )
    for n in args.concurrency:
        batch = prompts(n, args.prompt, vocab)
        try:
            seconds = timed(
                lambda b=batch: hf.generate_batch(inputs=b, generation_config=config), device
            )
            out[f"generate_batch_c{n}_output_tok_s"] = n * args.output / seconds
        except Exception as exc:  # report, do not hide: the API moves between versions
            out[f"generate_batch_c{n}"] = f"failed: {type(exc).__name__}: {exc}"[:300]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--models", nargs="+", default=list(CONFIGS))
    parser.add_argument("--tiny", action="store_true", help="a tiny config (checks the script)")
    parser.add_argument("--prompt", type=int, default=512)
    parser.add_argument("--output", type=int, default=256)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    device = torch.device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    if args.tiny:
        args.prompt, args.output, args.concurrency = 24, 8, [4, 8]
    results: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "copy_gb_s": copy_bandwidth(device, 0.05 if args.tiny else 2.0),
        "models": {},
    }
    for name in ["tiny"] if args.tiny else args.models:
        hf, decoder = build(TINY if args.tiny else CONFIGS[name], device, dtype)
        weights = sum(p.numel() * p.element_size() for p in decoder.parameters())
        row: dict[str, Any] = {
            "weight_gb": weights / 1e9,
            "roofline_batch1_tok_s": results["copy_gb_s"] * 1e9 / weights,
        }
        row |= {f"bosun_{k}": v for k, v in bosun_side(decoder, device, dtype, args).items()}
        del decoder
        if device.type == "cuda":
            torch.cuda.empty_cache()  # the Bosun KV cache goes before transformers runs
        row |= {f"hf_{k}": v for k, v in hf_side(hf, device, args).items()}
        del hf
        if device.type == "cuda":
            torch.cuda.empty_cache()
        results["models"][name] = row
        print(name, json.dumps(row, indent=1), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
