"""Discovery through NVML, with a stand-in NVML that reports what the lent H100 reported."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from bosun.devices.allocator import Allocator
from bosun.devices.discovery import discover
from bosun.devices.model import DeviceClass, ResourceClaim
from bosun.devices.nodes import NodeInfo


class FakeNVML:
    """The subset of pynvml that discovery calls; values from GPU.md's probe of the H100."""

    def __init__(self, gpus: int = 1, mig: bool = False) -> None:
        self.gpus, self.mig, self.initialised = gpus, mig, False

    def nvmlInit(self) -> None:
        self.initialised = True

    def nvmlShutdown(self) -> None:
        self.initialised = False

    def nvmlDeviceGetCount(self) -> int:
        return self.gpus

    def nvmlSystemGetDriverVersion(self) -> str:
        return "580.159.04"

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        return 13000

    def nvmlDeviceGetHandleByIndex(self, i: int) -> Any:
        return ("gpu", i)

    def nvmlDeviceGetMinorNumber(self, h: Any) -> int:
        return h[1]

    def nvmlDeviceGetUUID(self, h: Any) -> str:
        return f"GPU-{h[1]:08d}" if h[0] == "gpu" else f"MIG-{h[1]}-{h[2]}"

    def nvmlDeviceGetName(self, h: Any) -> bytes:
        return b"NVIDIA H100 80GB HBM3"

    def nvmlDeviceGetBrand(self, h: Any) -> int:
        return 14

    def nvmlDeviceGetArchitecture(self, h: Any) -> int:
        return 9

    def nvmlDeviceGetCudaComputeCapability(self, h: Any) -> tuple[int, int]:
        return (9, 0)

    def nvmlDeviceGetMemoryInfo(self, h: Any) -> Any:
        return SimpleNamespace(total=85_520_809_984)

    def nvmlDeviceGetPciInfo(self, h: Any) -> Any:
        return SimpleNamespace(busId=b"00000000:00:06.0")

    def nvmlDeviceGetMigMode(self, h: Any) -> tuple[int, int]:
        return (1, 1) if self.mig else (0, 0)

    def nvmlDeviceGetMaxMigDeviceCount(self, h: Any) -> int:
        return 2

    def nvmlDeviceGetMigDeviceHandleByIndex(self, h: Any, i: int) -> Any:
        return ("mig", h[1], i)

    def nvmlDeviceGetAttributes(self, h: Any) -> Any:
        return SimpleNamespace(
            memorySizeMB=9984,
            gpuInstanceSliceCount=1,
            multiprocessorCount=16,
            sharedCopyEngineCount=1,
            sharedDecoderCount=1,
            sharedEncoderCount=0,
            sharedJpegCount=1,
            sharedOfaCount=0,
        )

    def nvmlDeviceGetGpuInstanceId(self, h: Any) -> int:
        return 7 + h[2]

    def nvmlDeviceGetComputeInstanceId(self, h: Any) -> int:
        return 0


def test_gpu_is_published_with_nvidia_attribute_names() -> None:
    found = discover("node-1", nvml=FakeNVML(gpus=2))
    assert found is not None
    spec = found.spec
    assert (spec.driver, spec.node_name, spec.pool.name) == ("gpu.nvidia.com", "node-1", "node-1")
    gpu = spec.devices[0]
    assert gpu.name == "gpu-0"
    attrs = {k: v.value for k, v in gpu.attributes.items()}
    assert attrs["type"] == "gpu" and attrs["productName"] == "NVIDIA H100 80GB HBM3"
    assert attrs["architecture"] == "Hopper"
    assert attrs["cudaComputeCapability"] == "9.0.0"
    assert attrs["driverVersion"] == "580.159.4"  # semver has no leading zeros
    assert attrs["resource.kubernetes.io/pciBusID"] == "00000000:00:06.0"
    assert gpu.capacity["memory"].value == "85520809984"
    assert len(spec.devices) == 2


def test_mig_devices_are_published_beside_their_gpu() -> None:
    found = discover("node-1", nvml=FakeNVML(mig=True))
    assert found is not None
    names = [d.name for d in found.spec.devices]
    assert names == ["gpu-0", "gpu-0-mig-7-0", "gpu-0-mig-8-0"]
    mig = found.spec.devices[1]
    attrs = {k: v.value for k, v in mig.attributes.items()}
    assert attrs["type"] == "mig" and attrs["profile"] == "1g.10gb"
    assert attrs["parentUUID"] == "GPU-00000000"
    assert mig.capacity["multiprocessors"].value == "16"


def test_discovered_slice_allocates_with_the_nvidia_device_class() -> None:
    found = discover("node-1", nvml=FakeNVML(gpus=2))
    assert found is not None
    gpu_class = DeviceClass.model_validate(
        {
            "metadata": {"name": "gpu.nvidia.com"},
            "spec": {
                "selectors": [
                    {
                        "cel": {
                            "expression": "device.driver == 'gpu.nvidia.com' && device.attributes['gpu.nvidia.com'].type == 'gpu'"
                        }
                    }
                ]
            },
        }
    )
    claim = ResourceClaim.model_validate(
        {
            "metadata": {"name": "c"},
            "spec": {
                "devices": {
                    "requests": [
                        {
                            "name": "gpu",
                            "exactly": {
                                "deviceClassName": "gpu.nvidia.com",
                                "count": 2,
                                "selectors": [
                                    {
                                        "cel": {
                                            "expression": "device.attributes['gpu.nvidia.com'].cudaComputeCapability"
                                            ".isGreaterThan(semver('8.0.0'))"
                                        }
                                    }
                                ],
                            },
                        }
                    ]
                }
            },
        }
    )
    results = Allocator([gpu_class], [found]).allocate(NodeInfo("node-1"), [claim])
    assert results is not None and len(results[0].devices.results) == 2


def test_nothing_without_nvml_or_gpus() -> None:
    assert discover("node-1", nvml=FakeNVML(gpus=0)) is None

    class Broken(FakeNVML):
        def nvmlInit(self) -> None:
            raise type("NVMLError_LibraryNotFound", (Exception,), {})()

    assert discover("node-1", nvml=Broken()) is None
