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

- the same 64-request load through `bosun serve` over HTTP (``--http``): the model is
  written as a checkpoint (config, safetensors, a word-level tokenizer: one word, one
  token) and served by a `bosun serve` process; the load is `serve_bench.py`'s, streaming
  ``/v1/completions`` with ``ignore_eos``; reported as output tok/s and as a share of the
  offline figure at the same concurrency. `bosun serve` needs its extra's packages
  (fastapi, uvicorn, typer, pydantic, rich, prometheus-client) and the load httpx: a
  machine without them gets the reason in the JSON instead.

    python3 benchmarks/gpu_engine.py --http --json benchmarks/results/gpu_engine.json
    python3 benchmarks/gpu_engine.py --tiny --device cpu --http  # checks the script itself

``--variants graphs kernel sdpa`` measures the Bosun side three times in the same run:
what the paged kernel and the CUDA graphs each bring.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # serve_bench, for --http

from bosun.engine.model import Decoder, DecoderConfig
from bosun.engine.offline import generate_greedy
from bosun.engine.runner import DecoderRunner, RunnerOptions

ROOT = Path(__file__).resolve().parents[1]

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


# What each variant turns on: the paged decode kernel, CUDA graphs.
VARIANTS = {"graphs": (True, True), "kernel": (True, False), "sdpa": (False, False)}


def bosun_side(
    decoder: Decoder,
    device: torch.device,
    dtype: torch.dtype,
    args: argparse.Namespace,
    variant: str = "graphs",
) -> dict[str, float]:
    max_len = args.prompt + args.output + 16
    slots = max(args.concurrency)  # decode graphs are captured up to this batch
    options = RunnerOptions(
        "bosun",
        str(dtype).split(".")[-1],
        device.type,
        "none",
        slots,
        max_len,
        max_batched_tokens=args.batched_tokens,
    )
    kernel, graphs = VARIANTS[variant]
    runner = DecoderRunner(
        decoder, options, dtype, device, paged_kernel=kernel, static_decode=graphs
    )
    vocab = decoder.cfg.vocab_size
    one = prompts(1, args.prompt, vocab)
    generate_greedy(runner, one, 4)  # warm-up
    first = timed(lambda: generate_greedy(runner, one, 1), device)
    full = timed(lambda: generate_greedy(runner, one, 1 + args.output), device)
    out = {"batch1_decode_tok_s": args.output / (full - first), "kv_blocks": runner.num_blocks}
    for n in args.concurrency:
        batch = prompts(n, args.prompt, vocab)
        seconds = timed(
            lambda b=batch, n=n: generate_greedy(
                runner, b, args.output, max_num_seqs=n, max_batched_tokens=args.batched_tokens
            ),
            device,
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


def write_checkpoint(hf: Any, config: dict[str, Any], path: Path) -> None:
    """``hf``'s weights, its config and a word-level tokenizer (serve_bench's words, one
    token each): a model directory `bosun serve --model` loads."""
    from safetensors.torch import save_file
    from serve_bench import WORDS
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "<eos>": 1, **{w: i + 2 for i, w in enumerate(WORDS)}}
    raw = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw, unk_token="<unk>", eos_token="<eos>", pad_token="<eos>"
    )
    tokenizer.save_pretrained(path)
    state = {k: v.detach().contiguous().cpu() for k, v in hf.state_dict().items()}
    if config.get("tie_word_embeddings"):
        state.pop("lm_head.weight", None)
    save_file(state, str(path / "model.safetensors"))
    hf_config = {**COMMON, **config, "eos_token_id": 1, "torch_dtype": "bfloat16"}
    (path / "config.json").write_text(json.dumps(hf_config), encoding="utf-8")


def http_side(
    hf: Any, config: dict[str, Any], device: torch.device, args: argparse.Namespace
) -> dict[str, Any]:
    """The 64-request load through a `bosun serve` process, in output tok/s."""
    try:
        from serve_bench import level
    except ImportError as exc:
        return {"http": f"not run: {exc}"}
    n = args.http_concurrency
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "model"
        write_checkpoint(hf, config, model)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        command = [
            sys.executable,
            "-c",
            "from bosun.cli.main import main; main()",
            "serve",
            "--model",
            str(model),
            "--served-model-name",
            "bench",
            "--device",
            device.type,
            "--port",
            str(port),
            "--max-concurrency",
            str(n),
            "--max-model-len",
            str(args.prompt + args.output + 16),
            "--engine",
            "bosun",
            "--max-batched-tokens",
            str(args.batched_tokens),
        ]
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        log = Path(tmp) / "serve.log"
        with log.open("w") as out:
            server = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            if not wait_healthy(url, server, 900):
                return {
                    "http": "bosun serve did not start: " + log.read_text(encoding="utf-8")[-800:]
                }
            warm = asyncio.run(level(url, "bench", n, n, 20, 4, None, 1, True, 1e9, 1e9))
            if warm["completed"] < n:
                return {"http": f"warm-up failed: {warm['errors']}"}
            row = asyncio.run(
                level(
                    url,
                    "bench",
                    n,
                    n,
                    round(args.prompt * 1.3),  # serve_bench makes input_len / 1.3 words
                    args.output,
                    None,
                    0,
                    True,
                    1e9,
                    1e9,
                )
            )
        finally:
            server.terminate()
            server.wait(60)
    return {
        f"http_c{n}_output_tok_s": row["output_tok_s"],
        f"http_c{n}_completed": row["completed"],
        f"http_c{n}_mean_prompt_tokens": row["mean_prompt_tokens"],
        f"http_c{n}_ttft_p50_ms": row["ttft_p50_ms"],
        f"http_c{n}_tpot_p50_ms": row["tpot_p50_ms"],
        f"http_c{n}_errors": row["errors"],
    }


def wait_healthy(url: str, server: subprocess.Popen[bytes], timeout: float) -> bool:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and server.poll() is None:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    return False


def chart(results: dict[str, Any], path: Path) -> None:
    """Output tok/s per model and load, Bosun beside transformers, with the batch-1
    roofline marked (a log scale: the figures span two orders of magnitude)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = results["models"]
    fig, axes = plt.subplots(1, len(models), figsize=(6 * len(models), 4.5), squeeze=False)
    for ax, (name, row) in zip(axes[0], models.items(), strict=True):
        loads = ["batch1"] + [k.split("_")[1] for k in row if k.startswith("bosun_c")]
        bosun = [row["bosun_batch1_decode_tok_s"]]
        bosun += [row[f"bosun_{c}_output_tok_s"] for c in loads[1:]]
        hf = [row.get("hf_static_batch1_decode_tok_s", 0)]
        hf += [row.get(f"hf_generate_batch_{c}_output_tok_s", 0) for c in loads[1:]]
        x = range(len(loads))
        ax.bar([i - 0.2 for i in x], bosun, 0.4, label="Bosun")
        ax.bar([i + 0.2 for i in x], hf, 0.4, label="transformers")
        http = [k for k in row if k.startswith("http_c") and k.endswith("_output_tok_s")]
        for key in http:
            load = key.split("_")[1]
            if load in loads:
                ax.plot(loads.index(load), row[key], "k*", markersize=12, label="Bosun over HTTP")
        ax.axhline(row["roofline_batch1_tok_s"], color="grey", ls="--", label="batch-1 roofline")
        ax.set_xticks(list(x), loads)
        ax.set_yscale("log")
        ax.set_title(f"{name} ({results['device']})")
        ax.set_ylabel("output tok/s")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--models", nargs="+", default=list(CONFIGS))
    parser.add_argument("--tiny", action="store_true", help="a tiny config (checks the script)")
    parser.add_argument("--prompt", type=int, default=512)
    parser.add_argument("--output", type=int, default=256)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--batched-tokens", type=int, default=8192, help="the step budget")
    parser.add_argument(
        "--variants",
        nargs="+",
        choices=list(VARIANTS),
        default=["graphs"],
        help="Bosun decode paths to measure: graphs (kernel and CUDA graphs, the default "
        "path), kernel (no graphs), sdpa (gathered contexts); the first is the headline",
    )
    parser.add_argument("--http", action="store_true", help="also the load over HTTP")
    parser.add_argument("--http-concurrency", type=int, default=64)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--chart", type=Path, help="a PNG of the results (needs matplotlib)")
    parser.add_argument("--chart-from", type=Path, help="only draw --chart from this JSON")
    args = parser.parse_args()
    if args.chart_from:
        chart(json.loads(args.chart_from.read_text(encoding="utf-8")), args.chart)
        return
    device = torch.device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    if args.tiny:
        args.prompt, args.output, args.concurrency = 24, 8, [4, 8]
        args.http_concurrency = 4
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
        for variant in args.variants:
            # The first variant's figures are the Bosun figures; others are prefixed.
            prefix = "bosun_" if variant == args.variants[0] else f"bosun_{variant}_"
            side: dict[str, Any]
            try:
                side = bosun_side(decoder, device, dtype, args, variant)
            except Exception as exc:  # keep the other legs' figures; say what failed
                side = {"error": f"{type(exc).__name__}: {exc}"[:500]}
            row |= {f"{prefix}{k}": v for k, v in side.items()}
            if device.type == "cuda":
                torch.cuda.empty_cache()
        del decoder
        if device.type == "cuda":
            torch.cuda.empty_cache()  # the Bosun KV cache goes before transformers runs
        if args.http:
            config = TINY if args.tiny else CONFIGS[name]
            row |= http_side(hf, config, device, args)
            offline = row.get(f"bosun_c{args.http_concurrency}_output_tok_s")
            over_http = row.get(f"http_c{args.http_concurrency}_output_tok_s")
            if offline and over_http:
                row["http_share_of_offline"] = over_http / offline
        row |= {f"hf_{k}": v for k, v in hf_side(hf, device, args).items()}
        del hf
        if device.type == "cuda":
            torch.cuda.empty_cache()
        results["models"][name] = row
        print(name, json.dumps(row, indent=1), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    if args.chart:
        try:
            chart(results, args.chart)
        except ImportError:
            print("no matplotlib here: draw it later with --chart-from", file=sys.stderr)


if __name__ == "__main__":
    main()
