"""One stream, in process, no HTTP: decode speed of the Bosun engine or of llama.cpp
(llama-cpp-python) on SmolLM2-135M-Instruct, same prompt (~130 tokens of random words),
same number of forced output tokens (EOS banned), greedy. Prints JSON: the median of
``--repeat`` runs of the time per output token after the first, and its inverse, with the
weights' precision, the kernels, the CPU and its flags.

``--busy N`` runs N processes spinning on the CPUs meanwhile (a machine shared with other
work); ``--q8`` gives llama.cpp the GGUF requantized to Q8_0 (llama.cpp's own quantizer),
to compare 8-bit weights with 8-bit weights.

    .venv/bin/python benchmarks/single_stream.py --backend bosun [--busy 1] [--json FILE]
    benchmarks/.peers/bin/python benchmarks/single_stream.py --backend llama.cpp --gguf FILE [--q8]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from machine import cpu_flags, cpu_name  # benchmarks/machine.py

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
]


def bosun_kernels() -> str:
    """What decodes one stream: the C++ step (its vector width) or ATen."""
    from bosun.engine import native

    module = native.load(build=False)
    if module is None:
        return "aten"
    return {16: "native-avx512", 8: "native-avx2"}.get(int(module.lanes()), "native-scalar")


def requantize_q8(gguf: str) -> str:
    """The GGUF file requantized to Q8_0 by llama.cpp (made once, next to the cache)."""
    import ctypes

    import llama_cpp

    out = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "bosun" / "peers"
    target = out / (Path(gguf).stem + ".Q8_0.gguf")
    if not target.is_file():
        out.mkdir(parents=True, exist_ok=True)
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0
        params.allow_requantize = True
        if llama_cpp.llama_model_quantize(
            gguf.encode(), str(target).encode(), ctypes.byref(params)
        ):
            raise SystemExit(f"llama.cpp could not requantize {gguf}")
    return str(target)


def bosun_stream(text: str, n: int) -> Callable[[], Iterator[object]]:
    import asyncio

    from bosun.engine.client import GenerationRequest, SamplingParams
    from bosun.engine.engine import BosunEngine, EngineOptions

    engine = BosunEngine(EngineOptions(model="smollm2-135m-instruct", max_model_len=1024))
    loop = asyncio.new_event_loop()
    loop.run_until_complete(engine.start())
    ids = engine.tokenize(text)
    params = SamplingParams(max_tokens=n, ignore_eos=True, temperature=0)

    def run() -> Iterator[object]:
        agen = engine.generate(GenerationRequest("s", ids, params))
        while True:
            try:
                yield loop.run_until_complete(agen.__anext__())
            except StopAsyncIteration:
                return

    return run


def llama_stream(text: str, n: int, gguf: str) -> Callable[[], Iterator[object]]:
    from llama_cpp import Llama

    llm = Llama(model_path=gguf, n_ctx=1024, n_threads=2, verbose=False)
    eos = llm.token_eos()
    return lambda: iter(llm(text, max_tokens=n, temperature=0, stream=True, logit_bias={eos: -1e9}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["bosun", "llama.cpp"], required=True)
    parser.add_argument("--gguf", help="llama.cpp: the GGUF file")
    parser.add_argument("--q8", action="store_true", help="llama.cpp: requantized to Q8_0")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--busy", type=int, default=0, help="processes spinning meanwhile")
    parser.add_argument("--json", help="append the result to this JSON-lines file")
    args = parser.parse_args()
    text = " ".join(random.Random(0).choice(WORDS) for _ in range(100))
    if args.backend == "bosun":
        stream = bosun_stream(text, args.tokens)
        precision, kernels = "int8", bosun_kernels()
    else:
        if not args.gguf:
            parser.error("--backend llama.cpp needs --gguf")
        gguf = requantize_q8(args.gguf) if args.q8 else args.gguf
        stream = llama_stream(text, args.tokens, gguf)
        precision, kernels = (
            ("q8_0" if args.q8 else Path(args.gguf).stem.split(".")[-1].lower()),
            "llama.cpp",
        )
    spin = "while True: pass"
    busy = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(args.busy)]
    try:
        tpots = []
        for _ in range(args.repeat + 1):  # the first run warms up
            stamps = [time.perf_counter() for _ in stream()]
            tpots.append((stamps[-1] - stamps[0]) / (len(stamps) - 1))
    finally:
        for process in busy:
            process.kill()
    tpot = statistics.median(tpots[1:])
    result = {
        "backend": args.backend,
        "precision": precision,
        "kernels": kernels,
        "busy": args.busy,
        "tpot_ms": round(tpot * 1000, 3),
        "decode_tok_s": round(1 / tpot, 1),
        "cpu": cpu_name(),
        "flags": cpu_flags(),
    }
    print(json.dumps(result))
    if args.json:
        with Path(args.json).open("a", encoding="utf-8") as out:
            out.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
