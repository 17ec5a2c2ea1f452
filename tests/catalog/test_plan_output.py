"""What a plan tells the user: the JSON of `bosun plan -o json`, status.plan, the reason a
plan fits or does not, and every PlanError, word for word (each names its field)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bosun.api import parse_workspace
from bosun.api.workspace import SharingStrategy
from bosun.catalog import PlanError, plan_workspace
from bosun.catalog import sizing as rules
from bosun.catalog.accelerators import cpu_profile, get_profile
from tests.catalog.test_byo import CONFIG as BYO_CONFIG
from tests.catalog.test_sizing_rules import GPU, inputs, tuning_workspace, workspace
from tests.conftest import example_data, workspace_data

GIB = 2**30


def plan_of(kw: dict[str, Any] | None = None, **spec: Any) -> rules.Plan:
    return plan_workspace(parse_workspace(workspace_data(**spec)), **(kw or {}))


# --------------------------------------------------------------------------- JSON and status


def test_plan_json_names_every_field() -> None:
    plan = plan_workspace(parse_workspace(example_data("05-")))
    m = plan.memory
    assert plan.to_json() == {
        "workspace": "llama-405b",
        "workload": "inference",
        "model": "llama-3.1-405b-instruct",
        "modelRef": "meta-llama/Llama-3.1-405B-Instruct",
        "runtime": "vllm",
        "accelerator": "nvidia-h100-80gb",
        "deviceClassName": "gpu.nvidia.com",
        "instanceType": "p5.48xlarge",
        "devicesPerNode": 8,
        "devicesPerReplica": 16,
        "tensorParallelSize": 8,
        "pipelineParallelSize": 2,
        "nodesPerReplica": 2,
        "replicas": 1,
        "nodesToProvision": 2,
        "maxModelLen": plan.max_model_len,
        "concurrency": plan.concurrency,
        "dtype": "bfloat16",
        "quantization": "none",
        "sharing": "Exclusive",
        "gpuMemoryUtilization": 0.9,
        "memory": {
            "weightsBytes": m.weights_bytes,
            "kvCacheBytes": m.kv_cache_bytes,
            "activationBytes": m.activation_bytes,
            "overheadBytes": m.overhead_bytes,
            "perDeviceBytes": m.per_device_bytes,
            "deviceCapacityBytes": m.device_capacity_bytes,
            "usableBytes": m.usable_bytes,
            "kvBytesPerToken": m.kv_bytes_per_token,
            "kvCapacityTokens": m.kv_capacity_tokens,
        },
        "fits": True,
        "reason": plan.reason,
        "warnings": [],
    }
    # The figures themselves, of 16 H100s: the CUDA context, NCCL and CUDA graphs.
    overhead = 2 * int(1.8 * GIB) + GIB // 2
    assert (m.overhead_bytes, m.device_capacity_bytes) == (overhead, plan.accelerator.memory_bytes)
    assert m.kv_bytes_per_token == 2 * 126 * 8 * 128 * 2
    assert len({m.weights_bytes, m.kv_cache_bytes, m.activation_bytes, m.per_device_bytes}) == 4


def test_plan_status_is_the_summary_the_operator_writes() -> None:
    plan = plan_workspace(parse_workspace(example_data("05-")))
    status = plan.status()
    assert status.model_dump(by_alias=True, exclude_none=True) == {
        "model": "llama-3.1-405b-instruct",
        "runtime": "vllm",
        "accelerator": "nvidia-h100-80gb",
        "devices": "16 x nvidia-h100-80gb",
        "devicesPerReplica": 16,
        "tensorParallelSize": 8,
        "pipelineParallelSize": 2,
        "nodesPerReplica": 2,
        "perDeviceBytes": plan.memory.per_device_bytes,
        "fits": True,
        "reason": plan.reason,
    }


def test_a_cpu_plan_summarises_its_memory() -> None:
    plan = plan_workspace(parse_workspace(example_data("01-")))
    assert plan.status().devices == f"cpu ({rules.format_bytes(plan.memory.per_device_bytes)})"
    assert plan.to_json()["devicesPerReplica"] == 0 and plan.cpu_only


# --------------------------------------------------------------------------- reasons


def test_fit_reasons() -> None:
    memory = rules.Memory(0, 0, 0, 0, 0, 0, 9 * GIB, 0, 1234)
    est = rules.Estimate(GIB, 0, 0, GIB // 2, 0, 0, 0)
    assert rules.fit_reason(inputs(), est, 2, 2, memory) == (
        "fits on 4 x toy-gpu (tensor parallel 2, 2 pipeline stages): 1.50 GiB of 9.00 GiB "
        "usable per device for 1000-token context; room for 1234 KV tokens"
    )
    assert rules.fit_reason(inputs(), est, 2, 1, memory).startswith(
        "fits on 2 x toy-gpu (tensor parallel 2): "
    )
    assert rules.fit_reason(inputs(tuning=True), est, 1, 1, memory) == (
        "fits on 1 x toy-gpu (tensor parallel 1): 1.50 GiB of 9.00 GiB usable per device for tuning"
    )
    assert rules.fit_reason(inputs(profile=cpu_profile(0)), est, 1, 1, memory).startswith(
        "fits on cpu: 1.50 GiB of 9.00 GiB usable per device for 1000-token context;"
    )


SMALL = replace(GPU, memory_bytes=2 * GIB)  # 1.80 GiB usable


@pytest.mark.parametrize(
    ("x", "sharers", "expected"),
    [
        (
            inputs(profile=SMALL),
            1,
            "toy needs 2.50 GiB per device on 1 x toy-gpu, which offers 1.80 GiB "
            "(2.00 GiB x 0.90): short by 716.80 MiB; it would fit on 1 x nvidia-t4-16gb",
        ),
        (
            inputs(profile=SMALL),
            2,
            "toy 2 replicas sharing it need 5.00 GiB per device on 1 x toy-gpu, which offers "
            "1.80 GiB (2.00 GiB x 0.90): short by 3.20 GiB; it would fit on 1 x nvidia-t4-16gb",
        ),
        (
            inputs(profile=SMALL, runtime="bosun"),
            1,
            "toy needs 2.50 GiB per device on 1 x toy-gpu, which offers 1.80 GiB "
            "(2.00 GiB x 0.90): short by 716.80 MiB; the bosun engine runs on one device: "
            "runtime vllm can split the model; it would fit on 1 x nvidia-t4-16gb",
        ),
        (
            inputs(profile=SMALL, tuning=True),
            1,
            "toy needs 2.50 GiB per device on 1 x toy-gpu, which offers 1.80 GiB "
            "(2.00 GiB x 0.90): short by 716.80 MiB; it would fit on 1 x nvidia-t4-16gb",
        ),
        (
            inputs(profile=replace(SMALL, kind="mig")),
            1,
            "toy needs 2.50 GiB per device on 1 x toy-gpu, which offers 1.80 GiB "
            "(2.00 GiB x 0.90): short by 716.80 MiB; it would fit on 1 x nvidia-t4-16gb",
        ),
        (
            inputs(profile=cpu_profile(2 * GIB), runtime="bosun"),
            1,
            "toy needs 2.50 GiB per device on 1 x cpu, which offers 1.80 GiB "
            "(2.00 GiB x 0.90): short by 716.80 MiB",
        ),
    ],
)
def test_shortfall_reasons(x: rules.Inputs, sharers: int, expected: str) -> None:
    est = rules.Estimate(2 * GIB, 0, GIB // 4, GIB // 4, 1, 0, 0)
    assert rules.shortfall_reason(x, est, 1, sharers, int(1.8 * GIB)) == expected


def test_a_shortfall_suggests_a_max_model_len_of_at_least_256() -> None:
    usable = 2 * GIB * 0.9
    tight = rules.Estimate(usable - 255 * 1000, 0, 0, 0, 1000, 0, 0)  # room for 255 tokens
    reason = rules.shortfall_reason(inputs(profile=SMALL), tight, 1, 1, int(usable))
    assert "maxModelLen" not in reason
    enough = rules.Estimate(usable - 256 * 1000, 0, 0, 0, 1000, 0, 0)
    reason = rules.shortfall_reason(inputs(profile=SMALL), enough, 1, 1, int(usable))
    assert reason.startswith("toy needs ")
    assert reason.endswith("; maxModelLen 256 would fit; it would fit on 1 x nvidia-t4-16gb")
    # On a MIG slice too; not for the bosun engine (vllm's split is the advice) nor tuning.
    mig = replace(SMALL, kind="mig")
    reason = rules.shortfall_reason(inputs(profile=mig), enough, 1, 1, int(usable))
    assert "; maxModelLen 256 would fit" in reason
    for x in (inputs(profile=SMALL, runtime="bosun"), inputs(profile=SMALL, tuning=True)):
        assert "maxModelLen" not in rules.shortfall_reason(x, enough, 1, 1, int(usable))


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("spec", "kw", "message"),
    [
        (
            {"inference": {"preset": {"name": "nope"}}},
            {},
            "spec.inference.preset.name: unknown preset 'nope' (`bosun models` lists them all)",
        ),
        (
            {"resource": {"instanceType": "m9.huge"}},
            {},
            "spec.resource.instanceType: unknown instance type 'm9.huge' "
            "(`bosun accelerators` lists them)",
        ),
        (
            {},
            {"instance_type": "m9.huge"},
            "--instance-type: unknown instance type 'm9.huge' (`bosun accelerators` lists them)",
        ),
        (
            {"resource": {"instanceType": "p5.48xlarge"}},
            {"accelerator": "nvidia-x"},
            "--accelerator: unknown accelerator profile 'nvidia-x'; did you mean "
            "nvidia-t4-16gb, nvidia-l4-24gb, nvidia-a10-24gb?",
        ),
        (
            {"inference": {"preset": {"name": "smollm2-135m-instruct"}, "runtime": "vllm"}},
            {"accelerator": "cpu"},
            "spec.inference.runtime: vllm needs GPUs; use runtime: bosun (or auto) on CPUs",
        ),
        (
            {"inference": {"preset": {"name": "deepseek-v2-lite-chat"}}},
            {"accelerator": "cpu"},
            "spec.inference.runtime: only vllm serves DeepseekV2ForCausalLM, and vllm needs "
            "GPUs; give the Workspace an accelerator",
        ),
        (
            {"inference": {"preset": {"name": "deepseek-v2-lite-chat"}, "runtime": "bosun"}},
            {},
            "spec.inference.runtime: the bosun engine does not run DeepseekV2ForCausalLM yet; "
            "use runtime: vllm (or auto)",
        ),
        (
            {
                "resource": {
                    "count": 2,
                    "accelerator": {"migProfile": "1g.10gb", "sharing": {"strategy": "MPS"}},
                }
            },
            {"accelerator": "nvidia-a100-80gb"},
            "spec.resource.accelerator.sharing: sharing applies to whole GPUs; a MIG slice or a "
            "CPU is already a partition",
        ),
        (
            {"resource": {"accelerator": {"minMemory": "100Gi"}}},
            {"accelerator": "nvidia-l4-24gb"},
            "spec.resource.accelerator.minMemory: nvidia-l4-24gb has 22.49 GiB, less than 100Gi",
        ),
        (
            {"inference": {"preset": {"name": "phi-4"}, "config": {"quantization": "int3"}}},
            {},
            "spec.inference.config.quantization: unknown method; use one of none, fp8, int8, "
            "awq, gptq, bitsandbytes-4bit, mxfp4, nvfp4, int4",
        ),
        (
            {"inference": {"preset": {"name": "gemma-2-2b-it"}, "maxModelLen": 9000}},
            {},
            "spec.inference.maxModelLen: 9000 exceeds gemma-2-2b-it's context of 8192 tokens",
        ),
        (
            {
                "resource": {"accelerator": {"count": 12}},
                "inference": {"preset": {"name": "llama-3.3-70b-instruct"}},
            },
            {"accelerator": "nvidia-a100-80gb"},
            "spec.resource.accelerator.count: 12 devices do not fill whole nodes of 8; "
            "use a multiple of 8",
        ),
        (
            {
                "inference": {
                    "model": {"uri": "hf://HuggingFaceTB/SmolLM2-135M-Instruct"},
                    "config": {"quantization": "awq"},
                },
                "resource": {"cpu": "2"},
            },
            {},
            "spec.inference.model.quantization: the bosun engine serves int8 or none, not awq; "
            "use runtime: vllm for awq checkpoints",
        ),
        (
            {
                "inference": {
                    "preset": {"name": "smollm2-135m-instruct"},
                    "runtime": "bosun",
                    "config": {"quantization": "int8"},
                }
            },
            {},
            "spec.inference.model.quantization: the bosun engine's int8 weights are for CPUs; "
            "on GPUs it serves none (or use runtime: vllm)",
        ),
    ],
)
def test_plan_errors_name_their_field(
    spec: dict[str, Any], kw: dict[str, Any], message: str
) -> None:
    with pytest.raises(PlanError) as info:
        plan_of(kw, **spec)
    assert str(info.value) == message


def test_an_unknown_mig_profile_names_its_field() -> None:
    with pytest.raises(PlanError, match=r"^spec\.resource\.accelerator\.migProfile: "):
        plan_of(
            {"accelerator": "nvidia-a100-80gb"}, resource={"accelerator": {"migProfile": "7g.99gb"}}
        )


def test_tuning_errors_name_the_tuning_section() -> None:
    data = example_data("06-")
    data["spec"]["tuning"]["preset"] = {"name": "nope"}
    with pytest.raises(PlanError, match=r"^spec\.tuning\.preset\.name: unknown preset 'nope'"):
        plan_workspace(parse_workspace(data))
    qlora = tuning_workspace(method="qlora")
    with pytest.raises(PlanError) as info:
        plan_workspace(qlora, accelerator="cpu")
    assert str(info.value) == (
        "spec.tuning.method: qlora needs a GPU (4-bit kernels are CUDA-only); "
        "use method: lora on CPUs"
    )


# --------------------------------------------------------------------------- what is chosen


@pytest.mark.parametrize(
    ("uri", "model_ref"),
    [
        ("pvc://weights/llama", "/models/llama"),
        ("pvc://weights/llama/", "/models/llama"),
        ("pvc://weights", "/models"),
        ("pvc://weights/llama-X/", "/models/llama-X"),
    ],
)
def test_a_pvc_model_loads_from_the_mount(uri: str, model_ref: str) -> None:
    plan = plan_of(inference={"model": {"uri": uri}})
    assert plan.model_ref == model_ref
    assert plan.warnings == (
        "spec.inference.model.uri: the model is not in the catalog and its config.json is not "
        "readable here (pvc); memory was not estimated",
    )


def test_a_preset_loads_its_hub_id() -> None:
    assert plan_of().model_ref == "meta-llama/Llama-3.1-8B-Instruct"


@pytest.mark.parametrize(
    ("kw", "count", "expected"),
    [
        ({}, None, (1, 1, 1, 1)),
        ({}, 4, (4, 4, 1, 1)),
        ({}, 16, (16, 8, 2, 2)),
        ({}, 12, (12, 8, 1, 2)),
        ({"accelerator": "cpu"}, None, (0, 1, 1, 1)),
    ],
)
def test_an_unsized_model_uses_the_devices_as_given(
    kw: dict[str, Any], count: int | None, expected: tuple[int, int, int, int]
) -> None:
    resource = {"accelerator": {"count": count}} if count else {}
    plan = plan_of(kw, resource=resource, inference={"model": {"uri": "hf://someone/model"}})
    got = (
        plan.devices_per_replica,
        plan.tensor_parallel_size,
        plan.pipeline_parallel_size,
        plan.nodes_per_replica,
    )
    assert got == expected
    assert plan.fits and plan.reason == f"not sized: using {count or 1} device(s) as given"
    assert plan.memory == rules.Memory(0, 0, 0, 0, 0, plan.accelerator.memory_bytes, 0, 0, 0)
    assert plan.gpu_memory_utilization == 0.9
    assert plan.warnings == (
        "spec.inference.model.uri: the model is not in the catalog and its config.json is not "
        "readable here (hub or path); memory was not estimated",
    )


@pytest.mark.parametrize(
    ("inference", "kw", "runtime"),
    [
        ({"model": {"uri": "hf://someone/model"}}, {}, "vllm"),
        ({"model": {"uri": "hf://someone/model"}}, {"target": "local"}, "bosun"),
        ({"model": {"uri": "hf://someone/model"}}, {"accelerator": "cpu"}, "bosun"),
        ({"model": {"uri": "hf://someone/model"}, "runtime": "bosun"}, {}, "bosun"),
        ({"preset": {"name": "deepseek-v2-lite-chat"}}, {"target": "local"}, "vllm"),
        ({"preset": {"name": "smollm2-135m-instruct"}}, {"target": "local"}, "bosun"),
        ({"preset": {"name": "smollm2-135m-instruct"}}, {}, "vllm"),
    ],
)
def test_the_runtime_follows_the_target_and_the_model(
    inference: dict[str, Any], kw: dict[str, Any], runtime: str
) -> None:
    assert plan_of(kw, inference=inference).runtime == runtime


@pytest.mark.parametrize(
    ("spec", "kw", "profile", "per_node"),
    [
        ({}, {}, "nvidia-h100-80gb", 8),
        ({"resource": {"cpu": "2"}}, {}, "cpu", 1),
        ({}, {"accelerator": "CPU"}, "cpu", 1),
        ({"resource": {"instanceType": "p5.48xlarge"}}, {}, "nvidia-h100-80gb", 8),
        ({"resource": {"instanceType": "Standard_NC64as_T4_v3"}}, {}, "nvidia-t4-16gb", 4),
        (
            {"resource": {"instanceType": "Standard_NC64as_T4_v3"}},
            {"accelerator": "nvidia-l4-24gb"},
            "nvidia-l4-24gb",
            8,
        ),
        (
            {"resource": {"instanceType": "p5.48xlarge"}},
            {"instance_type": "Standard_NC64as_T4_v3", "accelerator": "nvidia-l4-24gb"},
            "nvidia-t4-16gb",
            4,
        ),
        (
            {"resource": {"accelerator": {"migProfile": "3g.40gb"}}},
            {"accelerator": "nvidia-a100-80gb"},
            "nvidia-a100-80gb-mig-3g.40gb",
            1,
        ),
        ({}, {"accelerator": "nvidia-a100-80gb-mig-3g.40gb"}, "nvidia-a100-80gb-mig-3g.40gb", 1),
    ],
)
def test_the_hardware_follows_flags_then_the_workspace(
    spec: dict[str, Any], kw: dict[str, Any], profile: str, per_node: int
) -> None:
    plan = plan_of(kw, **spec)
    assert (plan.accelerator.name, plan.devices_per_node) == (profile, per_node)


def test_local_hardware_has_one_device_per_node_unless_told() -> None:
    ws = workspace()
    h100 = get_profile("nvidia-h100-80gb")
    assert plan_workspace(ws, local_profile=h100).devices_per_node == 1
    assert plan_workspace(ws, local_profile=h100, devices_per_node=4).devices_per_node == 4


def test_a_plan_names_its_workload_target_and_namespace() -> None:
    data = workspace_data(inference={"preset": {"name": "phi-4"}, "concurrency": 3})
    data["metadata"]["namespace"] = "team-a"
    plan = plan_workspace(parse_workspace(data), target="local")
    assert (plan.workload, plan.target, plan.namespace) == ("inference", "local", "team-a")
    assert (plan.model, plan.concurrency, plan.max_model_len) == ("phi-4", 3, 16384)
    assert plan_workspace(parse_workspace(data)).target == "cluster"
    tuning = plan_workspace(tuning_workspace())
    assert (tuning.workload, tuning.concurrency) == ("tuning", 1)


def test_a_plan_that_does_not_fit_reports_its_devices() -> None:
    plan = plan_of(
        {"accelerator": "nvidia-t4-16gb"},
        resource={"accelerator": {"count": 1}},
        inference={"preset": {"name": "llama-3.1-8b-instruct"}, "maxModelLen": 8192},
    )
    assert not plan.fits
    assert plan.reason.startswith("llama-3.1-8b-instruct needs ")
    assert " per device on 1 x nvidia-t4-16gb, which offers 13.50 GiB (15.00 GiB x 0.90)" in (
        plan.reason
    )
    assert plan.warnings[-1] == f"spec.resource.accelerator.count: 1 will not fit: {plan.reason}"


def test_pipeline_stages_count_every_device_of_the_replica() -> None:
    plan = plan_workspace(parse_workspace(example_data("05-")))
    assert plan.devices_per_replica == 16 and plan.spec is not None
    # 16 devices hold at least the whole model's bf16 weights (stages round up).
    assert plan.spec.parameters * 2 <= plan.memory.weights_bytes < plan.spec.parameters * 2.1
    assert plan.memory.weights_bytes / 16 < plan.memory.per_device_bytes
    assert plan.sharing is SharingStrategy.EXCLUSIVE


def test_an_unsized_model_on_cpus_is_one_pod() -> None:
    plan = plan_of(
        {"accelerator": "cpu"},
        resource={"accelerator": {"count": 2}},
        inference={"model": {"uri": "hf://someone/model"}},
    )
    got = (plan.tensor_parallel_size, plan.pipeline_parallel_size, plan.nodes_per_replica)
    assert got == (1, 1, 1)


def test_local_cpu_hardware_is_planned_as_a_cpu() -> None:
    ws = parse_workspace(example_data("01-"))
    plan = plan_workspace(ws, local_profile=cpu_profile(8 * GIB), target="local")
    assert (plan.runtime, plan.quantization, plan.dtype) == ("bosun", "int8", "float32")


def test_a_checkpoint_in_float16_is_served_in_float16(tmp_path: Path) -> None:
    config = {**BYO_CONFIG, "torch_dtype": "float16"}
    (tmp_path / "config.json").write_text(json.dumps(config), encoding="utf-8")
    plan = plan_of(
        {"accelerator": "nvidia-h100-80gb"}, inference={"model": {"uri": f"file://{tmp_path}"}}
    )
    assert plan.spec is not None and plan.dtype == "float16"
