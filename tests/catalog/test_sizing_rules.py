"""Each sizing rule, pinned by name: a table of small cases (input, expected bytes or layout,
why) per rule in catalog/sizing.py, and property tests for the invariants plans keep.

The cases use a toy model with round numbers so every expected figure can be checked by
hand; the constants the rules use (overheads, defaults, bytes per weight) are written out
as numbers here, not imported, so that changing one is a change a test notices.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bosun.api import parse_workspace
from bosun.api.workspace import Quantization, SharingStrategy, Workspace
from bosun.catalog import PlanError, plan_workspace
from bosun.catalog import sizing as rules
from bosun.catalog.accelerators import AcceleratorProfile, cpu_profile, get_profile
from bosun.catalog.presets import MLA, ModelSpec, Recurrent, get_preset
from tests.conftest import example_data, workspace_data

GIB = 2**30

# 4 layers of 100,000 parameters; embedding and head 1000 x 64 each (untied): 528,000.
TOY = ModelSpec(
    name="toy",
    architecture="LlamaForCausalLM",
    parameters=528_000,
    layers=4,
    hidden_size=64,
    attention_heads=8,
    kv_heads=2,
    head_dim=8,
    intermediate_size=128,
    vocab_size=1000,
    max_context=4096,
)
# The same layers with the head tied to the embedding: 464,000 parameters.
TIED = TOY.model_copy(update={"name": "tied", "parameters": 464_000, "tied_embeddings": True})
# Two layers with a cache and two reusing it (Gemma 3n/4's num_kv_shared_layers), and a
# per-layer embedding of 8 per layer: a second table of 1000 x 4 x 8 = 32,000 parameters.
SHARED = TIED.model_copy(
    update={
        "name": "shared",
        "parameters": 496_000,
        "layer_pattern": "**==",
        "per_layer_input_size": 8,
    }
)
# MLA caches one latent of 16 + 8 per layer, whatever the heads.
LATENT = TOY.model_copy(
    update={
        "name": "latent",
        "kv_heads": 3,
        "mla": MLA(kv_lora_rank=16, qk_rope_head_dim=8, qk_nope_head_dim=8, v_head_dim=8),
    }
)
H100 = get_profile("nvidia-h100-80gb")
GPU = AcceleratorProfile(name="toy-gpu", kind="gpu", memory_bytes=10 * GIB)


def inputs(spec: ModelSpec = TOY, **overrides: Any) -> rules.Inputs:
    base: dict[str, Any] = dict(
        spec=spec,
        profile=GPU,
        runtime="vllm",
        dtype="bfloat16",
        quantization=Quantization.NONE,
        kv_element_bytes=2.0,
        max_model_len=1000,
        concurrency=1,
        batched_tokens=100,
        max_seqs=10,
        cuda_graphs=True,
    )
    base.update(overrides)
    return rules.Inputs(**base)


def workspace(**spec: Any) -> Workspace:
    return parse_workspace(workspace_data(**spec))


def tuning_workspace(**tuning: Any) -> Workspace:
    data = example_data("06-")
    data["spec"]["tuning"].update(tuning)
    return parse_workspace(data)


# --------------------------------------------------------------------------- memory


@pytest.mark.parametrize(
    ("dtype", "quantization", "expected", "why"),
    [
        ("float32", Quantization.NONE, 4, "float32 is four bytes"),
        ("bfloat16", Quantization.NONE, 2, "bfloat16 is two"),
        ("float16", Quantization.NONE, 2, "float16 is two"),
        ("bfloat16", Quantization.FP8, 1, "fp8 is one byte, scales per tensor"),
        ("float32", Quantization.INT8, 1, "int8 is one byte, scales per channel"),
        ("bfloat16", Quantization.AWQ, 0.53125, "4 bits + fp16 scale and zero per 128"),
        ("bfloat16", Quantization.GPTQ, 0.53125, "4 bits + fp16 scale and zero per 128"),
        ("bfloat16", Quantization.BNB_4BIT, 0.5625, "nf4 + an fp32 absmax per 64"),
    ],
)
def test_weight_element_bytes(
    dtype: str, quantization: Quantization, expected: float, why: str
) -> None:
    assert rules.weight_element_bytes(dtype, quantization) == expected, why


@pytest.mark.parametrize(
    ("x", "tp", "pp", "expected", "why"),
    [
        (inputs(), 1, 1, 1_056_000 * 1.02, "400,000 layer weights and 128,000 vocab, x 2 bytes"),
        (inputs(profile=cpu_profile(0)), 1, 1, 1_056_000, "vLLM on CPUs: no load growth"),
        (inputs(), 2, 1, 528_000 * 1.02, "tensor parallel halves everything"),
        (inputs(), 1, 2, 528_000 * 1.02, "a stage: 2 layers and one vocab matrix"),
        (inputs(), 1, 3, 400_000 * 1.02, "stages of 1, 2, 1 layers: the middle one, no vocab"),
        (inputs(), 1, 4, 328_000 * 1.02, "one layer and one vocab matrix"),
        (inputs(dtype="float32"), 1, 1, 2_112_000 * 1.02, "float32: twice bfloat16"),
        (
            inputs(quantization=Quantization.GPTQ),
            1,
            1,
            468_500 * 1.02,
            "gptq layers at 0.53125 bytes; embeddings stay 16-bit",
        ),
        (inputs(quantization=Quantization.BNB_4BIT), 1, 1, 481_000 * 1.02, "nf4 at 0.5625"),
        (inputs(quantization=Quantization.FP8), 1, 1, 656_000 * 1.02, "fp8 layers at one byte"),
        (
            inputs(TIED, runtime="bosun", dtype="float32", quantization=Quantization.INT8),
            1,
            1,
            720_000,
            "int8 layers 400,000 + float32 embedding 256,000 + the tied head's int8 copy 64,000",
        ),
        (
            inputs(TIED, dtype="float32", quantization=Quantization.INT8),
            1,
            1,
            656_000 * 1.02,
            "vllm's int8 has no separate head copy",
        ),
        (
            inputs(TOY, runtime="bosun", dtype="float32", quantization=Quantization.INT8),
            1,
            1,
            912_000,
            "an untied head is already among the 16-bit (here float32) embeddings",
        ),
        (inputs(TIED), 1, 1, 928_000 * 1.02, "tied: one vocab matrix on one stage"),
        (inputs(TIED), 1, 2, 528_000 * 1.02, "tied on two stages: the last holds a head copy"),
        (
            inputs(LATENT),
            2,
            1,
            (1_056_000 - 12_416) / 2 * 1.02 + 12_416 * 1.02,
            "MLA: the KV latent's down-projection (64 x 24) and its 16-wide norm, 1,552 "
            "parameters a layer, stay whole on both ranks",
        ),
    ],
)
def test_weights_rule(x: rules.Inputs, tp: int, pp: int, expected: float, why: str) -> None:
    assert rules.weights_rule(x, tp, pp) == pytest.approx(expected), why


@pytest.mark.parametrize(
    ("layers", "pp", "expected"),
    [
        # vLLM's own cases for get_pp_indices (tests/distributed/test_pipeline_partition.py)
        (2, 2, [1, 1]),
        (3, 2, [2, 1]),
        (3, 3, [1, 1, 1]),
        (4, 3, [1, 2, 1]),
        (5, 3, [2, 2, 1]),
        # Llama-3.3-70B over 9 and 10 stages
        (80, 9, [9, 9, 9, 9, 9, 9, 9, 9, 8]),
        (80, 10, [8] * 10),
    ],
)
def test_pipeline_stages_rule(layers: int, pp: int, expected: list[int]) -> None:
    assert rules.pipeline_stages_rule(layers, pp) == expected


def test_stage_weights_add_up_to_the_model_and_its_head_copies() -> None:
    """The plan's weights are the stages' sum: the checkpoint (x 1.02) plus, on a pipeline,
    the head a tied model copies to its last stage; never a vocab matrix per stage."""
    x = inputs(TIED)
    assert sum(rules.stage_weights_rule(x, 1)) == pytest.approx(928_000 * 1.02)
    assert sum(rules.stage_weights_rule(x, 4)) == pytest.approx((928_000 + 128_000) * 1.02)
    assert sum(rules.stage_weights_rule(inputs(), 4)) == pytest.approx(1_056_000 * 1.02)


def test_per_layer_embeddings_sit_with_the_embedding() -> None:
    """The per-layer table counts as embedding: on the first pipeline stage, kept 16-bit
    in a quantized checkpoint, and out of what the layers split."""
    assert SHARED.embedding_parameters == 64_000 + 32_000
    assert SHARED.layer_parameters == 100_000
    first, last = rules.stage_weights_rule(inputs(SHARED), 2)
    assert first == pytest.approx((2 * 200_000 + 2 * (64_000 + 32_000)) * 1.02)
    assert last == pytest.approx((2 * 200_000 + 2 * 64_000) * 1.02)
    fp8 = SHARED.model_copy(update={"quantization": Quantization.FP8})
    assert fp8.weight_bytes == 400_000 + 2 * 96_000


@pytest.mark.parametrize(
    ("x", "tp", "pp", "expected", "why"),
    [
        (inputs(), 1, 1, 256, "K and V x 4 layers x 2 KV heads x 8 dims x 2 bytes"),
        (inputs(), 2, 1, 128, "two ranks, one KV head each"),
        (inputs(), 4, 1, 128, "four ranks, two KV heads: each rank keeps a replica of one"),
        (inputs(), 8, 1, 128, "eight ranks still keep one head each"),
        (inputs(), 1, 2, 128, "two stages hold two layers each"),
        (inputs(), 1, 3, 128, "three stages: the busiest holds ceil(4/3) = 2 layers"),
        (inputs(kv_element_bytes=1.0), 1, 1, 128, "fp8 KV cache is one byte"),
        (inputs(LATENT), 1, 1, 192, "MLA: (16 + 8) x 4 layers x 2 bytes"),
        (inputs(SHARED), 1, 1, 128, "layers reusing another's KV keep none: 2 layers"),
        (inputs(SHARED), 1, 2, 128, "the first stage holds both layers with a cache"),
        (inputs(LATENT), 4, 1, 192, "MLA's latent is replicated on every rank"),
    ],
)
def test_kv_per_token_rule(x: rules.Inputs, tp: int, pp: int, expected: float, why: str) -> None:
    assert rules.kv_per_token_rule(x, tp, pp) == pytest.approx(expected), why


@pytest.mark.parametrize(
    ("x", "tp", "expected", "why"),
    [
        (
            inputs(),
            1,
            176_000,
            "100 tokens x (2 x 64 + 64 q + 32 kv + 2 x 128 mlp) x 2 bytes, + 10 x 1000 x 8",
        ),
        (inputs(), 2, 140_800, "the q, kv and mlp widths split over two ranks"),
        (inputs(max_seqs=200), 1, 896_000, "logits for at most the batched tokens (100)"),
        (inputs(dtype="float32"), 1, 272_000, "float32 activations are twice as wide"),
    ],
)
def test_serving_activations_rule(x: rules.Inputs, tp: int, expected: float, why: str) -> None:
    assert rules.serving_activations_rule(x, tp) == pytest.approx(expected), why


def test_serving_activations_of_a_moe_count_the_routed_and_shared_experts() -> None:
    moe = TOY.model_copy(
        update={
            "experts": 8,
            "experts_per_token": 2,
            "shared_experts": 1,
            "moe_intermediate_size": 32,
        }
    )
    # width 128 + 64 + 32 + 2 x (32 x 3) = 416
    assert rules.serving_activations_rule(inputs(moe), 1) == pytest.approx(100 * 416 * 2 + 80_000)


@pytest.mark.parametrize(
    ("x", "expected", "why"),
    [
        (
            inputs(tuning=True, tuning_seq_len=10, tuning_batch=2),
            299_520,
            "20 tokens x 64 x 2 bytes x (4 + 34) + 20 x 1000 x 8 + 528,000 x 0.005 x 16",
        ),
        (
            inputs(tuning=True, tuning_seq_len=20, tuning_batch=1),
            299_520,
            "the same tokens in one longer sequence",
        ),
        (
            inputs(tuning=True, tuning_seq_len=10, tuning_batch=2, dtype="float32"),
            396_800,
            "float32 checkpoints are twice as wide",
        ),
    ],
)
def test_tuning_activations_rule(x: rules.Inputs, expected: float, why: str) -> None:
    assert rules.tuning_activations_rule(x) == pytest.approx(expected), why


@pytest.mark.parametrize(
    ("x", "ranks", "expected", "why"),
    [
        (inputs(profile=cpu_profile(0), cuda_graphs=False), 1, GIB, "Python, torch, server"),
        (inputs(cuda_graphs=False), 1, int(1.8 * GIB), "vLLM's non-torch memory at tp 1"),
        (inputs(), 1, int(1.8 * GIB) + GIB // 2, "and 0.5 GiB of CUDA graphs"),
        (inputs(), 2, 2 * int(1.8 * GIB) + GIB // 2, "and 1.8 GiB of NCCL between ranks"),
        (inputs(cuda_graphs=False), 8, 2 * int(1.8 * GIB), "NCCL without graphs"),
    ],
)
def test_overhead_rule(x: rules.Inputs, ranks: int, expected: float, why: str) -> None:
    assert rules.overhead_rule(x, ranks) == expected, why


def test_estimate_of_serving_sums_the_rules() -> None:
    est = rules.estimate(inputs(concurrency=3), 2, 1)
    assert est.kv_per_token_dev == 128
    assert est.kv_dev == 128 * 1000 * 3  # per token x maxModelLen x concurrency
    assert est.overhead_dev == 2 * int(1.8 * GIB) + GIB // 2  # two ranks: NCCL
    # Over the replica: the model's 256 bytes per token (one KV head on each of two ranks).
    assert est.kv_replica == 256 * 1000 * 3
    assert est.weights_replica == pytest.approx(1_056_000 * 1.02)
    assert est.need == est.weights_dev + est.kv_dev + est.activation_dev + est.overhead_dev


def test_estimate_of_tuning_has_no_kv_cache_and_one_rank() -> None:
    est = rules.estimate(inputs(tuning=True, tuning_seq_len=10, tuning_batch=2), 1, 1)
    assert (est.kv_dev, est.kv_per_token_dev, est.kv_replica) == (0, 0, 0)
    assert est.activation_dev == pytest.approx(299_520)
    assert est.overhead_dev == int(1.8 * GIB) + GIB // 2


@pytest.mark.parametrize(
    ("profile", "expected"), [(GPU, 0.90), (cpu_profile(8 * GIB), 0.90), (H100, 0.90)]
)
def test_utilization_rule(profile: AcceleratorProfile, expected: float) -> None:
    assert rules.utilization_rule(profile) == expected


def test_fits_rule_is_inclusive_and_counts_sharers() -> None:
    usable = 10 * GIB * 0.9
    exact = rules.Estimate(usable, 0, 0, 0, 0, 0, 0)
    assert rules.fits_rule(inputs(), exact, 1)
    assert not rules.fits_rule(inputs(), replace(exact, weights_dev=usable + 1), 1)
    half = rules.Estimate(usable / 2, 0, 0, 0, 0, 0, 0)
    assert rules.fits_rule(inputs(), half, 2)
    assert not rules.fits_rule(inputs(), half, 3)


# --------------------------------------------------------------------------- layout


@pytest.mark.parametrize(
    ("heads", "kv_heads", "mla", "tp", "valid", "why"),
    [
        (8, 2, False, 1, True, "one rank takes everything"),
        (8, 2, False, 2, True, "heads and KV heads split two ways"),
        (8, 2, False, 4, True, "KV heads replicate: 4 ranks, 2 heads"),
        (8, 2, False, 8, True, "8 ranks, 2 KV heads, each replicated 4 times"),
        (8, 2, False, 3, False, "8 heads do not split 3 ways"),
        (8, 2, False, 16, False, "more ranks than heads"),
        (24, 8, False, 3, False, "24 heads split 3 ways, 8 KV heads do not, nor 3 by 8"),
        (24, 8, False, 6, False, "neither 8 % 6 nor 6 % 8"),
        (24, 8, False, 8, True, "both split 8 ways"),
        (16, 3, False, 4, False, "3 KV heads do not split 4 ways"),
        (16, 3, True, 4, True, "MLA has no KV heads to split"),
        (16, 3, True, 3, False, "but its attention heads must still divide"),
    ],
)
def test_tensor_parallel_rule(
    heads: int, kv_heads: int, mla: bool, tp: int, valid: bool, why: str
) -> None:
    spec = TOY.model_copy(
        update={"attention_heads": heads, "kv_heads": kv_heads, "mla": LATENT.mla if mla else None}
    )
    assert rules.tensor_parallel_rule(spec, tp) is valid, why


@pytest.mark.parametrize(
    ("x", "per_node", "expected", "why"),
    [
        (
            inputs(),
            8,
            [(1, 1), (2, 1), (4, 1), (8, 1), (8, 2), (8, 3), (8, 4)],
            "powers of two within the node, then up to one stage per layer",
        ),
        (
            inputs(),
            6,
            [(1, 1), (2, 1), (4, 1), (4, 2), (4, 3), (4, 4)],
            "6 does not divide 8 heads: stages of tp 4",
        ),
        (
            inputs(TOY.model_copy(update={"attention_heads": 12, "kv_heads": 12})),
            6,
            [(1, 1), (2, 1), (4, 1), (6, 1), (6, 2), (6, 3), (6, 4)],
            "a whole node of 6 when the heads divide by 6",
        ),
        (
            inputs(TOY.model_copy(update={"layers": 40, "parameters": 4_128_000})),
            1,
            [(1, 1)] + [(1, pp) for pp in range(2, 17)],
            "at most 16 nodes per replica",
        ),
        (inputs(runtime="bosun"), 8, [(1, 1)], "the bosun engine uses one device"),
        (inputs(tuning=True), 8, [(1, 1)], "tuning uses one device"),
        (inputs(profile=cpu_profile(0)), 8, [(1, 1)], "a CPU is one device"),
        (
            inputs(profile=get_profile("nvidia-a100-80gb-mig-1g.10gb")),
            8,
            [(1, 1)],
            "a MIG slice is one device",
        ),
    ],
)
def test_layouts_rule(
    x: rules.Inputs, per_node: int, expected: list[tuple[int, int]], why: str
) -> None:
    assert rules.layouts_rule(x, per_node) == expected, why


@pytest.mark.parametrize(
    ("x", "count", "per_node", "expected", "warning"),
    [
        (inputs(), 4, 8, (4, 1), None),
        (inputs(), 3, 8, (1, 1), "do not split 3 ways; tensor parallel 1"),
        (inputs(), 6, 8, (2, 1), "do not split 6 ways; tensor parallel 2"),
        (inputs(), 8, 8, (8, 1), None),
        (inputs(), 16, 8, (8, 2), None),
        (inputs(), 24, 8, (8, 3), None),
        (inputs(runtime="bosun"), 1, 8, (1, 1), None),
        (inputs(runtime="bosun"), 2, 8, (1, 1), "2 devices requested, but this runtime uses one"),
        (inputs(tuning=True), 2, 8, (1, 1), "this runtime uses one"),
        (
            inputs(profile=get_profile("nvidia-a100-80gb-mig-1g.10gb")),
            2,
            1,
            (1, 1),
            "but a MIG slice uses one",
        ),
    ],
)
def test_explicit_layout_rule(
    x: rules.Inputs, count: int, per_node: int, expected: tuple[int, int], warning: str | None
) -> None:
    warnings: list[str] = []
    assert rules.explicit_layout_rule(x, count, per_node, warnings) == expected
    if warning is None:
        assert warnings == []
    else:
        assert len(warnings) == 1 and warning in warnings[0]
        assert warnings[0].startswith("spec.resource.accelerator.count: ")


def test_explicit_layout_rule_refuses_counts_that_do_not_fill_whole_nodes() -> None:
    with pytest.raises(PlanError, match=r"accelerator\.count: 12 devices .* use a multiple of 8"):
        rules.explicit_layout_rule(inputs(), 12, 8, [])


def test_choose_layout_rule_takes_the_first_that_fits() -> None:
    # 300,000 KV tokens x 256 bytes = 77 MB: 2.3 GiB + that fits 10 GiB on one device.
    x = inputs(max_model_len=300_000)
    assert rules.choose_layout_rule(x, [(1, 1), (2, 1)], 1)[:2] == (1, 1)
    # On a 2 GiB device one rank needs 2.3 GiB + 77 MB + ... > 1.8 GiB; tp 2 halves the KV
    # but adds NCCL (4.1 GiB of overhead): nothing fits, and the last layout is reported.
    small = replace(x, profile=replace(GPU, memory_bytes=2 * GIB), max_model_len=3_000_000)
    tp, pp, est, fits = rules.choose_layout_rule(small, [(1, 1), (2, 1)], 1)
    assert (tp, pp, fits) == (2, 1, False)
    assert est == rules.estimate(small, 2, 1)


def test_choose_layout_rule_fits_anything_on_a_cpu_without_a_limit() -> None:
    x = inputs(profile=cpu_profile(0), max_model_len=10**9)
    assert rules.choose_layout_rule(x, [(1, 1)], 1)[3] is True
    limited = replace(x, profile=cpu_profile(4 * GIB))
    assert rules.choose_layout_rule(limited, [(1, 1)], 1)[3] is False


def test_memory_rule_sizes_a_cpu_pod_without_a_limit_to_what_it_needs() -> None:
    x = inputs(profile=cpu_profile(0), cuda_graphs=False)
    est = rules.estimate(x, 1, 1)
    memory = rules.memory_rule(x, est, 1)
    assert memory.device_capacity_bytes == math.ceil(est.need / 0.9)
    assert memory.usable_bytes == int(memory.device_capacity_bytes * 0.9)


def test_memory_rule_counts_kv_tokens_in_the_room_left_per_sharer() -> None:
    x = inputs()
    est = rules.Estimate(GIB, 256 * 1000, 0, 0, 256, 0, 0)
    alone = rules.memory_rule(x, est, 1)
    assert alone.usable_bytes == int(10 * GIB * 0.9)
    assert alone.kv_capacity_tokens == int((10 * GIB * 0.9 - GIB) / 256)
    shared = rules.memory_rule(x, est, 2)
    assert shared.kv_capacity_tokens == int((10 * GIB * 0.9 / 2 - GIB) / 256)
    full = rules.memory_rule(x, replace(est, weights_dev=10 * GIB), 1)
    assert full.kv_capacity_tokens == 0  # no room, not a negative count
    replica = replace(est, weights_replica=4 * GIB, kv_replica=5 * 256 * 1000)
    totals = rules.memory_rule(x, replica, 1)
    assert (totals.weights_bytes, totals.kv_cache_bytes) == (4 * GIB, 5 * 256 * 1000)
    assert alone.kv_bytes_per_token == 256  # of the whole model, not the device


@pytest.mark.parametrize(
    ("sharing", "need", "capacity", "expected", "why"),
    [
        (SharingStrategy.EXCLUSIVE, 1 * GIB, 80 * GIB, 0.90, "alone: vLLM's default"),
        (SharingStrategy.TIME_SLICING, 10 * GIB, 80 * GIB, 0.15, "12.5% + 2 points, rounded up"),
        (SharingStrategy.MPS, 8 * GIB, 80 * GIB, 0.12, "10% + 2 points"),
        (SharingStrategy.TIME_SLICING, 79 * GIB, 80 * GIB, 0.90, "never above 0.90"),
    ],
)
def test_shared_utilization_rule(
    sharing: SharingStrategy, need: float, capacity: int, expected: float, why: str
) -> None:
    assert rules.shared_utilization_rule(sharing, need, capacity) == pytest.approx(expected), why


def test_max_len_that_fits_rule_is_a_multiple_of_16_per_sequence() -> None:
    est = rules.Estimate(GIB, 0, 0, 0, 256, 0, 0)
    room = 10 * GIB * 0.9 - GIB
    assert rules.max_len_that_fits_rule(inputs(), est, 1) == int(room / 256) // 16 * 16
    assert rules.max_len_that_fits_rule(inputs(concurrency=4), est, 1) == (
        int(room / 256 / 4) // 16 * 16
    )
    assert rules.max_len_that_fits_rule(inputs(), replace(est, weights_dev=10 * GIB), 1) == 0
    assert rules.max_len_that_fits_rule(inputs(), replace(est, kv_per_token_dev=0), 1) == 0


def test_alternatives_rule_names_the_smallest_gpu_that_fits() -> None:
    x = inputs(profile=replace(GPU, memory_bytes=GIB))
    assert rules.alternatives_rule(x, 1) == "; it would fit on 1 x nvidia-t4-16gb"
    assert rules.alternatives_rule(inputs(profile=cpu_profile(GIB)), 1) == ""


# --------------------------------------------------------------------------- what runs


@pytest.mark.parametrize(
    ("accelerator", "expected"),
    [
        ({}, (SharingStrategy.EXCLUSIVE, 1)),
        ({"sharing": {"strategy": "TimeSlicing"}}, (SharingStrategy.TIME_SLICING, 3)),
        ({"sharing": {"strategy": "MPS"}}, (SharingStrategy.MPS, 3)),
    ],
)
def test_sharing_rule(accelerator: dict[str, Any], expected: tuple[SharingStrategy, int]) -> None:
    ws = workspace(resource={"count": 3, "accelerator": accelerator})
    assert rules.sharing_rule(ws, H100) == expected


def test_sharing_rule_refuses_a_partition() -> None:
    ws = workspace(resource={"count": 2, "accelerator": {"sharing": {"strategy": "MPS"}}})
    with pytest.raises(PlanError, match=r"accelerator\.sharing: sharing applies to whole GPUs"):
        rules.sharing_rule(ws, get_profile("nvidia-a100-80gb-mig-1g.10gb"))


@pytest.mark.parametrize(
    ("accelerator", "profile", "expected"),
    [
        (None, H100, "gpu.nvidia.com"),
        (None, get_profile("nvidia-a100-80gb-mig-1g.10gb"), "mig.nvidia.com"),
        ({"deviceClassName": "my-class"}, H100, "my-class"),
        ({"deviceClassName": "my-class"}, get_profile("nvidia-a100-80gb-mig-1g.10gb"), "my-class"),
    ],
)
def test_device_class_rule(
    accelerator: dict[str, Any] | None, profile: AcceleratorProfile, expected: str
) -> None:
    resource = {"accelerator": accelerator} if accelerator else {}
    assert rules.device_class_rule(workspace(resource=resource), profile) == expected


def test_min_memory_rule() -> None:
    ws = workspace(resource={"accelerator": {"minMemory": "40Gi"}})
    rules.min_memory_rule(ws, H100)  # 80 GiB: enough
    rules.min_memory_rule(ws, replace(H100, memory_bytes=40 * GIB))  # exactly enough
    with pytest.raises(PlanError, match=r"accelerator\.minMemory: nvidia-l4-24gb has 22"):
        rules.min_memory_rule(ws, get_profile("nvidia-l4-24gb"))
    rules.min_memory_rule(ws, cpu_profile(GIB))  # CPUs have no minimum


@pytest.mark.parametrize(
    ("inference", "profile", "expected", "why"),
    [
        ({}, H100, "bfloat16", "the checkpoint's dtype on a GPU"),
        ({}, cpu_profile(0), "float32", "float32 on CPUs"),
        ({}, get_profile("nvidia-t4-16gb"), "float16", "no bfloat16 before compute 8.0"),
        ({"config": {"dtype": "float16"}}, H100, "float16", "config.dtype"),
        ({"config": {"dtype": "int3"}}, H100, "bfloat16", "an unknown config.dtype is ignored"),
    ],
)
def test_dtype_rule(
    inference: dict[str, Any], profile: AcceleratorProfile, expected: str, why: str
) -> None:
    ws = workspace(inference={"preset": {"name": "llama-3.1-8b-instruct"}, **inference})
    warnings: list[str] = []
    spec = ws.workload.preset and get_preset(ws.workload.preset.name)
    assert rules.dtype_rule(ws, spec or None, profile, warnings) == expected, why
    assert bool(warnings) == (profile.name == "nvidia-t4-16gb")


def test_dtype_rule_follows_the_model_section_and_the_checkpoint() -> None:
    ws = workspace(inference={"model": {"uri": "hf://someone/model", "dtype": "float32"}})
    assert rules.dtype_rule(ws, None, H100, []) == "float32"
    unknown = workspace(inference={"model": {"uri": "hf://someone/model"}})
    assert rules.dtype_rule(unknown, None, H100, []) == "bfloat16"
    f16 = TOY.model_copy(update={"dtype": "float16"})
    assert rules.dtype_rule(unknown, f16, H100, []) == "float16"


@pytest.mark.parametrize(
    ("inference", "runtime", "cpu", "expected"),
    [
        ({}, "vllm", False, Quantization.NONE),
        ({"config": {"quantization": "fp8"}}, "vllm", False, Quantization.FP8),
        ({}, "bosun", True, Quantization.INT8),
        ({}, "bosun", False, Quantization.NONE),
        ({"config": {"quantization": "none"}}, "bosun", True, Quantization.NONE),
        (
            {"adapters": [{"name": "a", "source": {"uri": "hf://org/adapter"}}]},
            "bosun",
            True,
            Quantization.NONE,
        ),
    ],
)
def test_quantization_rule(
    inference: dict[str, Any], runtime: str, cpu: bool, expected: Quantization
) -> None:
    ws = workspace(inference={"preset": {"name": "llama-3.1-8b-instruct"}, **inference})
    assert rules.quantization_rule(ws, runtime, cpu) is expected


def test_quantization_rule_of_tuning() -> None:
    assert rules.quantization_rule(tuning_workspace(), "bosun", False) is Quantization.NONE
    qlora = tuning_workspace(method="qlora")
    assert rules.quantization_rule(qlora, "bosun", False) is Quantization.BNB_4BIT
    with pytest.raises(PlanError, match=r"spec\.tuning\.method: qlora needs a GPU"):
        rules.quantization_rule(qlora, "bosun", True)


def test_quantization_rule_names_an_unknown_method() -> None:
    ws = workspace(inference={"preset": {"name": "phi-4"}, "config": {"quantization": "int3"}})
    with pytest.raises(PlanError, match=r"spec\.inference\.config\.quantization: unknown"):
        rules.quantization_rule(ws, "vllm", False)


@pytest.mark.parametrize(
    ("config", "dtype", "expected"),
    [
        ({}, "bfloat16", 2),
        ({}, "float32", 4),
        ({"kvCacheDtype": "fp8"}, "bfloat16", 1),
        ({"kv_cache_dtype": "fp8_e5m2"}, "bfloat16", 1),
        ({"kvCacheDtype": "fp8_e4m3"}, "float32", 1),
        ({"kvCacheDtype": "auto"}, "float16", 2),
    ],
)
def test_kv_element_rule(config: dict[str, Any], dtype: str, expected: float) -> None:
    assert rules.kv_element_rule(config, dtype) == expected


@pytest.mark.parametrize(
    ("inference", "expected", "why"),
    [
        ({"preset": {"name": "llama-3.1-8b-instruct"}}, 32768, "128k context capped at 32k"),
        ({"preset": {"name": "gemma-2-2b-it"}}, 8192, "a shorter context, in full"),
        ({"preset": {"name": "llama-3.1-8b-instruct"}, "maxModelLen": 65536}, 65536, "asked"),
        ({"model": {"uri": "hf://someone/model"}}, 32768, "unknown model: the default"),
        ({"model": {"uri": "hf://someone/model"}, "maxModelLen": 10**6}, 10**6, "not checked"),
    ],
)
def test_max_model_len_rule(inference: dict[str, Any], expected: int, why: str) -> None:
    ws = workspace(inference=inference)
    spec = ws.workload.preset and get_preset(ws.workload.preset.name)
    assert rules.max_model_len_rule(ws, spec or None) == expected, why


def test_max_model_len_rule_refuses_more_than_the_model_has() -> None:
    ws = workspace(inference={"preset": {"name": "gemma-2-2b-it"}, "maxModelLen": 8193})
    with pytest.raises(PlanError, match=r"spec\.inference\.maxModelLen: 8193 exceeds"):
        rules.max_model_len_rule(ws, get_preset("gemma-2-2b-it"))


def test_inputs_rule_defaults_per_device_kind() -> None:
    ws = workspace()
    gpu = rules.inputs_rule(ws, TOY, H100, "vllm", "bfloat16", Quantization.NONE, 1000)
    assert (gpu.batched_tokens, gpu.max_seqs, gpu.cuda_graphs) == (8192, 256, True)
    cpu = rules.inputs_rule(ws, TOY, cpu_profile(0), "bosun", "float32", Quantization.NONE, 1000)
    assert (cpu.batched_tokens, cpu.max_seqs, cpu.cuda_graphs) == (512, 16, False)
    assert (gpu.tuning, gpu.concurrency, gpu.kv_element_bytes) == (False, 1, 2)


def test_the_cpu_plan_sizes_the_step_the_engine_takes() -> None:
    """A CPU plan's activations are those of the Bosun engine's default step budget."""
    from bosun.engine.engine import CPU_STEP_BUDGET, EngineOptions, step_budget

    assert rules.CPU_BATCHED_TOKENS == CPU_STEP_BUDGET == step_budget(EngineOptions(model="m"))
    assert step_budget(EngineOptions(model="m", device="cuda")) == 2048
    assert step_budget(EngineOptions(model="m", max_batched_tokens=64)) == 64


def test_inputs_rule_reads_the_engine_config() -> None:
    config = {"max_num_batched_tokens": 512, "maxNumSeqs": 8, "enforceEager": True}
    ws = workspace(inference={"preset": {"name": "phi-4"}, "config": config, "concurrency": 5})
    x = rules.inputs_rule(ws, TOY, H100, "vllm", "bfloat16", Quantization.NONE, 1000)
    assert (x.batched_tokens, x.max_seqs, x.cuda_graphs, x.concurrency) == (512, 8, False, 5)


def test_inputs_rule_of_tuning() -> None:
    default = rules.inputs_rule(
        tuning_workspace(), TOY, H100, "bosun", "bfloat16", Quantization.NONE, 1000
    )
    assert (default.tuning, default.tuning_seq_len, default.tuning_batch) == (True, 2048, 1)
    assert default.concurrency == 1
    ws = tuning_workspace(config={"maxSeqLength": 512, "batchSize": 4})
    x = rules.inputs_rule(ws, TOY, H100, "bosun", "bfloat16", Quantization.NONE, 1000)
    assert (x.tuning_seq_len, x.tuning_batch) == (512, 4)


def test_an_accelerator_without_an_instance_type_assumes_8_per_node() -> None:
    plan = plan_workspace(workspace(), accelerator="nvidia-a100-80gb")
    assert plan.devices_per_node == 8
    assert (
        plan_workspace(workspace(), accelerator="nvidia-a100-80gb-mig-3g.40gb").devices_per_node
        == 1
    )


def test_a_cpu_memory_limit_is_the_capacity() -> None:
    plan = plan_workspace(workspace(), accelerator="cpu")
    assert plan.memory.device_capacity_bytes == math.ceil(plan.memory.per_device_bytes / 0.9)
    limited = workspace(resource={"cpu": "4", "memory": "64Gi"})
    assert plan_workspace(limited).memory.device_capacity_bytes == 64 * GIB


# --------------------------------------------------------------------------- properties

specs = st.builds(
    lambda layers, kv_heads, group, head_dim, vocab, tied: TOY.model_copy(
        update={
            "layers": layers,
            "attention_heads": kv_heads * group,
            "kv_heads": kv_heads,
            "head_dim": head_dim,
            "hidden_size": kv_heads * group * head_dim,
            "intermediate_size": 4 * kv_heads * group * head_dim,
            "vocab_size": vocab,
            "tied_embeddings": tied,
            "parameters": layers * 12 * (kv_heads * group * head_dim) ** 2
            + vocab * kv_heads * group * head_dim * (1 if tied else 2),
        }
    ),
    layers=st.integers(1, 96),
    kv_heads=st.sampled_from([1, 2, 4, 8, 16]),
    group=st.sampled_from([1, 2, 3, 4, 8]),
    head_dim=st.sampled_from([64, 128]),
    vocab=st.integers(1000, 200_000),
    tied=st.booleans(),
)
memories = st.integers(4, 200).map(lambda gib: gib * GIB)


def gpu_inputs(spec: ModelSpec, memory: int, context: int) -> rules.Inputs:
    return inputs(
        spec,
        profile=replace(GPU, memory_bytes=memory),
        max_model_len=context,
        batched_tokens=8192,
        max_seqs=256,
    )


@settings(max_examples=150, deadline=None)
@given(spec=specs, per_node=st.sampled_from([1, 2, 4, 6, 8]))
def test_layouts_divide_heads_and_layers(spec: ModelSpec, per_node: int) -> None:
    layouts = rules.layouts_rule(gpu_inputs(spec, 80 * GIB, 4096), per_node)
    devices = [tp * pp for tp, pp in layouts]
    assert devices == sorted(devices)  # fewest devices first
    for tp, pp in layouts:
        assert spec.attention_heads % tp == 0
        assert tp <= per_node
        assert 1 <= pp <= min(spec.layers, 16)  # every stage holds a layer


@settings(max_examples=150, deadline=None)
@given(spec=specs, small=memories, extra=memories, context=st.integers(256, 131072))
def test_more_memory_never_needs_more_devices(
    spec: ModelSpec, small: int, extra: int, context: int
) -> None:
    a = gpu_inputs(spec, small, context)
    b = replace(a, profile=replace(GPU, memory_bytes=small + extra))
    ta, pa, _, fits_a = rules.choose_layout_rule(a, rules.layouts_rule(a, 8), 1)
    tb, pb, _, fits_b = rules.choose_layout_rule(b, rules.layouts_rule(b, 8), 1)
    assert fits_b or not fits_a
    if fits_a:
        assert tb * pb <= ta * pa


@settings(max_examples=150, deadline=None)
@given(
    spec=specs,
    memory=memories,
    context=st.integers(256, 131072),
    sharers=st.integers(1, 4),
    per_node=st.sampled_from([1, 2, 4, 8]),
)
def test_a_plan_that_fits_never_exceeds_the_device(
    spec: ModelSpec, memory: int, context: int, sharers: int, per_node: int
) -> None:
    x = gpu_inputs(spec, memory, context)
    _, _, est, fits = rules.choose_layout_rule(x, rules.layouts_rule(x, per_node), sharers)
    usable = memory * 0.9
    assert fits == (est.need * sharers <= usable)
    if fits:
        assert rules.memory_rule(x, est, sharers).kv_capacity_tokens >= context


@settings(max_examples=100, deadline=None)
@given(spec=specs, tp=st.sampled_from([1, 2, 4, 8]), pp=st.integers(1, 16))
def test_splitting_never_adds_weight_to_the_busiest_device(
    spec: ModelSpec, tp: int, pp: int
) -> None:
    x = gpu_inputs(spec, 80 * GIB, 4096)
    pp = min(pp, spec.layers)
    whole = rules.weights_rule(x, 1, 1)
    assert rules.weights_rule(x, tp, pp) <= whole
    assert rules.kv_per_token_rule(x, tp, pp) <= rules.kv_per_token_rule(x, 1, 1)
    # The replica as a whole holds at least the model (stages round up; heads may replicate).
    assert rules.weights_rule(x, tp, pp) * tp * pp >= whole * 0.999


# --------------------------------------------------------------------------- edges
# Cases that separate a rule from its nearest wrong version (found by `make mutation`).


# Every other layer slides over a 100-token window.
WINDOWED = TOY.model_copy(update={"name": "windowed", "sliding_window": 100, "sliding_layers": 2})


@pytest.mark.parametrize(
    ("x", "expected", "why"),
    [
        (inputs(WINDOWED), 64 * (2 * 1000 + 2 * 100), "vLLM: windowed layers hold 100 tokens"),
        (inputs(WINDOWED, max_model_len=50), 256 * 50, "a context inside the window: all of it"),
        (inputs(WINDOWED, runtime="bosun"), 256 * 1000, "the Bosun engine: every layer, all"),
        (inputs(), 256 * 1000, "no window: every layer, every token"),
    ],
)
def test_kv_cache_of_sliding_window_layers(x: rules.Inputs, expected: int, why: str) -> None:
    """One layer's KV is 64 bytes a token (2 x 2 heads x 8 dims x 2 bytes)."""
    est = rules.estimate(x, 1, 1)
    assert est.kv_dev == pytest.approx(expected), why
    assert est.kv_replica == pytest.approx(expected), why


# A mixture of experts whose experts alone ship in MXFP4: 2 experts of 3 x 64 x 40 per
# layer (15,360 of each layer's 100,000 parameters).
MOE = TOY.model_copy(
    update={
        "name": "moe",
        "experts": 2,
        "experts_per_token": 1,
        "moe_intermediate_size": 40,
        "quantization": Quantization.MXFP4,
        "quantized": "experts",
    }
)


@pytest.mark.parametrize(
    ("x", "expected", "why"),
    [
        (
            inputs(MOE, quantization=Quantization.MXFP4),
            4 * (15_360 * 0.53125 + 84_640 * 2) + 128_000 * 2,
            "experts in MXFP4, attention and the rest in bf16",
        ),
        (
            inputs(MOE, quantization=Quantization.FP8),
            4 * 100_000 + 128_000 * 2,
            "asked for fp8 instead: every layer weight in it",
        ),
    ],
)
def test_weights_of_a_checkpoint_quantized_in_its_experts(
    x: rules.Inputs, expected: float, why: str
) -> None:
    assert rules.weights_rule(x, 1, 1) == pytest.approx(expected * 1.02), why


def test_weights_of_a_quantized_checkpoint_come_from_its_files() -> None:
    """Packed tensors: the files' bytes, less the 16-bit embeddings and vision encoder."""
    spec = TOY.model_copy(
        update={
            "parameters": 528_000 + 10_000,
            "vision_parameters": 10_000,
            "quantization": Quantization.AWQ,
            "weight_bytes_on_disk": 600_000,
        }
    )
    x = inputs(spec, quantization=Quantization.AWQ)
    wide = (128_000 + 10_000) * 2
    assert rules.weights_rule(x, 1, 1) == pytest.approx(600_000 * 1.02)
    assert rules.stage_weights_rule(x, 2)[1] == pytest.approx(
        (600_000 - wide) / 2 * 1.02 + 64_000 * 2 * 1.02
    )


def test_pipeline_ranks_need_nccl_too() -> None:
    assert rules.estimate(inputs(), 1, 2).overhead_dev == 2 * int(1.8 * GIB) + GIB // 2
    assert rules.estimate(inputs(), 1, 1).overhead_dev == int(1.8 * GIB) + GIB // 2


def test_memory_rule_leaves_room_for_activations_and_overhead() -> None:
    est = rules.Estimate(GIB, 3000, GIB // 2, GIB // 4, 256, 4 * GIB, 12000)
    memory = rules.memory_rule(inputs(), est, 1)
    assert memory.kv_capacity_tokens == int((10 * GIB * 0.9 - 1.75 * GIB) / 256)
    assert (memory.activation_bytes, memory.overhead_bytes) == (GIB // 2, GIB // 4)
    assert (memory.kv_cache_bytes, memory.weights_bytes) == (12000, 4 * GIB)
    assert memory.per_device_bytes == int(1.75 * GIB) + 3000


def test_max_len_that_fits_rule_edges() -> None:
    # 1,000 bytes per token: 8,000 tokens of room once activations and overhead are taken.
    usable = 10 * GIB * 0.9
    est = rules.Estimate(usable - 8_000_000 - 300_000, 0, 200_000, 100_000, 1000, 0, 0)
    assert rules.max_len_that_fits_rule(inputs(), est, 1) == 8000
    odd = replace(est, weights_dev=usable - 1_000_000 - 300_000)  # 1,000 tokens: 992
    assert rules.max_len_that_fits_rule(inputs(), odd, 1) == 992
    one_byte = rules.Estimate(usable - 5000, 0, 0, 0, 1, 0, 0)
    assert rules.max_len_that_fits_rule(inputs(), one_byte, 1) == 4992
    halves = rules.Estimate(usable / 2 - 5000, 0, 0, 0, 1, 0, 0)
    assert rules.max_len_that_fits_rule(inputs(), halves, 2) == 4992


@pytest.mark.parametrize(
    ("max_model_len", "expected"),
    [
        (10**8, "; it would fit on 1 x nvidia-a100-40gb"),
        (2 * 10**8, "; it would fit on 1 x nvidia-h100-80gb"),
        (4 * 10**8, "; it would fit on 1 x nvidia-h200-141gb"),
        (10**12, ""),
    ],
)
def test_alternatives_rule_by_size(max_model_len: int, expected: str) -> None:
    """25.6 GB of KV cache fits an A100-40GB, not an L4 (nor 2 T4s: NCCL tips them over)."""
    x = inputs(profile=replace(GPU, memory_bytes=GIB), max_model_len=max_model_len)
    assert rules.alternatives_rule(x, 1) == expected


def test_explicit_layout_rule_edges() -> None:
    warnings: list[str] = []
    assert rules.explicit_layout_rule(inputs(), 6, 6, warnings) == (2, 1)
    assert "do not split 6 ways; tensor parallel 2" in warnings[0]
    odd = inputs(TOY.model_copy(update={"attention_heads": 3, "kv_heads": 1}))
    assert rules.explicit_layout_rule(odd, 2, 8, []) == (1, 1)
    layout = rules.explicit_layout_rule(inputs(), 16, 8, [])
    assert all(type(v) is int for v in layout)


@pytest.mark.parametrize(
    ("per_node", "expected"),
    [
        (16, [1, 2, 4, 8, 16]),
        (32, [1, 2, 4, 8, 16, 32]),
    ],
)
def test_layouts_rule_on_wide_nodes(per_node: int, expected: list[int]) -> None:
    wide = TOY.model_copy(update={"attention_heads": 64, "kv_heads": 64})
    layouts = rules.layouts_rule(inputs(wide), per_node)
    assert [tp for tp, pp in layouts if pp == 1] == expected


def test_dtype_rule_keeps_bfloat16_from_compute_capability_8() -> None:
    a100 = get_profile("nvidia-a100-80gb")
    assert a100.compute_capability == "8.0"
    assert rules.dtype_rule(workspace(), None, a100, []) == "bfloat16"


@pytest.mark.parametrize(
    ("config", "field", "value"),
    [
        ({"maxNumBatchedTokens": 512}, "batched_tokens", 512),
        ({"max_num_batched_tokens": 256}, "batched_tokens", 256),
        ({"maxNumSeqs": 8}, "max_seqs", 8),
        ({"max_num_seqs": 4}, "max_seqs", 4),
        ({"enforceEager": True}, "cuda_graphs", False),
        ({"enforce_eager": True}, "cuda_graphs", False),
        ({"enforce_eager": False}, "cuda_graphs", True),
    ],
)
def test_inputs_rule_reads_both_spellings(config: dict[str, Any], field: str, value: Any) -> None:
    ws = workspace(inference={"preset": {"name": "phi-4"}, "config": config})
    x = rules.inputs_rule(ws, TOY, H100, "vllm", "bfloat16", Quantization.NONE, 1000)
    assert getattr(x, field) == value


def test_tensor_parallel_splits_a_hybrids_linear_attention_evenly() -> None:
    """Nemotron 3 Nano 30B: 32 attention heads, but 8 Mamba-2 groups: tp 16 would split
    the heads and not the groups."""
    nano = get_preset("nemotron-3-nano-30b-a3b")
    assert rules.tensor_parallel_rule(nano, 8)
    assert not rules.tensor_parallel_rule(nano, 16)


# A toy hybrid: 8 layers, attention in layers 3 and 7, Mamba-2 in the rest (state 2 heads
# x 4 wide x 8 states, one group, a 4-tap window).
HYBRID = TOY.model_copy(
    update={
        "name": "hybrid",
        "layers": 8,
        "layer_pattern": "MMM*MMM*",
        "recurrent": Recurrent(kind="mamba2", heads=2, head_dim=4, state_size=8, groups=1),
    }
)


@pytest.mark.parametrize(
    ("spec", "pp", "kind", "expected", "why"),
    [
        (TOY, 1, "*", 1.0, "one stage holds every layer"),
        (TOY, 3, "*", 2 / 4, "4 layers over 3 stages: 1, 2, 1"),
        (TOY, 2, "M", 0.0, "no linear attention at all"),
        (HYBRID, 2, "*", 1 / 2, "each half holds one of the two attention layers"),
        (HYBRID, 3, "*", 1 / 2, "stages of 3, 3, 2 layers: the first holds none, the others one"),
        (HYBRID, 3, "M", 3 / 6, "the first stage's 3 Mamba layers of 6"),
    ],
)
def test_stage_share_rule(spec: ModelSpec, pp: int, kind: str, expected: float, why: str) -> None:
    assert rules.stage_share_rule(spec, pp, kind) == pytest.approx(expected), why


def test_state_per_sequence_rule() -> None:
    """One Mamba-2 layer's state: 2 x 4 x 8 float32 (256 bytes) and a 3-input window of
    2 x 4 + 2 x 1 x 8 = 24 channels in bf16 (144 bytes); 6 layers; the busiest of two
    stages holds 3 of them, its heads split over 2 ranks."""
    per_layer = 2 * 4 * 8 * 4 + 3 * (2 * 4 + 2 * 8) * 2
    x = inputs(HYBRID)
    assert rules.state_per_sequence_rule(x, 1, 1) == 6 * per_layer
    assert rules.state_per_sequence_rule(x, 2, 2) == 3 * per_layer / 2


@pytest.mark.parametrize(
    ("quantization", "gpu", "refused"),
    [
        (Quantization.FP8, "nvidia-t4-16gb", True),
        (Quantization.INT4, "nvidia-t4-16gb", True),
        (Quantization.AWQ, "nvidia-t4-16gb", False),  # AWQ's own kernels run on Turing
        (Quantization.FP8, "nvidia-a10-24gb", False),  # Marlin on Ampere
        (Quantization.NVFP4, "nvidia-b200-180gb", False),  # "10.0" is newer than "8.0"
    ],
)
def test_quantization_device_rule(quantization: Quantization, gpu: str, refused: bool) -> None:
    reason = rules.quantization_device_rule(quantization, get_profile(gpu))
    assert bool(reason) is refused
    if refused:
        assert "compute 8.0" in reason and quantization.value in reason


@pytest.mark.parametrize(
    ("pattern", "pp", "kind", "expected", "why"),
    [
        ("*-*-", 2, "M", 0.0, "attention and MLP blocks only: no Mamba layer anywhere"),
        ("MM*M", 2, "*", 1.0, "its one attention layer sits on the second stage"),
        ("MM*M", 2, "M", 2 / 3, "the first stage holds 2 of the 3 Mamba layers"),
    ],
)
def test_stage_share_rule_of_sparse_patterns(
    pattern: str, pp: int, kind: str, expected: float, why: str
) -> None:
    recurrent = Recurrent(kind="mamba2", heads=2, head_dim=4, state_size=8, groups=1)
    spec = TOY.model_copy(
        update={"layer_pattern": pattern, "recurrent": recurrent if "M" in pattern else None}
    )
    assert rules.stage_share_rule(spec, pp, kind) == pytest.approx(expected), why


def test_state_follows_the_mamba_layers_and_the_sequences() -> None:
    """With "MM*M" over two stages the busiest holds 2 of the 3 Mamba layers (the attention
    layer's stage is not it); three sequences keep three states."""
    recurrent = Recurrent(kind="mamba2", heads=2, head_dim=4, state_size=8, groups=1)
    spec = TOY.model_copy(update={"layer_pattern": "MM*M", "recurrent": recurrent})
    per_layer = 2 * 4 * 8 * 4 + 3 * (2 * 4 + 2 * 8) * 2
    assert rules.state_per_sequence_rule(inputs(spec), 1, 2) == 2 * per_layer
    est = rules.estimate(inputs(spec, concurrency=3), 1, 1)
    assert est.state_dev == 3 * 3 * per_layer
    assert est.state_replica == 3 * 3 * per_layer


def test_experts_sit_in_the_stages_of_their_blocks() -> None:
    """A Nemotron-H-like stack "EE**": two expert blocks, then two attention blocks, over two
    stages. Layers average 10,000 parameters (20,000 bytes), of which the experts' 2 x 2 x
    3 x 64 x 16 (24,576 bytes) all sit in the first stage's two E blocks: it carries 12,288
    bytes more than the average, the second 12,288 less; each has one vocab matrix."""
    spec = TOY.model_copy(
        update={
            "name": "moe-hybrid",
            "parameters": 168_000,
            "layer_pattern": "EE**",
            "experts": 2,
            "experts_per_token": 1,
            "moe_intermediate_size": 16,
        }
    )
    stages = rules.stage_weights_rule(inputs(spec), 2)
    vocab = 1000 * 64 * 2
    assert stages == pytest.approx(
        [(40_000 + vocab + 12_288) * 1.02, (40_000 + vocab - 12_288) * 1.02]
    )
    assert rules.stage_weights_rule(inputs(spec), 1) == pytest.approx([(80_000 + 2 * vocab) * 1.02])


def test_tensor_parallel_splits_global_kv_heads_too() -> None:
    """Gemma 4-like: 8 KV heads in the sliding layers split 2 ways, but 3 in the global
    layers neither split 2 ways nor replicate evenly."""
    spec = TOY.model_copy(update={"attention_heads": 24, "kv_heads": 8, "global_kv_heads": 3})
    assert not rules.tensor_parallel_rule(spec, 2)
    assert rules.tensor_parallel_rule(spec.model_copy(update={"global_kv_heads": 4}), 2)
