"""Before the GPU benchmark: is the GPU decode path right on this device? (seconds)

1. The Triton paged decode kernel, compiled for the device, against attention written out
   in full, in bfloat16: GQA, MQA, a head dim of 96, a sliding window, softcap.
2. One decode step of a small random Llama through the Bosun runner three ways, SDPA over
   gathered contexts, the kernel, and the kernel replayed from CUDA graphs (padded batch),
   all in bfloat16: the logits must agree.

Prints one JSON object; exit 1 if anything disagrees.

    python3 benchmarks/gpu_check.py                               # on the GPU machine
    TRITON_INTERPRET=1 python3 benchmarks/gpu_check.py --device cpu  # the script itself
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from bosun.engine.model import Decoder, DecoderConfig
from bosun.engine.runner import DecoderRunner, RunItem, RunnerOptions

SHAPES = [  # heads, kv heads, head dim, window, softcap
    (32, 8, 64, 0, 0.0),
    (32, 8, 128, 0, 0.0),
    (16, 1, 128, 0, 0.0),
    (32, 32, 96, 0, 0.0),
    (16, 8, 256, 512, 50.0),
]
LLAMA: dict[str, Any] = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "vocab_size": 1024,
    "hidden_size": 512,
    "intermediate_size": 1024,
    "num_hidden_layers": 4,
    "num_attention_heads": 8,
    "num_key_value_heads": 2,
    "head_dim": 64,
    "rms_norm_eps": 1e-5,
    "rope_theta": 500000.0,
    "max_position_embeddings": 4096,
    "tie_word_embeddings": True,
}


def reference(q: torch.Tensor, context: torch.Tensor, kv: int, window: int, cap: float) -> Any:
    heads, dim = q.shape
    if window:
        context = context[-window:]
    k = context[:, :kv].float().repeat_interleave(heads // kv, dim=1)
    v = context[:, kv:].float().repeat_interleave(heads // kv, dim=1)
    scores = torch.einsum("hd,thd->ht", q.float(), k) * dim**-0.5
    if cap:
        scores = cap * torch.tanh(scores / cap)
    return torch.einsum("ht,thd->hd", scores.softmax(-1), v)


def check_kernel(device: torch.device, dtype: torch.dtype) -> dict[str, float]:
    from bosun.engine.paged_attention import paged_decode

    errors = {}
    torch.manual_seed(0)
    for heads, kv, dim, window, cap in SHAPES:
        blocks, block = 256, 16
        cache = torch.randn(blocks, block, 2 * kv, dim, device=device, dtype=dtype)
        lengths = [1, 17, 700, 1500, 0]
        tables = torch.stack([torch.randperm(blocks)[:100] for _ in lengths]).int().to(device)
        q = torch.randn(len(lengths), heads, dim, device=device, dtype=dtype)
        out = paged_decode(
            q,
            cache,
            tables,
            torch.tensor(lengths, dtype=torch.int32, device=device),
            scale=dim**-0.5,
            window=window,
            softcap=cap,
        )
        flat = cache.view(-1, 2 * kv, dim)
        worst = 0.0
        for row, length in enumerate(lengths):
            if not length:
                continue
            slots = [int(tables[row, t // block]) * block + t % block for t in range(length)]
            expected = reference(q[row], flat[slots], kv, window, cap)
            worst = max(worst, float((out[row].float() - expected).abs().max()))
        errors[f"h{heads}_kv{kv}_d{dim}_w{window}_cap{cap:g}"] = worst
    return errors


def check_runner(device: torch.device, dtype: torch.dtype) -> dict[str, float]:
    torch.manual_seed(0)
    model = Decoder(DecoderConfig.from_hf(LLAMA))
    with torch.no_grad():
        for param in model.parameters():
            param.normal_(0, 0.1)  # logits of order 1, so errors show
    model = model.to(device=device, dtype=dtype).eval()
    options = RunnerOptions("bosun", str(dtype).split(".")[-1], device.type, "none", 8, 512)
    runners = {
        "sdpa": DecoderRunner(model, options, dtype, device, paged_kernel=False),
        "kernel": DecoderRunner(
            model, options, dtype, device, paged_kernel=True, static_decode=False
        ),
        # Static buffers: captured as CUDA graphs on a GPU, run eagerly elsewhere.
        "graphs": DecoderRunner(
            model, options, dtype, device, paged_kernel=True, static_decode=True
        ),
    }
    prompts = [list(range(3, 3 + n)) for n in (40, 200, 5)]
    tables = [[4, 9, 1], [20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32], [50]]
    logits = {}
    for name, runner in runners.items():
        runner.run([RunItem(i, p, 0, tables[i]) for i, p in enumerate(prompts)])
        logits[name] = runner.run(
            [RunItem(i, [7], len(p), tables[i]) for i, p in enumerate(prompts)]
        ).float()
    scale = float(logits["sdpa"].abs().max())
    return {  # the largest difference from SDPA's logits, relative to their largest
        "graphs_captured": float(bool(runners["graphs"].graphs and device.type == "cuda")),
        "kernel_vs_sdpa": float((logits["kernel"] - logits["sdpa"]).abs().max()) / scale,
        "graphs_vs_sdpa": float((logits["graphs"] - logits["sdpa"]).abs().max()) / scale,
        "logit_scale": scale,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    device = torch.device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    kernel = check_kernel(device, dtype)
    runner = check_runner(device, dtype)
    tolerance = 0.03 if dtype == torch.bfloat16 else 1e-4
    relative = max(runner["kernel_vs_sdpa"], runner["graphs_vs_sdpa"])
    ok = max(kernel.values()) < tolerance and relative < tolerance
    print(json.dumps({"ok": ok, "kernel_max_error": kernel, "runner": runner}, indent=1))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
