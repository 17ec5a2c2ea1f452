"""The operator's footprint: its image carries no torch, and the autoscaling example
targets the Workspace's scale subresource."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from bosun.api.crd import workspace_crd

ROOT = Path(__file__).parents[2]
HEAVY = ("torch", "transformers", "fastapi", "uvicorn", "accelerate", "gguf")


def runs_without(blocked: tuple[str, ...], modules: str, *commands: list[str]) -> None:
    """In a fresh interpreter where ``blocked`` cannot be imported: import ``modules``
    and run each `bosun` command line, which must succeed."""
    block = "; ".join(f"sys.modules[{name!r}] = None" for name in blocked)
    runs = "".join(
        f"r = CliRunner().invoke(app, {command!r}); assert r.exit_code == 0, r.output; "
        for command in commands
    )
    code = (
        f"import sys; {block}; import {modules}; "
        f"from bosun.cli.main import app; from typer.testing import CliRunner; {runs}print('ok')"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("ok")


def test_the_operator_runs_without_the_serve_extra() -> None:
    """As in the operator image: importing everything `bosun operator` runs must not
    need torch, transformers or the HTTP server stack (they are blocked here)."""
    runs_without(
        HEAVY, "bosun.operator.main, bosun.operator.handlers", ["operator", "--help"], ["install"]
    )


def test_autoscalers_target_the_workspace_scale_subresource() -> None:
    scale = workspace_crd()["spec"]["versions"][0]["subresources"]["scale"]
    assert scale["specReplicasPath"] == ".spec.resource.count"
    directory = ROOT / "examples" / "08-autoscaling"
    hpa = yaml.safe_load((directory / "hpa.yaml").read_text(encoding="utf-8"))
    kubernetes_validate.validate(hpa, "1.34.0", strict=True)
    keda = yaml.safe_load((directory / "keda.yaml").read_text(encoding="utf-8"))
    workspace = yaml.safe_load((directory / "workspace.yaml").read_text(encoding="utf-8"))
    for scaler in (hpa, keda):
        target = scaler["spec"]["scaleTargetRef"]
        assert (target["apiVersion"], target["kind"]) == ("bosun.dev/v1alpha1", "Workspace")
        assert target["name"] == workspace["metadata"]["name"]
    # Both scale on the requests waiting for the model: at the gateway, and at its servers.
    query = keda["spec"]["triggers"][0]["metadata"]["query"]
    model = workspace["spec"]["inference"]["preset"]["name"]
    assert f'bosun_gateway_queue_depth{{model="{model}"}}' in query
    assert "vllm:num_requests_waiting" in query and keda["spec"]["minReplicaCount"] == 0
    assert "minReplicas" not in workspace["spec"]["resource"]  # KEDA, not the gateway, scales it
    external = hpa["spec"]["metrics"][0]["external"]["metric"]
    assert external["name"] == "bosun_gateway_queue_depth"
    assert external["selector"]["matchLabels"] == {"model": model}


def test_the_gateway_runs_without_torch_or_kopf() -> None:
    """As in the gateway image: `bosun gateway --kubernetes` imports neither the model
    stack nor the operator's framework (both are blocked here)."""
    modules = "bosun.gateway.proxy, bosun.gateway.cluster, bosun.operator.connection"
    runs_without(("torch", "transformers", "kopf", "gguf"), modules, ["gateway", "--help"])


def test_the_images_install_the_right_extra_as_a_non_root_user() -> None:
    import re
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "optional-dependencies"
    ]
    assert not any(dep.split(">")[0] in HEAVY for dep in extras["operator"])
    # The runtime image also runs tuning Jobs (`bosun tune`) and RAGEngines (`bosun rag
    # serve`, with either vector store): those extras too.
    gateway_deps = {dep.split(">")[0] for dep in extras["gateway"]}
    assert not gateway_deps & {"torch", "transformers", "kopf", "accelerate", "gguf"}
    images = (
        ("operator", "operator"),
        ("runtime", "serve,tune,rag,qdrant"),
        ("gateway", "gateway"),
    )
    for image, extra in images:
        text = (ROOT / "docker" / f"{image}.Dockerfile").read_text(encoding="utf-8")
        assert f"'bosun[{extra}]'" in text and all(e in extras for e in extra.split(","))
        users = re.findall(r"^USER (\S+)", text, flags=re.MULTILINE)
        assert users and users[-1].split(":")[0] not in ("0", "root")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["operator"], "--all-namespaces"),
        (["operator", "-A", "-n", "team"], "exclusive"),
        (["operator", "-n", "Bad_NS"], "--namespace"),
        (["operator", "-A", "--kubeconfig", "/nonexistent/kubeconfig"], "--kubeconfig"),
    ],
)
def test_bosun_operator_refuses_bad_options_clearly(args: list[str], needle: str) -> None:
    from typer.testing import CliRunner

    from bosun.cli.main import app

    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert needle in result.output
    assert "Traceback" not in result.output


def test_an_unreadable_kubeconfig_is_an_error_naming_it(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from bosun.cli.main import app

    broken = tmp_path / "kubeconfig"
    broken.write_text(
        "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\n", encoding="utf-8"
    )
    result = CliRunner().invoke(app, ["operator", "-A", "--kubeconfig", str(broken)])
    assert result.exit_code == 2, result.output
    assert str(broken) in result.output
    assert "Traceback" not in result.output
