"""Rendering: a Plan becomes Kubernetes manifests, as plain dicts from pure functions.

Deployment or LeaderWorkerSet, Service, ResourceClaimTemplate (or ``nvidia.com/gpu``
limits), Karpenter NodeClaims, ConfigMap, a Job for tuning, and on request an
InferencePool (Gateway API Inference Extension). No I/O; must not import
kopf, kubernetes, torch or fastapi.
"""

from __future__ import annotations

from typing import Any

from bosun.api.workspace import Workspace
from bosun.catalog.sizing import Plan
from bosun.render.claims import bind_devices
from bosun.render.inference_pool import inference_pool
from bosun.render.nodes import node_claims
from bosun.render.pods import RenderOptions, engine_option
from bosun.render.tuning import tuning_config, tuning_job
from bosun.render.workloads import config_map, deployment, leader_worker_set, service

__all__ = ["RenderOptions", "render_workspace"]


def render_workspace(
    ws: Workspace, plan: Plan, options: RenderOptions | None = None
) -> list[dict[str, Any]]:
    """Every object the Workspace needs on a cluster, in the order to apply them."""
    options = options or RenderOptions()
    if options.namespace is None and ws.metadata.namespace:
        options = RenderOptions(**{**options.__dict__, "namespace": ws.metadata.namespace})
    devices = bind_devices(
        ws, plan, options.namespace, extended_resources=options.extended_resources
    )
    objects: list[dict[str, Any]] = []
    objects += node_claims(ws, plan, options)
    objects += devices.objects
    if ws.spec.tuning is not None:
        objects.append(config_map(ws, options, "tuning.yaml", tuning_config(ws, plan)))
        objects.append(tuning_job(ws, plan, devices, options))
        return objects
    if ws.workload.config:
        # vLLM's --config file takes the CLI's option names; so does `bosun serve`.
        engine = {engine_option(k): v for k, v in ws.workload.config.items()}
        objects.append(config_map(ws, options, "engine.yaml", engine))
    if plan.nodes_per_replica > 1:
        objects.append(leader_worker_set(ws, plan, devices, options))
    else:
        objects.append(deployment(ws, plan, devices, options))
    objects.append(service(ws, plan, options))
    if options.inference_pool:
        objects.append(inference_pool(ws, plan, options))
    return objects
