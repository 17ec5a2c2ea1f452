"""A Workspace as a Gateway API Inference Extension ``InferencePool``
(``inference.networking.k8s.io/v1``): for clusters that route inference with their own
Envoy-based gateway and endpoint picker (EPP) instead of Bosun's gateway.

The pool selects the Workspace's serving pods (the Service's selector) on their serving
port; its ``endpointPickerRef`` names the EPP Service the user runs for it (default
``NAME-epp`` on the EPP's port, 9002). Bosun runs no EPP: without one, the Gateway fails
requests closed, as the API's default ``FailClose`` says.
"""

from __future__ import annotations

from typing import Any

from bosun.api.workspace import Workspace
from bosun.catalog.sizing import Plan
from bosun.render.names import dns_label, metadata
from bosun.render.pods import HTTP_PORT, RenderOptions
from bosun.render.workloads import COMPONENT, serving_selector

__all__ = ["ENDPOINT_PICKER_PORT", "INFERENCE_POOL_API", "inference_pool"]

INFERENCE_POOL_API = "inference.networking.k8s.io/v1"
ENDPOINT_PICKER_PORT = 9002  # the EPP's ext-proc port in the extension's own manifests


def inference_pool(ws: Workspace, plan: Plan, options: RenderOptions) -> dict[str, Any]:
    picker = options.endpoint_picker or dns_label(ws.name, "epp")
    return {
        "apiVersion": INFERENCE_POOL_API,
        "kind": "InferencePool",
        "metadata": metadata(ws, dns_label(ws.name), COMPONENT, options.namespace),
        "spec": {
            "selector": {"matchLabels": serving_selector(ws, plan)},
            "targetPorts": [{"number": HTTP_PORT}],
            "endpointPickerRef": {
                "name": picker,
                "kind": "Service",
                "port": {"number": ENDPOINT_PICKER_PORT},
                "failureMode": "FailClose",
            },
        },
    }
