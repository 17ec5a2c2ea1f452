"""Accelerator profiles (GPUs, MIG slices, CPU) and cloud instance types.

Data lives in ``catalog/data/accelerators.yaml`` and ``instance-types.yaml``.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from functools import cache
from importlib import resources

from bosun.api.errors import BosunError
from bosun.api.load import load_yaml_documents

__all__ = [
    "CPU",
    "AcceleratorProfile",
    "InstanceType",
    "UnknownAcceleratorError",
    "all_instance_types",
    "all_profiles",
    "cpu_profile",
    "get_instance_type",
    "get_profile",
    "mig_profile",
]

CPU = "cpu"
# The share of a MIG slice's nominal memory left to programs (the rest is reserved).
_MIG_USABLE = 0.95


@dataclass(frozen=True)
class AcceleratorProfile:
    """One kind of device a replica's pods can be given."""

    name: str
    kind: str  # "gpu", "mig" or "cpu"
    memory_bytes: int
    product_name: str = ""
    architecture: str = ""
    compute_capability: str = ""
    bandwidth_gbs: float = 0.0
    bf16_tflops: float = 0.0
    parent: str | None = None  # the full GPU a MIG slice is cut from
    mig_profile: str | None = None  # as 1g.10gb
    mig_profiles: tuple[str, ...] = ()  # the slices a full GPU offers

    @property
    def is_gpu(self) -> bool:
        return self.kind in ("gpu", "mig")

    def compute_below(self, version: str) -> bool:
        """Whether a known compute capability is older than ``version`` ("8.0"), compared
        as numbers: "12.0" is newer than "8.0", which a string comparison gets wrong."""
        if not self.compute_capability:
            return False
        have = tuple(int(part) for part in self.compute_capability.split("."))
        return have < tuple(int(part) for part in version.split("."))


@dataclass(frozen=True)
class InstanceType:
    name: str
    provider: str  # azure, aws or gcp
    profile: str
    count: int


@cache
def _data() -> tuple[dict[str, AcceleratorProfile], dict[str, dict[str, int]]]:
    (raw,) = load_yaml_documents(
        resources.files("bosun.catalog").joinpath("data/accelerators.yaml").read_text("utf-8")
    )
    profiles: dict[str, AcceleratorProfile] = {}
    slices: dict[str, dict[str, int]] = {}
    for row in raw["gpus"]:
        mig: dict[str, int] = row.get("mig") or {}
        profiles[row["name"]] = AcceleratorProfile(
            name=row["name"],
            kind="gpu",
            memory_bytes=int(row["memoryBytes"]),
            product_name=row["productName"],
            architecture=row["architecture"],
            compute_capability=str(row["computeCapability"]),
            bandwidth_gbs=float(row["bandwidthGBs"]),
            bf16_tflops=float(row["bf16Tflops"]),
            mig_profiles=tuple(mig),
        )
        slices[row["name"]] = mig
    return profiles, slices


def mig_profile(parent_name: str, profile: str) -> AcceleratorProfile:
    """The MIG slice ``profile`` (as ``1g.10gb``) of the GPU ``parent_name``."""
    _, slices = _data()
    parent = get_profile(parent_name)
    eighths = slices.get(parent.name, {}).get(profile)
    if eighths is None:
        offered = ", ".join(parent.mig_profiles) or "none"
        raise UnknownAcceleratorError(
            f"{parent.name} has no MIG profile {profile!r} (it offers: {offered})"
        )
    return AcceleratorProfile(
        name=f"{parent.name}-mig-{profile}",
        kind="mig",
        memory_bytes=int(parent.memory_bytes * eighths / 8 * _MIG_USABLE),
        product_name=parent.product_name,
        architecture=parent.architecture,
        compute_capability=parent.compute_capability,
        bandwidth_gbs=parent.bandwidth_gbs * eighths / 8,
        bf16_tflops=parent.bf16_tflops * eighths / 8,
        parent=parent.name,
        mig_profile=profile,
    )


def cpu_profile(memory_bytes: int) -> AcceleratorProfile:
    """A CPU-only node with ``memory_bytes`` for the model server."""
    return AcceleratorProfile(name=CPU, kind="cpu", memory_bytes=memory_bytes)


def all_profiles() -> list[AcceleratorProfile]:
    """Full-GPU profiles and every MIG slice they offer."""
    profiles, _ = _data()
    out: list[AcceleratorProfile] = []
    for profile in profiles.values():
        out.append(profile)
        out.extend(mig_profile(profile.name, p) for p in profile.mig_profiles)
    return out


class UnknownAcceleratorError(BosunError):
    pass


def get_profile(name: str) -> AcceleratorProfile:
    """A GPU profile by name; ``NAME-mig-1g.10gb`` names a MIG slice."""
    profiles, _ = _data()
    key = name.strip().lower()
    if key in profiles:
        return profiles[key]
    if "-mig-" in key:
        parent, _, profile = key.partition("-mig-")
        return mig_profile(parent, profile)
    names = [*profiles, CPU]
    close = difflib.get_close_matches(key, names, n=3, cutoff=0.4)
    hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(names)}"
    raise UnknownAcceleratorError(f"unknown accelerator profile {name!r}{hint}")


@cache
def _instance_types() -> dict[str, InstanceType]:
    (raw,) = load_yaml_documents(
        resources.files("bosun.catalog").joinpath("data/instance-types.yaml").read_text("utf-8")
    )
    return {
        name: InstanceType(name, provider, row["gpu"], int(row["count"]))
        for provider, rows in raw.items()
        for name, row in rows.items()
    }


def all_instance_types() -> list[InstanceType]:
    return list(_instance_types().values())


def get_instance_type(name: str) -> InstanceType:
    types = _instance_types()
    if name in types:
        return types[name]
    folded = {k.lower(): v for k, v in types.items()}
    if name.lower() in folded:
        return folded[name.lower()]
    close = difflib.get_close_matches(name, list(types), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise UnknownAcceleratorError(
        f"unknown instance type {name!r}{hint} (`bosun accelerators` lists them)"
    )
