"""The memory estimator and planner: how many devices a Workspace needs, and how to split it.

Memory on the busiest device of a replica is modelled as

    weights/(tp x pp-stage share) + KV cache for maxModelLen x concurrency
    + activations of one scheduler step + runtime overhead (CUDA context, NCCL, CUDA graphs)

and must fit in ``capacity x utilization`` (vLLM's ``--gpu-memory-utilization``, 0.90).
Tensor parallelism follows vLLM's rule (attention heads divisible by tp; KV heads divisible
by tp or replicated when fewer); pipeline stages span nodes when one node is not enough.
Every constant is named below, with the reason for its value; docs/sizing.md explains the
model and how it was checked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Literal

from bosun.api.errors import BosunError
from bosun.api.quantity import format_bytes, to_bytes
from bosun.api.validators import parse_uri
from bosun.api.workspace import (
    Inference,
    PlanStatus,
    Quantization,
    Runtime,
    SharingStrategy,
    Workspace,
)
from bosun.catalog.accelerators import (
    AcceleratorProfile,
    InstanceType,
    UnknownAcceleratorError,
    all_profiles,
    cpu_profile,
    get_instance_type,
    get_profile,
    mig_profile,
)
from bosun.catalog.byo import spec_from_directory
from bosun.catalog.presets import (
    QUANT_BYTES,
    ModelSpec,
    UnknownPresetError,
    all_presets,
    find_by_hf_id,
    get_preset,
)

__all__ = ["DEFAULT_GPU", "Memory", "Plan", "PlanError", "Target", "plan_workspace"]

Target = Literal["cluster", "local"]

DEFAULT_GPU = "nvidia-h100-80gb"
GIB = 2**30
# vLLM's default --gpu-memory-utilization: the share of device memory an engine may take.
GPU_UTILIZATION = 0.90
# On CPUs, leave room for the OS page cache and the tokenizer process.
CPU_UTILIZATION = 0.90
# Memory a vLLM process holds outside its weights, activations and KV cache (CUDA context,
# cuBLAS workspaces, allocator slack): vLLM's profiler reports it as non_torch_memory,
# 1.79 GiB for Llama-3-8B on an H100 at tp 1 (vllm-project/vllm#10511). docs/sizing.md.
GPU_RUNTIME_OVERHEAD = int(1.8 * GIB)
# NCCL and custom all-reduce buffers when ranks talk: the same report gives 3.58 GiB of
# non_torch_memory at tp 2, 1.79 GiB more than at tp 1.
NCCL_OVERHEAD = int(1.8 * GIB)
# CUDA graphs captured for decode batch sizes (vLLM logs 0.3-1 GiB for 1-70B models).
CUDA_GRAPH_OVERHEAD = GIB // 2
# Weights grow when vLLM loads them (vocab padded to a multiple of 64, rotary caches,
# per-rank copies of small tensors): measured +0.7% for Qwen2.5-32B at tp 2
# (vllm-project/vllm#15815, 30.71 GiB loaded per rank for 30.51 GiB of checkpoint); KAITO's
# estimator allows 2%, which Bosun takes.
WEIGHT_LOAD_GROWTH = 1.02
# Python, torch and the HTTP server on a CPU-only pod.
CPU_RUNTIME_OVERHEAD = 1 * GIB
# Tokens one scheduler step processes (vLLM's max_num_batched_tokens) and sequences per step;
# on CPUs, the Bosun engine's defaults (engine.CPU_STEP_BUDGET, `bosun serve`).
GPU_BATCHED_TOKENS, GPU_MAX_SEQS = 8192, 256
CPU_BATCHED_TOKENS, CPU_MAX_SEQS = 512, 16
# Without a maxModelLen, serve at most this much context (the KV cache is the price).
DEFAULT_MAX_MODEL_LEN = 32768
# GPUs per node when no instance type says (the largest common server).
DEFAULT_DEVICES_PER_NODE = 8
MAX_NODES_PER_REPLICA = 16
# Tuning defaults (LoRA with gradient checkpointing).
TUNING_SEQ_LEN, TUNING_BATCH = 2048, 1

_DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


class PlanError(BosunError):
    """The Workspace cannot be planned as written (the message names the field)."""


@dataclass(frozen=True)
class Memory:
    """Bytes, per replica for the model as a whole and per device for the busiest device."""

    weights_bytes: int
    kv_cache_bytes: int
    activation_bytes: int
    overhead_bytes: int
    per_device_bytes: int
    device_capacity_bytes: int
    usable_bytes: int
    kv_bytes_per_token: int
    kv_capacity_tokens: int

    def to_json(self) -> dict[str, int]:
        return {
            "weightsBytes": self.weights_bytes,
            "kvCacheBytes": self.kv_cache_bytes,
            "activationBytes": self.activation_bytes,
            "overheadBytes": self.overhead_bytes,
            "perDeviceBytes": self.per_device_bytes,
            "deviceCapacityBytes": self.device_capacity_bytes,
            "usableBytes": self.usable_bytes,
            "kvBytesPerToken": self.kv_bytes_per_token,
            "kvCapacityTokens": self.kv_capacity_tokens,
        }


@dataclass(frozen=True)
class Plan:
    """Everything render and the runtimes need to run one Workspace."""

    workspace: str
    namespace: str | None
    workload: Literal["inference", "tuning"]
    model: str  # the preset name or the model URI, as the user wrote it
    model_ref: str  # what the runtime loads: a Hugging Face id or a path
    spec: ModelSpec | None  # None when the model could not be sized
    runtime: str
    accelerator: AcceleratorProfile
    device_class: str
    instance_type: InstanceType | None
    devices_per_node: int
    devices_per_replica: int
    tensor_parallel_size: int
    pipeline_parallel_size: int
    nodes_per_replica: int
    replicas: int
    max_model_len: int
    concurrency: int
    dtype: str
    quantization: str
    memory: Memory
    gpu_memory_utilization: float
    sharing: SharingStrategy
    fits: bool
    reason: str
    warnings: tuple[str, ...] = ()
    target: Target = "cluster"

    @property
    def cpu_only(self) -> bool:
        return self.accelerator.kind == "cpu"

    @property
    def devices_summary(self) -> str:
        if self.cpu_only:
            return f"cpu ({format_bytes(self.memory.per_device_bytes)})"
        return f"{self.devices_per_replica} x {self.accelerator.name}"

    @property
    def nodes_to_provision(self) -> int:
        """Nodes of the instance type that all replicas need (0 without an instance type)."""
        if self.instance_type is None:
            return 0
        if self.nodes_per_replica > 1:
            return self.replicas * self.nodes_per_replica
        per_node = max(1, self.devices_per_node // self.devices_per_replica)
        if self.sharing is not SharingStrategy.EXCLUSIVE:
            return self.nodes_per_replica
        return math.ceil(self.replicas / per_node)

    def to_json(self) -> dict[str, Any]:
        return {
            "workspace": self.workspace,
            "workload": self.workload,
            "model": self.model,
            "modelRef": self.model_ref,
            "runtime": self.runtime,
            "accelerator": self.accelerator.name,
            "deviceClassName": self.device_class,
            "instanceType": self.instance_type.name if self.instance_type else None,
            "devicesPerNode": self.devices_per_node,
            "devicesPerReplica": self.devices_per_replica,
            "tensorParallelSize": self.tensor_parallel_size,
            "pipelineParallelSize": self.pipeline_parallel_size,
            "nodesPerReplica": self.nodes_per_replica,
            "replicas": self.replicas,
            "nodesToProvision": self.nodes_to_provision,
            "maxModelLen": self.max_model_len,
            "concurrency": self.concurrency,
            "dtype": self.dtype,
            "quantization": self.quantization,
            "sharing": self.sharing.value,
            "gpuMemoryUtilization": self.gpu_memory_utilization,
            "memory": self.memory.to_json(),
            "fits": self.fits,
            "reason": self.reason,
            "warnings": list(self.warnings),
        }

    def status(self) -> PlanStatus:
        """The summary the operator writes to ``status.plan``."""
        return PlanStatus(
            model=self.model,
            runtime=self.runtime,
            accelerator=self.accelerator.name,
            devices=self.devices_summary,
            devices_per_replica=self.devices_per_replica,
            tensor_parallel_size=self.tensor_parallel_size,
            pipeline_parallel_size=self.pipeline_parallel_size,
            nodes_per_replica=self.nodes_per_replica,
            per_device_bytes=self.memory.per_device_bytes,
            fits=self.fits,
            reason=self.reason,
        )


# --------------------------------------------------------------------------- inputs
#
# plan_workspace reads as the list of its rules below. Each rule is a small function that
# its tests in tests/catalog/test_sizing_rules.py name, with a table of cases.


@dataclass(frozen=True)
class Inputs:
    """What the estimator reads, resolved from the Workspace and the target hardware."""

    spec: ModelSpec
    profile: AcceleratorProfile
    runtime: str
    dtype: str
    quantization: Quantization
    kv_element_bytes: float
    max_model_len: int
    concurrency: int
    batched_tokens: int
    max_seqs: int
    cuda_graphs: bool
    tuning: bool = False
    tuning_seq_len: int = TUNING_SEQ_LEN
    tuning_batch: int = TUNING_BATCH


def _config_value(config: dict[str, Any], *names: str) -> Any:
    for name in names:
        if name in config:
            return config[name]
    return None


def _whole(config: dict[str, Any], where: str, maximum: int, *names: str) -> int | None:
    """An engine or trainer setting that counts something: a whole number from 1 to
    ``maximum``, or None when the config does not set it."""
    for name in names:
        if name in config:
            value = config[name]
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
                raise PlanError(
                    f"{where}.{name}: {value!r} is not a whole number from 1 to {maximum}"
                )
            return value
    return None


def _resolve_model(ws: Workspace) -> tuple[ModelSpec | None, str, str, str]:
    """(spec or None, display name, what the runtime loads, field path of the choice)."""
    workload = ws.workload
    section = "inference" if ws.spec.inference is not None else "tuning"
    if workload.preset is not None:
        path = f"spec.{section}.preset.name"
        try:
            spec = get_preset(workload.preset.name)
        except UnknownPresetError as exc:
            raise PlanError(f"{path}: {exc}") from None
        return spec, spec.name, spec.hf_id or spec.name, path
    assert workload.model is not None
    path = f"spec.{section}.model.uri"
    uri = parse_uri(workload.model.uri, ("hf", "file", "pvc"))
    if uri.scheme == "hf":
        return find_by_hf_id(uri.hf_repo), uri.raw, uri.hf_repo, path
    if uri.scheme == "file":
        try:
            return spec_from_directory(uri.path), uri.raw, uri.path, path
        except FileNotFoundError:
            # Sized where the files are (in the pod, or by `bosun up`).
            return None, uri.raw, uri.path, path
        except BosunError as exc:
            raise PlanError(f"{path}: {exc}") from None
    return None, uri.raw, f"/models/{uri.path}".rstrip("/"), path


def _resolve_profile(
    ws: Workspace, accelerator: str | None, instance_type: str | None
) -> tuple[AcceleratorProfile | None, InstanceType | None, int]:
    """(profile, instance type, devices per node); a None profile means CPU."""
    resource = ws.spec.resource
    # Flags override the Workspace: --instance-type, then --accelerator, then its own type.
    wanted_type = instance_type or (None if accelerator else resource.instance_type)
    itype = None
    mig = resource.accelerator.mig_profile if resource.accelerator else None
    try:
        if wanted_type:
            itype = get_instance_type(wanted_type)
            profile: AcceleratorProfile | None = get_profile(itype.profile)
            per_node = itype.count
        elif accelerator and accelerator.lower() == "cpu":
            return None, None, 1
        elif accelerator:
            profile = get_profile(accelerator)
            per_node = 1 if profile.kind == "mig" else DEFAULT_DEVICES_PER_NODE
        elif resource.cpu_only:
            return None, None, 1
        else:
            profile = get_profile(DEFAULT_GPU)
            per_node = DEFAULT_DEVICES_PER_NODE
        if mig and profile is not None and profile.kind == "gpu":
            profile = mig_profile(profile.name, mig)
            per_node = 1
    except UnknownAcceleratorError as exc:
        where = "--instance-type" if instance_type else "spec.resource.instanceType"
        field_name = where if wanted_type else "--accelerator"
        if mig:
            field_name = "spec.resource.accelerator.migProfile"
        raise PlanError(f"{field_name}: {exc}") from None
    return profile, itype, per_node


def _resolve_runtime(ws: Workspace, spec: ModelSpec | None, cpu: bool, target: Target) -> str:
    if ws.spec.tuning is not None:
        return "bosun"
    requested = ws.spec.inference.runtime if ws.spec.inference else Runtime.AUTO
    supported = spec.runtimes if spec is not None else ("vllm", "bosun")
    if requested is Runtime.AUTO:
        runtime = "bosun" if cpu or target == "local" else "vllm"
        if runtime not in supported:
            runtime = supported[0]
        if cpu and runtime != "bosun":
            raise PlanError(
                f"spec.inference.runtime: only vllm serves {_what(spec)}, and vllm needs "
                "GPUs; give the Workspace an accelerator"
            )
        return runtime
    if requested is Runtime.VLLM and cpu:
        raise PlanError(
            "spec.inference.runtime: vllm needs GPUs; use runtime: bosun (or auto) on CPUs"
        )
    if requested.value not in supported:
        raise PlanError(
            f"spec.inference.runtime: the bosun engine does not run {_what(spec)} yet; "
            "use runtime: vllm (or auto)"
        )
    return requested.value


def _what(spec: ModelSpec | None) -> str:
    """The model in an error: its architecture, and its weights' format when quantized."""
    if spec is None:
        return "this model"
    if spec.quantization is not Quantization.NONE:
        return f"{spec.architecture} with {spec.quantization.value} weights"
    return spec.architecture


# --------------------------------------------------------------------------- rules: what runs


def sharing_rule(ws: Workspace, profile: AcceleratorProfile) -> tuple[SharingStrategy, int]:
    """(strategy, replicas on one device): time-slicing and MPS put every replica on one
    whole GPU; a MIG slice or a CPU is already a partition and cannot be shared."""
    acc = ws.spec.resource.accelerator
    sharing = SharingStrategy.EXCLUSIVE
    if acc is not None and acc.sharing is not None:
        sharing = acc.sharing.strategy
    if sharing is SharingStrategy.EXCLUSIVE:
        return sharing, 1
    if profile.kind != "gpu":
        raise PlanError(
            "spec.resource.accelerator.sharing: sharing applies to whole GPUs; "
            "a MIG slice or a CPU is already a partition"
        )
    return sharing, ws.spec.resource.count


def device_class_rule(ws: Workspace, profile: AcceleratorProfile) -> str:
    """The DeviceClass claims name: the Workspace's, and MIG slices in NVIDIA's MIG class."""
    acc = ws.spec.resource.accelerator
    device_class = acc.device_class_name if acc is not None else "gpu.nvidia.com"
    if profile.kind == "mig" and device_class == "gpu.nvidia.com":
        return "mig.nvidia.com"
    return device_class


def min_memory_rule(ws: Workspace, profile: AcceleratorProfile) -> None:
    """``accelerator.minMemory`` refuses a device with less memory (CPUs have no minimum)."""
    acc = ws.spec.resource.accelerator
    if acc is None or acc.min_memory is None or not profile.is_gpu:
        return
    if profile.memory_bytes < to_bytes(acc.min_memory):
        raise PlanError(
            f"spec.resource.accelerator.minMemory: {profile.name} has "
            f"{format_bytes(profile.memory_bytes)}, less than {acc.min_memory}"
        )


def dtype_rule(
    ws: Workspace, spec: ModelSpec | None, profile: AcceleratorProfile, warnings: list[str]
) -> str:
    """The model's dtype, or the Workspace's: float32 on CPUs (exact and fast on every CPU),
    the checkpoint's on GPUs, float16 where the GPU has no bfloat16 (before Ampere)."""
    model_section = ws.workload.model
    config_dtype = _config_value(ws.workload.config, "dtype")
    dtype: str
    if model_section is not None and model_section.dtype != "auto":
        dtype = model_section.dtype
    elif config_dtype in _DTYPE_BYTES:
        dtype = str(config_dtype)
    elif profile.kind == "cpu":
        dtype = "float32"
    else:
        dtype = spec.dtype if spec is not None else "bfloat16"
    if dtype == "bfloat16" and profile.compute_below("8.0"):
        warnings.append(f"{profile.name} has no bfloat16: serving in float16")
        return "float16"
    return dtype


def quantization_rule(
    ws: Workspace, runtime: str, cpu: bool, spec: ModelSpec | None = None
) -> Quantization:
    """The Workspace's quantization (``model.quantization`` or ``config.quantization``), else
    the format the preset's checkpoint ships in; the Bosun engine's own choice when it
    serves (see _bosun_quantization); 4-bit for QLoRA."""
    model_section = ws.workload.model
    config = ws.workload.config
    quantization = model_section.quantization if model_section else Quantization.NONE
    configured = _config_value(config, "quantization")
    if quantization is Quantization.NONE and configured:
        try:
            quantization = Quantization(str(configured))
        except ValueError:
            choices = ", ".join(q.value for q in Quantization)
            raise PlanError(
                f"spec.inference.config.quantization: unknown method; use one of {choices}"
            ) from None
    if quantization is Quantization.NONE and not configured and spec is not None:
        quantization = spec.quantization
    tuning = ws.spec.tuning
    if tuning is None:
        if runtime != "bosun":
            _vllm_can_load(quantization, spec, "model.quantization" if not configured else "")
            return quantization
        explicit = quantization is not Quantization.NONE or bool(configured)
        return _bosun_quantization(quantization, explicit, cpu, ws.spec.inference)
    if tuning.method.value != "qlora":
        return quantization
    if cpu:
        raise PlanError(
            "spec.tuning.method: qlora needs a GPU (4-bit kernels are CUDA-only); "
            "use method: lora on CPUs"
        )
    return Quantization.BNB_4BIT


# What vLLM quantizes a 16-bit checkpoint to as it loads it; every other format (AWQ,
# GPTQ, MXFP4, NVFP4, int8) it only reads from a checkpoint that ships it.
VLLM_ON_LOAD = frozenset({Quantization.NONE, Quantization.FP8, Quantization.BNB_4BIT})


def _vllm_can_load(quantization: Quantization, spec: ModelSpec | None, field: str) -> None:
    """Refuse a format vLLM cannot produce from the checkpoint at hand, naming the preset
    whose checkpoint ships it (an unsized model's checkpoint is not known: left to vLLM).
    A 16-bit checkpoint can become fp8 or bitsandbytes as it loads; one that ships
    quantized is served as it ships (vLLM refuses a --quantization that differs)."""
    if spec is None or quantization is spec.quantization:
        return
    if spec.quantization is Quantization.NONE and quantization in VLLM_ON_LOAD:
        return
    where = f"spec.inference.{field or 'config.quantization'}"
    if spec.quantization is not Quantization.NONE:
        raise PlanError(
            f"{where}: {spec.name}'s checkpoint ships {spec.quantization.value}, and vLLM "
            f"serves it so, not as {quantization.value}; leave the quantization unset"
        )
    ships = [
        p.name
        for p in all_presets()
        if p.quantization is quantization and p.name.startswith(spec.name)
    ]
    hint = f"; the preset {ships[0]} ships {quantization.value}" if ships else ""
    raise PlanError(
        f"{where}: vLLM reads {quantization.value} only from a checkpoint that ships it, and "
        f"{spec.name}'s checkpoint is 16-bit{hint}; vLLM quantizes to fp8 or "
        f"bitsandbytes-4bit as it loads"
    )


# Formats whose vLLM kernels (Marlin on Ampere, native on Hopper and later) need compute
# capability 8.0: a Turing or Volta GPU cannot serve them.
AMPERE_FORMATS = frozenset(
    {Quantization.FP8, Quantization.MXFP4, Quantization.NVFP4, Quantization.INT4}
)


def quantization_device_rule(quantization: Quantization, profile: AcceleratorProfile) -> str:
    """Why ``profile`` cannot serve ``quantization``'s weights, or "" when it can."""
    if quantization in AMPERE_FORMATS and profile.compute_below("8.0"):
        return (
            f"{profile.name} (compute {profile.compute_capability}) cannot serve "
            f"{quantization.value} weights: "
            f"vLLM's kernels for them need compute 8.0 (Ampere) or newer"
        )
    return ""


def _bosun_quantization(
    quantization: Quantization, explicit: bool, cpu: bool, inference: Inference | None
) -> Quantization:
    """What the Bosun engine loads, as ``bosun serve --quantization`` is told: unless the
    Workspace says, int8 weights on CPUs (none when adapters are served from the start,
    which were trained against the unquantized weights), none on GPUs."""
    if not explicit:
        adapters = inference is not None and bool(inference.adapters)
        return Quantization.INT8 if cpu and not adapters else Quantization.NONE
    if quantization not in (Quantization.NONE, Quantization.INT8):
        raise PlanError(
            f"spec.inference.model.quantization: the bosun engine serves int8 or none, not "
            f"{quantization.value}; use runtime: vllm for {quantization.value} checkpoints"
        )
    if quantization is Quantization.INT8 and not cpu:
        raise PlanError(
            "spec.inference.model.quantization: the bosun engine's int8 weights are for "
            "CPUs; on GPUs it serves none (or use runtime: vllm)"
        )
    return quantization


def kv_element_rule(config: dict[str, Any], dtype: str) -> float:
    """Bytes of one KV cache element: 1 with an fp8 ``kvCacheDtype``, else the model dtype's."""
    kv_dtype = _config_value(config, "kvCacheDtype", "kv_cache_dtype")
    return 1.0 if kv_dtype in ("fp8", "fp8_e4m3", "fp8_e5m2") else float(_DTYPE_BYTES[dtype])


def max_model_len_rule(ws: Workspace, spec: ModelSpec | None) -> int:
    """``maxModelLen`` as asked (never past the model's context), else the model's context
    capped at DEFAULT_MAX_MODEL_LEN: the KV cache of a 128k context is rarely wanted."""
    inference = ws.spec.inference
    requested = inference.max_model_len if inference else None
    if requested is not None and spec is not None and requested > spec.max_context:
        raise PlanError(
            f"spec.inference.maxModelLen: {requested} exceeds {spec.name}'s context "
            f"of {spec.max_context} tokens"
        )
    context = spec.max_context if spec is not None else DEFAULT_MAX_MODEL_LEN
    return requested or min(context, DEFAULT_MAX_MODEL_LEN)


def inputs_rule(
    ws: Workspace,
    spec: ModelSpec,
    profile: AcceleratorProfile,
    runtime: str,
    dtype: str,
    quantization: Quantization,
    max_model_len: int,
) -> Inputs:
    """The estimator's inputs: scheduler limits are vLLM's defaults on GPUs and smaller on
    CPUs, unless the Workspace's config sets them; CUDA graphs unless ``enforceEager``."""
    config = ws.workload.config
    where = "spec.tuning.config" if ws.spec.tuning is not None else "spec.inference.config"
    cpu = profile.kind == "cpu"
    batched = _whole(config, where, 2**20, "maxNumBatchedTokens", "max_num_batched_tokens")
    seqs = _whole(config, where, 2**16, "maxNumSeqs", "max_num_seqs")
    eager = bool(_config_value(config, "enforceEager", "enforce_eager"))
    tuning_config = ws.spec.tuning.config if ws.spec.tuning else {}
    seq_len = _whole(tuning_config, "spec.tuning.config", 2**20, "maxSeqLength")
    tuning_batch = _whole(tuning_config, "spec.tuning.config", 4096, "batchSize")
    return Inputs(
        spec=spec,
        profile=profile,
        runtime=runtime,
        dtype=dtype,
        quantization=quantization,
        kv_element_bytes=kv_element_rule(config, dtype),
        max_model_len=max_model_len,
        concurrency=ws.spec.inference.concurrency if ws.spec.inference else 1,
        batched_tokens=batched or (CPU_BATCHED_TOKENS if cpu else GPU_BATCHED_TOKENS),
        max_seqs=seqs or (CPU_MAX_SEQS if cpu else GPU_MAX_SEQS),
        cuda_graphs=not eager and not cpu,
        tuning=ws.spec.tuning is not None,
        tuning_seq_len=seq_len or TUNING_SEQ_LEN,
        tuning_batch=tuning_batch or TUNING_BATCH,
    )


# --------------------------------------------------------------------------- rules: memory


@dataclass(frozen=True)
class Estimate:
    """Bytes on the busiest device of one replica, and the replica's weights and KV cache
    over all its devices."""

    weights_dev: float
    kv_dev: float
    activation_dev: float
    overhead_dev: float
    kv_per_token_dev: float
    weights_replica: float
    kv_replica: float
    # Linear-attention layers' fixed state for the concurrent sequences (hybrid models).
    state_dev: float = 0.0
    state_replica: float = 0.0

    @property
    def need(self) -> float:
        return self.fixed_dev + self.kv_dev

    @property
    def fixed_dev(self) -> float:
        """The busiest device's bytes that do not grow with the context."""
        return self.weights_dev + self.state_dev + self.activation_dev + self.overhead_dev


def weight_element_bytes(dtype: str, quantization: Quantization) -> float:
    """Bytes per weight: the quantized format's (with its scales), else the dtype's."""
    if quantization in QUANT_BYTES:
        return QUANT_BYTES[quantization]
    return _DTYPE_BYTES[dtype]


def pipeline_stages_rule(layers: int, pp: int) -> list[int]:
    """Decoder layers on each pipeline stage, as vLLM splits them (``get_pp_indices``):
    evenly, the remainder one layer each to the stages before the last, from the last but
    one backwards (the last stage holds the output head)."""
    stages = [layers // pp] * pp
    for i in range(layers % pp):
        stages[pp - 2 - i] += 1
    return stages


def _stage_patterns(pattern: str, pp: int) -> list[str]:
    """The part of a hybrid's layer pattern each pipeline stage holds."""
    stages = pipeline_stages_rule(len(pattern), pp)
    starts = [sum(stages[:i]) for i in range(pp)]
    return [pattern[a : a + n] for a, n in zip(starts, stages, strict=True)]


def stage_share_rule(spec: ModelSpec, pp: int, kind: str = "*") -> float:
    """The largest share of the model's ``kind`` layers (``*`` attention, ``M`` linear
    attention) that one pipeline stage holds: from the layer pattern where a hybrid has
    one, else the largest stage's share of all layers."""
    pattern = spec.layer_pattern
    if pattern is None:
        return max(pipeline_stages_rule(spec.layers, pp)) / spec.layers if kind == "*" else 0.0
    total = pattern.count(kind)
    if total == 0:
        return 0.0
    return max(part.count(kind) for part in _stage_patterns(pattern, pp)) / total


def stage_weights_rule(x: Inputs, pp: int) -> list[float]:
    """Weight bytes of each pipeline stage (all its tensor parallel ranks together): its
    layers, and the vocab matrices it holds: the first stage the embedding (and a vision
    encoder), the last the output head (a tied head is a second copy there); one stage
    alone holds both, once if tied. Quantized checkpoints keep embeddings and the head in
    16 bits, and a checkpoint quantized only in its experts (gpt-oss) keeps attention and
    the router in 16 bits too; the Bosun engine's int8 adds an int8 copy of a tied head
    (its input embedding stays a float lookup). vLLM loads weights a little larger than
    the checkpoint (:data:`WEIGHT_LOAD_GROWTH`)."""
    s = x.spec
    wbytes = weight_element_bytes(x.dtype, x.quantization)
    embed_bytes = _DTYPE_BYTES[x.dtype] if x.quantization is not Quantization.NONE else wbytes
    matrix = s.vocab_size * s.hidden_size * embed_bytes
    stages = pipeline_stages_rule(s.layers, pp)
    if pp == 1:
        vocab = [s.embedding_parameters * embed_bytes]
    else:
        vocab = [matrix] + [0.0] * (pp - 2) + [matrix]
        vocab[0] += s.per_layer_embedding_parameters * embed_bytes  # looked up with it
    vocab[0] += s.vision_parameters * _DTYPE_BYTES[x.dtype]  # a vision encoder: 16-bit
    layer = s.layer_parameters * wbytes
    own = x.quantization is s.quantization and s.quantization is not Quantization.NONE
    if own and s.weight_bytes_on_disk:  # packed tensors: the files' bytes, not a count
        wide = (s.embedding_parameters + s.vision_parameters) * _DTYPE_BYTES[x.dtype]
        layer = max(s.weight_bytes_on_disk - wide, 0) / s.layers
    elif own and s.quantized == "experts":
        experts = s.routed_expert_parameters / s.layers
        layer = experts * wbytes + (s.layer_parameters - experts) * _DTYPE_BYTES[x.dtype]
    weights = [n * layer + v for n, v in zip(stages, vocab, strict=True)]
    if s.layer_pattern and "E" in s.layer_pattern and pp > 1:
        # Nemotron-H: the experts live in the E blocks alone, not spread over every block.
        expert_bytes = s.expert_parameters * wbytes
        per_e = expert_bytes / s.moe_layers
        for i, part in enumerate(_stage_patterns(s.layer_pattern, pp)):
            weights[i] += part.count("E") * per_e - len(part) * expert_bytes / s.layers
    if x.runtime == "bosun" and x.quantization is Quantization.INT8 and s.tied_embeddings:
        weights[-1] += s.vocab_size * s.hidden_size * wbytes
    growth = WEIGHT_LOAD_GROWTH if x.runtime == "vllm" and x.profile.is_gpu else 1.0
    return [w * growth for w in weights]


def weights_rule(x: Inputs, tp: int, pp: int, stages: list[float] | None = None) -> float:
    """Weight bytes on the busiest device: the heaviest pipeline stage split over tensor
    parallel ranks, but for the tensors every rank keeps whole (MLA's latent
    down-projections, routers: :attr:`ModelSpec.replicated_layer_parameters`)."""
    s = x.spec
    stages = stages or stage_weights_rule(x, pp)
    if tp == 1:
        return max(stages)
    own = x.quantization is s.quantization and s.quantization is not Quantization.NONE
    # Replicated tensors stay 16-bit where a checkpoint quantizes only its experts.
    element = _DTYPE_BYTES[x.dtype] if own and s.quantized == "experts" else None
    per_layer = s.replicated_layer_parameters * (
        element or weight_element_bytes(x.dtype, x.quantization)
    )
    growth = WEIGHT_LOAD_GROWTH if x.runtime == "vllm" and x.profile.is_gpu else 1.0
    layers = pipeline_stages_rule(s.layers, pp)
    return max(
        (w - n * per_layer * growth) / tp + n * per_layer * growth
        for w, n in zip(stages, layers, strict=True)
    )


def kv_per_token_rule(x: Inputs, tp: int, pp: int) -> float:
    """KV bytes per token on the busiest device: the largest stage's layers, and this rank's
    KV heads (heads split over tp; with fewer KV heads than ranks each rank keeps one
    replica). MLA's latent is replicated on every rank."""
    s = x.spec
    return s.kv_bytes_per_token(x.kv_element_bytes, tp) * stage_share_rule(s, pp)


def replica_kv_per_token_rule(x: Inputs, tp: int) -> float:
    """KV bytes per token over a replica's devices: the model's, times the copies tensor
    parallel keeps (KV heads replicated when fewer than the ranks; MLA's latent on every
    rank)."""
    return x.spec.kv_bytes_per_token(x.kv_element_bytes, tp) * tp


def state_per_sequence_rule(x: Inputs, tp: int, pp: int) -> float:
    """Linear-attention state of one sequence on the busiest device: the stage holding the
    most such layers, its heads split over tensor parallel ranks."""
    s = x.spec
    conv_bytes = _DTYPE_BYTES[x.dtype]
    return s.state_bytes_per_sequence(conv_bytes) * stage_share_rule(s, pp, "M") / tp


def serving_activations_rule(x: Inputs, tp: int) -> float:
    """One scheduler step: the batched tokens' widest intermediate tensors (residual twice,
    and this rank's share of q, k, v and the MLP's gate and up), plus the fp32 logits of
    every sequence in the step and the sampler's copy of them."""
    s = x.spec
    q_dim = s.attention_heads * s.head_dim
    kv_dim = 2 * s.kv_heads * s.head_dim
    width = 2 * s.hidden_size + (q_dim + kv_dim + 2 * s.active_intermediate_size) / tp
    activations = x.batched_tokens * width * _DTYPE_BYTES[x.dtype]
    return activations + min(x.max_seqs, x.batched_tokens) * s.vocab_size * 4 * 2


def tuning_activations_rule(x: Inputs) -> float:
    """LoRA with gradient checkpointing: each layer's input kept for every layer, one layer's
    full activations (~34 x hidden per token, Korthikanti et al. 2022), fp32 logits and
    their gradient, and LoRA's weights (r=16 on every projection, ~0.5% of the model) with
    their gradient and two fp32 Adam states."""
    s = x.spec
    tokens = x.tuning_seq_len * x.tuning_batch
    activations: float = tokens * s.hidden_size * _DTYPE_BYTES[x.dtype] * (s.layers + 34)
    activations += tokens * s.vocab_size * 4 * 2
    return activations + s.parameters * 0.005 * (4 + 4 + 4 + 4)


def overhead_rule(x: Inputs, ranks: int) -> float:
    """The runtime's own memory: a CPU pod's Python and server; a GPU process's CUDA
    context, plus NCCL buffers when ranks talk and the captured CUDA graphs."""
    if x.profile.kind == "cpu":
        return CPU_RUNTIME_OVERHEAD
    overhead = GPU_RUNTIME_OVERHEAD + (NCCL_OVERHEAD if ranks > 1 else 0)
    return overhead + (CUDA_GRAPH_OVERHEAD if x.cuda_graphs else 0)


def estimate(x: Inputs, tp: int, pp: int) -> Estimate:
    """The busiest device's bytes for a (tensor parallel, pipeline stages) layout."""
    stages = stage_weights_rule(x, pp)
    weights = weights_rule(x, tp, pp, stages)
    if x.tuning:
        activations, overhead = tuning_activations_rule(x), overhead_rule(x, 1)
        return Estimate(weights, 0.0, activations, overhead, 0.0, sum(stages), 0.0)
    # Per token at this context: with vLLM's hybrid allocator, sliding-window layers hold
    # at most their window (the Bosun engine's cache gives every layer every token).
    s = x.spec
    share = 1.0
    if x.runtime == "vllm":
        windowed = s.kv_bytes_per_sequence(x.max_model_len, 1, tp) / s.kv_bytes_per_token(1, tp)
        share = windowed / x.max_model_len
    kv_per_token = kv_per_token_rule(x, tp, pp) * share
    tokens = x.max_model_len * x.concurrency
    state = s.state_bytes_per_sequence(_DTYPE_BYTES[x.dtype]) * x.concurrency
    return Estimate(
        weights,
        kv_per_token * tokens,
        serving_activations_rule(x, tp),
        overhead_rule(x, tp * pp),
        kv_per_token,
        sum(stages),
        replica_kv_per_token_rule(x, tp) * share * tokens,
        state_per_sequence_rule(x, tp, pp) * x.concurrency,
        state,
    )


def utilization_rule(profile: AcceleratorProfile) -> float:
    """The share of a device the engine may take (vLLM's ``--gpu-memory-utilization``)."""
    return CPU_UTILIZATION if profile.kind == "cpu" else GPU_UTILIZATION


def fits_rule(x: Inputs, est: Estimate, sharers: int) -> bool:
    """Every replica sharing a device fits in its usable memory."""
    return est.need * sharers <= x.profile.memory_bytes * utilization_rule(x.profile)


# --------------------------------------------------------------------------- rules: layout


def tensor_parallel_rule(spec: ModelSpec, tp: int) -> bool:
    """vLLM's rule: tp divides the attention heads, and the KV heads divide by tp or tp by
    the KV heads (then replicated); MLA has no KV heads to split. A hybrid's linear
    attention splits its heads and its groups (Mamba-2's B and C, DeltaNet's key heads)
    evenly too."""
    if spec.attention_heads % tp:
        return False
    r = spec.recurrent
    if r is not None and (r.heads % tp or r.groups % tp):
        return False
    if spec.mla is not None:
        return True
    heads = [spec.kv_heads] + ([spec.global_kv_heads] if spec.global_kv_heads else [])
    return all(h % tp == 0 or tp % h == 0 for h in heads)


def layouts_rule(x: Inputs, per_node: int) -> list[tuple[int, int]]:
    """(tp, pp) candidates, fewest devices first: tensor parallel within a node (powers of
    two, and the whole node), then pipeline stages of the widest tp across up to
    MAX_NODES_PER_REPLICA nodes. The Bosun engine, tuning, CPUs and MIG use one device."""
    if x.profile.kind != "gpu" or x.runtime == "bosun" or x.tuning:
        return [(1, 1)]
    tps = [t for t in (1, 2, 4, 8, 16) if t <= per_node and tensor_parallel_rule(x.spec, t)]
    if per_node not in tps and tensor_parallel_rule(x.spec, per_node):
        tps.append(per_node)
    layouts = [(t, 1) for t in sorted(tps)]
    widest = max(tps)
    for pp in range(2, min(MAX_NODES_PER_REPLICA, x.spec.layers) + 1):
        layouts.append((widest, pp))
    return layouts


def explicit_layout_rule(
    x: Inputs, count: int, per_node: int, warnings: list[str]
) -> tuple[int, int]:
    """The (tp, pp) for an explicit ``accelerator.count``: it is respected as given, with
    the widest tp that divides it when the heads do not split ``count`` ways, and pipeline
    stages of whole nodes beyond one node."""
    if x.profile.kind == "mig" or x.runtime == "bosun" or x.tuning:
        if count > 1:
            warnings.append(
                f"spec.resource.accelerator.count: {count} devices requested, but "
                f"{'a MIG slice' if x.profile.kind == 'mig' else 'this runtime'} uses one"
            )
        return (1, 1)
    if count <= per_node:
        tp = count
        if not tensor_parallel_rule(x.spec, tp):
            tp = max(
                t for t in range(1, count + 1) if count % t == 0 and tensor_parallel_rule(x.spec, t)
            )
            warnings.append(
                f"spec.resource.accelerator.count: {x.spec.name}'s {x.spec.attention_heads} "
                f"attention heads do not split {count} ways; tensor parallel {tp} is used"
            )
        return (tp, 1)
    if count % per_node:
        raise PlanError(
            f"spec.resource.accelerator.count: {count} devices do not fill whole nodes of "
            f"{per_node}; use a multiple of {per_node}"
        )
    return (per_node, count // per_node)


def choose_layout_rule(
    x: Inputs, layouts: list[tuple[int, int]], sharers: int
) -> tuple[int, int, Estimate, bool]:
    """The first layout that fits, else the largest (reported as not fitting). A CPU with no
    memory limit fits anything: the pod then requests what the model needs."""
    unlimited = x.profile.kind == "cpu" and x.profile.memory_bytes == 0
    for tp, pp in layouts:
        est = estimate(x, tp, pp)
        if unlimited or fits_rule(x, est, sharers):
            return tp, pp, est, True
    tp, pp = layouts[-1]
    return tp, pp, estimate(x, tp, pp), False


def memory_rule(x: Inputs, est: Estimate, sharers: int) -> Memory:
    """The plan's memory summary: replica totals, the busiest device, and how many KV tokens
    the usable memory left over holds (per sharer)."""
    capacity = x.profile.memory_bytes
    if x.profile.kind == "cpu" and capacity == 0:
        capacity = math.ceil(est.need / CPU_UTILIZATION)  # the pod requests what it needs
    usable = int(capacity * utilization_rule(x.profile))
    room = usable / sharers - est.fixed_dev
    kv_tokens = int(room / est.kv_per_token_dev) if est.kv_per_token_dev and room > 0 else 0
    return Memory(
        weights_bytes=int(est.weights_replica),
        kv_cache_bytes=int(est.kv_replica + est.state_replica),
        activation_bytes=int(est.activation_dev),
        overhead_bytes=int(est.overhead_dev),
        per_device_bytes=int(est.need),
        device_capacity_bytes=capacity,
        usable_bytes=usable,
        kv_bytes_per_token=round(x.spec.kv_bytes_per_token(x.kv_element_bytes)),
        kv_capacity_tokens=kv_tokens,
    )


def shared_utilization_rule(sharing: SharingStrategy, need: float, capacity: int) -> float:
    """``--gpu-memory-utilization``: vLLM's 0.90 alone on a device; a sharer takes only its
    own share (rounded up to a percent, plus two points of slack) to leave room for others."""
    if sharing is SharingStrategy.EXCLUSIVE:
        return GPU_UTILIZATION
    # round() first: 10% + 2 points is 12.000000000000002 in floating point, not 13.
    percent = math.ceil(round((need / capacity + 0.02) * 100, 6))
    return min(GPU_UTILIZATION, percent / 100)


# --------------------------------------------------------------------------- rules: reasons


def max_len_that_fits_rule(x: Inputs, est: Estimate, sharers: int) -> int:
    """The longest context (a multiple of 16 tokens) whose KV cache fits what is left."""
    usable = x.profile.memory_bytes * utilization_rule(x.profile) / sharers
    room = usable - est.fixed_dev
    if room <= 0 or est.kv_per_token_dev <= 0:
        return 0
    return int(room / est.kv_per_token_dev / x.concurrency) // 16 * 16


def alternatives_rule(x: Inputs, sharers: int) -> str:
    """The smallest other GPU (by total memory of the layout) on which the model fits."""
    if x.profile.kind == "cpu":
        return ""
    options = []
    for profile in all_profiles():
        if profile.kind != "gpu" or profile.name == x.profile.name:
            continue
        y = replace(x, profile=profile)
        for tp, pp in layouts_rule(y, DEFAULT_DEVICES_PER_NODE):
            if pp == 1 and fits_rule(y, estimate(y, tp, pp), sharers):
                options.append((tp * profile.memory_bytes, f"{tp} x {profile.name}"))
                break
    if not options:
        return ""
    return f"; it would fit on {min(options)[1]}"


def fit_reason(x: Inputs, est: Estimate, tp: int, pp: int, memory: Memory) -> str:
    """What ``status.plan.reason`` says of a plan that fits."""
    on = f"{tp * pp} x {x.profile.name}" if x.profile.is_gpu else "cpu"
    if x.profile.is_gpu:
        on += f" (tensor parallel {tp}" + (f", {pp} pipeline stages)" if pp > 1 else ")")
    what = "tuning" if x.tuning else f"{x.max_model_len}-token context"
    reason = (
        f"fits on {on}: {format_bytes(est.need)} of "
        f"{format_bytes(memory.usable_bytes)} usable per device for {what}"
    )
    if not x.tuning:
        reason += f"; room for {memory.kv_capacity_tokens} KV tokens"
    return reason


def shortfall_reason(x: Inputs, est: Estimate, devices: int, sharers: int, usable: int) -> str:
    """What ``status.plan.reason`` says of a plan that does not fit, and what would."""
    need = est.need * sharers
    share = utilization_rule(x.profile)
    who = f"{sharers} replicas sharing it need" if sharers > 1 else "needs"
    reason = (
        f"{x.spec.name} {who} {format_bytes(need)} per device on {devices} x "
        f"{x.profile.name}, which offers {format_bytes(x.profile.memory_bytes * share)} "
        f"({format_bytes(x.profile.memory_bytes)} x {share:.2f}): "
        f"short by {format_bytes(need - usable)}"
    )
    if x.profile.is_gpu and not x.tuning and x.runtime != "bosun":
        shorter = max_len_that_fits_rule(x, est, sharers)
        if shorter >= 256:
            reason += f"; maxModelLen {shorter} would fit"
    if x.profile.kind == "gpu" and not x.tuning and x.runtime == "bosun":
        reason += "; the bosun engine runs on one device: runtime vllm can split the model"
    return reason + alternatives_rule(x, sharers)


# --------------------------------------------------------------------------- the planner


def plan_workspace(
    ws: Workspace,
    *,
    accelerator: str | None = None,
    instance_type: str | None = None,
    target: Target = "cluster",
    local_profile: AcceleratorProfile | None = None,
    devices_per_node: int | None = None,
) -> Plan:
    """Size ``ws`` for the given hardware and choose devices, parallelism and runtime.

    ``accelerator`` (a profile name or ``cpu``) and ``instance_type`` override the
    Workspace's own ``spec.resource``; ``local_profile`` is the hardware found where the
    Workspace will run (the machine `bosun up` runs on, or the GPUs the operator discovered
    on the cluster's nodes), with ``devices_per_node`` of them on each node (default 1).
    """
    resource = ws.spec.resource
    acc = resource.accelerator
    found: AcceleratorProfile | None
    if local_profile is not None:
        found, itype, per_node = local_profile, None, devices_per_node or 1
    else:
        found, itype, per_node = _resolve_profile(ws, accelerator, instance_type)
    spec, model_name, model_ref, model_path = _resolve_model(ws)
    cpu = found is None or found.kind == "cpu"
    runtime = _resolve_runtime(ws, spec, cpu, target)
    limit = to_bytes(resource.memory) if resource.memory is not None else 0
    profile = found if found is not None else cpu_profile(limit)

    warnings: list[str] = []
    sharing, sharers = sharing_rule(ws, profile)
    min_memory_rule(ws, profile)
    dtype = dtype_rule(ws, spec, profile, warnings)
    quantization = quantization_rule(ws, runtime, cpu, spec)
    max_model_len = max_model_len_rule(ws, spec)
    common = dict(
        workspace=ws.name,
        namespace=ws.metadata.namespace,
        workload="tuning" if ws.spec.tuning is not None else "inference",
        model=model_name,
        model_ref=model_ref,
        spec=spec,
        runtime=runtime,
        accelerator=profile,
        device_class=device_class_rule(ws, profile),
        instance_type=itype,
        devices_per_node=per_node,
        replicas=resource.count,
        max_model_len=max_model_len,
        concurrency=ws.spec.inference.concurrency if ws.spec.inference else 1,
        dtype=dtype,
        quantization=quantization.value,
        sharing=sharing,
        target=target,
    )
    if spec is None:
        return _unsized_plan(ws, profile, per_node, model_ref, model_path, warnings, common)

    x = inputs_rule(ws, spec, profile, runtime, dtype, quantization, max_model_len)
    if acc is not None and acc.count is not None and profile.is_gpu:
        layouts = [explicit_layout_rule(x, acc.count, per_node, warnings)]
    else:
        layouts = layouts_rule(x, per_node)
    tp, pp, est, fits = choose_layout_rule(x, layouts, sharers)
    memory = memory_rule(x, est, sharers)
    unable = quantization_device_rule(quantization, profile) if runtime == "vllm" else ""
    if unable:
        fits, reason = False, unable
    elif fits:
        reason = fit_reason(x, est, tp, pp, memory)
    else:
        reason = shortfall_reason(x, est, tp * pp, sharers, memory.usable_bytes)
        if acc is not None and acc.count is not None:
            warnings.append(f"spec.resource.accelerator.count: {acc.count} will not fit: {reason}")
    return Plan(
        devices_per_replica=tp * pp if profile.is_gpu else 0,
        tensor_parallel_size=tp,
        pipeline_parallel_size=pp,
        nodes_per_replica=pp,
        memory=memory,
        gpu_memory_utilization=shared_utilization_rule(
            sharing, est.need, memory.device_capacity_bytes
        ),
        fits=fits,
        reason=reason,
        warnings=tuple(warnings),
        **common,  # type: ignore[arg-type]
    )


def _unsized_plan(
    ws: Workspace,
    profile: AcceleratorProfile,
    per_node: int,
    model_ref: str,
    model_path: str,
    warnings: list[str],
    common: dict[str, Any],
) -> Plan:
    """A model Bosun cannot read here is planned on the devices the Workspace names."""
    acc = ws.spec.resource.accelerator
    count = acc.count if acc is not None and acc.count else 1
    where = "pvc" if model_ref.startswith("/models") else "hub or path"
    warnings.append(
        f"{model_path}: the model is not in the catalog and its config.json is not "
        f"readable here ({where}); memory was not estimated"
    )
    return Plan(
        devices_per_replica=count if profile.is_gpu else 0,
        tensor_parallel_size=min(count, per_node) if profile.is_gpu else 1,
        pipeline_parallel_size=max(1, count // per_node) if profile.is_gpu else 1,
        nodes_per_replica=max(1, math.ceil(count / per_node)) if profile.is_gpu else 1,
        memory=Memory(0, 0, 0, 0, 0, profile.memory_bytes, 0, 0, 0),
        gpu_memory_utilization=GPU_UTILIZATION,
        fits=True,
        reason=f"not sized: using {count} device(s) as given",
        warnings=tuple(warnings),
        **common,
    )
