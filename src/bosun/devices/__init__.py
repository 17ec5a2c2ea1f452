"""Devices: the DRA object model, the CEL seam, the structured-parameters allocator and
device discovery.

Pure computation except discovery, which reads NVML lazily at its edge. Must not import
kopf, kubernetes, torch or fastapi.
"""

from bosun.devices.allocator import AllocationError, Allocator, DeviceID, Features
from bosun.devices.cel import CELError
from bosun.devices.nodes import NodeInfo

__all__ = ["AllocationError", "Allocator", "CELError", "DeviceID", "Features", "NodeInfo"]
