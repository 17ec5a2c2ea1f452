"""The model catalog and sizing: presets as data, accelerator profiles, the estimator.

``plan_workspace`` turns a Workspace plus target hardware into a :class:`Plan` (devices,
parallelism, runtime, memory breakdown). Pure computation over data files, plus reading
a bring-your-own model's ``config.json`` and safetensors headers. Must not import kopf,
kubernetes, torch or fastapi.
"""

from bosun.catalog.accelerators import (
    AcceleratorProfile,
    InstanceType,
    all_instance_types,
    all_profiles,
    get_instance_type,
    get_profile,
)
from bosun.catalog.presets import ModelSpec, all_presets, get_preset
from bosun.catalog.sizing import Memory, Plan, PlanError, plan_workspace

__all__ = [
    "AcceleratorProfile",
    "InstanceType",
    "Memory",
    "ModelSpec",
    "Plan",
    "PlanError",
    "all_instance_types",
    "all_presets",
    "all_profiles",
    "get_instance_type",
    "get_preset",
    "get_profile",
    "plan_workspace",
]
