"""Dynamic Resource Allocation objects (``resource.k8s.io/v1``, and ``v1beta2`` which has the
same shape) as pydantic models that read what Kubernetes writes and reject unknown fields.

Field names and defaults follow ``k8s.io/api/resource/v1/types.go``. Validation here is
structural; the allocator does the semantic checks that kube-scheduler does.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from bosun.api.meta import KubeModel, ObjectMeta, Quantity

__all__ = [
    "API_VERSIONS",
    "AllocationResult",
    "CounterSet",
    "Device",
    "DeviceAllocationConfiguration",
    "DeviceAllocationResult",
    "DeviceAttribute",
    "DeviceCapacity",
    "DeviceClaim",
    "DeviceClaimConfiguration",
    "DeviceClass",
    "DeviceConstraint",
    "DeviceRequest",
    "DeviceRequestAllocationResult",
    "DeviceSelector",
    "DeviceSubRequest",
    "DeviceTaint",
    "DeviceToleration",
    "ExactDeviceRequest",
    "Node",
    "NodeSelector",
    "NodeSelectorRequirement",
    "NodeSelectorTerm",
    "OpaqueDeviceConfiguration",
    "ResourceClaim",
    "ResourceClaimSpec",
    "ResourceClaimTemplate",
    "ResourceSlice",
    "to_wire",
]

API_VERSIONS = ("resource.k8s.io/v1", "resource.k8s.io/v1beta2")
ResourceApiVersion = Literal["resource.k8s.io/v1", "resource.k8s.io/v1beta2"]
ALLOCATION_RESULTS_MAX_SIZE = 32


def to_wire(model: KubeModel) -> Any:
    """The model as Kubernetes writes it: camelCase, unset and empty fields left out."""
    return _prune(model.model_dump(by_alias=True, exclude_none=True))


def _prune(value: Any) -> Any:
    if isinstance(value, dict):
        pruned = {k: _prune(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v not in ({}, [])}
    if isinstance(value, list):
        return [_prune(v) for v in value]
    return value


# --------------------------------------------------------------------------- nodes


class NodeSelectorRequirement(KubeModel):
    key: str
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"]
    values: list[str] = Field(default_factory=list)


class NodeSelectorTerm(KubeModel):
    match_expressions: list[NodeSelectorRequirement] = Field(default_factory=list)
    match_fields: list[NodeSelectorRequirement] = Field(default_factory=list)


class NodeSelector(KubeModel):
    node_selector_terms: list[NodeSelectorTerm]


class Node(KubeModel):
    """A Node, for its name and labels; its spec and status pass through unread."""

    api_version: Literal["v1"] = "v1"
    kind: Literal["Node"] = "Node"
    metadata: ObjectMeta
    spec: dict[str, Any] = Field(default_factory=dict)
    status: dict[str, Any] = Field(default_factory=dict)


# --------------------------------------------------------------------------- slices


class DeviceAttribute(KubeModel):
    """Exactly one typed value."""

    int_value: int | None = Field(default=None, alias="int")
    bool_value: bool | None = Field(default=None, alias="bool")
    string_value: str | None = Field(default=None, alias="string", max_length=64)
    version_value: str | None = Field(default=None, alias="version", max_length=64)

    @model_validator(mode="after")
    def _one_value(self) -> DeviceAttribute:
        values = (self.int_value, self.bool_value, self.string_value, self.version_value)
        if sum(v is not None for v in values) != 1:
            raise ValueError("an attribute has exactly one of int, bool, string and version")
        return self

    @property
    def value(self) -> int | bool | str:
        """The one value that is set (a version as its string)."""
        for v in (self.int_value, self.bool_value, self.string_value, self.version_value):
            if v is not None:
                return v
        raise AssertionError("validated to hold one value")


class DeviceCapacity(KubeModel):
    value: Quantity
    request_policy: dict[str, Any] | None = None


class DeviceTaint(KubeModel):
    key: str = Field(min_length=1)
    value: str | None = None
    effect: str  # NoSchedule | NoExecute | None; unknown future effects are ignored
    time_added: str | None = None


class Counter(KubeModel):
    value: Quantity


class DeviceCounterConsumption(KubeModel):
    counter_set: str
    counters: dict[str, Counter] = Field(default_factory=dict)


class Device(KubeModel):
    name: str = Field(min_length=1, max_length=128)
    attributes: dict[str, DeviceAttribute] = Field(default_factory=dict)
    capacity: dict[str, DeviceCapacity] = Field(default_factory=dict)
    consumes_counters: list[DeviceCounterConsumption] = Field(default_factory=list)
    node_name: str | None = None
    node_selector: NodeSelector | None = None
    all_nodes: bool | None = None
    taints: list[DeviceTaint] = Field(default_factory=list)
    binds_to_node: bool | None = None
    binding_conditions: list[str] = Field(default_factory=list)
    binding_failure_conditions: list[str] = Field(default_factory=list)
    allow_multiple_allocations: bool | None = None


class ResourcePool(KubeModel):
    name: str = Field(min_length=1)
    generation: int = Field(ge=0)
    resource_slice_count: int = Field(ge=1)


class CounterSet(KubeModel):
    name: str
    counters: dict[str, Counter] = Field(default_factory=dict)


class ResourceSliceSpec(KubeModel):
    driver: str = Field(min_length=1)
    pool: ResourcePool
    node_name: str | None = None
    node_selector: NodeSelector | None = None
    all_nodes: bool | None = None
    per_device_node_selection: bool | None = None
    devices: list[Device] = Field(default_factory=list, max_length=128)
    shared_counters: list[CounterSet] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_node_selection(self) -> ResourceSliceSpec:
        chosen = [
            self.node_name is not None,
            self.node_selector is not None,
            bool(self.all_nodes),
            bool(self.per_device_node_selection),
        ]
        if sum(chosen) > 1:
            raise ValueError(
                "set at most one of nodeName, nodeSelector, allNodes and perDeviceNodeSelection"
            )
        return self


class ResourceSlice(KubeModel):
    api_version: ResourceApiVersion = "resource.k8s.io/v1"
    kind: Literal["ResourceSlice"] = "ResourceSlice"
    metadata: ObjectMeta
    spec: ResourceSliceSpec


# --------------------------------------------------------------------------- classes


class CELDeviceSelector(KubeModel):
    expression: str = Field(min_length=1, max_length=10240)


class DeviceSelector(KubeModel):
    cel: CELDeviceSelector | None = None


class OpaqueDeviceConfiguration(KubeModel):
    driver: str
    parameters: dict[str, Any] = Field(default_factory=dict)


class DeviceClassConfiguration(KubeModel):
    opaque: OpaqueDeviceConfiguration | None = None


class DeviceClassSpec(KubeModel):
    selectors: list[DeviceSelector] = Field(default_factory=list, max_length=32)
    config: list[DeviceClassConfiguration] = Field(default_factory=list)
    extended_resource_name: str | None = None


class DeviceClass(KubeModel):
    api_version: ResourceApiVersion = "resource.k8s.io/v1"
    kind: Literal["DeviceClass"] = "DeviceClass"
    metadata: ObjectMeta
    spec: DeviceClassSpec = Field(default_factory=DeviceClassSpec)


# --------------------------------------------------------------------------- claims


class DeviceToleration(KubeModel):
    key: str | None = None
    operator: Literal["Exists", "Equal"] = "Equal"
    value: str | None = None
    effect: str | None = None
    toleration_seconds: int | None = None


class CapacityRequirements(KubeModel):
    requests: dict[str, Quantity] = Field(default_factory=dict)


class ExactDeviceRequest(KubeModel):
    device_class_name: str = ""
    selectors: list[DeviceSelector] = Field(default_factory=list, max_length=32)
    allocation_mode: str = "ExactCount"
    count: int | None = Field(default=None, ge=0)
    admin_access: bool | None = None
    tolerations: list[DeviceToleration] = Field(default_factory=list)
    capacity: CapacityRequirements | None = None


class DeviceSubRequest(KubeModel):
    name: str = Field(min_length=1)
    device_class_name: str = ""
    selectors: list[DeviceSelector] = Field(default_factory=list, max_length=32)
    allocation_mode: str = "ExactCount"
    count: int | None = Field(default=None, ge=0)
    tolerations: list[DeviceToleration] = Field(default_factory=list)
    capacity: CapacityRequirements | None = None


class DeviceRequest(KubeModel):
    name: str = Field(min_length=1)
    exactly: ExactDeviceRequest | None = None
    first_available: list[DeviceSubRequest] = Field(default_factory=list, max_length=8)

    @model_validator(mode="after")
    def _one_kind(self) -> DeviceRequest:
        if (self.exactly is None) == (not self.first_available):
            raise ValueError("set exactly one of 'exactly' and 'firstAvailable'")
        return self


class DeviceConstraint(KubeModel):
    requests: list[str] = Field(default_factory=list)
    match_attribute: str | None = None
    distinct_attribute: str | None = None


class DeviceClaimConfiguration(KubeModel):
    requests: list[str] = Field(default_factory=list)
    opaque: OpaqueDeviceConfiguration | None = None


class DeviceClaim(KubeModel):
    requests: list[DeviceRequest] = Field(default_factory=list)
    constraints: list[DeviceConstraint] = Field(default_factory=list)
    config: list[DeviceClaimConfiguration] = Field(default_factory=list)


class ResourceClaimSpec(KubeModel):
    devices: DeviceClaim = Field(default_factory=DeviceClaim)


class DeviceRequestAllocationResult(KubeModel):
    request: str
    driver: str
    pool: str
    device: str
    admin_access: bool | None = None
    tolerations: list[DeviceToleration] = Field(default_factory=list)
    binding_conditions: list[str] = Field(default_factory=list)
    binding_failure_conditions: list[str] = Field(default_factory=list)
    share_id: str | None = Field(default=None, alias="shareID")
    consumed_capacity: dict[str, Quantity] = Field(default_factory=dict)


class DeviceAllocationConfiguration(KubeModel):
    source: Literal["FromClass", "FromClaim"]
    requests: list[str] = Field(default_factory=list)
    opaque: OpaqueDeviceConfiguration | None = None


class DeviceAllocationResult(KubeModel):
    results: list[DeviceRequestAllocationResult] = Field(default_factory=list)
    config: list[DeviceAllocationConfiguration] = Field(default_factory=list)


class AllocationResult(KubeModel):
    devices: DeviceAllocationResult = Field(default_factory=DeviceAllocationResult)
    node_selector: NodeSelector | None = None
    allocation_timestamp: str | None = None


class ResourceClaimStatus(KubeModel):
    allocation: AllocationResult | None = None
    reserved_for: list[dict[str, Any]] = Field(default_factory=list)
    devices: list[dict[str, Any]] = Field(default_factory=list)


class ResourceClaim(KubeModel):
    api_version: ResourceApiVersion = "resource.k8s.io/v1"
    kind: Literal["ResourceClaim"] = "ResourceClaim"
    metadata: ObjectMeta
    spec: ResourceClaimSpec = Field(default_factory=ResourceClaimSpec)
    status: ResourceClaimStatus | None = None


class ResourceClaimTemplateSpec(KubeModel):
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: ResourceClaimSpec


class ResourceClaimTemplate(KubeModel):
    api_version: ResourceApiVersion = "resource.k8s.io/v1"
    kind: Literal["ResourceClaimTemplate"] = "ResourceClaimTemplate"
    metadata: ObjectMeta
    spec: ResourceClaimTemplateSpec
