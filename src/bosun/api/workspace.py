"""The Workspace resource (``bosun.dev/v1alpha1``) as pydantic models.

Field names follow KAITO's Workspace so its users feel at home, placed under ``spec`` as
Kubernetes convention asks. Every model forbids unknown fields, so a typo is an error
that names the field path rather than a silently ignored setting.

Rules that Kubernetes can check on its own are also declared as CEL
(``x-kubernetes-validations``) through :func:`bosun.api.meta.cel_rules`;
:mod:`bosun.api.crd` copies them into the CustomResourceDefinition.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from bosun.api.conditions import Condition
from bosun.api.meta import DnsSubdomain, KubeModel, ObjectMeta, Quantity, cel_rules
from bosun.api.quantity import parse_quantity
from bosun.api.validators import (
    ParsedUri,
    check_public_host,
    parse_uri,
)

__all__ = [
    "API_VERSION",
    "DEFAULT_IDLE_TIMEOUT_S",
    "GROUP",
    "KIND",
    "VERSION",
    "Accelerator",
    "Adapter",
    "AdapterSource",
    "Inference",
    "LabelSelector",
    "ModelSource",
    "ObjectMeta",
    "PlanStatus",
    "PresetRef",
    "Quantization",
    "Resource",
    "Runtime",
    "Sharing",
    "SharingStrategy",
    "Tuning",
    "TuningInput",
    "TuningMethod",
    "TuningOutput",
    "Workspace",
    "WorkspaceSpec",
    "WorkspaceStatus",
]

GROUP = "bosun.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "Workspace"

MAX_ADAPTERS = 10
DEFAULT_IDLE_TIMEOUT_S = 300  # a Workspace that scales to zero, idle this long
_TUNING_NOT_SCALED = (
    "resource.minReplicas: a fine-tuning job runs once and is never scaled; leave it out"
)


class _Model(KubeModel):
    """Workspace models: KubeModel's conventions (camelCase, unknown fields rejected)."""


# --------------------------------------------------------------------------- resource


class SharingStrategy(StrEnum):
    EXCLUSIVE = "Exclusive"
    TIME_SLICING = "TimeSlicing"
    MPS = "MPS"


class Sharing(_Model):
    """How the Workspace's replicas share their devices (NVIDIA DRA driver's GpuConfig)."""

    strategy: SharingStrategy = SharingStrategy.EXCLUSIVE


class Accelerator(_Model):
    """Which devices to claim through DRA, and how many; sizing fills in what is left out."""

    device_class_name: DnsSubdomain = Field(
        default="gpu.nvidia.com", description="The DRA DeviceClass to claim devices from."
    )
    count: int | None = Field(
        default=None,
        ge=1,
        le=32,
        description="Devices per replica; overrides sizing (a warning says if it cannot fit).",
    )
    selectors: list[Annotated[str, Field(min_length=1, max_length=10240)]] = Field(
        default_factory=list,
        max_length=32,
        description="Extra CEL selectors every device must satisfy (DRA's device.* variables).",
    )
    min_memory: Quantity | None = Field(
        default=None, description="Smallest memory a device may have, as 40Gi."
    )
    sharing: Sharing | None = None
    mig_profile: str | None = Field(
        default=None,
        pattern=r"^[1-7]g\.[0-9]+gb(\+me)?$",
        description="Claim a MIG slice of this profile (as 1g.10gb) instead of a whole GPU.",
    )


class LabelSelectorRequirement(_Model):
    key: str = Field(min_length=1)
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[str] = Field(default_factory=list)


class LabelSelector(_Model):
    match_labels: dict[str, str] = Field(default_factory=dict)
    match_expressions: list[LabelSelectorRequirement] = Field(default_factory=list)


# The largest single machines sold have a few thousand cores and tens of TiB of memory.
_NODE_LIMITS = {"cpu": (Decimal(4096), "4096"), "memory": (Decimal(2**46), "64Ti")}


class Resource(_Model):
    """Where and on what the Workspace runs."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            (
                "!has(self.minReplicas) || !has(self.count) || self.count == 0 "
                "|| self.minReplicas <= self.count",
                "minReplicas is more than count",
            ),
            (
                "!has(self.idleTimeoutSeconds) || has(self.minReplicas)",
                "idleTimeoutSeconds needs minReplicas (the floor to scale down to)",
            ),
        )
    )

    count: int = Field(default=1, ge=0, le=1000, description="Replicas of the Workspace.")
    min_replicas: int | None = Field(
        default=None,
        ge=0,
        le=1000,
        description="Fewest replicas the gateway scales the Workspace down to when idle; 0 "
        "scales it to zero after idleTimeoutSeconds without requests, and its next request "
        "starts it again (unset: the gateway never scales it).",
    )
    idle_timeout_seconds: int | None = Field(
        default=None,
        ge=1,
        le=7 * 24 * 3600,
        description="Seconds without requests before the gateway scales the Workspace down "
        f"to minReplicas (default {DEFAULT_IDLE_TIMEOUT_S}).",
    )
    instance_type: str | None = Field(
        default=None,
        min_length=1,
        description="Cloud instance type for node provisioning (Karpenter NodeClaims).",
    )
    label_selector: LabelSelector | None = Field(
        default=None, description="Nodes the Workspace may run on."
    )
    preferred_nodes: list[DnsSubdomain] = Field(default_factory=list)
    accelerator: Accelerator | None = None
    cpu: Quantity | None = Field(default=None, description="CPU for CPU-only serving.")
    memory: Quantity | None = Field(default=None, description="Memory for CPU-only serving.")

    @field_validator("cpu", "memory")
    @classmethod
    def _within_a_node(cls, value: str | None, info: ValidationInfo) -> str | None:
        """More than nothing, and no more than any node has."""
        if value is None:
            return value
        amount = parse_quantity(value)
        limit = _NODE_LIMITS[info.field_name or ""]
        if amount <= 0:
            raise ValueError(f"{value} is not more than zero")
        if amount > limit[0]:
            raise ValueError(f"{value} is more than any node has (at most {limit[1]})")
        return value

    @model_validator(mode="after")
    def _floor_within_count(self) -> Resource:
        if self.min_replicas is not None and self.count and self.min_replicas > self.count:
            raise ValueError(f"minReplicas ({self.min_replicas}) is more than count ({self.count})")
        if self.idle_timeout_seconds is not None and self.min_replicas is None:
            raise ValueError("idleTimeoutSeconds needs minReplicas (the floor to scale down to)")
        return self

    @property
    def scales_to_zero(self) -> bool:
        """The gateway may stop every replica when idle and start one on a request."""
        return self.min_replicas == 0

    @property
    def idle_timeout(self) -> int:
        """Seconds without requests before the gateway scales down to minReplicas."""
        return self.idle_timeout_seconds or DEFAULT_IDLE_TIMEOUT_S

    @property
    def cpu_only(self) -> bool:
        """No accelerator asked for, but CPU or memory was: serve on CPUs."""
        return self.accelerator is None and (self.cpu is not None or self.memory is not None)


# --------------------------------------------------------------------------- model


class Runtime(StrEnum):
    AUTO = "auto"
    VLLM = "vllm"
    BOSUN = "bosun"


class Quantization(StrEnum):
    NONE = "none"
    FP8 = "fp8"
    INT8 = "int8"
    AWQ = "awq"
    GPTQ = "gptq"
    BNB_4BIT = "bitsandbytes-4bit"
    MXFP4 = "mxfp4"
    NVFP4 = "nvfp4"
    INT4 = "int4"  # 4-bit integer weights with group scales (compressed-tensors W4A16)


Dtype = Literal["auto", "bfloat16", "float16", "float32"]


class PresetRef(_Model):
    name: str = Field(min_length=1, max_length=253, description="A name from `bosun models`.")


def _model_uri(value: str) -> str:
    parse_uri(value, ("hf", "file", "pvc"))
    return value


class ModelSource(_Model):
    """Bring your own model: weights from Hugging Face, a path, or a PersistentVolumeClaim."""

    uri: Annotated[str, AfterValidator(_model_uri)] = Field(
        description="hf://ORG/NAME, file:///PATH or pvc://CLAIM/PATH.",
        json_schema_extra={"pattern": r"^(hf|file|pvc)://"},
    )
    revision: str | None = Field(default=None, min_length=1)
    dtype: Dtype = "auto"
    quantization: Quantization = Quantization.NONE


class _ModelChoice(_Model):
    """Exactly one of ``preset`` and ``model``."""

    preset: PresetRef | None = None
    model: ModelSource | None = None

    @model_validator(mode="after")
    def _one_model(self) -> _ModelChoice:
        if (self.preset is None) == (self.model is None):
            raise ValueError("set exactly one of 'preset' and 'model'")
        return self


def _public(parsed: ParsedUri, info: ValidationInfo) -> None:
    """An http(s) URL's host must be public, unless the user opted in to it: the edge
    that validates passes ``allowed_hosts`` in the validation context."""
    if parsed.scheme in ("http", "https"):
        context = info.context if isinstance(info.context, dict) else {}
        check_public_host(parsed.hostname, context.get("allowed_hosts", frozenset()))


def _source_uri(value: str, info: ValidationInfo) -> str:
    _public(parse_uri(value, ("hf", "file", "pvc", "http", "https", "oci")), info)
    return value


# What Kubernetes can check of a URL without resolving it: literal loopback, private,
# link-local and metadata hosts. The Python check (validators.check_public_host) is fuller.
_INTERNAL_HOST = (
    r"^https?://((\\[::1\\]|localhost|[^/:]*\\.localhost|0\\.0\\.0\\.0|"
    r"metadata\\.google\\.internal|metadata\\.azure\\.com)([:/]|$)|\\[::ffff:|127\\.|10\\.|"
    r"169\\.254\\.|192\\.168\\.|172\\.(1[6-9]|2[0-9]|3[01])\\.)"
)
_PUBLIC_URL = (
    f"!self.matches('{_INTERNAL_HOST}')",
    "http(s) sources must not point at loopback, private, link-local or metadata addresses",
)

SourceUri = Annotated[
    str,
    AfterValidator(_source_uri),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^(hf|file|pvc|http|https|oci)://",
            **cel_rules(_PUBLIC_URL),
        }
    ),
]


class AdapterSource(_Model):
    uri: SourceUri = Field(
        description="hf://ORG/NAME, file:///PATH, pvc://CLAIM/PATH, https://… or oci://…"
    )


class Adapter(_Model):
    """A LoRA adapter served beside the base model under its own name."""

    name: DnsSubdomain
    source: AdapterSource
    strength: float = Field(default=1.0, ge=0.0, le=1.0, description="Scale of the update.")


_EXACTLY_ONE_MODEL = (
    "(has(self.preset) ? 1 : 0) + (has(self.model) ? 1 : 0) == 1",
    "set exactly one of 'preset' and 'model'",
)


class Inference(_ModelChoice):
    """Serve the model behind an OpenAI-compatible API."""

    model_config = ConfigDict(json_schema_extra=cel_rules(_EXACTLY_ONE_MODEL))

    runtime: Runtime = Field(
        default=Runtime.AUTO,
        description="auto: vllm on GPUs in a cluster, bosun on CPUs and on one machine.",
    )
    max_model_len: int | None = Field(
        default=None, ge=16, description="Longest sequence served (default: the model's)."
    )
    concurrency: int = Field(
        default=1,
        ge=1,
        le=4096,
        description="Full-length sequences the KV cache must hold at once (sizing input).",
    )
    config: dict[str, Any] = Field(
        default_factory=dict, description="Engine arguments passed through to the runtime."
    )
    adapters: list[Adapter] = Field(
        default_factory=list,
        max_length=MAX_ADAPTERS,
        json_schema_extra=cel_rules(
            (
                "self.all(a, self.exists_one(b, b.name == a.name))",
                "adapter names must be unique",
            )
        ),
    )
    access_secret: DnsSubdomain | None = Field(
        default=None, description="Secret whose HF_TOKEN key holds the model hub token."
    )

    @model_validator(mode="after")
    def _unique_adapters(self) -> Inference:
        names = [a.name for a in self.adapters]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"adapter names must be unique; repeated: {', '.join(dupes)}")
        return self


class TuningMethod(StrEnum):
    LORA = "lora"
    QLORA = "qlora"


def _input_uri(value: str, info: ValidationInfo) -> str:
    _public(parse_uri(value, ("hf", "file", "pvc", "http", "https")), info)
    return value


def _output_uri(value: str) -> str:
    parse_uri(value, ("file", "pvc", "oci"))
    return value


_ONE_VOLUME_SOURCE = (
    "self.size() == 1",
    "a volume names exactly one volume source, as persistentVolumeClaim: {claimName: data}",
)


def _one_volume_source(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is not None and len(value) != 1:
        raise ValueError(_ONE_VOLUME_SOURCE[1])
    return value


VolumeSource = Annotated[
    dict[str, Any],
    AfterValidator(_one_volume_source),
    WithJsonSchema(
        {
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": True,
            **cel_rules(_ONE_VOLUME_SOURCE),
        }
    ),
]


class TuningInput(_Model):
    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            (
                "(has(self.uris) && self.uris.size() > 0) != has(self.volume)",
                "set exactly one of 'uris' and 'volume'",
            )
        )
    )

    uris: list[
        Annotated[
            str,
            AfterValidator(_input_uri),
            WithJsonSchema(
                {
                    "type": "string",
                    "pattern": r"^(hf|file|pvc|http|https)://",
                    **cel_rules(_PUBLIC_URL),
                }
            ),
        ]
    ] = Field(default_factory=list, max_length=100)
    volume: VolumeSource | None = None

    @model_validator(mode="after")
    def _one_source(self) -> TuningInput:
        if bool(self.uris) == (self.volume is not None):
            raise ValueError("set exactly one of 'uris' and 'volume'")
        return self


class TuningOutput(_Model):
    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            ("has(self.volume) != has(self.uri)", "set exactly one of 'volume' and 'uri'")
        )
    )

    volume: VolumeSource | None = None
    uri: Annotated[str, AfterValidator(_output_uri)] | None = None

    @model_validator(mode="after")
    def _one_destination(self) -> TuningOutput:
        if (self.volume is None) == (self.uri is None):
            raise ValueError("set exactly one of 'volume' and 'uri'")
        return self


class Tuning(_ModelChoice):
    """Fine-tune the model on your data; the result is a LoRA adapter."""

    model_config = ConfigDict(json_schema_extra=cel_rules(_EXACTLY_ONE_MODEL))

    method: TuningMethod = TuningMethod.LORA
    config: dict[str, Any] = Field(default_factory=dict, description="Trainer hyperparameters.")
    input: TuningInput
    output: TuningOutput


class WorkspaceSpec(_Model):
    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            (
                "has(self.inference) != has(self.tuning)",
                "set exactly one of 'inference' and 'tuning'",
            ),
            (
                "!has(self.tuning) || !has(self.resource) || !has(self.resource.minReplicas)",
                _TUNING_NOT_SCALED,
            ),
            (
                "!has(oldSelf.inference) || !has(self.inference) || "
                "!has(oldSelf.inference.preset) || !has(self.inference.preset) || "
                "self.inference.preset.name == oldSelf.inference.preset.name",
                "inference.preset.name is immutable: create a new Workspace for another model",
            ),
            (
                "!has(oldSelf.resource) || !has(self.resource) || "
                "(has(self.resource.instanceType) == has(oldSelf.resource.instanceType) && "
                "(!has(self.resource.instanceType) || "
                "self.resource.instanceType == oldSelf.resource.instanceType))",
                "resource.instanceType is immutable",
            ),
            (
                "!has(oldSelf.tuning) || !has(self.tuning) || "
                "self.tuning.method == oldSelf.tuning.method",
                "tuning.method is immutable",
            ),
        )
    )

    resource: Resource = Field(default_factory=Resource)
    inference: Inference | None = None
    tuning: Tuning | None = None

    @model_validator(mode="after")
    def _one_workload(self) -> WorkspaceSpec:
        if (self.inference is None) == (self.tuning is None):
            raise ValueError("set exactly one of 'inference' and 'tuning'")
        if self.tuning is not None and self.resource.min_replicas is not None:
            raise ValueError(_TUNING_NOT_SCALED)
        return self


# --------------------------------------------------------------------------- status


class PlanStatus(_Model):
    """The sizing summary written to ``status.plan`` (the full plan is `bosun plan`)."""

    model: str
    runtime: str
    accelerator: str
    devices: str = Field(description="Human summary, as '2 x nvidia-h100-80gb'.")
    devices_per_replica: int
    tensor_parallel_size: int
    pipeline_parallel_size: int
    nodes_per_replica: int
    per_device_bytes: int
    fits: bool
    reason: str


class WorkspaceStatus(_Model):
    conditions: list[Condition] = Field(default_factory=list)
    plan: PlanStatus | None = None
    endpoint: str | None = None
    allocated_devices: list[str] = Field(default_factory=list)
    observed_generation: int | None = None
    state: str | None = None
    replicas: int | None = Field(default=None, description="Ready replicas (scale subresource).")
    selector: str | None = Field(default=None, description="Pod label selector for autoscalers.")


class Workspace(_Model):
    """A model to serve or tune, and the accelerators to do it on."""

    api_version: Literal["bosun.dev/v1alpha1"] = "bosun.dev/v1alpha1"
    kind: Literal["Workspace"] = "Workspace"
    metadata: ObjectMeta
    spec: WorkspaceSpec
    status: WorkspaceStatus | None = None

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def workload(self) -> Inference | Tuning:
        """The inference or tuning section, whichever is set."""
        workload = self.spec.inference or self.spec.tuning
        assert workload is not None  # guaranteed by WorkspaceSpec's validator
        return workload

    def web_sources(self) -> list[tuple[str, str]]:
        """(field path, host) of every http(s) URL the Workspace fetches from, so that the
        edge which can resolve names checks where they point."""
        found: list[tuple[str, str]] = []
        if self.spec.inference is not None:
            for i, adapter in enumerate(self.spec.inference.adapters):
                found.append((f"spec.inference.adapters[{i}].source.uri", adapter.source.uri))
        if self.spec.tuning is not None:
            for i, uri in enumerate(self.spec.tuning.input.uris):
                found.append((f"spec.tuning.input.uris[{i}]", uri))
        schemes = ("hf", "file", "pvc", "http", "https", "oci")
        hosts = [(path, parse_uri(uri, schemes)) for path, uri in found]
        return [(path, p.hostname) for path, p in hosts if p.scheme in ("http", "https")]
