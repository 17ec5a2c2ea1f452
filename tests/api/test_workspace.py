"""The Workspace models: what parses, and what is rejected with which field path."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bosun.api import WorkspaceError, load_workspace, parse_workspace, set_condition
from bosun.api.quantity import parse_quantity
from bosun.api.validators import check_public_host, parse_uri
from tests.conftest import workspace_data


def test_every_example_parses(example_file: Path) -> None:
    ws = load_workspace(example_file)
    assert ws.metadata.name
    assert (ws.spec.inference is None) != (ws.spec.tuning is None)


def test_defaults_follow_kaito_and_the_issue() -> None:
    ws = parse_workspace(workspace_data(resource={"accelerator": {}}))
    assert ws.spec.resource.count == 1
    assert ws.spec.resource.accelerator is not None
    assert ws.spec.resource.accelerator.device_class_name == "gpu.nvidia.com"
    assert ws.spec.inference is not None
    assert ws.spec.inference.runtime.value == "auto"
    assert ws.spec.inference.concurrency == 1


def test_round_trip_keeps_camel_case_field_names() -> None:
    data = workspace_data(
        resource={"instanceType": "p5.48xlarge", "accelerator": {"minMemory": "40Gi"}}
    )
    dumped = parse_workspace(data).model_dump(by_alias=True, exclude_defaults=True)
    assert dumped["spec"]["resource"]["instanceType"] == "p5.48xlarge"
    assert dumped["spec"]["resource"]["accelerator"]["minMemory"] == "40Gi"


BAD: list[tuple[str, dict[str, Any], str, str]] = [
    ("unknown field", {"resource": {"gpus": 2}}, "spec.resource.gpus", "unknown field"),
    ("wrong type", {"resource": {"count": "many"}}, "spec.resource.count", "integer"),
    ("negative count", {"resource": {"count": -1}}, "spec.resource.count", "greater than"),
    ("bad quantity", {"resource": {"memory": "lots"}}, "spec.resource.memory", "not a quantity"),
    (
        "bad mig profile",
        {"resource": {"accelerator": {"migProfile": "big"}}},
        "spec.resource.accelerator.migProfile",
        "pattern",
    ),
    (
        "both preset and model",
        {"inference": {"preset": {"name": "x"}, "model": {"uri": "hf://a/b"}}},
        "spec.inference",
        "exactly one of 'preset' and 'model'",
    ),
    ("neither preset nor model", {"inference": {}}, "spec.inference", "exactly one"),
    (
        "unknown URI scheme",
        {"inference": {"model": {"uri": "s3://bucket/model"}}},
        "spec.inference.model.uri",
        "unsupported URI",
    ),
    (
        "hf URI without a name",
        {"inference": {"model": {"uri": "hf://just-org"}}},
        "spec.inference.model.uri",
        "hf://ORG/NAME",
    ),
    (
        "relative file URI",
        {"inference": {"model": {"uri": "file://relative/path"}}},
        "spec.inference.model.uri",
        "absolute path",
    ),
    (
        "adapter from the metadata service",
        {
            "inference": {
                "preset": {"name": "x"},
                "adapters": [{"name": "a", "source": {"uri": "http://169.254.169.254/latest"}}],
            }
        },
        "spec.inference.adapters[0].source.uri",
        "metadata",
    ),
    (
        "adapter from loopback",
        {
            "inference": {
                "preset": {"name": "x"},
                "adapters": [{"name": "a", "source": {"uri": "https://127.0.0.1/a"}}],
            }
        },
        "spec.inference.adapters[0].source.uri",
        "loopback",
    ),
    (
        "adapter from a private address",
        {
            "inference": {
                "preset": {"name": "x"},
                "adapters": [{"name": "a", "source": {"uri": "https://10.0.0.8/a"}}],
            }
        },
        "spec.inference.adapters[0].source.uri",
        "private",
    ),
    (
        "duplicate adapter names",
        {
            "inference": {
                "preset": {"name": "x"},
                "adapters": [
                    {"name": "a", "source": {"uri": "hf://o/a"}},
                    {"name": "a", "source": {"uri": "hf://o/b"}},
                ],
            }
        },
        "spec.inference",
        "unique",
    ),
    (
        "adapter name not DNS-1123",
        {
            "inference": {
                "preset": {"name": "x"},
                "adapters": [{"name": "My_Adapter", "source": {"uri": "hf://o/a"}}],
            }
        },
        "spec.inference.adapters[0].name",
        "DNS-1123",
    ),
    (
        "too many adapters",
        {
            "inference": {
                "preset": {"name": "x"},
                "adapters": [{"name": f"a{i}", "source": {"uri": "hf://o/a"}} for i in range(11)],
            }
        },
        "spec.inference.adapters",
        "at most 10",
    ),
    (
        "strength out of range",
        {
            "inference": {
                "preset": {"name": "x"},
                "adapters": [{"name": "a", "source": {"uri": "hf://o/a"}, "strength": 3}],
            }
        },
        "spec.inference.adapters[0].strength",
        "less than or equal to 1",
    ),
    (
        "inference and tuning",
        {
            "tuning": {
                "preset": {"name": "x"},
                "input": {"uris": ["hf://o/d"]},
                "output": {"uri": "file:///out"},
            }
        },
        "spec",
        "exactly one of 'inference' and 'tuning'",
    ),
    (
        "unknown runtime",
        {"inference": {"preset": {"name": "x"}, "runtime": "tgi"}},
        "spec.inference.runtime",
        "'auto', 'vllm' or 'bosun'",
    ),
    (
        "scale-down floor over count",
        {"resource": {"count": 2, "minReplicas": 3}},
        "spec.resource",
        "minReplicas (3) is more than count (2)",
    ),
    (
        "a tuning job scaled to zero",
        {
            "inference": None,
            "tuning": {
                "preset": {"name": "x"},
                "input": {"uris": ["hf://o/d"]},
                "output": {"uri": "file:///o"},
            },
            "resource": {"minReplicas": 0},
        },
        "spec",
        "resource.minReplicas: a fine-tuning job runs once",
    ),
    (
        "idle time-out without a floor",
        {"resource": {"idleTimeoutSeconds": 60}},
        "spec.resource",
        "idleTimeoutSeconds needs minReplicas",
    ),
]


@pytest.mark.parametrize(("spec", "path", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_workspaces_name_the_field(spec: dict[str, Any], path: str, message: str) -> None:
    with pytest.raises(WorkspaceError) as info:
        parse_workspace(workspace_data(**spec))
    problems = [(p.path, p.message) for p in info.value.problems]
    assert any(p == path and message in m for p, m in problems), problems


def test_tuning_needs_exactly_one_input_and_output() -> None:
    data = workspace_data()
    del data["spec"]["inference"]
    data["spec"]["tuning"] = {"preset": {"name": "x"}, "input": {}, "output": {"uri": "file:///o"}}
    with pytest.raises(WorkspaceError) as info:
        parse_workspace(data)
    assert (
        str(info.value.problems[0]) == "spec.tuning.input: set exactly one of 'uris' and 'volume'"
    )


def test_bad_metadata_name() -> None:
    data = workspace_data()
    data["metadata"]["name"] = "Llama_8B"
    with pytest.raises(WorkspaceError, match=r"metadata.name: 'Llama_8B' is not a DNS-1123"):
        parse_workspace(data)


def test_wrong_kind_is_named() -> None:
    data = workspace_data()
    data["kind"] = "Deployment"
    with pytest.raises(WorkspaceError, match=r"kind: expected apiVersion: bosun\.dev/v1alpha1"):
        parse_workspace(data)


def test_file_errors_are_one_clear_message(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: bosun.dev/v1alpha1\nkind: Workspace\nmetadata: {name: x\n  spec: [",
        encoding="utf-8",
    )
    with pytest.raises(WorkspaceError, match=r"malformed YAML at line \d+, column \d+"):
        load_workspace(bad)
    with pytest.raises(WorkspaceError, match="cannot read the file"):
        load_workspace(tmp_path / "missing.yaml")
    two = tmp_path / "two.yaml"
    two.write_text("a: 1\n---\nb: 2\n", encoding="utf-8")
    with pytest.raises(WorkspaceError, match="expected one Workspace document, found 2"):
        load_workspace(two)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("80Gi", Decimal(80 * 2**30)),
        ("500m", Decimal("0.5")),
        ("2", Decimal(2)),
        ("1e3", Decimal(1000)),
        ("1.5G", Decimal(1_500_000_000)),
        (16, Decimal(16)),
    ],
)
def test_quantities(text: str | int, value: Decimal) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["", "Gi", "1.2.3", "12 Gi", "ten"])
def test_bad_quantities(text: str) -> None:
    with pytest.raises(ValueError, match="not a quantity"):
        parse_quantity(text)


@pytest.mark.parametrize(
    "host",
    [
        "localhost",
        "127.0.0.1",
        "[::1]",
        "10.1.2.3",
        "192.168.0.1",
        "172.16.5.4",
        "169.254.169.254",
        "metadata.google.internal",
        "0.0.0.0",
        "[::ffff:127.0.0.1]",
        "x.localhost",
    ],
)
def test_hosts_that_reach_inside_are_refused(host: str) -> None:
    with pytest.raises(ValueError):
        check_public_host(host)


@pytest.mark.parametrize("host", ["huggingface.co", "8.8.8.8", "example.com"])
def test_public_hosts_pass(host: str) -> None:
    check_public_host(host)


def test_uri_parts() -> None:
    assert parse_uri("hf://meta-llama/Llama-3.1-8B", ("hf",)).hf_repo == "meta-llama/Llama-3.1-8B"
    pvc = parse_uri("pvc://models/llama/8b", ("pvc",))
    assert (pvc.authority, pvc.path) == ("models", "llama/8b")


def test_conditions_keep_transition_time_until_status_changes() -> None:
    conditions = set_condition(
        [], "ResourceReady", "False", "Provisioning", at="2026-01-01T00:00:00Z"
    )
    same = set_condition(
        conditions, "ResourceReady", "False", "StillProvisioning", at="2026-01-02T00:00:00Z"
    )
    assert same[0].last_transition_time == "2026-01-01T00:00:00Z"
    assert same[0].reason == "StillProvisioning"
    flipped = set_condition(same, "ResourceReady", "True", "Allocated", at="2026-01-03T00:00:00Z")
    assert [c.last_transition_time for c in flipped] == ["2026-01-03T00:00:00Z"]
