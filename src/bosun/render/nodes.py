"""Karpenter NodeClaims (``karpenter.sh/v1``) for Workspaces that name an instance type."""

from __future__ import annotations

import math
from typing import Any

from bosun.api.workspace import Workspace
from bosun.catalog.sizing import Plan
from bosun.render.names import WORKSPACE_LABEL, dns_label, labels
from bosun.render.pods import RenderOptions

__all__ = ["GPU_TAINT", "NODE_CLASSES", "node_claims"]

# The taint KAITO puts on GPU nodes; Bosun's pods tolerate it, others stay off.
GPU_TAINT = {"key": "sku", "value": "gpu", "effect": "NoSchedule"}
# The NodeClass kind of each cloud's Karpenter provider.
NODE_CLASSES = {
    "azure": ("karpenter.azure.com", "AKSNodeClass"),
    "aws": ("karpenter.k8s.aws", "EC2NodeClass"),
    "gcp": ("karpenter.k8s.gcp", "GCENodeClass"),
}
NAMESPACE_LABEL = "bosun.dev/workspace-namespace"


def node_claims(ws: Workspace, plan: Plan, options: RenderOptions) -> list[dict[str, Any]]:
    """One NodeClaim per node the replicas need. Cluster-scoped, so no owner reference:
    the operator's finalizer deletes them with the Workspace."""
    itype = plan.instance_type
    if itype is None:
        return []
    group, kind = NODE_CLASSES[itype.provider]
    namespace = options.namespace or ws.metadata.namespace or "default"
    node_labels = {**labels(ws, "node"), NAMESPACE_LABEL: namespace}
    if ws.spec.resource.label_selector is not None:
        node_labels.update(ws.spec.resource.label_selector.match_labels)
    # Room for this node's share of the weights twice over (download and page cache).
    per_node = plan.memory.weights_bytes / plan.nodes_per_replica
    disk_gib = max(128, math.ceil(per_node * 2 / 2**30))
    claims = []
    for i in range(plan.nodes_to_provision):
        claims.append(
            {
                "apiVersion": "karpenter.sh/v1",
                "kind": "NodeClaim",
                "metadata": {
                    "name": dns_label(namespace, ws.name, str(i)),
                    "labels": node_labels,
                    "annotations": {WORKSPACE_LABEL: f"{namespace}/{ws.name}"},
                },
                "spec": {
                    "nodeClassRef": {
                        "group": group,
                        "kind": kind,
                        "name": options.node_class.get(itype.provider, "default"),
                    },
                    "requirements": [
                        {
                            "key": "node.kubernetes.io/instance-type",
                            "operator": "In",
                            "values": [itype.name],
                        },
                        {
                            "key": "karpenter.sh/capacity-type",
                            "operator": "In",
                            "values": ["on-demand"],
                        },
                        {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]},
                    ],
                    "taints": [GPU_TAINT],
                    "resources": {"requests": {"storage": f"{disk_gib}Gi"}},
                },
            }
        )
    return claims
