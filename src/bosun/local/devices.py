"""This machine's accelerators for `bosun up`: GPUs found through NVML (as the DRA driver
would publish them), a profile to plan with, and devices handed out with the DRA
allocator, so that two local workspaces never get the same exclusive GPU."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from bosun.api import Workspace
from bosun.catalog import Plan
from bosun.catalog.accelerators import AcceleratorProfile, all_profiles, cpu_profile
from bosun.devices.allocator import Allocator
from bosun.devices.discovery import discover
from bosun.devices.model import DeviceClass, ResourceClaim, ResourceSlice
from bosun.devices.nodes import NodeInfo
from bosun.render.claims import claim_spec

__all__ = ["NVIDIA_CLASSES", "Machine", "allocate", "machine"]

NODE = "localhost"
# The DeviceClasses NVIDIA's DRA driver installs (whole GPUs, MIG slices).
NVIDIA_CLASSES = [
    DeviceClass.model_validate(
        {
            "metadata": {"name": name},
            "spec": {
                "selectors": [
                    {
                        "cel": {
                            "expression": "device.driver == 'gpu.nvidia.com' && "
                            f"device.attributes['gpu.nvidia.com'].type == '{kind}'"
                        }
                    }
                ]
            },
        }
    )
    for name, kind in (("gpu.nvidia.com", "gpu"), ("mig.nvidia.com", "mig"))
]


@dataclass(frozen=True)
class Machine:
    """What `bosun up` plans for: the GPUs NVML reports, else the CPU and its memory."""

    slice: ResourceSlice | None
    profile: AcceleratorProfile

    def uuid(self, device: str) -> str:
        assert self.slice is not None
        for d in self.slice.spec.devices:
            if d.name == device:
                return str(d.attributes["uuid"].value)
        raise KeyError(device)


def _gpu_profile(device: Any) -> AcceleratorProfile:
    product = str(device.attributes["productName"].value)
    memory = int(device.capacity["memory"].value)
    for profile in all_profiles():
        if profile.kind == "gpu" and profile.product_name == product:
            return profile
    return AcceleratorProfile(name=product, kind="gpu", memory_bytes=memory, product_name=product)


def machine(nvml: Any = None) -> Machine:
    """This machine: its first GPU's profile when NVML finds GPUs (planning assumes they
    are alike, as on every cloud instance), else the CPU with the physical memory."""
    found = discover(NODE, nvml=nvml)
    gpus = [d for d in found.spec.devices if d.attributes["type"].value == "gpu"] if found else []
    if found is None or not gpus:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        return Machine(None, cpu_profile(memory))
    return Machine(found, _gpu_profile(gpus[0]))


def allocate(ws: Workspace, plan: Plan, here: Machine, held: set[str]) -> list[str] | None:
    """Devices for ``plan`` on this machine, none of those in ``held`` (the exclusive
    devices of the other local workspaces); ``["cpu"]`` on a CPU; None if they do not fit."""
    if here.slice is None or not plan.accelerator.is_gpu:
        return ["cpu"]
    claim = ResourceClaim.model_validate(
        {"metadata": {"name": f"{ws.name}-accelerator"}, "spec": claim_spec(ws, plan)}
    )
    spec = here.slice.spec
    taken = {(spec.driver, spec.pool.name, name) for name in held}
    results = Allocator(NVIDIA_CLASSES, [here.slice], taken).allocate(NodeInfo(NODE), [claim])
    if results is None:
        return None
    return [r.device for r in results[0].devices.results]
