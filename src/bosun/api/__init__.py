"""The Workspace API: pydantic models, validation, conditions and the generated CRD.

Pure data and checks; no I/O beyond reading a file the caller names. Must not import
kopf, kubernetes, torch or fastapi.
"""

from bosun.api.conditions import Condition, ConditionType, set_condition
from bosun.api.errors import BosunError, Problem, WorkspaceError
from bosun.api.load import load_workspace, parse_workspace, preset_workspace, read_workspace
from bosun.api.workspace import (
    API_VERSION,
    DEFAULT_IDLE_TIMEOUT_S,
    Accelerator,
    Inference,
    ModelSource,
    PlanStatus,
    Quantization,
    Resource,
    Runtime,
    SharingStrategy,
    Tuning,
    TuningMethod,
    Workspace,
    WorkspaceSpec,
    WorkspaceStatus,
)

__all__ = [
    "API_VERSION",
    "DEFAULT_IDLE_TIMEOUT_S",
    "Accelerator",
    "BosunError",
    "Condition",
    "ConditionType",
    "Inference",
    "ModelSource",
    "PlanStatus",
    "Problem",
    "Quantization",
    "Resource",
    "Runtime",
    "SharingStrategy",
    "Tuning",
    "TuningMethod",
    "Workspace",
    "WorkspaceError",
    "WorkspaceSpec",
    "WorkspaceStatus",
    "load_workspace",
    "parse_workspace",
    "preset_workspace",
    "read_workspace",
    "set_condition",
]
