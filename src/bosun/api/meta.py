"""Shared Kubernetes building blocks: object metadata, quantities and DNS names."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema
from pydantic.alias_generators import to_camel

from bosun.api.quantity import QUANTITY_PATTERN, parse_quantity
from bosun.api.validators import (
    DNS1123_LABEL,
    DNS1123_SUBDOMAIN,
    check_dns1123_label,
    check_dns1123_subdomain,
)

__all__ = ["DnsLabel", "DnsSubdomain", "KubeModel", "ObjectMeta", "Quantity", "cel_rules"]


def cel_rules(*rules: tuple[str, str]) -> dict[str, Any]:
    """``json_schema_extra`` carrying CEL rules (rule, message) into the CRD."""
    return {"x-kubernetes-validations": [{"rule": r, "message": m} for r, m in rules]}


class KubeModel(BaseModel):
    """Base of Kubernetes-shaped models: camelCase on the wire, unknown fields rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
    )


def _quantity(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"{value!r} is not a quantity (expected forms like 16Gi, 500m, 2)")
    parse_quantity(value)
    return str(value)


Quantity = Annotated[
    str,
    BeforeValidator(_quantity),
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": QUANTITY_PATTERN,
            "x-kubernetes-int-or-string": True,
        }
    ),
]
DnsLabel = Annotated[
    str,
    AfterValidator(check_dns1123_label),
    WithJsonSchema({"type": "string", "maxLength": 63, "pattern": DNS1123_LABEL}),
]
DnsSubdomain = Annotated[
    str,
    AfterValidator(check_dns1123_subdomain),
    WithJsonSchema({"type": "string", "maxLength": 253, "pattern": DNS1123_SUBDOMAIN}),
]


class ObjectMeta(KubeModel):
    """The parts of Kubernetes ``metadata`` that Bosun reads; the server's own fields pass."""

    name: DnsSubdomain
    namespace: DnsLabel | None = None
    uid: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    generation: int | None = None
    resource_version: str | None = None
    creation_timestamp: str | None = None
    deletion_timestamp: str | None = None
    deletion_grace_period_seconds: int | None = None
    generate_name: str | None = None
    finalizers: list[str] = Field(default_factory=list)
    owner_references: list[dict[str, Any]] = Field(default_factory=list)
    managed_fields: list[dict[str, Any]] = Field(default_factory=list)
    self_link: str | None = None
