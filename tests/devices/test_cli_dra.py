"""`bosun dra allocate`, `bosun plan --cluster` and `bosun devices` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from bosun.cli.main import app

runner = CliRunner()
DATA = Path(__file__).parent / "data"
SNAPSHOT = DATA / "two-nodes.yaml"


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def docs(extra: str = "", replace_claim: bool = False) -> str:
    """The snapshot with ``extra`` documents, optionally instead of its pending claim."""
    text = SNAPSHOT.read_text(encoding="utf-8")
    if replace_claim:
        text = text[: text.rindex("---")]
    return text + extra


def test_allocate_reports_each_node_with_the_status_allocation() -> None:
    code, out, _ = run("dra", "allocate", "-f", str(SNAPSHOT), "-o", "json")
    assert code == 0
    nodes = {n["node"]: n for n in json.loads(out)}
    assert nodes["node-a"]["allocated"] is True
    allocation = nodes["node-a"]["claims"][0]["allocation"]
    assert [r["device"] for r in allocation["devices"]["results"]] == ["gpu-0", "gpu-1"]
    assert allocation["nodeSelector"]["nodeSelectorTerms"][0]["matchFields"][0]["values"] == [
        "node-a"
    ]
    assert nodes["node-b"]["allocated"] is False
    assert "0 of 1 devices match" in nodes["node-b"]["reason"]
    assert nodes["node-b"]["claims"][0]["allocation"] is None


def test_one_node_and_yaml_output() -> None:
    code, out, _ = run("dra", "allocate", "-f", str(SNAPSHOT), "--node", "node-b", "-o", "yaml")
    assert code == 0
    (only,) = yaml.safe_load(out)
    assert only["node"] == "node-b" and only["allocated"] is False


def test_allocated_claims_hold_their_devices(tmp_path: Path) -> None:
    held = """
---
apiVersion: resource.k8s.io/v1
kind: ResourceClaim
metadata: {name: earlier, namespace: default}
spec: {devices: {requests: [{name: gpu, exactly: {deviceClassName: gpu.nvidia.com}}]}}
status:
  allocation:
    devices:
      results: [{request: gpu, driver: gpu.nvidia.com, pool: node-a, device: gpu-1}]
"""
    path = tmp_path / "snap.yaml"
    path.write_text(docs(held), encoding="utf-8")
    code, out, _ = run("dra", "allocate", "-f", str(path), "-o", "json")
    assert code == 0, out
    nodes = {n["node"]: n for n in json.loads(out)}
    assert nodes["node-a"]["allocated"] is False  # one H100 left, the claim wants two
    assert "(1 free)" in nodes["node-a"]["reason"]


def test_kubectl_list_output_is_accepted(tmp_path: Path) -> None:
    listed = {
        "apiVersion": "v1",
        "kind": "List",
        "items": list(yaml.safe_load_all(SNAPSHOT.read_text(encoding="utf-8"))),
    }
    path = tmp_path / "list.yaml"
    path.write_text(yaml.safe_dump(listed), encoding="utf-8")
    code, out, _ = run("dra", "allocate", "-f", str(path), "-o", "json")
    assert code == 0 and json.loads(out)[0]["allocated"] is True


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            "---\napiVersion: resource.k8s.io/v1\nkind: ResourceSlice\nmetadata: {name: x}\n"
            "spec: {driver: d, pool: {name: p, generation: 1, resourceSliceCount: 1}, nodeName: n, bogus: 1}\n",
            "ResourceSlice x): spec.bogus: unknown field",
        ),
        (
            "---\napiVersion: resource.k8s.io/v1alpha3\nkind: DeviceClass\nmetadata: {name: y}\n",
            "DeviceClass y): apiVersion: expected one of",
        ),
        (
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: z}\n",
            "kind: 'ConfigMap' is not one of",
        ),
        (
            "---\napiVersion: resource.k8s.io/v1\nkind: DeviceClass\nmetadata: {name: bad}\n"
            "spec: {selectors: [{cel: {expression: 'noSuchVar'}}]}\n"
            "---\napiVersion: resource.k8s.io/v1\nkind: ResourceClaim\nmetadata: {name: c2}\n"
            "spec: {devices: {requests: [{name: r, exactly: {deviceClassName: bad}}]}}\n",
            "class bad: selector #0: CEL compile error: undeclared reference to 'noSuchVar'",
        ),
        (
            "---\napiVersion: resource.k8s.io/v1\nkind: ResourceClaim\nmetadata: {name: c3}\n"
            "spec: {devices: {requests: [{name: r, exactly: {deviceClassName: gpu.nvidia.com, "
            "selectors: [{cel: {expression: \"device.attributes['gpu.nvidia.com'].nope == 1\"}}]}}]}}\n",
            "claim c3: selector #0 on device gpu.nvidia.com/node-a/gpu-0: CEL runtime error: no such key: nope",
        ),
    ],
    ids=["unknown-field", "old-api-version", "unknown-kind", "cel-compile", "cel-runtime"],
)
def test_bad_input_exits_1_naming_object_and_field(
    tmp_path: Path, extra: str, message: str
) -> None:
    path = tmp_path / "snap.yaml"
    path.write_text(docs(extra, replace_claim="kind: ResourceClaim" in extra), encoding="utf-8")
    code, out, err = run("dra", "allocate", "-f", str(path))
    assert code == 1
    assert message in err
    assert "Traceback" not in err and out == ""


def test_unknown_node_and_missing_file(tmp_path: Path) -> None:
    code, _, err = run("dra", "allocate", "-f", str(SNAPSHOT), "--node", "nope")
    assert code == 1 and "--node: no node 'nope'" in err
    code, _, err = run("dra", "allocate", "-f", str(tmp_path / "missing.yaml"))
    assert code == 1 and "cannot read the file" in err


def test_plan_places_replicas_on_the_snapshot(tmp_path: Path) -> None:
    ws = tmp_path / "ws.yaml"
    ws.write_text(
        "apiVersion: bosun.dev/v1alpha1\nkind: Workspace\nmetadata: {name: llama}\n"
        "spec:\n  resource: {count: 3}\n  inference:\n"
        "    preset: {name: llama-3.1-8b-instruct}\n    maxModelLen: 8192\n",
        encoding="utf-8",
    )
    code, out, err = run("plan", str(ws), "--cluster", str(SNAPSHOT), "-o", "json")
    cluster = json.loads(out)["cluster"]
    # Each replica needs one GPU with at least ~21 GiB: the two H100s and the L4 qualify.
    assert [p["node"] for p in cluster["placement"]] == ["node-a", "node-a", "node-b"]
    assert code == 0, err
    ws.write_text(ws.read_text(encoding="utf-8").replace("count: 3", "count: 4"), encoding="utf-8")
    code, out, err = run("plan", str(ws), "--cluster", str(SNAPSHOT), "-o", "json")
    assert code == 2 and "only 3 of 4 replicas fit" in err
    assert json.loads(out)["cluster"]["placement"][3]["node"] is None


def test_devices_on_a_cpu_only_host() -> None:
    code, out, _ = run("devices")
    assert code == 0 and "CPU-only host" in out
    code, out, _ = run("devices", "-o", "yaml")
    assert code == 0 and out == ""
