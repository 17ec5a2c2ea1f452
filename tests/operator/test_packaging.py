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


def test_the_operator_runs_without_the_serve_extra() -> None:
    """As in the operator image: importing everything `bosun operator` runs must not
    need torch, transformers or the HTTP server stack (they are blocked here)."""
    blocked = "; ".join(f"sys.modules[{name!r}] = None" for name in HEAVY)
    code = (
        f"import sys; {blocked}; "
        "import bosun.operator.main, bosun.operator.handlers; "
        "from bosun.cli.main import app; from typer.testing import CliRunner; "
        "r = CliRunner().invoke(app, ['operator', '--help']); assert r.exit_code == 0, r.output; "
        "r = CliRunner().invoke(app, ['install']); assert r.exit_code == 0, r.output; print('ok')"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("ok")


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
    assert "vllm:num_requests_waiting" in keda["spec"]["triggers"][0]["metadata"]["query"]


def test_the_images_install_the_right_extra_as_a_non_root_user() -> None:
    import re
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "optional-dependencies"
    ]
    assert not any(dep.split(">")[0] in HEAVY for dep in extras["operator"])
    # The runtime image also runs tuning Jobs (`bosun tune`): the tune extra too.
    for image, extra in (("operator", "operator"), ("runtime", "serve,tune")):
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
