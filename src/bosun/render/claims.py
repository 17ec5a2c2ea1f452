"""Accelerators in the pod: a DRA ResourceClaimTemplate (or a shared ResourceClaim), or
``nvidia.com/gpu`` extended resources on clusters without DRA."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from bosun.api.quantity import to_bytes
from bosun.api.workspace import SharingStrategy, Workspace
from bosun.catalog.sizing import GPU_UTILIZATION, Plan
from bosun.render.names import dns_label, labels, metadata

__all__ = ["CLAIM_NAME", "DeviceBinding", "bind_devices", "claim_spec", "memory_selector"]

CLAIM_NAME = "accelerator"
DRA_API = "resource.k8s.io/v1"
NVIDIA_DRIVER = "gpu.nvidia.com"
GFD_MEMORY_LABEL = "nvidia.com/gpu.memory"  # GPU Feature Discovery, in MiB


@dataclass
class DeviceBinding:
    """How a pod gets its devices: objects to create, and what goes into the pod spec."""

    objects: list[dict[str, Any]] = field(default_factory=list)
    pod_claims: list[dict[str, Any]] = field(default_factory=list)
    container_claims: list[dict[str, Any]] = field(default_factory=list)
    limits: dict[str, str] = field(default_factory=dict)
    node_requirements: list[dict[str, Any]] = field(default_factory=list)


def _min_device_bytes(plan: Plan) -> int:
    """The smallest device memory on which the plan's per-device share fits."""
    need = math.ceil(plan.memory.per_device_bytes / GPU_UTILIZATION)
    replicas_on_device = plan.replicas if plan.sharing is not SharingStrategy.EXCLUSIVE else 1
    return need * replicas_on_device


def memory_selector(min_bytes: int, driver: str = NVIDIA_DRIVER) -> str:
    gib = math.ceil(min_bytes / 2**30)
    return f"device.capacity['{driver}'].memory.compareTo(quantity('{gib}Gi')) >= 0"


def _selectors(ws: Workspace, plan: Plan) -> list[dict[str, Any]]:
    acc = ws.spec.resource.accelerator
    expressions = []
    if plan.accelerator.kind == "mig" and plan.accelerator.mig_profile:
        expressions.append(
            f"device.attributes['{NVIDIA_DRIVER}'].profile == '{plan.accelerator.mig_profile}'"
        )
    sized = plan.memory.per_device_bytes > 0
    min_bytes = _min_device_bytes(plan) if sized and plan.accelerator.kind == "gpu" else 0
    if acc is not None and acc.min_memory is not None:
        min_bytes = max(min_bytes, to_bytes(acc.min_memory))
    if min_bytes:
        expressions.append(memory_selector(min_bytes))
    if acc is not None:
        expressions.extend(acc.selectors)
    return [{"cel": {"expression": e}} for e in expressions]


def _sharing_config(plan: Plan) -> list[dict[str, Any]]:
    if plan.sharing is SharingStrategy.EXCLUSIVE:
        return []
    sharing: dict[str, Any] = {"strategy": plan.sharing.value}
    if plan.sharing is SharingStrategy.TIME_SLICING:
        sharing["timeSlicingConfig"] = {"interval": "Default"}
    else:
        share = max(1, 100 // max(plan.replicas, 1))
        limit = math.ceil(plan.memory.per_device_bytes / 2**30)
        sharing["mpsConfig"] = {
            "defaultActiveThreadPercentage": share,
            "defaultPinnedDeviceMemoryLimit": f"{limit}Gi",
        }
    return [
        {
            "requests": [CLAIM_NAME],
            "opaque": {
                "driver": NVIDIA_DRIVER,
                "parameters": {
                    "apiVersion": "resource.nvidia.com/v1beta1",
                    "kind": "GpuConfig",
                    "sharing": sharing,
                },
            },
        }
    ]


def claim_spec(ws: Workspace, plan: Plan) -> dict[str, Any]:
    """The ResourceClaimSpec (``resource.k8s.io/v1``) for one pod's devices."""
    request: dict[str, Any] = {
        "deviceClassName": plan.device_class,
        "allocationMode": "ExactCount",
        "count": plan.tensor_parallel_size
        if plan.nodes_per_replica > 1
        else plan.devices_per_replica,
    }
    selectors = _selectors(ws, plan)
    if selectors:
        request["selectors"] = selectors
    devices: dict[str, Any] = {"requests": [{"name": CLAIM_NAME, "exactly": request}]}
    config = _sharing_config(plan)
    if config:
        devices["config"] = config
    return {"devices": devices}


def bind_devices(
    ws: Workspace, plan: Plan, namespace: str | None, *, extended_resources: bool
) -> DeviceBinding:
    """Devices for the pods of ``plan``: nothing on CPUs, DRA claims or extended resources."""
    binding = DeviceBinding()
    if not plan.accelerator.is_gpu:
        return binding
    per_pod = plan.tensor_parallel_size if plan.nodes_per_replica > 1 else plan.devices_per_replica
    if extended_resources:
        if plan.accelerator.kind == "mig":
            binding.limits[f"nvidia.com/mig-{plan.accelerator.mig_profile}"] = "1"
        else:
            binding.limits["nvidia.com/gpu"] = str(per_pod)
            if plan.memory.per_device_bytes > 0:
                mib = _min_device_bytes(plan) // 2**20
                binding.node_requirements.append(
                    {"key": GFD_MEMORY_LABEL, "operator": "Gt", "values": [str(mib - 1)]}
                )
        return binding

    name = dns_label(ws.name, "accelerator")
    spec = claim_spec(ws, plan)
    shared = plan.sharing is not SharingStrategy.EXCLUSIVE
    if shared:
        # One claim that every replica references: the replicas share its devices.
        binding.objects.append(
            {
                "apiVersion": DRA_API,
                "kind": "ResourceClaim",
                "metadata": metadata(ws, name, "accelerator", namespace),
                "spec": spec,
            }
        )
        binding.pod_claims.append({"name": CLAIM_NAME, "resourceClaimName": name})
    else:
        binding.objects.append(
            {
                "apiVersion": DRA_API,
                "kind": "ResourceClaimTemplate",
                "metadata": metadata(ws, name, "accelerator", namespace),
                # Copied onto each claim made from it: the operator finds a
                # Workspace's claims by label, not among every claim in the namespace.
                "spec": {"metadata": {"labels": labels(ws, "accelerator")}, "spec": spec},
            }
        )
        binding.pod_claims.append({"name": CLAIM_NAME, "resourceClaimTemplateName": name})
    binding.container_claims.append({"name": CLAIM_NAME})
    return binding
