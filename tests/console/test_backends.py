"""What the console shows of a Workspace, a tuning job's loss read from its log, and the
local backend's checks before it applies anything."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml

from bosun.console.backends import ConsoleError, LocalBackend, loss_curve, row
from bosun.local.state import Record, Store

ROOT = Path(__file__).resolve().parents[2]


def test_a_workspace_document_as_the_page_shows_it() -> None:
    document = {
        "metadata": {"name": "chat", "namespace": "team"},
        "spec": {
            "resource": {"count": 2},
            "inference": {
                "preset": {"name": "llama-3.1-8b-instruct"},
                "adapters": [{"name": "tenant-a", "source": {"uri": "hf://org/a"}}],
                "accessSecret": "hf-token",
            },
        },
        "status": {
            "state": "Pending",
            "replicas": 1,
            "endpoint": "http://chat.team.svc:80/v1",
            "allocatedDevices": ["node-1/gpu-0"],
            "conditions": [
                {
                    "type": "ResourceReady",
                    "status": "False",
                    "reason": "DevicesUnavailable",
                    "message": "pod chat-1: 0/3 nodes",
                    "lastTransitionTime": "2026-01-01T00:00:00Z",
                }
            ],
        },
    }
    shown = row(document)
    assert shown == {
        "name": "team/chat",
        "kind": "inference",
        "state": "Pending",
        "model": "llama-3.1-8b-instruct",
        "adapters": ["tenant-a"],
        "endpoint": "http://chat.team.svc:80/v1",
        "replicas": 1,
        "wantedReplicas": 2,
        "devices": ["node-1/gpu-0"],
        "conditions": [
            {
                "type": "ResourceReady",
                "status": "False",
                "reason": "DevicesUnavailable",
                "message": "pod chat-1: 0/3 nodes",
            }
        ],
    }


def test_a_tuning_jobs_loss_per_step_from_its_log() -> None:
    log = [
        "bosun tune: 16 rows",
        "step 2/8 loss 3.2100 lr 2.00e-03 epoch 0.50 elapsed 3s left 9s",
        "step 4/8 loss 1.5000 lr 1.50e-03 epoch 1.00 elapsed 6s left 6s",
        "killed; resumed from checkpoint-2",
        "step 4/8 loss 1.4000 lr 1.50e-03 epoch 1.00 elapsed 2s left 6s",  # after a resume
        "step 6/8 loss 0.2000 lr 1.00e-03 epoch 1.50 elapsed 4s left 3s",
    ]
    assert loss_curve(log) == {"steps": [2, 4, 6], "losses": [3.21, 1.4, 0.2], "total": 8}
    assert loss_curve(["loading the model"]) == {"steps": [], "losses": [], "total": None}


@pytest.fixture
def backend(tmp_path: Path) -> LocalBackend:
    return LocalBackend(Store(tmp_path / "home"))


def check(backend: LocalBackend, text: str) -> ConsoleError:
    with pytest.raises(ConsoleError) as refused:
        asyncio.run(backend.check(text))
    return refused.value


def test_a_workspace_that_does_not_validate_is_refused_naming_each_field(
    backend: LocalBackend,
) -> None:
    document = yaml.safe_load((ROOT / "examples" / "01-cpu-smollm2.yaml").read_text())
    document["spec"]["inference"]["maxModelLen"] = 2
    document["spec"]["resource"]["colour"] = "blue"
    error = check(backend, yaml.safe_dump(document))
    assert error.status == 422
    paths = {p["path"] for p in error.problems}
    assert paths == {"spec.inference.maxModelLen", "spec.resource.colour"}
    assert "spec.resource.colour: unknown field" in error.message

    malformed = check(backend, "apiVersion: bosun.dev/v1alpha1\nkind: [Workspace\n")
    assert "malformed YAML at line" in malformed.message
    assert "expected one Workspace" in check(backend, "").message
    assert "kind" in check(backend, "apiVersion: v1\nkind: Pod\n").message


def test_a_good_workspace_is_planned_for_this_machine(backend: LocalBackend) -> None:
    text = (ROOT / "examples" / "01-cpu-smollm2.yaml").read_text()
    planned = asyncio.run(backend.check(text))
    plan = planned["plan"]
    assert plan["fits"] and planned["target"] == "local"
    assert plan["model"] == "smollm2-135m-instruct" and plan["memory"]["weightsBytes"] > 0
    assert planned["unschedulable"] == []


def test_applying_a_name_that_runs_already_is_refused_and_keeps_it(
    backend: LocalBackend,
) -> None:
    record = Record(name="smollm2", model="m", file="f.yaml", port=1, command=["x"])
    backend.store.insert_new("smollm2", lambda _others: record)
    text = (ROOT / "examples" / "01-cpu-smollm2.yaml").read_text()
    with pytest.raises(ConsoleError) as refused:
        asyncio.run(backend.apply(text))
    assert refused.value.status == 409 and "bosun down smollm2" in refused.value.message
    assert backend.store.get("smollm2") == record  # untouched
    with pytest.raises(ConsoleError) as unknown:
        asyncio.run(backend.plan("nothing"))
    assert unknown.value.status == 404
