"""Sizing: device counts, parallelism and memory that match what engines really need."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bosun.api import parse_workspace
from bosun.catalog import PlanError, get_preset, plan_workspace
from bosun.catalog import sizing as rules
from bosun.catalog.accelerators import get_profile
from bosun.catalog.sizing import GPU_UTILIZATION, Plan
from tests.conftest import example_data, workspace_data

GIB = 2**30


def plan_for(accelerator: str | None = None, instance_type: str | None = None, **spec: Any) -> Plan:
    return plan_workspace(
        parse_workspace(workspace_data(**spec)),
        accelerator=accelerator,
        instance_type=instance_type,
    )


def inference(preset: str, **extra: Any) -> dict[str, Any]:
    return {"inference": {"preset": {"name": preset}, **extra}}


def test_8b_fits_one_h100_with_a_long_context() -> None:
    plan = plan_for("nvidia-h100-80gb", **inference("llama-3.1-8b-instruct", maxModelLen=131072))
    assert plan.fits
    assert (plan.devices_per_replica, plan.tensor_parallel_size) == (1, 1)
    assert plan.runtime == "vllm"
    # 8,030,261,248 bf16 weights, 2% larger once loaded; 131072 tokens x 128 KiB of KV cache.
    assert plan.memory.weights_bytes == pytest.approx(8_030_261_248 * 2 * 1.02, rel=0.001)
    assert plan.memory.kv_cache_bytes == 131072 * 128 * 1024


def test_coder_32b_needs_two_a100s_at_its_full_context() -> None:
    """61 GiB of checkpoint, 2% more once loaded, 8 GiB of KV cache at 32768 tokens and vLLM's
    own memory: over the 72 GiB usable on one A100-80GB (vLLM would refuse to start). One
    GPU per node: two pipeline stages on two nodes; asked for one GPU: does not fit, and
    says which context would."""
    ws = inference("qwen2.5-coder-32b-instruct")
    spread = plan_for(None, resource={"instanceType": "Standard_NC24ads_A100_v4"}, **ws)
    assert spread.fits and (spread.pipeline_parallel_size, spread.nodes_to_provision) == (2, 2)
    alone = plan_for(
        None,
        resource={"instanceType": "Standard_NC24ads_A100_v4", "accelerator": {"count": 1}},
        **ws,
    )
    assert not alone.fits and alone.memory.per_device_bytes > alone.memory.usable_bytes
    assert "maxModelLen" in alone.reason
    two = plan_for(None, resource={"instanceType": "Standard_NC48ads_A100_v4"}, **ws)
    assert two.fits and two.tensor_parallel_size == 2


def test_pipeline_weights_add_up_to_the_model_not_a_vocab_matrix_per_stage() -> None:
    """Llama-3.3-70B on single 24 GB GPUs: 70,553,706,496 bf16 weights (untied), 2% larger
    once loaded, whatever the number of stages; each stage holds its layers, only the first
    the embedding and only the last the head."""
    for context in (2048, 32768):
        ws = inference("llama-3.3-70b-instruct", maxModelLen=context)
        plan = plan_for(None, resource={"instanceType": "g5.xlarge"}, **ws)
        assert plan.fits and plan.pipeline_parallel_size > 1
        assert plan.memory.weights_bytes == pytest.approx(70_553_706_496 * 2 * 1.02, rel=1e-6)


def test_8b_on_an_l4_fits_with_a_short_context_only() -> None:
    short = plan_for("nvidia-l4-24gb", **inference("llama-3.1-8b-instruct", maxModelLen=8192))
    assert short.fits and short.devices_per_replica == 1
    long = plan_for("nvidia-l4-24gb", **inference("llama-3.1-8b-instruct", maxModelLen=131072))
    assert long.fits and long.devices_per_replica > 1  # more devices, not a failure


def test_8b_does_not_fit_a_t4_alone_and_says_what_would() -> None:
    ws = inference("llama-3.1-8b-instruct", maxModelLen=8192)
    plan = plan_for("nvidia-t4-16gb", resource={"accelerator": {"count": 1}}, **ws)
    assert not plan.fits
    assert plan.dtype == "float16"  # the T4 has no bfloat16
    assert "short by" in plan.reason
    assert "it would fit on" in plan.reason
    assert any("accelerator.count: 1 will not fit" in w for w in plan.warnings)


def test_70b_needs_several_gpus_that_split_its_heads() -> None:
    plan = plan_for("nvidia-h100-80gb", **inference("llama-3.3-70b-instruct", maxModelLen=8192))
    assert plan.fits
    assert plan.devices_per_replica >= 2
    assert 64 % plan.tensor_parallel_size == 0 and 8 % plan.tensor_parallel_size == 0
    assert plan.nodes_per_replica == 1


def test_70b_does_not_fit_one_h200() -> None:
    """131 GiB of bf16 weights exceed 90% of an H200's 140 GiB."""
    plan = plan_for(
        "nvidia-h200-141gb",
        resource={"accelerator": {"count": 1}},
        **inference("llama-3.3-70b-instruct", maxModelLen=4096),
    )
    assert not plan.fits


def test_405b_spans_two_nodes_with_pipeline_stages() -> None:
    plan = plan_workspace(parse_workspace(example_data("05-")))
    assert plan.fits
    assert plan.instance_type is not None and plan.instance_type.name == "p5.48xlarge"
    assert (plan.tensor_parallel_size, plan.pipeline_parallel_size) == (8, 2)
    assert plan.nodes_per_replica == 2 and plan.devices_per_replica == 16
    assert plan.nodes_to_provision == 2


def test_instance_type_sets_profile_and_nodes() -> None:
    plan = plan_workspace(parse_workspace(example_data("03-")))
    assert plan.accelerator.name == "nvidia-h100-80gb"
    assert plan.devices_per_node == 8
    # Two replicas of 8 GPUs need two 8-GPU nodes.
    assert plan.devices_per_replica == 8 and plan.nodes_to_provision == 2


@pytest.mark.parametrize(
    ("itype", "gpu", "count", "mib"),
    [
        ("Standard_NV36ads_A10_v5", "NVIDIA A10", 1, 23028),  # KAITO's own test machine
        ("Standard_NC40ads_H100_v5", "NVIDIA H100 NVL", 1, 95830),
        ("Standard_NC80adis_H100_v5", "NVIDIA H100 NVL", 2, 95830),
        ("g5.16xlarge", "NVIDIA A10G", 1, 23028),
        ("g6.8xlarge", "NVIDIA L4", 1, 23034),
        ("g6.16xlarge", "NVIDIA L4", 1, 23034),
        ("a4-highgpu-8g", "NVIDIA B200", 8, 183359),
        ("g4-standard-48", "NVIDIA RTX PRO 6000 Blackwell Server Edition", 1, 97887),
    ],
)
def test_instance_types_carry_nvml_memory(itype: str, gpu: str, count: int, mib: int) -> None:
    """Plans size against what NVML reports (the marketing 94 GB of an H100 NVL is 95830
    MiB there), and the product name the DRA driver publishes."""
    plan = plan_for(None, resource={"instanceType": itype}, **inference("llama-3.1-8b-instruct"))
    assert (plan.accelerator.product_name, plan.devices_per_node) == (gpu, count)
    assert plan.accelerator.memory_bytes == mib * 2**20


def test_flags_override_the_workspace() -> None:
    ws = parse_workspace(example_data("03-"))
    plan = plan_workspace(ws, accelerator="nvidia-a100-80gb")
    assert plan.accelerator.name == "nvidia-a100-80gb" and plan.instance_type is None
    plan = plan_workspace(ws, instance_type="Standard_ND96amsr_A100_v4")
    assert plan.instance_type is not None and plan.instance_type.provider == "azure"


def test_mla_model_needs_far_less_kv_cache() -> None:
    lite = plan_for("nvidia-h100-80gb", **inference("deepseek-v2-lite-chat", maxModelLen=32768))
    assert lite.memory.kv_bytes_per_token == (512 + 64) * 27 * 2
    assert lite.memory.kv_cache_bytes == 32768 * (512 + 64) * 27 * 2
    assert lite.runtime == "vllm"


def test_mig_slice_plans_one_device_in_the_mig_class() -> None:
    plan = plan_workspace(parse_workspace(example_data("04-")))
    assert plan.fits
    assert plan.accelerator.kind == "mig" and plan.accelerator.mig_profile == "1g.10gb"
    assert plan.device_class == "mig.nvidia.com"
    assert plan.devices_per_replica == 1
    assert plan.accelerator.memory_bytes < get_profile("nvidia-h100-80gb").memory_bytes / 7


def test_too_big_for_a_mig_slice() -> None:
    plan = plan_for(
        "nvidia-a100-40gb",
        resource={"accelerator": {"migProfile": "1g.5gb"}},
        **inference("llama-3.1-8b-instruct", maxModelLen=4096),
    )
    assert not plan.fits


def test_cpu_plan_serves_with_the_bosun_engine() -> None:
    plan = plan_workspace(parse_workspace(example_data("01-")))
    assert plan.cpu_only and plan.fits
    assert plan.runtime == "bosun" and plan.dtype == "float32"
    assert plan.memory.device_capacity_bytes == 4 * GIB
    assert plan.memory.per_device_bytes < 4 * GIB


CPU_SMOL = {"resource": {"cpu": "2", "memory": "4Gi"}}


def test_a_cpu_plan_sizes_the_int8_weights_bosun_serve_loads() -> None:
    """`bosun serve --quantization auto` loads int8 linear layers on CPUs; the plan says so
    and sizes them: 1 byte per layer weight, the float32 embedding, and the int8 copy of
    the tied output head (SmolLM2-135M: 134,515,008 parameters, 28,311,552 embedding)."""
    plan = plan_for(**CPU_SMOL, **inference("smollm2-135m-instruct"))
    assert plan.quantization == "int8" and plan.dtype == "float32"
    layers, embedding = 134_515_008 - 28_311_552, 28_311_552
    assert plan.memory.weights_bytes == pytest.approx(layers + embedding * 4 + embedding, rel=1e-6)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"config": {"quantization": "none"}}, "none"),  # asked for: float32 weights
        ({"config": {"quantization": "int8"}}, "int8"),
        # Adapters served from the start keep the weights they were trained against.
        ({"adapters": [{"name": "a", "source": {"uri": "file:///adapters/a"}}]}, "none"),
    ],
)
def test_the_cpu_quantization_follows_the_workspace(extra: dict[str, Any], expected: str) -> None:
    plan = plan_for(**CPU_SMOL, **inference("smollm2-135m-instruct", **extra))
    assert plan.quantization == expected


def test_float32_weights_take_four_times_the_int8_layers() -> None:
    int8 = plan_for(**CPU_SMOL, **inference("smollm2-135m-instruct"))
    exact = plan_for(
        **CPU_SMOL, **inference("smollm2-135m-instruct", config={"quantization": "none"})
    )
    assert exact.memory.weights_bytes == pytest.approx(134_515_008 * 4, rel=1e-6)
    assert int8.memory.weights_bytes < exact.memory.weights_bytes * 0.5


@pytest.mark.parametrize(
    ("accelerator", "quantization", "message"),
    [
        (None, "awq", "the bosun engine serves int8 or none, not awq"),
        ("nvidia-l4-24gb", "int8", "the bosun engine's int8 weights are for CPUs"),
    ],
)
def test_a_quantization_the_bosun_engine_cannot_load_is_refused(
    accelerator: str | None, quantization: str, message: str
) -> None:
    with pytest.raises(PlanError, match=r"spec\.inference\.model\.quantization") as error:
        plan_for(
            accelerator,
            inference={
                "model": {"uri": "hf://Qwen/Qwen2.5-0.5B-Instruct", "quantization": quantization},
                "runtime": "bosun",
                "maxModelLen": 4096,
            },
            **({} if accelerator else CPU_SMOL),
        )
    assert message in str(error.value)


def test_a_gpu_plan_for_the_bosun_engine_is_unquantized() -> None:
    plan = plan_for("nvidia-l4-24gb", **inference("smollm2-135m-instruct", runtime="bosun"))
    assert plan.quantization == "none" and plan.dtype == "bfloat16"


def test_cpu_memory_limit_too_small() -> None:
    plan = plan_for(
        resource={"cpu": "4", "memory": "2Gi"},
        **inference("qwen2.5-1.5b-instruct", maxModelLen=4096),
    )
    assert not plan.fits
    assert "short by" in plan.reason


def test_time_slicing_replicas_share_one_gpu() -> None:
    spec = {"resource": {"count": 3, "accelerator": {"sharing": {"strategy": "TimeSlicing"}}}}
    plan = plan_for(
        "nvidia-h100-80gb", **spec, **inference("qwen2.5-1.5b-instruct", maxModelLen=8192)
    )
    assert plan.fits
    assert plan.gpu_memory_utilization < GPU_UTILIZATION / 3 + 0.05
    crowded = {"resource": {"count": 40, "accelerator": {"sharing": {"strategy": "TimeSlicing"}}}}
    over = plan_for(
        "nvidia-h100-80gb", **crowded, **inference("qwen2.5-1.5b-instruct", maxModelLen=8192)
    )
    assert not over.fits and "40 replicas sharing it" in over.reason


def test_explicit_count_is_respected() -> None:
    plan = plan_for(
        "nvidia-h100-80gb",
        resource={"accelerator": {"count": 4}},
        **inference("llama-3.1-8b-instruct"),
    )
    assert plan.devices_per_replica == 4 and plan.tensor_parallel_size == 4


def test_explicit_count_that_splits_no_heads_falls_back_with_a_warning() -> None:
    plan = plan_for(
        "nvidia-h100-80gb",
        resource={"accelerator": {"count": 3}},
        **inference("llama-3.1-8b-instruct"),
    )
    assert plan.tensor_parallel_size == 1
    assert any("do not split 3 ways" in w for w in plan.warnings)


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        (inference("llama-3.1-8b-instruct", maxModelLen=200000), "spec.inference.maxModelLen"),
        (inference("mixtral-8x7b-instruct", runtime="bosun"), "spec.inference.runtime"),
        (
            {"resource": {"cpu": "2"}, **inference("llama-3.1-8b-instruct", runtime="vllm")},
            "spec.inference.runtime",
        ),
        (inference("no-such-model"), "spec.inference.preset.name"),
        (
            {
                "resource": {"accelerator": {"minMemory": "100Gi"}},
                **inference("llama-3.1-8b-instruct"),
            },
            "spec.resource.accelerator.minMemory",
        ),
        (
            {
                "resource": {"accelerator": {"migProfile": "5g.99gb"}},
                **inference("llama-3.1-8b-instruct"),
            },
            "spec.resource.accelerator.migProfile",
        ),
    ],
)
def test_impossible_requests_name_the_field(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(PlanError, match=field.replace(".", r"\.")):
        plan_for(**spec)


def test_qlora_on_cpu_is_refused() -> None:
    data = example_data("06-")
    data["spec"]["resource"] = {"cpu": "8", "memory": "32Gi"}
    data["spec"]["tuning"]["method"] = "qlora"
    with pytest.raises(PlanError, match=r"spec\.tuning\.method: qlora needs a GPU"):
        plan_workspace(parse_workspace(data))


def test_tuning_plans_one_device() -> None:
    plan = plan_workspace(parse_workspace(example_data("06-")))
    assert plan.workload == "tuning" and plan.runtime == "bosun"
    assert plan.devices_per_replica == 1 and plan.fits


def test_unknown_model_with_a_count_is_planned_unsized() -> None:
    plan = plan_for(
        resource={"accelerator": {"count": 2}},
        inference={"model": {"uri": "hf://someone/private-model"}},
    )
    assert plan.fits and plan.devices_per_replica == 2
    assert plan.spec is None and "not sized" in plan.reason
    assert any("not in the catalog" in w for w in plan.warnings)


def test_hf_uri_of_a_catalog_model_is_sized() -> None:
    plan = plan_for(inference={"model": {"uri": "hf://Qwen/Qwen2.5-7B-Instruct"}})
    assert plan.spec is not None and plan.spec.name == "qwen2.5-7b-instruct"
    assert plan.model_ref == "Qwen/Qwen2.5-7B-Instruct"


def test_quantization_shrinks_weights() -> None:
    """fp8, which vLLM applies as it loads: the layers at one byte, embeddings at two."""
    full = plan_for(
        "nvidia-l4-24gb",
        inference={"model": {"uri": "hf://Qwen/Qwen2.5-14B-Instruct"}, "maxModelLen": 4096},
    )
    fp8 = plan_for(
        "nvidia-l4-24gb",
        inference={
            "model": {"uri": "hf://Qwen/Qwen2.5-14B-Instruct", "quantization": "fp8"},
            "maxModelLen": 4096,
        },
    )
    spec = get_preset("qwen2.5-14b-instruct")
    layers, embeddings = spec.parameters - spec.embedding_parameters, spec.embedding_parameters
    expected = (layers * 1 + embeddings * 2) * 1.02
    assert fp8.memory.weights_bytes == pytest.approx(expected, rel=1e-6)
    assert fp8.devices_per_replica == 1 and full.devices_per_replica > 1


@pytest.mark.parametrize(
    ("preset", "where", "asked", "words"),
    [
        ("qwen3-8b", "model", "awq", "the preset qwen3-8b-awq ships awq; vLLM quantizes"),
        ("llama-3.1-8b-instruct", "config", "gptq", "checkpoint is 16-bit; vLLM quantizes"),
        ("gpt-oss-20b", "model", "nvfp4", "gpt-oss-20b's checkpoint ships mxfp4"),
        # Not even fp8: vLLM will not re-quantize a checkpoint that ships quantized.
        ("qwen3-8b-awq", "config", "fp8", "qwen3-8b-awq's checkpoint ships awq"),
    ],
)
def test_a_format_vllm_cannot_make_from_the_checkpoint_is_refused(
    preset: str, where: str, asked: str, words: str
) -> None:
    """vLLM quantizes to fp8 or bitsandbytes as it loads; AWQ, GPTQ, MXFP4 and NVFP4 it
    only reads from a checkpoint that ships them: asked of another, the pod would fail at
    start. The plan says so first, naming the field."""
    if where == "model":  # a catalog model by its URI, sized by its preset
        uri = f"hf://{get_preset(preset).hf_id}"
        ws: dict[str, Any] = {"inference": {"model": {"uri": uri, "quantization": asked}}}
    else:
        ws = inference(preset, config={"quantization": asked})
    with pytest.raises(PlanError, match=rf"spec\.inference\.{where}\.quantization") as error:
        plan_for("nvidia-h100-80gb", **ws)
    assert words in str(error.value)
    # Its own format, and what vLLM makes of a 16-bit one on load, are fine.
    assert plan_for("nvidia-h100-80gb", **inference("qwen3-8b-awq")).quantization == "awq"
    assert plan_for("nvidia-h100-80gb", **inference("qwen3-8b", config={"quantization": "fp8"}))


PRESETS = [
    "llama-3.1-8b-instruct",
    "qwen2.5-32b-instruct",
    "gemma-2-27b-it",
    "phi-4",
    "llama-3.3-70b-instruct",
]


@settings(max_examples=40, deadline=None)
@given(
    preset=st.sampled_from(PRESETS),
    short=st.integers(min_value=256, max_value=4096),
    extra=st.integers(min_value=0, max_value=12000),
    concurrency=st.integers(min_value=1, max_value=16),
)
def test_longer_context_never_needs_fewer_devices(
    preset: str, short: int, extra: int, concurrency: int
) -> None:
    a = plan_for(
        "nvidia-a100-80gb", **inference(preset, maxModelLen=short, concurrency=concurrency)
    )
    b = plan_for(
        "nvidia-a100-80gb",
        **inference(preset, maxModelLen=min(short + extra, 8192), concurrency=concurrency),
    )
    assert b.devices_per_replica >= a.devices_per_replica
    assert b.memory.kv_cache_bytes >= a.memory.kv_cache_bytes
    if a.fits and b.fits and a.devices_per_replica == b.devices_per_replica:
        assert b.memory.per_device_bytes >= a.memory.per_device_bytes
    # When it fits, the busiest device stays within its usable memory.
    for plan in (a, b):
        if plan.fits:
            assert plan.memory.per_device_bytes <= plan.memory.usable_bytes


def test_same_input_same_plan() -> None:
    ws = parse_workspace(example_data("03-"))
    assert plan_workspace(ws).to_json() == plan_workspace(ws).to_json()


def test_sliding_window_layers_hold_only_their_window() -> None:
    """Gemma 3 1B at 32768 tokens: 4 global layers hold every token, 22 local layers 512;
    one layer's KV is 2 x 1 head x 256 dims x 2 bytes = 1 KiB per token."""
    plan = plan_for("nvidia-l4-24gb", **inference("gemma-3-1b-it", maxModelLen=32768))
    assert plan.memory.kv_cache_bytes == (4 * 32768 + 22 * 512) * 1024
    short = plan_for("nvidia-l4-24gb", **inference("gemma-3-1b-it", maxModelLen=256))
    assert short.memory.kv_cache_bytes == 26 * 256 * 1024  # shorter than the window


def test_gpt_oss_20b_fits_one_24gb_gpu_with_mxfp4_experts() -> None:
    """The experts in MXFP4 (0.53 bytes a weight), attention and embeddings in bf16: 12.8
    GiB of checkpoint, 13.1 loaded, as OpenAI says (it runs within 16 GB)."""
    plan = plan_for("nvidia-l4-24gb", **inference("gpt-oss-20b"))
    assert plan.fits and plan.devices_per_replica == 1
    assert plan.quantization == "mxfp4"  # the checkpoint's own, with nothing asked
    assert plan.memory.weights_bytes / GIB == pytest.approx(12.82 * 1.02, abs=0.01)


def test_a_preset_checkpoint_keeps_its_format_unless_asked() -> None:
    awq = plan_for("nvidia-l4-24gb", **inference("qwen3-8b-awq"))
    assert awq.quantization == "awq" and awq.runtime == "vllm"
    dense = plan_for("nvidia-l4-24gb", **inference("qwen3-8b"))
    assert dense.quantization == "none"
    assert awq.memory.weights_bytes < dense.memory.weights_bytes / 2.5
    asked = plan_for("nvidia-h100-80gb", **inference("qwen3-8b", config={"quantization": "fp8"}))
    assert asked.quantization == "fp8"


def test_a_hybrid_plan_holds_kv_for_attention_and_a_state_per_sequence() -> None:
    """Nemotron Nano 9B v2 at its full 131,072 tokens, four conversations on an A100: KV for
    the 4 attention layers of every token, and 137 MiB of Mamba-2 state per conversation,
    whatever its length. Twelve times less cache than if all 56 blocks attended."""
    nano = plan_for(
        "nvidia-a100-40gb",
        **inference("nemotron-nano-9b-v2", maxModelLen=131072, concurrency=4),
    )
    kv = 4 * 131072 * 4 * 2 * 8 * 128 * 2
    state = 4 * 27 * (128 * 80 * 128 * 4 + 3 * (10240 + 2 * 8 * 128) * 2)
    assert nano.memory.kv_cache_bytes == kv + state
    assert nano.fits and nano.devices_per_replica == 1


def test_pipeline_stages_of_a_hybrid_hold_the_layers_the_pattern_gives_them() -> None:
    """Nemotron 3 Super over pipeline stages: the busiest stage's KV share is the attention
    layers it holds (not its share of all blocks), and the experts sit in its E blocks."""
    super_ = get_preset("nemotron-3-super-120b-a12b")
    pattern = super_.layer_pattern
    assert pattern is not None
    halves = pattern[:44].count("*"), pattern[44:].count("*")
    assert rules.stage_share_rule(super_, 2) == max(halves) / 8
    assert (
        rules.stage_share_rule(super_, 2, "M")
        == max(pattern[:44].count("M"), pattern[44:].count("M")) / 40
    )
    plan = plan_for(
        None, resource={"instanceType": "g6e.xlarge"}, **inference("nemotron-3-super-120b-a12b")
    )
    assert plan.fits and plan.pipeline_parallel_size > 1
    assert plan.memory.weights_bytes == pytest.approx(super_.weight_bytes * 1.02, rel=1e-6)


def test_gemma_4_full_attention_layers_keep_their_own_heads() -> None:
    """Gemma 4 31B at 32,768 tokens: 10 full-attention layers of 4 KV heads x 512 hold
    every token, 50 sliding layers of 16 heads x 256 hold their 1,024-token window. Over
    eight ranks the 16 heads split two per rank, and the 4 are replicated one per rank."""
    ws = inference("gemma-4-31b-it", maxModelLen=32768)
    plan = plan_for("nvidia-h100-80gb", **ws)
    full, sliding = 2 * 4 * 512 * 2, 2 * 16 * 256 * 2
    assert plan.memory.kv_cache_bytes == 10 * full * 32768 + 50 * sliding * 1024
    gemma = get_preset("gemma-4-31b-it")
    assert gemma.kv_bytes_per_token(2, tp=8) == 10 * (2 * 1 * 512 * 2) + 50 * (2 * 2 * 256 * 2)


def test_kimi_k2_5_weights_per_gpu_match_a_published_vllm_run() -> None:
    """A published run of Kimi K2.5 (INT4 experts) on 8 x H200 at tensor parallel 8: vLLM
    logged 71.92 GiB of weights a GPU. The plan's share of the checkpoint, 2% of load
    growth and the MLA projections every rank keeps whole come to 72.46: above the
    measurement, by 0.75%. Split evenly (without the whole projections) it was 70.65,
    1.8% short."""
    plan = plan_for(
        None, resource={"instanceType": "Standard_ND96isr_H200_v5"}, **inference("kimi-k2.5")
    )
    assert plan.tensor_parallel_size == 8
    m = plan.memory
    weights = m.per_device_bytes - m.kv_cache_bytes / 8 - m.activation_bytes - m.overhead_bytes
    assert 71.92 * GIB < weights < 71.92 * GIB * 1.01


def test_blackwell_is_newer_than_ampere() -> None:
    """Compute capabilities compare as numbers: a B200 (10.0) and an RTX PRO 6000 (12.0)
    serve bfloat16, where comparing "10.0" < "8.0" as text said they could not."""
    for gpu in ("nvidia-b200-180gb", "nvidia-rtx-pro-6000-96gb"):
        plan = plan_for(gpu, **inference("llama-3.1-8b-instruct"))
        assert plan.dtype == "bfloat16" and not plan.warnings, gpu
    t4 = plan_for("nvidia-t4-16gb", **inference("llama-3.2-1b-instruct"))
    assert t4.dtype == "float16"


def test_a_turing_gpu_cannot_serve_fp8_weights() -> None:
    """Ministral 3 3B ships FP8: its 10.7 GiB would fit a T4's 13.5 usable, but vLLM's FP8
    kernels need compute 8.0, so the plan does not fit there and says why; an A10 does."""
    t4 = plan_for("nvidia-t4-16gb", **inference("ministral-3-3b-instruct-2512"))
    assert not t4.fits
    assert "compute 7.5" in t4.reason and "fp8" in t4.reason
    assert plan_for("nvidia-a10-24gb", **inference("ministral-3-3b-instruct-2512")).fits
