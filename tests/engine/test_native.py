"""The C++ decode step (engine/native) against the decoder's own ATen path.

On tiny random models of each shape it runs (Llama, Mistral's sliding window, Qwen2's
q/k/v bias, tanh-GELU), sequences decoding together at different lengths on blocks out of
order get the logits of the same int8 weights multiplied through ATen in float32, and on
SmolLM2 its greedy tokens; the models it does not run keep the ATen path, and so does a
machine where it cannot be built.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch

from bosun.engine import native, quant
from bosun.engine.cpus import cpu_flags
from bosun.engine.loader import resolve_model
from bosun.engine.model import Decoder, PagedKVCache, PagedSeq, PagedStep
from bosun.engine.native import step as native_step
from bosun.engine.native.step import MAX_BATCH_TILES, NativeDecode, unsupported
from bosun.engine.quant import quantize_int8
from bosun.engine.runner import DecoderRunner, RunItem, RunnerOptions, load_runner
from tests.engine.tiny import (
    GEMMA2,
    HF_CONFIG,
    MISTRAL,
    PAGED_CASES,
    QWEN3,
    check_paged_decode,
    hf_twin,
    variant,
)

CPU = torch.device("cpu")
BLOCK = 4
QWEN2 = variant(architectures=["Qwen2ForCausalLM"], model_type="qwen2", drop=["head_dim"])
GELU = variant(hidden_act="gelu_pytorch_tanh")
# Widths no vector divides and a vocabulary no row block does: the kernels' tails.
ODD = variant(hidden_size=36, intermediate_size=50, vocab_size=67)


@pytest.fixture(scope="module")
def module() -> ModuleType:
    if shutil.which("c++") is None and shutil.which("g++") is None:
        pytest.skip("no C++ compiler here: the engine decodes through ATen, tested elsewhere")
    built = native.load()
    assert built is not None, native.last_error()
    return built


def float32_aten(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every ATen step multiplies the int8 weights dequantized in float32 (the C++ step's
    precision), whatever this CPU would pick."""
    monkeypatch.setattr(quant, "KERNEL_ROWS", 0)
    monkeypatch.setattr(quant, "wide_precision", lambda: torch.float32)


def prefill(model: Decoder, cache: PagedKVCache, prompt: list[int], table: list[int]) -> int:
    seqs = [PagedSeq(0, len(prompt), table)]
    plan = PagedStep.plan(seqs, BLOCK, CPU, cache.null_slot, window=model.cfg.sliding_window)
    logits: torch.Tensor = model(torch.tensor(prompt), cache, plan)
    return int(logits[0].argmax())


def aten_step(
    model: Decoder, cache: PagedKVCache, tokens: list[int], starts: list[int], tables: list[Any]
) -> torch.Tensor:
    seqs = [PagedSeq(s, 1, t) for s, t in zip(starts, tables, strict=True)]
    plan = PagedStep.plan(seqs, BLOCK, CPU, cache.null_slot, window=model.cfg.sliding_window)
    logits: torch.Tensor = model(torch.tensor(tokens), cache, plan)
    return logits


@pytest.mark.parametrize(
    "config",
    [HF_CONFIG, MISTRAL, QWEN2, GELU, ODD],
    ids=["llama", "mistral-sliding", "qwen2", "gelu", "odd-widths"],
)
def test_a_batch_decodes_to_the_logits_of_the_aten_path(
    module: ModuleType, config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, model = hf_twin(config)
    quantize_int8(model)
    cache = PagedKVCache.allocate(model.cfg, 24, BLOCK, torch.float32, CPU)
    step = NativeDecode(model, cache)
    assert unsupported(model, cache) is None
    # Reference: the same int8 weights dequantized, multiplied in float32 (quant.py's path
    # for wide steps), so that only the order of additions differs.
    float32_aten(monkeypatch)
    prompts = [[5, 9, 3, 1, 2, 7, 7], [4, 4, 12], [30, 31, 32, 33, 34, 35, 36, 37, 38, 40]]
    tables = [[3, 1, 9, 11], [0, 6, 17], [7, 2, 14, 5, 8]]  # blocks out of order
    tokens = [prefill(model, cache, p, t) for p, t in zip(prompts, tables, strict=True)]
    starts = [len(p) for p in prompts]
    for _ in range(6):  # past the 4-token window, into new blocks
        expected = aten_step(model, cache, tokens, starts, tables)
        logits = step.run(tokens, starts, tables)
        assert logits is not None
        torch.testing.assert_close(logits, expected, atol=1e-4, rtol=1e-4)
        tokens = [int(t) for t in logits.argmax(dim=-1)]
        starts = [s + 1 for s in starts]


@pytest.mark.parametrize(("heads", "kv_heads", "dim", "window", "softcap"), **PAGED_CASES)
def test_its_paged_attention_matches_attention_over_gathered_context(
    module: ModuleType, heads: int, kv_heads: int, dim: int, window: int, softcap: float
) -> None:
    """The kernel ATen's CPU steps attend decoding sequences with (any model): the Triton
    kernel's contract, checked by the same cases."""
    check_paged_decode(native.paged_decode, heads, kv_heads, dim, window, softcap)


def test_cpu_runners_plan_decodes_through_it_once_built(module: ModuleType) -> None:
    """A float32 CPU runner without the Triton kernel reads decoding contexts through the
    C++ kernel (block tables), for models the C++ step does not run too (Gemma 2)."""
    _, model = hf_twin(GEMMA2)
    options = RunnerOptions("bosun", "float32", "cpu", "none", 2, 64)
    runner = DecoderRunner(model, options, torch.float32, CPU)
    assert runner.native is None and runner.cpu_paged
    seen: list[PagedStep] = []
    plan = PagedStep.plan

    def spy(*args: Any, **kwargs: Any) -> PagedStep:
        seen.append(plan(*args, **kwargs))
        return seen[-1]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(PagedStep, "plan", spy)
        runner.run([RunItem(0, [5, 6, 7], 0, [0]), RunItem(1, [8, 9], 0, [1])])
        runner.run([RunItem(0, [3], 3, [0]), RunItem(1, [4], 2, [1])])
    assert seen[0].block_tables is None  # prompts: SDPA over the gathered context
    assert seen[1].block_tables is not None


def test_batches_it_takes_follow_its_vectors(module: ModuleType) -> None:
    """With AMX tiles a step decodes up to 256 sequences; without, AVX-512 builds up to 32
    and AVX2 ones 4 (ATen the rest)."""
    _, model = hf_twin(HF_CONFIG)
    quantize_int8(model)
    step = NativeDecode(model, PagedKVCache.allocate(model.cfg, 8, BLOCK, torch.float32, CPU))
    if module.int8_tiles():
        assert step.max_batch == MAX_BATCH_TILES
    else:
        assert step.max_batch == {16: 32, 8: 4}.get(int(module.lanes()), 1)
    if os.environ.get("BOSUN_NATIVE_ARCH") == "haswell":
        assert module.lanes() == 8 and not module.int8_tiles()


def needs_tiles(module: ModuleType) -> None:
    if not module.int8_tiles():
        pytest.skip("this CPU has no AMX tiles (or Linux does not grant them): every batch")
        # multiplies in float32 there, which the tests above check


def per64_reference(x: torch.Tensor, w: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """x w^T scale with each row of x quantized to int8 per block of 64 (round to nearest)."""
    blocks = x.reshape(x.shape[0], -1, 64)
    step = blocks.abs().amax(-1, keepdim=True) / 127
    q = torch.where(step > 0, torch.round(blocks / step.clamp(min=1e-30)), 0.0)
    xq = (q * step).reshape_as(x)
    return (xq.double() @ w.double().T * scale.double()).float()


def test_wide_batches_multiply_int8_activations_quantized_per_64(module: ModuleType) -> None:
    """From int8_batch sequences on, the step's products are those of the activations
    rounded to int8 per block of 64 (rows past the last tile of 16, and widths no block
    divides, stay float32); fewer sequences stay float32."""
    needs_tiles(module)
    torch.manual_seed(0)
    for out, width, batch in ((48, 64, 4), (72, 192, 17), (40, 128, 33), (32, 96, 8)):
        w = torch.randint(-127, 128, (out, width), dtype=torch.int8)
        scale = torch.rand(out) / 100
        x = torch.randn(batch, width)
        x[0, :64] *= 50  # an outlier block: it sets only its own block's scale
        exact = (x.double() @ w.double().T * scale.double()).float()
        y = module.linear_int8(x, w, scale, torch.empty(0), 4)
        if width % 64:
            torch.testing.assert_close(y, exact, rtol=1e-5, atol=1e-5)
            continue
        tiles = out // 16 * 16
        expected = per64_reference(x, w, scale)
        torch.testing.assert_close(y[:, :tiles], expected[:, :tiles], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(y[:, tiles:], exact[:, tiles:], rtol=1e-5, atol=1e-5)
        assert (y[:, :tiles] - exact[:, :tiles]).abs().max() > 1e-4  # int8 did round
        few = module.linear_int8(x[:3], w, scale, torch.empty(0), 4)
        torch.testing.assert_close(few, exact[:3], rtol=1e-4, atol=1e-4)


WIDE = variant(
    hidden_size=64, intermediate_size=128, head_dim=16, vocab_size=72, num_key_value_heads=2
)


def test_a_wide_batch_decodes_in_int8_near_float32(
    module: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Six sequences in one step through the tiles: the logits of float32 activations to
    within int8 rounding (what that costs a real model: benchmarks/quality.py); off (0),
    float32's."""
    needs_tiles(module)
    _, model = hf_twin(WIDE)
    quantize_int8(model)
    cache = PagedKVCache.allocate(model.cfg, 48, BLOCK, torch.float32, CPU)
    step = NativeDecode(model, cache)
    float32_aten(monkeypatch)
    prompts = [[i + 1, 2 * i + 3, 5, i + 7, 11] for i in range(6)]
    tables = [[6 * i + k for k in range(6)] for i in range(6)]
    tokens = [prefill(model, cache, p, t) for p, t in zip(prompts, tables, strict=True)]
    starts = [len(p) for p in prompts]
    expected = aten_step(model, cache, tokens, starts, tables)
    monkeypatch.setattr(native_step, "int8_batch", lambda: 0)
    exact = step.run(tokens, starts, tables)
    monkeypatch.setattr(native_step, "int8_batch", lambda: 4)
    rounded = step.run(tokens, starts, tables)
    assert exact is not None and rounded is not None
    torch.testing.assert_close(exact, expected, atol=1e-4, rtol=1e-4)
    error = (rounded - expected).abs().max() / expected.abs().max()
    assert 1e-6 < error < 6e-2, error  # a tiny random model: every block an outlier


@pytest.mark.skipif("avx512f" not in cpu_flags(), reason="this CPU's own build is the AVX2 one")
def test_the_avx2_build_decodes_alike(module: ModuleType) -> None:
    """On an AVX-512 machine the tests above ran its AVX-512 kernels; CPUs with AVX2 alone
    (AMD before Zen 4, older Intel) run the other ones: built for Haswell, the same checks."""
    here = Path(__file__)
    tests = [f"{here}::test_a_batch_decodes_to_the_logits_of_the_aten_path"]
    tests.append(f"{here}::test_batches_it_takes_follow_its_vectors")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
        env={**os.environ, "BOSUN_NATIVE_ARCH": "haswell"},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:]


def test_what_it_does_not_run_keeps_the_aten_path() -> None:
    for config, words in ((GEMMA2, "Llama family"), (QWEN3, "Llama family")):
        _, model = hf_twin(config)
        quantize_int8(model)
        cache = PagedKVCache.allocate(model.cfg, 8, BLOCK, torch.float32, CPU)
        assert words in (unsupported(model, cache) or "")
    _, model = hf_twin(HF_CONFIG)  # float32 weights, not int8
    cache = PagedKVCache.allocate(model.cfg, 8, BLOCK, torch.float32, CPU)
    assert "int8" in (unsupported(model, cache) or "")


def greedy(runner: Any, prompt: list[int], n: int) -> list[int]:
    table = list(range(32))
    logits = runner.run([RunItem(1, prompt, 0, table, 0)])
    out = [int(logits[0].argmax())]
    for k in range(n):
        logits = runner.run([RunItem(1, [out[-1]], len(prompt) + k, table, 0)])
        out.append(int(logits[0].argmax()))
    return out


def test_smollm2_greedy_tokens_are_those_of_its_int8_weights_in_float32(
    module: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """48 greedy tokens of the real model: those of its int8 weights dequantized and
    multiplied in float32 through ATen (the C++ step's activations are float32 too; the
    ATen decode kernel's bfloat16 ones may part ways at a near tie)."""
    options = RunnerOptions("bosun", "auto", "cpu", "auto", slots=2, max_model_len=512)
    runner = load_runner(resolve_model("smollm2-135m-instruct"), options)
    assert runner.native is not None and runner.native.ready
    prompt = [1, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 30, 2, 198, 1, 4093, 198, 2683]
    float32_aten(monkeypatch)  # both prompts prefilled in float32 alike
    fast = greedy(runner, prompt, 48)
    native_step, runner.native = runner.native, None
    reference = greedy(runner, prompt, 48)
    runner.native = native_step
    assert fast == reference


def test_an_engine_without_the_build_decodes_through_aten(
    module: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not built yet (or no compiler): the step says so and the runner's ATen path runs."""
    _, model = hf_twin(HF_CONFIG)
    quantize_int8(model)
    cache = PagedKVCache.allocate(model.cfg, 8, BLOCK, torch.float32, CPU)
    step = NativeDecode(model, cache)
    monkeypatch.setattr(native, "load", lambda build=True: None)
    assert not step.ready and step.run([1], [0], [[0]]) is None


def test_a_failed_build_is_reported_not_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "decode.cpp"
    broken.write_text('#error "not C++"\n', encoding="utf-8")
    monkeypatch.setattr(native, "SOURCE", broken)
    monkeypatch.setattr(native, "_module", None)
    monkeypatch.setenv("BOSUN_CACHE_DIR", str(tmp_path))
    native.module_name.cache_clear()
    try:
        assert native.load() is None
        assert native.last_error()
        assert native.load(build=False) is None  # nothing cached under that name
    finally:
        native.module_name.cache_clear()


def bosun_native(code: str) -> subprocess.CompletedProcess[str]:
    """``code`` run in a new Python process after ``from bosun.engine import native``; the
    time-out is a guard against the hang these tests are about, not a measure."""
    return subprocess.run(
        [sys.executable, "-c", f"from bosun.engine import native\n{code}"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_a_killed_build_does_not_hang_the_next_start(module: ModuleType) -> None:
    """A build killed half-way leaves torch's lock file behind; torch alone would wait on
    it for ever, at every start (CI once sat 90 minutes in ``make``). The next start
    removes it and finds the build."""
    stale = native.cache_dir() / native.module_name() / "lock"
    stale.touch()
    try:
        done = bosun_native("raise SystemExit(native.main())")
    finally:
        left = stale.exists()
        stale.unlink(missing_ok=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "the C++ decode step is built" in done.stdout
    assert "left by a build that was killed" in done.stderr
    assert not left


def test_a_step_does_not_wait_for_another_process_building(module: ModuleType) -> None:
    """While another process builds, an engine asking whether the build is ready decodes
    through ATen instead of waiting; once that process is gone (even killed), the build
    is found."""
    lock = native.cache_dir() / native.module_name() / "bosun.lock"
    script = (
        "import fcntl, sys, time\n"
        f"f = open({str(lock)!r}, 'a')\n"
        "fcntl.flock(f, fcntl.LOCK_EX)\n"
        "print('held', flush=True)\n"
        "time.sleep(600)\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True
    ) as holder:
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
            busy = bosun_native("print(native.load(build=False))")
        finally:
            holder.kill()
    assert busy.returncode == 0 and busy.stdout.strip() == "None", busy.stderr[-2000:]
    free = bosun_native("print(native.load(build=False) is not None)")
    assert free.stdout.strip() == "True", free.stderr[-2000:]
