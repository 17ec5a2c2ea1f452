"""The Workspace and RAGEngine CustomResourceDefinitions, generated from the pydantic
models.

Pydantic's JSON schema is turned into a Kubernetes *structural* schema: references are
inlined, ``Optional`` unions dropped (absent means unset), free-form maps marked
``x-kubernetes-preserve-unknown-fields``, numeric ``exclusiveMinimum`` rewritten in the
OpenAPI 3.0 form, and the CEL rules declared on the models kept as
``x-kubernetes-validations``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from bosun.api.rag import RAG_KIND, RAGEngine
from bosun.api.workspace import GROUP, KIND, VERSION, Workspace

__all__ = [
    "PRINTER_COLUMNS",
    "RAG_PRINTER_COLUMNS",
    "crds",
    "rag_engine_crd",
    "rag_engine_openapi_schema",
    "workspace_crd",
    "workspace_openapi_schema",
]

_DROP = {"title", "$defs"}


def _condition_column(name: str, condition: str) -> dict[str, Any]:
    return {
        "name": name,
        "type": "string",
        "jsonPath": f'.status.conditions[?(@.type=="{condition}")].status',
    }


PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Model", "type": "string", "jsonPath": ".status.plan.model"},
    {"name": "Runtime", "type": "string", "jsonPath": ".status.plan.runtime"},
    {"name": "Devices", "type": "string", "jsonPath": ".status.plan.devices"},
    _condition_column("ResourceReady", "ResourceReady"),
    _condition_column("InferenceReady", "InferenceReady"),
    _condition_column("Ready", "WorkspaceSucceeded"),
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]
RAG_PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Embedding", "type": "string", "jsonPath": ".spec.embedding.preset.name"},
    {"name": "Workspace", "type": "string", "jsonPath": ".spec.inference.workspace"},
    {"name": "Endpoint", "type": "string", "jsonPath": ".status.endpoint"},
    _condition_column("Ready", "Ready"),
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def _structural(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    node = dict(node)
    if "$ref" in node:
        target = defs[node.pop("$ref").rsplit("/", 1)[-1]]
        node = {**target, **node}
        return _structural(node, defs)
    if "anyOf" in node and not node.get("x-kubernetes-int-or-string"):
        options = [o for o in node.pop("anyOf") if o.get("type") != "null"]
        if len(options) != 1:
            raise ValueError(f"cannot express this union in a structural schema: {options}")
        node = {**options[0], **node}
        if node.get("default", ...) is None:
            del node["default"]
        return _structural(node, defs)
    if "allOf" in node and len(node["allOf"]) == 1:
        node = {**node.pop("allOf")[0], **node}
        return _structural(node, defs)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP:
            continue
        if key == "properties":
            out[key] = {k: _structural(v, defs) for k, v in value.items()}
        elif key == "items":
            out[key] = _structural(value, defs)
        elif key == "additionalProperties":
            if value is True or value == {}:
                out["x-kubernetes-preserve-unknown-fields"] = True
            elif value is not False:
                out[key] = _structural(value, defs)
        elif key == "const":
            out["enum"] = [value]
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True
        elif key == "default" and value is None:
            continue
        else:
            out[key] = value
    if "properties" in out or out.get("x-kubernetes-preserve-unknown-fields"):
        out.setdefault("type", "object")
    if out.get("type") == "object" and "properties" in out and not out["properties"]:
        del out["properties"]
        out["x-kubernetes-preserve-unknown-fields"] = True
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    return out


def _openapi_schema(model: type[BaseModel]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    schema = _structural(raw, raw.get("$defs", {}))
    props = schema["properties"]
    # Kubernetes owns metadata's schema; a CRD may only say it is an object.
    props["metadata"] = {"type": "object"}
    props["apiVersion"] = {"type": "string"}
    props["kind"] = {"type": "string"}
    schema["required"] = ["spec"]
    props["status"]["properties"]["conditions"]["x-kubernetes-list-type"] = "map"
    props["status"]["properties"]["conditions"]["x-kubernetes-list-map-keys"] = ["type"]
    return schema


def workspace_openapi_schema() -> dict[str, Any]:
    """The structural openAPIV3Schema of a Workspace."""
    return _openapi_schema(Workspace)


def rag_engine_openapi_schema() -> dict[str, Any]:
    """The structural openAPIV3Schema of a RAGEngine."""
    return _openapi_schema(RAGEngine)


def _crd(
    kind: str,
    plural: str,
    short: str,
    schema: dict[str, Any],
    subresources: dict[str, Any],
    columns: list[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{GROUP}",
            "labels": {"app.kubernetes.io/part-of": "bosun"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": [short],
                "categories": ["bosun", "ai"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": schema},
                    "subresources": subresources,
                    "additionalPrinterColumns": columns,
                }
            ],
        },
    }


def workspace_crd() -> dict[str, Any]:
    """The CustomResourceDefinition for ``workspaces.bosun.dev``."""
    scale = {
        "specReplicasPath": ".spec.resource.count",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }
    return _crd(
        KIND,
        "workspaces",
        "ws",
        workspace_openapi_schema(),
        {"status": {}, "scale": scale},
        PRINTER_COLUMNS,
    )


def rag_engine_crd() -> dict[str, Any]:
    """The CustomResourceDefinition for ``ragengines.bosun.dev`` (one writer per index:
    no scale subresource)."""
    return _crd(
        RAG_KIND,
        "ragengines",
        "rag",
        rag_engine_openapi_schema(),
        {"status": {}},
        RAG_PRINTER_COLUMNS,
    )


def crds() -> list[dict[str, Any]]:
    """Every Bosun CustomResourceDefinition."""
    return [workspace_crd(), rag_engine_crd()]
