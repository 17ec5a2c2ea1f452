"""Check objects the way the API server checks custom resources: the openAPIV3Schema
(structure, types, patterns, bounds) and the CEL rules of ``x-kubernetes-validations``.

Transition rules (those that read ``oldSelf``) run only when an old object is given, as
on an update; the others run always.
"""

from __future__ import annotations

from typing import Any

import cel
import jsonschema


def schema_errors(schema: dict[str, Any], obj: Any) -> list[str]:
    """Structural errors; OpenAPI 3.0 is JSON Schema draft 4 for what CRDs use."""
    validator = jsonschema.Draft4Validator(_strict(schema))
    return [
        f"{'.'.join(str(p) for p in e.absolute_path)}: {e.message}"
        for e in validator.iter_errors(obj)
    ]


def _strict(schema: dict[str, Any]) -> dict[str, Any]:
    """Unknown fields are pruned by the API server; for tests, make them errors instead."""
    out = {k: v for k, v in schema.items() if not k.startswith("x-kubernetes")}
    if "properties" in out:
        out["properties"] = {k: _strict(v) for k, v in out["properties"].items()}
        if not schema.get("x-kubernetes-preserve-unknown-fields"):
            out.setdefault("additionalProperties", False)
    if isinstance(out.get("items"), dict):
        out["items"] = _strict(out["items"])
    if isinstance(out.get("additionalProperties"), dict):
        out["additionalProperties"] = _strict(out["additionalProperties"])
    return out


def cel_errors(schema: dict[str, Any], obj: Any, old: Any = None, path: str = "") -> list[str]:
    errors: list[str] = []
    for rule in schema.get("x-kubernetes-validations", []):
        transition = "oldSelf" in rule["rule"]
        if transition and old is None:
            continue
        context = {"self": obj, "oldSelf": old} if transition else {"self": obj}
        if cel.evaluate(rule["rule"], context) is not True:
            errors.append(f"{path or '<root>'}: {rule.get('message', rule['rule'])}")
    if isinstance(obj, dict):
        for key, sub in schema.get("properties", {}).items():
            if key in obj:
                sub_old = old.get(key) if isinstance(old, dict) else None
                errors += cel_errors(sub, obj[key], sub_old, f"{path}.{key}".lstrip("."))
    if isinstance(obj, list) and "items" in schema:
        for i, item in enumerate(obj):
            errors += cel_errors(schema["items"], item, None, f"{path}[{i}]")
    return errors
