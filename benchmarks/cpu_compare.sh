#!/usr/bin/env bash
# One stream on this CPU, side by side in one run (benchmarks/single_stream.py): the Bosun
# engine's C++ step with this CPU's kernels, its AVX2 kernels (where the CPU has AVX-512),
# and its ATen path; llama.cpp on the same GGUF (Q4_1) and requantized to Q8_0; the Bosun
# engine and llama.cpp again with a busy process beside. Then batches of 1 to 32 requests
# (benchmarks/engine_batch.py) with each kind of kernel: this CPU's (int8 products on AMX
# tiles where it has them), float32 products, the AVX2 build, ATen. Then this machine's
# bounds (cpu_roofline.py), each figure as a share of them, and charts.
# Peers go into benchmarks/.peers: llama-cpp-python built from source (about 10 minutes on
# 2 cores, once) without AMX (0.3.36's AMX kernels crash on this GGUF: a segfault on the
# first token, Intel Xeon with AMX), and matplotlib for the chart. `make test` never needs them.
#
#   benchmarks/cpu_compare.sh [OUT_DIR]     (default: benchmarks/results)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-benchmarks/results}
PY=.venv/bin/python
PEERS=benchmarks/.peers
JSON=$OUT/cpu_single_stream.jsonl
mkdir -p "$OUT"

if [ ! -x "$PEERS/bin/python" ]; then
    python3 -m venv "$PEERS"
fi
"$PEERS/bin/python" -c "import llama_cpp" 2>/dev/null \
    || CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
        $(grep -qw avx512f /proc/cpuinfo && echo "-DGGML_AVX512=ON -DGGML_AVX512_VBMI=ON \
        -DGGML_AVX512_VNNI=ON -DGGML_AVX512_BF16=ON") \
        $(grep -qw avx_vnni /proc/cpuinfo && echo "-DGGML_AVX_VNNI=ON")" \
        "$PEERS/bin/pip" install --quiet 'llama-cpp-python[server]==0.3.36'
"$PEERS/bin/python" -c "import matplotlib" 2>/dev/null || "$PEERS/bin/pip" install --quiet matplotlib

GGUF=$($PY -c "from bosun.engine.loader import _packaged; print(_packaged('smollm2-135m-instruct'))")
rm -f "$JSON"
bosun() { $PY benchmarks/single_stream.py --backend bosun --json "$JSON" "$@"; }
llama() { "$PEERS/bin/python" benchmarks/single_stream.py --backend llama.cpp --gguf "$GGUF" \
    --json "$JSON" "$@"; }

$PY -m bosun.engine.native
bosun
if grep -qw avx512f /proc/cpuinfo; then
    BOSUN_NATIVE_ARCH=haswell $PY -m bosun.engine.native
    BOSUN_NATIVE_ARCH=haswell bosun
fi
BOSUN_NATIVE=0 bosun
llama
llama --q8
bosun --busy 1
llama --q8 --busy 1

BATCH=$OUT/cpu_batch.jsonl
rm -f "$BATCH"
batch() { $PY benchmarks/engine_batch.py --concurrency 1 4 8 32 --json "$BATCH"; }
batch
if grep -qw amx_int8 /proc/cpuinfo; then
    BOSUN_CPU_INT8_BATCH=0 batch
fi
if grep -qw avx512f /proc/cpuinfo; then
    BOSUN_NATIVE_ARCH=haswell batch
fi
BOSUN_NATIVE=0 batch

$PY benchmarks/cpu_roofline.py --results "$JSON" "$BATCH" --json "$OUT/cpu_roofline.json"
"$PEERS/bin/python" benchmarks/cpu_chart.py "$JSON" "$OUT/cpu_roofline.json" \
    "$OUT/cpu_single_stream.png" "$BATCH" "$OUT/cpu_batch.png"
