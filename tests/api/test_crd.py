"""The generated CRD: valid for Kubernetes, and it accepts and rejects what the models do."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from bosun.api.crd import workspace_crd, workspace_openapi_schema
from tests.conftest import example_data, workspace_data
from tests.crdcheck import cel_errors, schema_errors


def test_crd_is_a_valid_kubernetes_object() -> None:
    kubernetes_validate.validate(workspace_crd(), "1.34.0", strict=True)


def test_crd_names_subresources_and_columns() -> None:
    crd = workspace_crd()
    spec = crd["spec"]
    assert crd["metadata"]["name"] == "workspaces.bosun.dev"
    assert spec["names"]["shortNames"] == ["ws"]
    assert spec["scope"] == "Namespaced"
    version = spec["versions"][0]
    assert version["name"] == "v1alpha1"
    assert version["subresources"]["scale"]["specReplicasPath"] == ".spec.resource.count"
    assert "status" in version["subresources"]
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns == [
        "Model",
        "Runtime",
        "Devices",
        "ResourceReady",
        "InferenceReady",
        "Ready",
        "Age",
    ]


def _structural(node: Any, path: str = "") -> list[str]:
    """Places that break Kubernetes' structural-schema rules."""
    problems = []
    if isinstance(node, dict):
        if "$ref" in node or "$defs" in node:
            problems.append(f"{path}: references are not allowed")
        is_schema = "type" in node or "properties" in node or "anyOf" in node
        if is_schema and "type" not in node and not node.get("x-kubernetes-int-or-string"):
            problems.append(f"{path}: every schema node needs a type")
        for key, value in node.items():
            if key in ("properties",):
                for name, sub in value.items():
                    problems += _structural(sub, f"{path}.{name}")
            elif key in ("items", "additionalProperties") and isinstance(value, dict):
                problems += _structural(value, f"{path}[]")
    return problems


def test_schema_is_structural() -> None:
    assert _structural(workspace_openapi_schema()) == []


def _crd_errors(obj: dict[str, Any], old: dict[str, Any] | None = None) -> list[str]:
    schema = workspace_openapi_schema()
    return schema_errors(schema, obj) + cel_errors(schema, obj, old)


def test_examples_pass_schema_and_cel_rules(example_file: Path) -> None:
    assert _crd_errors(yaml.safe_load(example_file.read_text(encoding="utf-8"))) == []


BAD: list[tuple[str, dict[str, Any], str]] = [
    ("unknown field", {"resource": {"gpus": 2}}, "Additional properties"),
    ("negative count", {"resource": {"count": -1}}, "less than the minimum"),
    ("bad quantity", {"resource": {"memory": "lots"}}, "does not match"),
    ("floor over count", {"resource": {"count": 1, "minReplicas": 2}}, "more than count"),
    ("idle without floor", {"resource": {"idleTimeoutSeconds": 60}}, "needs minReplicas"),
    ("negative floor", {"resource": {"minReplicas": -1}}, "less than the minimum"),
    (
        "a tuning job scaled to zero",
        {
            "inference": None,
            "resource": {"minReplicas": 0},
            "tuning": {
                "preset": {"name": "x"},
                "input": {"uris": ["hf://o/d"]},
                "output": {"uri": "file:///o"},
            },
        },
        "a fine-tuning job runs once",
    ),
    (
        "preset and model",
        {"inference": {"preset": {"name": "x"}, "model": {"uri": "hf://a/b"}}},
        "exactly one of 'preset' and 'model'",
    ),
    ("neither preset nor model", {"inference": {}}, "exactly one of 'preset' and 'model'"),
    ("unknown scheme", {"inference": {"model": {"uri": "s3://b/m"}}}, "does not match"),
    ("bad runtime", {"inference": {"preset": {"name": "x"}, "runtime": "tgi"}}, "is not one of"),
    (
        "duplicate adapters",
        {
            "inference": {
                "preset": {"name": "x"},
                "adapters": [
                    {"name": "a", "source": {"uri": "hf://o/a"}},
                    {"name": "a", "source": {"uri": "hf://o/b"}},
                ],
            }
        },
        "adapter names must be unique",
    ),
    (
        "adapter from the metadata service",
        {
            "inference": {
                "preset": {"name": "x"},
                "adapters": [{"name": "a", "source": {"uri": "http://169.254.169.254/latest"}}],
            }
        },
        "must not point at loopback, private, link-local or metadata",
    ),
    (
        "tuning data from a private address",
        {
            "inference": None,
            "tuning": {
                "preset": {"name": "x"},
                "input": {"uris": ["https://192.168.1.10/d.jsonl"]},
                "output": {"uri": "file:///o"},
            },
        },
        "must not point at loopback, private, link-local or metadata",
    ),
    (
        "bad adapter name",
        {
            "inference": {
                "preset": {"name": "x"},
                "adapters": [{"name": "A_B", "source": {"uri": "hf://o/a"}}],
            }
        },
        "does not match",
    ),
    (
        "too many adapters",
        {
            "inference": {
                "preset": {"name": "x"},
                "adapters": [{"name": f"a{i}", "source": {"uri": "hf://o/a"}} for i in range(11)],
            }
        },
        "is too long",
    ),
    (
        "inference and tuning",
        {
            "tuning": {
                "preset": {"name": "x"},
                "input": {"uris": ["hf://o/d"]},
                "output": {"uri": "file:///o"},
            }
        },
        "exactly one of 'inference' and 'tuning'",
    ),
]


@pytest.mark.parametrize(("spec", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_workspaces_fail_the_crd(spec: dict[str, Any], message: str) -> None:
    data = workspace_data(**spec)
    data["spec"] = {k: v for k, v in data["spec"].items() if v is not None}
    errors = _crd_errors(data)
    assert any(message in e for e in errors), errors


def test_tuning_output_needs_one_destination() -> None:
    data = example_data("06-")
    data["spec"]["tuning"]["output"] = {}
    assert any("exactly one of 'volume' and 'uri'" in e for e in _crd_errors(data))


@pytest.mark.parametrize(
    "uri", ["https://huggingface.co/org/adapter", "https://localhost.example.com/a", "hf://o/a"]
)
def test_public_sources_pass_the_crd(uri: str) -> None:
    data = workspace_data(
        inference={"preset": {"name": "x"}, "adapters": [{"name": "a", "source": {"uri": uri}}]}
    )
    assert _crd_errors(data) == []


def test_immutable_preset_is_a_transition_rule() -> None:
    old = workspace_data()
    new = workspace_data(inference={"preset": {"name": "qwen2.5-7b-instruct"}})
    assert _crd_errors(new) == []  # a create is fine
    errors = _crd_errors(new, old)
    assert any("preset.name is immutable" in e for e in errors), errors
    assert _crd_errors(old, old) == []  # an unchanged update is fine


def test_immutable_instance_type() -> None:
    old = workspace_data(resource={"instanceType": "p5.48xlarge"})
    new = workspace_data(resource={"instanceType": "p4d.24xlarge"})
    assert any("instanceType is immutable" in e for e in _crd_errors(new, old))
    scaled = workspace_data(resource={"instanceType": "p5.48xlarge", "count": 3})
    assert _crd_errors(scaled, old) == []
