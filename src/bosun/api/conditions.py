"""Status conditions in the Kubernetes shape (``metav1.Condition``), and helpers to set them."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

__all__ = ["Condition", "ConditionType", "now", "set_condition"]


class ConditionType(StrEnum):
    RESOURCE_READY = "ResourceReady"
    INFERENCE_READY = "InferenceReady"
    JOB_STARTED = "JobStarted"
    JOB_SUCCEEDED = "JobSucceeded"
    WORKSPACE_SUCCEEDED = "WorkspaceSucceeded"


class Condition(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )

    type: str = Field(min_length=1, max_length=316)
    status: Literal["True", "False", "Unknown"]
    reason: str = Field(
        min_length=1, max_length=1024, pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"
    )
    message: str = Field(default="", max_length=32768)
    last_transition_time: str = Field(description="RFC 3339 time of the last status change.")
    observed_generation: int | None = Field(default=None, ge=0)


def now() -> str:
    """The current time as Kubernetes writes it (RFC 3339, seconds, UTC)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def set_condition(
    conditions: list[Condition],
    type: str,
    status: Literal["True", "False", "Unknown"],
    reason: str,
    message: str = "",
    observed_generation: int | None = None,
    at: str | None = None,
) -> list[Condition]:
    """Return ``conditions`` with ``type`` set; the transition time moves only on a change."""
    previous = next((c for c in conditions if c.type == type), None)
    when = at or now()
    if previous is not None and previous.status == status:
        when = previous.last_transition_time
    updated = Condition(
        type=type,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=when,
        observed_generation=observed_generation,
    )
    return [c for c in conditions if c.type != type] + [updated]
