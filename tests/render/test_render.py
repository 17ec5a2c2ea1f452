"""Rendered manifests: valid against the official schemas, and what each Workspace asks for."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from bosun.api import parse_workspace
from bosun.catalog import Plan, PlanError, plan_workspace
from bosun.render import RenderOptions, render_workspace
from tests.conftest import EXAMPLE_FILES, EXAMPLES, example_data, workspace_data
from tests.crdcheck import cel_errors, schema_errors

DATA = Path(__file__).parent / "data"
GOLDEN = Path(__file__).parent / "golden"
K8S_VERSION = "1.34.0"
CRD_SCHEMAS = {
    ("karpenter.sh/v1", "NodeClaim"): DATA / "nodeclaim-karpenter.sh-v1.yaml",
    ("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet"): DATA / "leaderworkerset-v1.yaml",
    ("inference.networking.k8s.io/v1", "InferencePool"): DATA / "inferencepool-v1.yaml",
}
# Label keys Karpenter allows in requirements (its CEL rules on requirements[].key).
KARPENTER_KEYS = {
    "node.kubernetes.io/instance-type",
    "karpenter.sh/capacity-type",
    "kubernetes.io/os",
    "kubernetes.io/arch",
    "topology.kubernetes.io/zone",
    "topology.kubernetes.io/region",
}


def validate(doc: dict[str, Any]) -> None:
    """Fail unless ``doc`` passes the official schema of its kind, in strict mode."""
    key = (doc["apiVersion"], doc["kind"])
    if key not in CRD_SCHEMAS:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        return
    schema = yaml.safe_load(CRD_SCHEMAS[key].read_text(encoding="utf-8"))
    errors = schema_errors(schema, doc) + cel_errors(schema, doc)
    assert errors == [], errors
    if doc["kind"] == "NodeClaim":
        keys = {r["key"] for r in doc["spec"]["requirements"]}
        assert keys <= KARPENTER_KEYS
    elif doc["kind"] == "LeaderWorkerSet":
        template = doc["spec"]["leaderWorkerTemplate"]
        for part in ("leaderTemplate", "workerTemplate"):
            pod_template = {
                "apiVersion": "v1",
                "kind": "PodTemplate",
                "metadata": {"name": "check"},
                "template": template[part],
            }
            kubernetes_validate.validate(pod_template, K8S_VERSION, strict=True)


def render(
    data: dict[str, Any], accelerator: str | None = None, **options: Any
) -> tuple[Plan, list[dict[str, Any]]]:
    ws = parse_workspace(data)
    plan = plan_workspace(ws, accelerator=accelerator)
    return plan, render_workspace(ws, plan, RenderOptions(**options))


def kinds(docs: list[dict[str, Any]]) -> list[str]:
    return [d["kind"] for d in docs]


def find(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return next(d for d in docs if d["kind"] == kind)


MATRIX_ACCELERATORS = [None, "nvidia-a100-40gb", "nvidia-l4-24gb", "cpu"]


@pytest.mark.parametrize("extended", [False, True], ids=["dra", "extended-resources"])
@pytest.mark.parametrize("accelerator", MATRIX_ACCELERATORS, ids=lambda a: a or "as-written")
def test_every_rendered_document_is_valid(
    example_file: Path, accelerator: str | None, extended: bool
) -> None:
    ws = parse_workspace(yaml.safe_load(example_file.read_text(encoding="utf-8")))
    try:
        plan = plan_workspace(ws, accelerator=accelerator)
    except PlanError as exc:  # as 40Gi minMemory on an L4: the refusal is tested in test_sizing
        assert str(exc).startswith("spec.")
        return
    options = RenderOptions(extended_resources=extended, namespace="models", inference_pool=True)
    docs = render_workspace(ws, plan, options)
    assert docs
    for doc in docs:
        validate(doc)
        if doc["kind"] != "NodeClaim":
            assert doc["metadata"]["namespace"] == "models"


def test_the_matrix_covers_every_kind() -> None:
    seen: set[str] = set()
    for path in EXAMPLE_FILES:
        ws = parse_workspace(yaml.safe_load(path.read_text(encoding="utf-8")))
        for extended in (False, True):
            seen.update(
                kinds(
                    render_workspace(
                        ws,
                        plan_workspace(ws),
                        RenderOptions(extended_resources=extended, inference_pool=True),
                    )
                )
            )
    shared = workspace_data(resource={"count": 2, "accelerator": {"sharing": {"strategy": "MPS"}}})
    seen.update(kinds(render(shared)[1]))
    assert seen >= {
        "Deployment",
        "LeaderWorkerSet",
        "Service",
        "ResourceClaimTemplate",
        "ResourceClaim",
        "NodeClaim",
        "ConfigMap",
        "Job",
        "InferencePool",
    }


GOLDEN_CASES = [
    "01-cpu-smollm2.yaml",
    "02-llama-8b-one-gpu.yaml",
    "05-llama-405b-multi-node.yaml",
    "06-tuning-lora.yaml",
]


@pytest.mark.parametrize("name", GOLDEN_CASES)
def test_golden_manifests(name: str) -> None:
    """Representative output, reviewed by a person. Regenerate with BOSUN_UPDATE_GOLDEN=1."""
    ws = parse_workspace(yaml.safe_load((EXAMPLES / name).read_text(encoding="utf-8")))
    text = yaml.safe_dump_all(render_workspace(ws, plan_workspace(ws)), sort_keys=False)
    golden = GOLDEN / name
    if os.environ.get("BOSUN_UPDATE_GOLDEN"):
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8"), (
        f"rendering changed; review and regenerate {golden}"
    )


def test_dra_claim_follows_the_plan() -> None:
    plan, docs = render(example_data("02-"), accelerator="nvidia-a100-40gb")
    template = find(docs, "ResourceClaimTemplate")
    request = template["spec"]["spec"]["devices"]["requests"][0]
    assert request["exactly"]["count"] == plan.devices_per_replica
    expressions = [s["cel"]["expression"] for s in request["exactly"]["selectors"]]
    assert (
        "device.capacity['gpu.nvidia.com'].memory.compareTo(quantity('40Gi')) >= 0" in expressions
    )
    pod = find(docs, "Deployment")["spec"]["template"]["spec"]
    assert pod["resourceClaims"] == [
        {"name": "accelerator", "resourceClaimTemplateName": template["metadata"]["name"]}
    ]
    # Copied onto each claim made from the template: the operator finds them by label.
    copied = template["spec"]["metadata"]["labels"]
    assert copied["bosun.dev/workspace"] == template["metadata"]["labels"]["bosun.dev/workspace"]
    assert pod["containers"][0]["resources"]["claims"] == [{"name": "accelerator"}]
    assert "nvidia.com/gpu" not in pod["containers"][0]["resources"].get("limits", {})


def test_memory_selector_reflects_what_the_model_needs() -> None:
    data = workspace_data(
        inference={"preset": {"name": "qwen2.5-14b-instruct"}, "maxModelLen": 8192}
    )
    plan, docs = render(data)
    request = find(docs, "ResourceClaimTemplate")["spec"]["spec"]["devices"]["requests"][0]
    expression = request["exactly"]["selectors"][0]["cel"]["expression"]
    gib = int(expression.split("quantity('")[1].split("Gi")[0])
    # Any GPU with at least the per-device need (at 90% utilization) qualifies.
    assert (
        plan.memory.per_device_bytes / 0.9
        <= gib * 2**30
        < plan.memory.per_device_bytes / 0.9 + 2**30
    )


def test_extended_resources_instead_of_claims() -> None:
    plan, docs = render(example_data("03-"), extended_resources=True)
    assert "ResourceClaimTemplate" not in kinds(docs)
    container = find(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"] == {"nvidia.com/gpu": str(plan.devices_per_replica)}
    terms = find(docs, "Deployment")["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]
    expressions = terms["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0][
        "matchExpressions"
    ]
    assert {"key": "nvidia.com/gpu.memory", "operator": "Gt"}.items() <= expressions[-1].items()


def test_mig_claims_the_mig_class_with_a_profile_selector() -> None:
    _, docs = render(example_data("04-"))
    request = find(docs, "ResourceClaimTemplate")["spec"]["spec"]["devices"]["requests"][0][
        "exactly"
    ]
    assert request["deviceClassName"] == "mig.nvidia.com"
    assert (
        request["selectors"][0]["cel"]["expression"]
        == "device.attributes['gpu.nvidia.com'].profile == '1g.10gb'"
    )
    _, docs = render(example_data("04-"), extended_resources=True)
    limits = find(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["resources"][
        "limits"
    ]
    assert limits == {"nvidia.com/mig-1g.10gb": "1"}


@pytest.mark.parametrize("strategy", ["TimeSlicing", "MPS"])
def test_sharing_renders_one_claim_for_all_replicas(strategy: str) -> None:
    data = workspace_data(
        resource={"count": 3, "accelerator": {"sharing": {"strategy": strategy}}},
        inference={"preset": {"name": "qwen2.5-1.5b-instruct"}, "maxModelLen": 4096},
    )
    plan, docs = render(data)
    claim = find(docs, "ResourceClaim")
    assert "ResourceClaimTemplate" not in kinds(docs)
    config = claim["spec"]["devices"]["config"][0]["opaque"]
    assert config["driver"] == "gpu.nvidia.com"
    assert config["parameters"]["kind"] == "GpuConfig"
    assert config["parameters"]["sharing"]["strategy"] == strategy
    pod = find(docs, "Deployment")["spec"]["template"]["spec"]
    assert pod["resourceClaims"] == [
        {"name": "accelerator", "resourceClaimName": claim["metadata"]["name"]}
    ]
    command = pod["containers"][0]["command"]
    utilization = float(command[command.index("--gpu-memory-utilization") + 1])
    assert utilization == plan.gpu_memory_utilization and utilization * 3 <= 0.95


def test_vllm_command_carries_the_plan() -> None:
    plan, docs = render(example_data("03-"))
    command = find(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[:3] == ["vllm", "serve", "meta-llama/Llama-3.3-70B-Instruct"]
    flags = dict(zip(command[3::2], command[4::2], strict=False))
    assert flags["--tensor-parallel-size"] == str(plan.tensor_parallel_size)
    assert flags["--max-model-len"] == "65536"
    assert flags["--served-model-name"] == "llama-3.3-70b-instruct"


@pytest.mark.parametrize(
    ("preset", "present", "absent"),
    [
        (
            "qwen3-8b",
            ["--enable-auto-tool-choice", "--tool-call-parser", "hermes", "--reasoning-parser"],
            ["--quantization"],
        ),
        # The checkpoint ships AWQ: vLLM reads that (and picks awq_marlin over awq).
        ("qwen3-8b-awq", ["--reasoning-parser", "qwen3"], ["--quantization"]),
        ("gpt-oss-20b", ["--tool-call-parser", "openai", "openai_gptoss"], ["--quantization"]),
        ("llama-3.1-8b-instruct", ["llama3_json"], ["--reasoning-parser"]),
        # Two H100s: its experts spread whole over the ranks.
        ("mixtral-8x7b-instruct", ["--enable-expert-parallel"], ["--reasoning-parser"]),
        ("qwen3-32b", ["--tensor-parallel-size"], ["--enable-expert-parallel"]),
        # Mamba-2 state in float32, as NVIDIA asks, and its repository's code.
        ("nemotron-nano-9b-v2", ["--mamba-ssm-cache-dtype", "float32", "--trust-remote-code"], []),
        # FP8 as it ships; over four H100s its experts spread whole.
        (
            "minimax-m2.7",
            ["--tool-call-parser", "minimax_m2", "--trust-remote-code", "--enable-expert-parallel"],
            ["--quantization"],
        ),
    ],
)
def test_vllm_gets_each_presets_parsers_and_keeps_its_format(
    preset: str, present: list[str], absent: list[str]
) -> None:
    data = workspace_data(inference={"preset": {"name": preset}})
    _, docs = render(data, accelerator="nvidia-h100-80gb")
    command = find(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["command"]
    assert all(arg in command for arg in present), command
    assert not any(arg in command for arg in absent), command


def test_deepseek_v3_2_gets_its_tokenizer_and_parsers_on_one_h200_node() -> None:
    data = workspace_data(
        inference={"preset": {"name": "deepseek-v3.2"}},
        resource={"instanceType": "Standard_ND96isr_H200_v5"},
    )
    plan, docs = render(data)
    assert plan.tensor_parallel_size == 8 and plan.quantization == "fp8"
    command = find(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["command"]

    def value(flag: str) -> str:
        return str(command[command.index(flag) + 1])

    assert value("--tokenizer-mode") == "deepseek_v32"
    assert value("--tool-call-parser") == "deepseek_v32"
    assert value("--reasoning-parser") == "deepseek_v3"
    assert "--quantization" not in command


def test_cpu_workspace_runs_bosun_serve_with_its_resources() -> None:
    _, docs = render(example_data("01-"))
    assert kinds(docs) == ["Deployment", "Service"]
    container = find(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][:2] == ["bosun", "serve"]
    assert container["command"][container["command"].index("--device") + 1] == "cpu"
    assert container["resources"] == {
        "requests": {"cpu": "2", "memory": "4Gi"},
        "limits": {"memory": "4Gi"},
    }
    assert container["command"][container["command"].index("--threads") + 1] == "2"
    assert "tolerations" not in find(docs, "Deployment")["spec"]["template"]["spec"]


@pytest.mark.parametrize(
    ("cpu", "threads"), [("1", "1"), ("1500m", "2"), ("8", "8"), ("250m", "1")]
)
def test_a_cpu_pod_runs_a_thread_per_cpu_it_asks_for(cpu: str, threads: str) -> None:
    """The engine's team follows the pod's request, not the node's core count."""
    data = example_data("01-")
    data["spec"]["resource"]["cpu"] = cpu
    _, docs = render(data)
    container = find(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][container["command"].index("--threads") + 1] == threads
    assert container["resources"]["requests"]["cpu"] == cpu


def test_multi_node_uses_a_leader_worker_set_with_ray() -> None:
    plan, docs = render(example_data("05-"))
    lws = find(docs, "LeaderWorkerSet")
    template = lws["spec"]["leaderWorkerTemplate"]
    assert template["size"] == plan.nodes_per_replica == 2
    leader = template["leaderTemplate"]["spec"]["containers"][0]
    assert "--pipeline-parallel-size 2" in leader["command"][2]
    assert "--distributed-executor-backend ray" in leader["command"][2]
    worker = template["workerTemplate"]["spec"]["containers"][0]
    assert "LWS_LEADER_ADDRESS" in worker["command"][2]
    claim = find(docs, "ResourceClaimTemplate")["spec"]["spec"]["devices"]["requests"][0]
    assert claim["exactly"]["count"] == 8  # each pod claims one node's GPUs
    assert find(docs, "Service")["spec"]["selector"]["bosun.dev/role"] == "leader"


def test_node_claims_for_an_instance_type() -> None:
    _, docs = render(example_data("03-"), namespace="team-a")
    claims = [d for d in docs if d["kind"] == "NodeClaim"]
    assert len(claims) == 2
    assert len({c["metadata"]["name"] for c in claims}) == 2
    spec = claims[0]["spec"]
    assert spec["nodeClassRef"] == {
        "group": "karpenter.azure.com",
        "kind": "AKSNodeClass",
        "name": "default",
    }
    assert {
        "key": "node.kubernetes.io/instance-type",
        "operator": "In",
        "values": ["Standard_ND96isr_H100_v5"],
    } in spec["requirements"]
    # Pods select the nodes by the Workspace's labelSelector, which the nodes carry.
    assert claims[0]["metadata"]["labels"]["apps"] == "llama-70b"
    assert "ownerReferences" not in claims[0]["metadata"]


def test_owner_references_when_the_workspace_has_a_uid() -> None:
    data = example_data("02-")
    data["metadata"].update(uid="1f2e3d4c-0000-4000-8000-000000000001", namespace="ml")
    _, docs = render(data)
    for doc in docs:
        assert doc["metadata"]["namespace"] == "ml"
        assert doc["metadata"]["ownerReferences"] == [
            {
                "apiVersion": "bosun.dev/v1alpha1",
                "kind": "Workspace",
                "name": "llama-8b",
                "uid": "1f2e3d4c-0000-4000-8000-000000000001",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]


def test_pods_meet_the_restricted_security_standard() -> None:
    for path in EXAMPLE_FILES:
        ws = parse_workspace(yaml.safe_load(path.read_text(encoding="utf-8")))
        for doc in render_workspace(ws, plan_workspace(ws)):
            spec = doc.get("spec", {})
            pods = [spec.get("template", {}).get("spec")]
            lwt = spec.get("leaderWorkerTemplate", {})
            pods += [
                lwt.get("leaderTemplate", {}).get("spec"),
                lwt.get("workerTemplate", {}).get("spec"),
            ]
            for pod in filter(None, pods):
                assert pod["securityContext"]["runAsNonRoot"] is True
                assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
                for c in pod["containers"]:
                    assert c["securityContext"]["allowPrivilegeEscalation"] is False
                    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}


def test_tuning_job_mounts_data_and_output() -> None:
    _, docs = render(example_data("06-"))
    assert kinds(docs) == ["ResourceClaimTemplate", "ConfigMap", "Job"]
    config = yaml.safe_load(find(docs, "ConfigMap")["data"]["tuning.yaml"])
    assert config["inputs"] == ["/mnt/pvc/training-data/chats.jsonl"]
    assert config["output"] == "/data/output"
    assert config["method"] == "lora"
    pod = find(docs, "Job")["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["containers"][0]["command"] == [
        "bosun",
        "tune",
        "--config",
        "/etc/bosun/tuning.yaml",
    ]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["output"]["persistentVolumeClaim"] == {"claimName": "adapters"}
    assert volumes["pvc-0"]["persistentVolumeClaim"] == {
        "claimName": "training-data",
        "readOnly": True,
    }


def test_a_tuning_job_is_told_which_of_its_hosts_the_user_opted_in_to() -> None:
    """The job checks its URLs again where it runs: the opt-in for its own internal hosts
    goes with it, and no other host of the list."""
    allowed = frozenset({"mirror.team.svc", "other.team.svc"})

    def job_env(*uris: str) -> list[dict[str, str]]:
        tuning = {
            "preset": {"name": "qwen2.5-0.5b-instruct"},
            "input": {"uris": list(uris)},
            "output": {"uri": "pvc://adapters/out"},
        }
        ws = parse_workspace(workspace_data(inference=None, tuning=tuning), allowed_hosts=allowed)
        docs = render_workspace(ws, plan_workspace(ws), RenderOptions(allowed_hosts=allowed))
        env: list[dict[str, str]] = find(docs, "Job")["spec"]["template"]["spec"]["containers"][
            0
        ].get("env", [])
        return env

    public = "https://data.example.com/b.jsonl"
    opt_in = {"name": "BOSUN_ALLOW_HOSTS", "value": "mirror.team.svc"}
    assert opt_in in job_env("http://mirror.team.svc/a.jsonl", public)
    assert all(e["name"] != "BOSUN_ALLOW_HOSTS" for e in job_env(public))


def test_engine_config_and_adapters_reach_the_server() -> None:
    data = workspace_data(
        inference={
            "preset": {"name": "llama-3.1-8b-instruct"},
            "config": {"enableChunkedPrefill": True, "maxNumSeqs": 64},
            "adapters": [{"name": "sql", "source": {"uri": "pvc://adapters/sql"}}],
        }
    )
    _, docs = render(data)
    engine = yaml.safe_load(find(docs, "ConfigMap")["data"]["engine.yaml"])
    assert engine == {"enable-chunked-prefill": True, "max-num-seqs": 64}
    pod = find(docs, "Deployment")["spec"]["template"]["spec"]
    command = pod["containers"][0]["command"]
    assert command[command.index("--lora-modules") + 1] == "sql=/mnt/pvc/adapters/sql"
    assert command[-2:] == ["--config", "/etc/bosun/engine.yaml"]
    mounts = {m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    assert {"/etc/bosun", "/mnt/pvc/adapters"} <= mounts


def test_long_or_numeric_names_become_valid_service_names() -> None:
    data = workspace_data()
    data["metadata"]["name"] = "8b." + "x" * 80
    _, docs = render(data)
    name = find(docs, "Service")["metadata"]["name"]
    assert len(name) <= 63 and name[0].isalpha() and "." not in name
    for doc in docs:
        validate(doc)


@pytest.mark.parametrize("example", ["01-", "05-"])  # one pod per replica; a leader and workers
def test_an_inference_pool_selects_the_pods_the_service_does(example: str) -> None:
    _, docs = render(example_data(example), inference_pool=True, endpoint_picker="team-epp")
    pool, service = find(docs, "InferencePool"), find(docs, "Service")
    assert pool["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]
    workload = find(docs, "LeaderWorkerSet" if example == "05-" else "Deployment")
    if workload["kind"] == "Deployment":
        pod = workload["spec"]["template"]
    else:
        pod = workload["spec"]["leaderWorkerTemplate"]["leaderTemplate"]
    assert pool["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    (port,) = [p for p in pod["spec"]["containers"][0]["ports"] if p["name"] == "http"]
    assert pool["spec"]["targetPorts"] == [{"number": port["containerPort"]}]
    picker = pool["spec"]["endpointPickerRef"]
    assert (picker["name"], picker["port"]["number"]) == ("team-epp", 9002)
    assert pool["metadata"]["name"] == service["metadata"]["name"]
    # The published schema holds: it refuses what the API server would.
    schema = yaml.safe_load(CRD_SCHEMAS[(pool["apiVersion"], "InferencePool")].read_text())
    assert schema_errors(schema, {**pool, "spec": {**pool["spec"], "targetPorts": []}})
    no_port = {**pool["spec"], "endpointPickerRef": {"name": "x", "kind": "Service"}}
    assert cel_errors(schema, {**pool, "spec": no_port})


def test_no_inference_pool_unless_asked_or_for_a_tuning_job() -> None:
    assert "InferencePool" not in kinds(render(example_data("01-"))[1])
    _, tuning = render(example_data("06-"), inference_pool=True)
    assert "InferencePool" not in kinds(tuning)
