"""Inference workloads: a Deployment (one node per replica) or a LeaderWorkerSet (several),
the Service in front of it, and the ConfigMap with engine arguments."""

from __future__ import annotations

import shlex
from typing import Any

import yaml

from bosun.api.workspace import Workspace
from bosun.catalog.sizing import Plan
from bosun.render.claims import DeviceBinding
from bosun.render.names import dns_label, metadata, selector_labels
from bosun.render.pods import (
    RenderOptions,
    config_map_name,
    placement,
    pod_security,
    pod_volumes,
    server_args,
    server_container,
)

__all__ = ["config_map", "deployment", "leader_worker_set", "service"]

COMPONENT = "inference"
LWS_API = "leaderworkerset.x-k8s.io/v1"
# The script vLLM's image ships for Ray clusters under LeaderWorkerSet.
RAY_SCRIPT = "/vllm-workspace/examples/online_serving/multi-node-serving.sh"


def _pod_spec(
    ws: Workspace,
    plan: Plan,
    devices: DeviceBinding,
    options: RenderOptions,
    container: dict[str, Any],
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "securityContext": pod_security(),
        "terminationGracePeriodSeconds": 60,
        "containers": [container],
        "volumes": pod_volumes(ws, plan),
    }
    if devices.pod_claims:
        spec["resourceClaims"] = list(devices.pod_claims)
    spec.update(placement(ws, plan, devices))
    return spec


def deployment(
    ws: Workspace, plan: Plan, devices: DeviceBinding, options: RenderOptions
) -> dict[str, Any]:
    name = dns_label(ws.name)
    container = server_container(ws, plan, devices, options)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(ws, name, COMPONENT, options.namespace),
        "spec": {
            "replicas": ws.spec.resource.count,
            "selector": {"matchLabels": selector_labels(ws, COMPONENT)},
            # A new pod must be ready before an old one goes: no downtime on updates,
            # at the price of one replica's devices during the rollout.
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "template": {
                "metadata": {"labels": metadata(ws, name, COMPONENT, None)["labels"]},
                "spec": _pod_spec(ws, plan, devices, options, container),
            },
        },
    }


def leader_worker_set(
    ws: Workspace, plan: Plan, devices: DeviceBinding, options: RenderOptions
) -> dict[str, Any]:
    """One group per replica: a leader running vLLM over a Ray cluster, workers joining it."""
    name = dns_label(ws.name)
    leader_cmd = f"{RAY_SCRIPT} leader --ray_cluster_size=$(LWS_GROUP_SIZE) && " + shlex.join(
        server_args(ws, plan)
    )
    worker_cmd = f"{RAY_SCRIPT} worker --ray_address=$(LWS_LEADER_ADDRESS)"
    leader = server_container(ws, plan, devices, options, command=["bash", "-c", leader_cmd])
    leader["name"] = "server"
    leader["ports"] = [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        leader[probe] = server_container(ws, plan, devices, options)[probe]
    worker = server_container(
        ws, plan, devices, options, command=["bash", "-c", worker_cmd], probes=False
    )
    labels = metadata(ws, name, COMPONENT, None)["labels"]
    return {
        "apiVersion": LWS_API,
        "kind": "LeaderWorkerSet",
        "metadata": metadata(ws, name, COMPONENT, options.namespace),
        "spec": {
            "replicas": ws.spec.resource.count,
            "startupPolicy": "LeaderCreated",
            "rolloutStrategy": {
                "type": "RollingUpdate",
                "rollingUpdateConfiguration": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "leaderWorkerTemplate": {
                "size": plan.nodes_per_replica,
                "restartPolicy": "RecreateGroupOnPodRestart",
                "leaderTemplate": {
                    "metadata": {"labels": {**labels, "bosun.dev/role": "leader"}},
                    "spec": _pod_spec(ws, plan, devices, options, leader),
                },
                "workerTemplate": {
                    "metadata": {"labels": {**labels, "bosun.dev/role": "worker"}},
                    "spec": _pod_spec(ws, plan, devices, options, worker),
                },
            },
        },
    }


def serving_selector(ws: Workspace, plan: Plan) -> dict[str, str]:
    """The labels of the pods that answer requests: every replica's, or with several
    nodes per replica, each leader's."""
    selector = selector_labels(ws, COMPONENT)
    if plan.nodes_per_replica > 1:
        selector["bosun.dev/role"] = "leader"
    return selector


def service(ws: Workspace, plan: Plan, options: RenderOptions) -> dict[str, Any]:
    selector = serving_selector(ws, plan)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(ws, dns_label(ws.name), COMPONENT, options.namespace),
        "spec": {
            "type": "ClusterIP",
            "selector": selector,
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def config_map(
    ws: Workspace, options: RenderOptions, key: str, data: dict[str, Any]
) -> dict[str, Any]:
    component = "inference" if ws.spec.inference is not None else "tuning"
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(ws, config_map_name(ws), component, options.namespace),
        "data": {key: yaml.safe_dump(data, sort_keys=False)},
    }
