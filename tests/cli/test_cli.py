"""The command line as a user meets it: output, exit codes and error messages."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from bosun.cli.main import app
from tests.conftest import EXAMPLES

runner = CliRunner()
HEAD = "kind: Workspace\napiVersion: bosun.dev/v1alpha1\nmetadata: {name: x}\n"


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_crd_prints_the_custom_resource_definitions() -> None:
    code, out, _ = run("crd")
    assert code == 0
    found = list(yaml.safe_load_all(out))
    assert {c["kind"] for c in found} == {"CustomResourceDefinition"}
    assert [c["metadata"]["name"] for c in found] == [
        "workspaces.bosun.dev",
        "ragengines.bosun.dev",
    ]


def test_models_lists_the_catalog() -> None:
    code, out, _ = run("models", "-o", "json")
    assert code == 0
    models = json.loads(out)
    assert len(models) >= 25
    assert {"name", "hfId", "parameters", "layers", "kvHeads", "license", "weightBytes"} <= set(
        models[0]
    )
    llama = next(m for m in models if m["name"] == "llama-3.1-8b-instruct")
    assert llama["weightBytes"] == 8_030_261_248 * 2
    code, out, _ = run("models")
    assert code == 0 and "llama-3.1-8b-instruct" in out
    # Every name whole, however narrow the terminal: it is what a Workspace says.
    assert all(m["name"] in out for m in models)


def test_models_filter_by_family_size_and_hardware() -> None:
    code, out, _ = run("models", "--family", "qwen3", "--max-size", "2B", "-o", "json")
    assert code == 0
    assert [m["name"] for m in json.loads(out)] == ["qwen3-0.6b", "qwen3-1.7b"]
    # One A10G: gpt-oss-20b (MXFP4 experts) fits, its 120B sibling does not; each row says
    # the layout and runtime the plan takes.
    code, out, _ = run("models", "--family", "gpt-oss", "--fits", "g5.xlarge", "-o", "json")
    rows = json.loads(out)
    assert [(m["name"], m["layout"]) for m in rows] == [
        ("gpt-oss-20b", "1 x nvidia-a10g-24gb, vllm")
    ]
    code, out, _ = run("models", "--family", "qwen3", "--fits", "cpu", "-o", "json")
    assert code == 0 and {m["layout"].split(", ")[-1] for m in json.loads(out)} == {"bosun"}
    for args, message in [
        (["--family", "qwen9"], "--family: unknown family 'qwen9'"),
        (["--max-size", "big"], "--max-size: 'big' is not a parameter count"),
        (["--fits", "m9.huge"], "--fits: 'm9.huge' is neither an instance type"),
    ]:
        code, _, err = run("models", *args)
        assert code == 2 and message in err


def test_accelerators_lists_profiles_and_instance_types() -> None:
    _, out, _ = run("accelerators", "-o", "json")
    data = json.loads(out)
    names = {p["name"] for p in data["profiles"]}
    assert {
        "nvidia-h200-141gb",
        "nvidia-h100-80gb",
        "nvidia-a100-80gb",
        "nvidia-a100-40gb",
        "nvidia-l40s-48gb",
        "nvidia-l4-24gb",
        "nvidia-a10g-24gb",
        "nvidia-t4-16gb",
        "nvidia-a100-80gb-mig-1g.10gb",
        "nvidia-h100-80gb-mig-3g.40gb",
    } <= names
    providers = {t["provider"] for t in data["instanceTypes"]}
    assert providers == {"azure", "aws", "gcp"}


def test_plan_json_has_the_documented_fields() -> None:
    code, out, _ = run("plan", str(EXAMPLES / "02-llama-8b-one-gpu.yaml"), "-o", "json")
    assert code == 0
    plan = json.loads(out)
    for key in (
        "model",
        "runtime",
        "accelerator",
        "devicesPerReplica",
        "tensorParallelSize",
        "pipelineParallelSize",
        "nodesPerReplica",
        "replicas",
        "fits",
        "reason",
    ):
        assert key in plan
    for key in (
        "weightsBytes",
        "kvCacheBytes",
        "overheadBytes",
        "perDeviceBytes",
        "deviceCapacityBytes",
    ):
        assert isinstance(plan["memory"][key], int)
    assert plan["fits"] is True


def test_plan_table_shows_the_breakdown() -> None:
    code, out, _ = run("plan", str(EXAMPLES / "05-llama-405b-multi-node.yaml"))
    assert code == 0
    assert "8 x 2" in out and "p5.48xlarge" in out and "nodes to provision" in out


def test_plan_that_does_not_fit_exits_2_with_the_reason() -> None:
    code, out, err = run(
        "plan",
        str(EXAMPLES / "03-llama-70b-multi-gpu.yaml"),
        "-a",
        "nvidia-a100-80gb-mig-3g.40gb",
        "-o",
        "json",
    )
    assert code == 2
    assert json.loads(out)["fits"] is False
    assert "error: spec.resource:" in err and "short by" in err
    assert "Traceback" not in err


def test_render_prints_documents_for_kubectl() -> None:
    code, out, _ = run("render", str(EXAMPLES / "02-llama-8b-one-gpu.yaml"), "-n", "models")
    assert code == 0
    docs = list(yaml.safe_load_all(out))
    assert [d["kind"] for d in docs] == ["ResourceClaimTemplate", "Deployment", "Service"]
    assert all(d["metadata"]["namespace"] == "models" for d in docs)


def test_render_extended_resources() -> None:
    code, out, _ = run("render", str(EXAMPLES / "02-llama-8b-one-gpu.yaml"), "--extended-resources")
    assert code == 0
    docs = list(yaml.safe_load_all(out))
    assert "ResourceClaimTemplate" not in [d["kind"] for d in docs]


def test_render_refuses_a_plan_that_does_not_fit() -> None:
    code, out, err = run("render", str(EXAMPLES / "02-llama-8b-one-gpu.yaml"), "-t", "g4dn.xlarge")
    assert code == 2 and out == ""
    assert "minMemory" in err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            HEAD + "spec:\n  inference:\n    preset: {name: llama3-8b}\n",
            "did you mean llama-3.1-8b-instruct",
        ),
        (
            HEAD + "spec:\n  resource: {gpus: 1}\n  inference:\n    preset: {name: phi-4}\n",
            "spec.resource.gpus: unknown field",
        ),
        (
            HEAD + "spec:\n  resource: {count: two}\n  inference:\n    preset: {name: phi-4}\n",
            "spec.resource.count: Input should be a valid integer",
        ),
        ("key: [unclosed\n", "malformed YAML at line"),
    ],
    ids=["unknown-preset", "unknown-field", "wrong-type", "malformed"],
)
def test_bad_files_get_one_clear_message(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "ws.yaml"
    path.write_text(content, encoding="utf-8")
    for command in ("plan", "render"):
        code, out, err = run(command, str(path))
        assert code == 2
        assert message in err
        assert "Traceback" not in err and out == ""


def test_unknown_accelerator_suggests_names() -> None:
    code, _, err = run("plan", str(EXAMPLES / "01-cpu-smollm2.yaml"), "-a", "nvidia-h100")
    assert code == 2 and "did you mean" in err and "nvidia-h100-80gb" in err


def test_flags_are_exclusive() -> None:
    code, _, err = run(
        "plan", str(EXAMPLES / "01-cpu-smollm2.yaml"), "-a", "cpu", "-t", "p5.48xlarge"
    )
    assert code == 2 and "exclusive" in err


def test_bad_namespace_is_named() -> None:
    code, _, err = run("render", str(EXAMPLES / "01-cpu-smollm2.yaml"), "-n", "Bad_NS")
    assert code == 2 and "--namespace" in err


def test_the_installed_script_runs() -> None:
    """The console script, as a user runs it, in a fresh interpreter."""
    bosun = Path(sys.executable).parent / "bosun"
    result = subprocess.run(
        [str(bosun), "plan", str(EXAMPLES / "01-cpu-smollm2.yaml"), "-o", "json"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["runtime"] == "bosun"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dtype", "int4"], "--dtype: 'int4' is not one of"),
        (["--device", "tpu"], "--device: 'tpu' is not cpu or cuda"),
        (["--quantization", "fp4"], "--quantization: 'fp4' is not one of"),
        (["--log-level", "loud"], "--log-level: 'loud' is not one of"),
        (["--engine", "vllm"], "--engine: 'vllm' is not one of"),
        (["--max-batched-tokens", "0"], "--max-batched-tokens"),
        (["--tool-call-parser", "pythonic"], "--tool-call-parser: 'pythonic' is not one of"),
    ],
)
def test_serve_refuses_bad_flags(args: list[str], message: str) -> None:
    code, _, err = run("serve", "--model", "smollm2-135m-instruct", *args)
    assert code == 2 and message in err and "Traceback" not in err


def test_serve_refuses_an_unknown_model_before_starting() -> None:
    code, _, err = run("serve", "--model", "no-such-model-anywhere")
    assert code == 2 and "--model: 'no-such-model-anywhere'" in err and "Traceback" not in err


def test_validate_checks_every_file_and_fails_if_any_is_bad(tmp_path: Path) -> None:
    good = EXAMPLES / "01-cpu-smollm2.yaml"
    twice = tmp_path / "twice.yaml"
    twice.write_text(
        HEAD + "spec:\n  inference: {preset: {name: phi-4}}\nspec: {}\n", encoding="utf-8"
    )
    ranged = tmp_path / "ranged.yaml"
    ranged.write_text(
        HEAD + "spec:\n  inference:\n    preset: {name: phi-4}\n    config: {maxNumSeqs: -1}\n",
        encoding="utf-8",
    )
    code, out, err = run("validate", str(good), str(twice), str(ranged))
    assert code == 2
    assert f"valid: {good}" in out
    assert f"{twice}: invalid Workspace" in err and "the key 'spec' appears twice" in err
    assert f"{ranged}: spec.inference.config.maxNumSeqs: -1 is not a whole number" in err
    assert "Traceback" not in err
    code, out, _ = run("validate", *(str(p) for p in sorted(EXAMPLES.glob("*.yaml"))))
    assert code == 0 and out.count("valid: ") == 6


def test_the_tool_call_parsers_the_cli_offers_are_the_servers() -> None:
    from bosun.cli.main import TOOL_CALL_PARSERS
    from bosun.serving.tools import PARSERS

    assert set(TOOL_CALL_PARSERS) == set(PARSERS)


RAG_EXAMPLE = EXAMPLES / "10-rag-engine" / "ragengine.yaml"


def test_plan_and_render_take_a_rag_engine() -> None:
    code, out, err = run("plan", str(RAG_EXAMPLE), "-o", "json")
    assert code == 0, err
    plan = json.loads(out)
    assert plan["embeddingModel"] == "all-minilm-l6-v2" and plan["dimensions"] == 384
    assert plan["warnings"] == []
    code, out, err = run("plan", str(RAG_EXAMPLE))
    assert code == 0 and "about 466,033 chunks" in out
    code, out, err = run("render", str(RAG_EXAMPLE), "-n", "team")
    assert code == 0, err
    kinds = [o["kind"] for o in yaml.safe_load_all(out)]
    assert kinds == ["PersistentVolumeClaim", "Deployment", "Service"]


def test_a_rag_engine_with_chunks_over_the_models_limit_fails_by_field(tmp_path: Path) -> None:
    document = yaml.safe_load(RAG_EXAMPLE.read_text(encoding="utf-8"))
    document["spec"]["chunking"] = {"maxTokens": 1000}
    path = tmp_path / "rag.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    code, _, err = run("render", str(path))
    assert code == 2
    assert "spec.chunking.maxTokens: 1000 is more than all-minilm-l6-v2 reads" in err
    assert "Traceback" not in err
