"""Device discovery: this machine's accelerators as a ResourceSlice, with the attribute
names of NVIDIA's DRA driver (``gpu.nvidia.com``).

NVML (``nvidia-ml-py``) is imported lazily; on a host without it, or without a GPU, there
is nothing to publish and :func:`discover` returns ``None``. MIG devices are published
beside (not instead of) their parent when MIG mode is on.
"""

from __future__ import annotations

import re
import socket
from types import ModuleType
from typing import Any

from bosun.devices.model import ResourceSlice

__all__ = ["NVIDIA_DRIVER", "discover", "nvidia_slice"]

NVIDIA_DRIVER = "gpu.nvidia.com"
_ARCHITECTURES = {
    2: "Kepler",
    3: "Maxwell",
    4: "Pascal",
    5: "Volta",
    6: "Turing",
    7: "Ampere",
    8: "Ada Lovelace",
    9: "Hopper",
    10: "Blackwell",
}
_BRANDS = {
    1: "Quadro",
    2: "Tesla",
    3: "NVS",
    4: "Grid",
    5: "GeForce",
    6: "Titan",
    12: "NvidiaRTX",
    13: "Nvidia",
    14: "Nvidia",
}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _semver(version: str) -> str:
    """A driver version as semver: 580.159.04 -> 580.159.4; 13.0 -> 13.0.0."""
    parts = [int(p) for p in re.findall(r"\d+", version)[:3]]
    parts += [0] * (3 - len(parts))
    return ".".join(str(p) for p in parts)


def _attr(kind: str, value: Any) -> dict[str, Any]:
    return {kind: value}


def _gpu_device(
    nvml: Any, handle: Any, index: int, driver_version: str, cuda_version: str
) -> tuple[dict[str, Any], str]:
    minor = int(nvml.nvmlDeviceGetMinorNumber(handle))
    uuid = _text(nvml.nvmlDeviceGetUUID(handle))
    major_cc, minor_cc = nvml.nvmlDeviceGetCudaComputeCapability(handle)
    memory = int(nvml.nvmlDeviceGetMemoryInfo(handle).total)
    pci = _text(nvml.nvmlDeviceGetPciInfo(handle).busId)
    attributes = {
        "type": _attr("string", "gpu"),
        "uuid": _attr("string", uuid),
        "productName": _attr("string", _text(nvml.nvmlDeviceGetName(handle))),
        "brand": _attr("string", _BRANDS.get(int(nvml.nvmlDeviceGetBrand(handle)), "Nvidia")),
        "architecture": _attr(
            "string", _ARCHITECTURES.get(int(nvml.nvmlDeviceGetArchitecture(handle)), "unknown")
        ),
        "cudaComputeCapability": _attr("version", f"{major_cc}.{minor_cc}.0"),
        "driverVersion": _attr("version", _semver(driver_version)),
        "cudaDriverVersion": _attr("version", _semver(cuda_version)),
        "index": _attr("int", index),
        "minor": _attr("int", minor),
        "resource.kubernetes.io/pciBusID": _attr("string", pci.lower()),
    }
    device = {
        "name": f"gpu-{minor}",
        "attributes": attributes,
        "capacity": {"memory": {"value": str(memory)}},
    }
    return device, uuid


def _mig_devices(
    nvml: Any, handle: Any, parent: dict[str, Any], parent_uuid: str
) -> list[dict[str, Any]]:
    try:
        current, _pending = nvml.nvmlDeviceGetMigMode(handle)
    except Exception:  # NVML raises NVMLError_NotSupported on GPUs without MIG
        return []
    if not current:
        return []
    out = []
    for i in range(int(nvml.nvmlDeviceGetMaxMigDeviceCount(handle))):
        try:
            mig = nvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, i)
        except Exception:  # an empty slot
            continue
        a = nvml.nvmlDeviceGetAttributes(mig)
        gi = int(nvml.nvmlDeviceGetGpuInstanceId(mig))
        ci = int(nvml.nvmlDeviceGetComputeInstanceId(mig))
        memory_mb = int(a.memorySizeMB)
        profile = f"{a.gpuInstanceSliceCount}g.{round(memory_mb / 1024)}gb"
        attributes = {
            k: v
            for k, v in parent["attributes"].items()
            if k
            in (
                "productName",
                "brand",
                "architecture",
                "cudaComputeCapability",
                "driverVersion",
                "cudaDriverVersion",
                "resource.kubernetes.io/pciBusID",
            )
        }
        attributes |= {
            "type": _attr("string", "mig"),
            "uuid": _attr("string", _text(nvml.nvmlDeviceGetUUID(mig))),
            "parentUUID": _attr("string", parent_uuid),
            "profile": _attr("string", profile),
        }
        capacity = {
            "multiprocessors": a.multiprocessorCount,
            "copyEngines": a.sharedCopyEngineCount,
            "decoders": a.sharedDecoderCount,
            "encoders": a.sharedEncoderCount,
            "jpegEngines": a.sharedJpegCount,
            "ofaEngines": a.sharedOfaCount,
            "memory": memory_mb * 2**20,
        }
        out.append(
            {
                "name": f"{parent['name']}-mig-{gi}-{ci}",
                "attributes": attributes,
                "capacity": {k: {"value": str(v)} for k, v in capacity.items()},
            }
        )
    return out


def nvidia_slice(nvml: Any, node_name: str) -> ResourceSlice | None:
    """The GPUs NVML reports, as the ResourceSlice NVIDIA's driver would publish."""
    nvml.nvmlInit()
    try:
        count = int(nvml.nvmlDeviceGetCount())
        if count == 0:
            return None
        driver_version = _text(nvml.nvmlSystemGetDriverVersion())
        cuda = int(nvml.nvmlSystemGetCudaDriverVersion())
        cuda_version = f"{cuda // 1000}.{cuda % 1000 // 10}"
        devices = []
        for index in range(count):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            device, uuid = _gpu_device(nvml, handle, index, driver_version, cuda_version)
            devices.append(device)
            devices.extend(_mig_devices(nvml, handle, device, uuid))
    finally:
        nvml.nvmlShutdown()
    return ResourceSlice.model_validate(
        {
            "apiVersion": "resource.k8s.io/v1",
            "kind": "ResourceSlice",
            "metadata": {"name": f"{node_name}-{NVIDIA_DRIVER}"},
            "spec": {
                "driver": NVIDIA_DRIVER,
                "nodeName": node_name,
                "pool": {"name": node_name, "generation": 1, "resourceSliceCount": 1},
                "devices": devices,
            },
        }
    )


def _load_nvml() -> ModuleType | None:
    try:
        import pynvml  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    return pynvml  # type: ignore[no-any-return,unused-ignore]


def discover(node_name: str | None = None, nvml: Any = None) -> ResourceSlice | None:
    """This machine's accelerators, or ``None`` on a CPU-only host."""
    nvml = nvml if nvml is not None else _load_nvml()
    if nvml is None:
        return None
    name = node_name or re.sub(r"[^a-z0-9.-]", "-", socket.gethostname().lower()).strip(".-")
    try:
        return nvidia_slice(nvml, name)
    except Exception as exc:
        # NVMLError_LibraryNotFound / DriverNotLoaded: no usable GPU on this host.
        if type(exc).__name__.startswith("NVMLError"):
            return None
        raise
