#!/usr/bin/env bash
# Bosun against its CPU peers, one after the other on this machine, in one run:
#   - bosun serve (the Bosun engine, int8 on CPU) at concurrency 1, 8 and 32;
#   - transformers serve --continuous-batching on the same model (the converted HF
#     directory) at 1, 8 and 32;
#   - llama.cpp (llama-cpp-python's OpenAI server) on the same GGUF file, one stream.
# Then the cold start of each (median of 5) with the model already converted or cached,
# and one stream in process (Bosun engine against llama.cpp, no HTTP).
# Peers are installed into benchmarks/.peers (llama-cpp-python builds from source: about
# 5-10 minutes on 2 cores, once); `make test` never needs them.
#
#   benchmarks/serve_compare.sh [OUT_DIR]     (default: benchmarks/results)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-benchmarks/results}
PY=.venv/bin/python
PEERS=benchmarks/.peers
MODEL=smollm2-135m-instruct
JSON=$OUT/serve_cpu_smollm2.json
mkdir -p "$OUT"

if [ ! -x "$PEERS/bin/python" ]; then
    python3 -m venv "$PEERS"
fi
"$PEERS/bin/python" -c "import llama_cpp.server" 2>/dev/null \
    || "$PEERS/bin/pip" install --quiet 'llama-cpp-python[server]==0.3.36'

GGUF=$($PY -c "from bosun.engine.loader import _packaged; print(_packaged('$MODEL'))")
HFDIR=$($PY -c "from bosun.engine.loader import resolve_model; print(resolve_model('$MODEL').path)")

pid=
stop() { if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; pid=; fi; }
trap stop EXIT
wait_ready() {  # URL
    for _ in $(seq 1 600); do
        if curl -sf -o /dev/null "$1"; then return 0; fi
        sleep 0.5
    done
    echo "no answer from $1" >&2; return 1
}
bench() {  # LABEL PORT MODEL_NAME CONCURRENCY...
    local label=$1 port=$2 name=$3; shift 3
    $PY benchmarks/serve_bench.py --url "http://127.0.0.1:$port" --model "$name" \
        --label "$label" --concurrency "$@" --json "$JSON"
}

rm -f "$JSON"
.venv/bin/bosun serve --model $MODEL --port 18001 --max-concurrency 32 --max-model-len 1024 \
    --log-level warning & pid=$!
wait_ready http://127.0.0.1:18001/health && bench bosun 18001 $MODEL 1 8 32; stop

HF_HUB_OFFLINE=1 .venv/bin/transformers serve --continuous-batching --port 18002 "$HFDIR" \
    >/dev/null 2>&1 & pid=$!
wait_ready http://127.0.0.1:18002/health && bench transformers-serve-cb 18002 "$HFDIR" 1 8 32; stop

"$PEERS/bin/python" -m llama_cpp.server --model "$GGUF" --model_alias $MODEL --n_threads 2 \
    --n_ctx 2048 --port 18003 >/dev/null 2>&1 & pid=$!
wait_ready http://127.0.0.1:18003/v1/models && bench llama.cpp 18003 $MODEL 1; stop

# The chart, drawn by the peers' environment (matplotlib stays out of the project's lock).
"$PEERS/bin/python" -c "import matplotlib, httpx" 2>/dev/null \
    || "$PEERS/bin/pip" install --quiet matplotlib httpx
"$PEERS/bin/python" benchmarks/serve_bench.py --chart-from "$JSON" --png "$OUT/serve_cpu_smollm2.png"

{
    $PY benchmarks/cold_start.py --repeat 5 --label bosun --health http://127.0.0.1:18001/health -- \
        .venv/bin/bosun serve --model $MODEL --port 18001 --max-model-len 1024
    HF_HUB_OFFLINE=1 $PY benchmarks/cold_start.py --repeat 5 --label transformers-serve-cb \
        --health http://127.0.0.1:18002/health -- \
        .venv/bin/transformers serve --continuous-batching --port 18002 "$HFDIR"
    $PY benchmarks/cold_start.py --repeat 5 --label llama.cpp --health http://127.0.0.1:18003/v1/models -- \
        "$PEERS/bin/python" -m llama_cpp.server --model "$GGUF" --n_threads 2 --port 18003
} | tee "$OUT/cold_start_cpu_smollm2.jsonl"

# One stream in process, no HTTP: the engines themselves.
{
    $PY benchmarks/single_stream.py --backend bosun
    "$PEERS/bin/python" benchmarks/single_stream.py --backend llama.cpp --gguf "$GGUF"
} | tee "$OUT/single_stream_cpu_smollm2.jsonl"
