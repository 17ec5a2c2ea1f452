"""One stream, in process, no HTTP: decode speed of the Bosun engine or of llama.cpp
(llama-cpp-python) on SmolLM2-135M-Instruct, same prompt (~130 tokens of random words),
same number of forced output tokens (EOS banned), greedy. Prints JSON: the median of
``--repeat`` runs of the time per output token after the first, and its inverse.

    .venv/bin/python benchmarks/single_stream.py --backend bosun
    benchmarks/.peers/bin/python benchmarks/single_stream.py --backend llama.cpp --gguf FILE
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections.abc import Callable, Iterator

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
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    text = " ".join(random.Random(0).choice(WORDS) for _ in range(100))
    if args.backend == "bosun":
        stream = bosun_stream(text, args.tokens)
    else:
        if not args.gguf:
            parser.error("--backend llama.cpp needs --gguf")
        stream = llama_stream(text, args.tokens, args.gguf)
    tpots = []
    for _ in range(args.repeat + 1):  # the first run warms up
        stamps = [time.perf_counter() for _ in stream()]
        tpots.append((stamps[-1] - stamps[0]) / (len(stamps) - 1))
    tpot = statistics.median(tpots[1:])
    result = {"backend": args.backend, "tpot_ms": tpot * 1000, "decode_tok_s": 1 / tpot}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
