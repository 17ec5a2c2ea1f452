"""The model server's pod: container, arguments, volumes, probes, placement, security."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from bosun.api.quantity import parse_quantity
from bosun.api.validators import parse_uri
from bosun.api.workspace import Workspace
from bosun.catalog.sizing import Plan
from bosun.render.claims import DeviceBinding
from bosun.render.names import dns_label

__all__ = [
    "CONFIG_DIR",
    "HTTP_PORT",
    "RenderOptions",
    "config_map_name",
    "container_security",
    "engine_option",
    "placement",
    "pod_security",
    "pod_volumes",
    "pvc_mount_path",
    "served_model_name",
    "server_args",
    "server_container",
]

HTTP_PORT = 8000
CONFIG_DIR = "/etc/bosun"
CACHE_DIR = "/cache"
PVC_ROOT = "/mnt/pvc"
GIB = 2**30


@dataclass(frozen=True)
class RenderOptions:
    """Choices that are not part of the Workspace: images and the device API to use."""

    namespace: str | None = None
    extended_resources: bool = False
    vllm_image: str = "vllm/vllm-openai:v0.11.0"
    bosun_image: str = "ghcr.io/bosun-dev/bosun:0.1.0"
    node_class: dict[str, str] = field(default_factory=dict)  # provider -> NodeClass name
    # Internal hosts the user opted in to as sources (BOSUN_ALLOW_HOSTS): a job that
    # fetches from one is told so, since it checks every URL again.
    allowed_hosts: frozenset[str] = frozenset()
    # Also an InferencePool (Gateway API Inference Extension) for the Workspace, whose
    # endpoint picker is this Service (default NAME-epp).
    inference_pool: bool = False
    endpoint_picker: str | None = None


def served_model_name(ws: Workspace, plan: Plan) -> str:
    """The name clients pass as ``model``: the preset's name, else the Workspace's."""
    if ws.workload.preset is not None and plan.spec is not None:
        return plan.spec.name
    return ws.name


def pvc_mount_path(claim: str) -> str:
    return f"{PVC_ROOT}/{claim}"


def _model_path(uri: str) -> str:
    """Where a model or adapter URI is found inside the pod."""
    parsed = parse_uri(uri, ("hf", "file", "pvc", "http", "https", "oci"))
    if parsed.scheme == "hf":
        return parsed.hf_repo
    if parsed.scheme == "pvc":
        return f"{pvc_mount_path(parsed.authority)}/{parsed.path}".rstrip("/")
    if parsed.scheme == "file":
        return parsed.path
    return uri


def engine_option(key: str) -> str:
    """An engine argument in the engines' own spelling: ``maxNumSeqs`` -> ``max-num-seqs``."""
    kebab = "".join(f"-{c.lower()}" if c.isupper() else c for c in key).replace("_", "-")
    return kebab.lstrip("-")


def server_args(ws: Workspace, plan: Plan) -> list[str]:
    """The model server's command line, derived from the plan."""
    inference = ws.spec.inference
    assert inference is not None
    common = [
        "--served-model-name",
        served_model_name(ws, plan),
        "--host",
        "0.0.0.0",
        "--port",
        str(HTTP_PORT),
        "--max-model-len",
        str(plan.max_model_len),
        "--dtype",
        plan.dtype,
    ]
    parser = plan.spec.tool_parser if plan.spec is not None else None
    if plan.runtime == "vllm":
        args = ["vllm", "serve", plan.model_ref, *common]
        args += ["--tensor-parallel-size", str(plan.tensor_parallel_size)]
        args += ["--gpu-memory-utilization", f"{plan.gpu_memory_utilization:.2f}"]
        if plan.spec is not None and plan.spec.is_moe and plan.tensor_parallel_size > 1:
            # Whole experts per rank rather than every expert sliced over all of them: the
            # same bytes per device, fewer and larger expert matmuls.
            args.append("--enable-expert-parallel")
        if plan.pipeline_parallel_size > 1:
            args += ["--pipeline-parallel-size", str(plan.pipeline_parallel_size)]
            args += ["--distributed-executor-backend", "ray"]
        # A checkpoint that ships quantized says so in its config, and vLLM then picks the
        # fastest kernel for it (awq_marlin over awq); the flag is for quantizing on load.
        own = plan.spec.quantization.value if plan.spec is not None else "none"
        if plan.quantization not in ("none", own):
            bnb = plan.quantization == "bitsandbytes-4bit"
            args += ["--quantization", "bitsandbytes" if bnb else plan.quantization]
        if parser:  # vLLM parses tool calls only when told how the model writes them
            args += ["--enable-auto-tool-choice", "--tool-call-parser", parser]
        if plan.spec is not None and plan.spec.reasoning_parser:  # thinking apart from answers
            args += ["--reasoning-parser", plan.spec.reasoning_parser]
        if plan.spec is not None and plan.spec.trust_remote_code:
            args.append("--trust-remote-code")
        if plan.spec is not None:
            args += plan.spec.vllm_args
        if inference.adapters:
            args += ["--enable-lora", "--max-loras", str(len(inference.adapters))]
            args.append("--lora-modules")
            args += [f"{a.name}={_model_path(a.source.uri)}" for a in inference.adapters]
    else:
        args = ["bosun", "serve", "--model", plan.model_ref, *common]
        args += ["--device", "cpu" if plan.cpu_only else "cuda"]
        if plan.cpu_only:  # a thread per CPU the pod asks for, not one per node core
            args += ["--threads", str(cpu_threads(ws.spec.resource.cpu))]
        args += ["--quantization", plan.quantization]  # what the plan sized
        if parser:
            args += ["--tool-call-parser", parser]
        for adapter in inference.adapters:
            args += [
                "--adapter",
                f"{adapter.name}={_model_path(adapter.source.uri)}:{adapter.strength}",
            ]
    model = ws.workload.model
    if model is not None and model.revision:
        args += ["--revision", model.revision]
    if inference.config:
        args += ["--config", f"{CONFIG_DIR}/engine.yaml"]
    return args


def pod_security() -> dict[str, Any]:
    """Pod-level settings of the ``restricted`` Pod Security Standard."""
    return {
        "runAsNonRoot": True,
        "runAsUser": 1000,
        "runAsGroup": 1000,
        "fsGroup": 1000,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _gi(n: float) -> str:
    return f"{max(1, math.ceil(n / GIB))}Gi"


DEFAULT_CPU = "2"  # a CPU pod's request when the Workspace names none


def cpu_threads(cpu: str | None) -> int:
    """Engine threads for a CPU request (``"2"``, ``"1500m"``): the CPUs rounded up."""
    return max(1, math.ceil(parse_quantity(cpu or DEFAULT_CPU)))  # validated by the model


def _resources(ws: Workspace, plan: Plan, devices: DeviceBinding) -> dict[str, Any]:
    resource = ws.spec.resource
    if plan.cpu_only:
        memory = resource.memory or _gi(plan.memory.per_device_bytes * 1.1)
        cpu = resource.cpu or DEFAULT_CPU
        return {"requests": {"cpu": cpu, "memory": memory}, "limits": {"memory": memory}}
    per_pod = plan.tensor_parallel_size
    # Host memory: a quarter of this pod's weights for loading buffers, plus the server.
    host = plan.memory.weights_bytes / max(plan.nodes_per_replica, 1) / 4 + 8 * GIB
    out: dict[str, Any] = {"requests": {"cpu": str(max(4, 4 * per_pod)), "memory": _gi(host)}}
    if devices.limits:
        out["limits"] = dict(devices.limits)
        out["requests"].update(devices.limits)
    if devices.container_claims:
        out["claims"] = list(devices.container_claims)
    return out


def _probe(path: str, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "failureThreshold": failures,
        "timeoutSeconds": 5,
    }


def _volumes(ws: Workspace, plan: Plan) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(volumes, mounts): cache, shared memory, engine config and every PVC referenced."""
    shm = _gi(min(16 * GIB, max(GIB, plan.memory.per_device_bytes * 0.05)))
    volumes: list[dict[str, Any]] = [
        {"name": "cache", "emptyDir": {}},
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": shm}},
        {"name": "tmp", "emptyDir": {}},
    ]
    mounts: list[dict[str, Any]] = [
        {"name": "cache", "mountPath": CACHE_DIR},
        {"name": "dshm", "mountPath": "/dev/shm"},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    if ws.workload.config:
        volumes.append({"name": "config", "configMap": {"name": config_map_name(ws)}})
        mounts.append({"name": "config", "mountPath": CONFIG_DIR, "readOnly": True})
    claims: list[str] = []
    uris = []
    if ws.workload.model is not None:
        uris.append(ws.workload.model.uri)
    if ws.spec.inference is not None:
        uris += [a.source.uri for a in ws.spec.inference.adapters]
    for uri in uris:
        parsed = parse_uri(uri, ("hf", "file", "pvc", "http", "https", "oci"))
        if parsed.scheme == "pvc" and parsed.authority not in claims:
            claims.append(parsed.authority)
    for i, claim in enumerate(claims):
        volumes.append(
            {
                "name": f"pvc-{i}",
                "persistentVolumeClaim": {"claimName": claim, "readOnly": True},
            }
        )
        mounts.append({"name": f"pvc-{i}", "mountPath": pvc_mount_path(claim), "readOnly": True})
    return volumes, mounts


def config_map_name(ws: Workspace) -> str:
    return dns_label(ws.name, "config")


def _env(ws: Workspace) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [
        {"name": "HOME", "value": CACHE_DIR},
        {"name": "HF_HOME", "value": f"{CACHE_DIR}/huggingface"},
    ]
    secret = ws.spec.inference.access_secret if ws.spec.inference else None
    if secret:
        env.append(
            {
                "name": "HF_TOKEN",
                "valueFrom": {"secretKeyRef": {"name": secret, "key": "HF_TOKEN"}},
            }
        )
    return env


def server_container(
    ws: Workspace,
    plan: Plan,
    devices: DeviceBinding,
    options: RenderOptions,
    command: list[str] | None = None,
    probes: bool = True,
) -> dict[str, Any]:
    """The model server container (or, with ``command``, a worker beside it)."""
    volumes_mounts = _volumes(ws, plan)[1]
    container: dict[str, Any] = {
        "name": "server" if probes else "worker",
        "image": options.vllm_image if plan.runtime == "vllm" else options.bosun_image,
        "imagePullPolicy": "IfNotPresent",
    }
    # `command`, not `args`: it replaces the image's entrypoint (vLLM's is `vllm serve`).
    container["command"] = command if command is not None else server_args(ws, plan)
    container["env"] = _env(ws)
    if probes:
        container["ports"] = [{"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"}]
        # Loading weights can take many minutes: the startup probe allows 30.
        container["startupProbe"] = _probe("/health", 10, 180)
        container["readinessProbe"] = _probe("/health", 5, 3)
        container["livenessProbe"] = _probe("/health", 10, 6)
    container["resources"] = _resources(ws, plan, devices)
    container["volumeMounts"] = volumes_mounts
    container["securityContext"] = container_security()
    return container


def placement(ws: Workspace, plan: Plan, devices: DeviceBinding) -> dict[str, Any]:
    """Affinity and tolerations from labelSelector, preferredNodes and the instance type."""
    resource = ws.spec.resource
    required: list[dict[str, Any]] = []
    selector = resource.label_selector
    if selector is not None:
        required += [
            {"key": k, "operator": "In", "values": [v]} for k, v in selector.match_labels.items()
        ]
        for expr in selector.match_expressions:
            item: dict[str, Any] = {"key": expr.key, "operator": expr.operator}
            if expr.values:
                item["values"] = list(expr.values)
            required.append(item)
    if plan.instance_type is not None:
        required.append(
            {
                "key": "node.kubernetes.io/instance-type",
                "operator": "In",
                "values": [plan.instance_type.name],
            }
        )
    required += devices.node_requirements
    out: dict[str, Any] = {}
    affinity: dict[str, Any] = {}
    if required:
        affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {
            "nodeSelectorTerms": [{"matchExpressions": required}]
        }
    if resource.preferred_nodes:
        affinity["preferredDuringSchedulingIgnoredDuringExecution"] = [
            {
                "weight": 100,
                "preference": {
                    "matchExpressions": [
                        {
                            "key": "kubernetes.io/hostname",
                            "operator": "In",
                            "values": list(resource.preferred_nodes),
                        }
                    ]
                },
            }
        ]
    if affinity:
        out["affinity"] = {"nodeAffinity": affinity}
    if plan.accelerator.is_gpu:
        out["tolerations"] = [
            {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
            {"key": "sku", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"},
        ]
    return out


def pod_volumes(ws: Workspace, plan: Plan) -> list[dict[str, Any]]:
    return _volumes(ws, plan)[0]
