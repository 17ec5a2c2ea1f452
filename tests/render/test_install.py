"""`bosun install` and the kustomize tree in config/: valid objects, a restricted operator
pod, and the same objects both ways."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from typer.testing import CliRunner

from bosun.cli.main import app
from bosun.render.install import install_manifests
from tests.crdcheck import schema_errors

ROOT = Path(__file__).parents[2]
K8S_VERSION = "1.34.0"


def _key(obj: dict[str, Any]) -> tuple[str, str, str]:
    return (obj["apiVersion"], obj["kind"], obj["metadata"]["name"])


def test_every_object_passes_the_official_schemas_strictly() -> None:
    objects = install_manifests()
    crds = {
        (f"{o['spec']['group']}/v1", o["spec"]["names"]["kind"]): o
        for o in objects
        if o["kind"] == "CustomResourceDefinition"
    }
    for obj in objects:
        key = (obj["apiVersion"], obj["kind"])
        if key in crds:  # an instance of a CRD installed beside it
            schema = crds[key]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
            body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
            assert schema_errors(schema, body) == []
            continue
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


@pytest.mark.parametrize(
    ("name", "health", "args"),
    [
        ("bosun-operator", "/healthz", ["operator", "--all-namespaces"]),
        ("bosun-gateway", "/health", ["gateway", "--kubernetes", "--host", "0.0.0.0"]),
    ],
)
def test_the_pods_are_restricted_and_probed(name: str, health: str, args: list[str]) -> None:
    (deployment,) = [
        o
        for o in install_manifests()
        if o["kind"] == "Deployment" and o["metadata"]["name"] == name
    ]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["livenessProbe"]["httpGet"]["path"] == health
    assert pod["serviceAccountName"] == name
    assert container["args"][: len(args)] == args


def test_the_gateway_service_selects_the_gateway_pods() -> None:
    objects = install_manifests()
    service = next(
        o for o in objects if o["kind"] == "Service" and o["metadata"]["name"] == "bosun-gateway"
    )
    deployment = next(
        o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "bosun-gateway"
    )
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    port = deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]
    assert service["spec"]["ports"][0]["targetPort"] == port["name"] == "http"


def test_bosun_install_prints_them_in_the_namespace_asked_for() -> None:
    result = CliRunner().invoke(app, ["install", "--namespace", "ml-ops"])
    assert result.exit_code == 0, result.output
    objects = [o for o in yaml.safe_load_all(result.stdout) if o]
    assert [_key(o) for o in objects] == [_key(o) for o in install_manifests("ml-ops")]
    namespaced = [o for o in objects if "namespace" in o["metadata"]]
    assert {o["metadata"]["namespace"] for o in namespaced} == {"ml-ops"}
    bindings = [o for o in objects if o["kind"] == "ClusterRoleBinding"]
    assert {b["metadata"]["name"] for b in bindings} == {"bosun-operator", "bosun-gateway"}
    assert all(b["subjects"][0]["namespace"] == "ml-ops" for b in bindings)


def test_bosun_install_refuses_a_bad_namespace() -> None:
    result = CliRunner().invoke(app, ["install", "--namespace", "Not_Valid"])
    assert result.exit_code == 2
    assert "--namespace" in result.output


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kustomize_config_default_gives_the_same_objects() -> None:
    out = subprocess.run(
        ["kubectl", "kustomize", str(ROOT / "config" / "default")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    kustomized = {_key(o): o for o in yaml.safe_load_all(out) if o}
    installed = {_key(o): o for o in install_manifests()}
    assert kustomized.keys() == installed.keys()
    for key, obj in installed.items():
        assert kustomized[key] == obj, (
            f"config/ differs from bosun install for {key}: run scripts/gen_config.py"
        )
