"""What `bosun install` prints: the CRDs, a namespace, the operator's ServiceAccount and
least-privilege RBAC, its Deployment and metrics Service. ``config/`` holds the same
objects as a kustomize tree (a test keeps the two equal).

The ClusterRole lists exactly the (verb, resource) pairs the operator sends; the operator
tests record every request it makes and check both directions.
"""

from __future__ import annotations

from typing import Any

from bosun import __version__
from bosun.api.crd import workspace_crd
from bosun.render.pods import container_security, pod_security

__all__ = [
    "OPERATOR_IMAGE",
    "OPERATOR_NAME",
    "PEERING_NAME",
    "RBAC_RULES",
    "install_manifests",
    "peering_crds",
]

OPERATOR_NAME = "bosun-operator"
OPERATOR_IMAGE = f"ghcr.io/bosun-dev/bosun-operator:{__version__}"
PEERING_NAME = "bosun"
HEALTH_PORT = 8080
METRICS_PORT = 8081

_READ = ["get", "list", "watch"]
# (apiGroup, resources, verbs): what the operator does, and nothing more.
RBAC_RULES: list[tuple[str, list[str], list[str]]] = [
    # Workspaces: watched; kopf patches its finalizer and bookkeeping annotations.
    ("bosun.dev", ["workspaces"], ["list", "watch", "get", "patch"]),
    ("bosun.dev", ["workspaces/status"], ["patch"]),
    # What a Workspace renders: server-side applied, watched for drift, pruned.
    ("apps", ["deployments"], [*_READ, "patch", "delete"]),
    ("leaderworkerset.x-k8s.io", ["leaderworkersets"], [*_READ, "patch", "delete"]),
    ("batch", ["jobs"], [*_READ, "patch", "delete"]),
    ("", ["services"], ["list", "watch", "patch"]),
    ("", ["configmaps"], ["list", "watch", "patch", "delete"]),
    ("resource.k8s.io", ["resourceclaimtemplates"], ["list", "watch", "patch", "delete"]),
    # Observed: pods for readiness and scheduling failures, the cluster's devices.
    ("", ["pods"], ["list", "watch"]),
    ("", ["nodes"], ["list"]),
    ("resource.k8s.io", ["deviceclasses", "resourceslices", "resourceclaims"], ["list"]),
    # Node provisioning: Karpenter NodeClaims, deleted by the Workspace's finalizer.
    ("karpenter.sh", ["nodeclaims"], ["list", "watch", "patch", "delete"]),
    # Events for each step; kopf's peering between operator replicas.
    ("", ["events"], ["create"]),
    ("kopf.dev", ["clusterkopfpeerings"], ["list", "watch", "patch"]),
    ("apiextensions.k8s.io", ["customresourcedefinitions"], ["list", "watch"]),
]


def _peering_crd(kind: str, plural: str, scope: str) -> dict[str, Any]:
    """kopf's peering resources (as kopf documents them)."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.kopf.dev"},
        "spec": {
            "group": "kopf.dev",
            "scope": scope,
            "names": {"kind": kind, "plural": plural, "singular": kind.lower()},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "status": {
                                    "type": "object",
                                    "x-kubernetes-preserve-unknown-fields": True,
                                }
                            },
                        }
                    },
                }
            ],
        },
    }


def peering_crds() -> list[dict[str, Any]]:
    return [
        _peering_crd("ClusterKopfPeering", "clusterkopfpeerings", "Cluster"),
        _peering_crd("KopfPeering", "kopfpeerings", "Namespaced"),
    ]


def _labels() -> dict[str, str]:
    return {
        "app.kubernetes.io/name": OPERATOR_NAME,
        "app.kubernetes.io/part-of": "bosun",
        "app.kubernetes.io/component": "operator",
    }


def _meta(name: str, namespace: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": _labels()}
    if namespace:
        meta["namespace"] = namespace
    return meta


def _deployment(namespace: str, image: str) -> dict[str, Any]:
    selector = {"app.kubernetes.io/name": OPERATOR_NAME}
    probe = {"httpGet": {"path": "/healthz", "port": "health"}, "periodSeconds": 20}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(OPERATOR_NAME, namespace),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": _labels()},
                "spec": {
                    "serviceAccountName": OPERATOR_NAME,
                    "securityContext": pod_security(),
                    "containers": [
                        {
                            "name": "operator",
                            "image": image,
                            "args": ["operator", "--all-namespaces"],
                            "ports": [
                                {"name": "health", "containerPort": HEALTH_PORT},
                                {"name": "metrics", "containerPort": METRICS_PORT},
                            ],
                            "livenessProbe": {**probe, "initialDelaySeconds": 10},
                            "readinessProbe": probe,
                            "resources": {
                                "requests": {"cpu": "100m", "memory": "256Mi"},
                                "limits": {"memory": "1Gi"},
                            },
                            "securityContext": {
                                **container_security(),
                                "readOnlyRootFilesystem": True,
                            },
                            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                        }
                    ],
                    "volumes": [{"name": "tmp", "emptyDir": {}}],
                },
            },
        },
    }


def install_manifests(
    namespace: str = "bosun-system", image: str = OPERATOR_IMAGE
) -> list[dict[str, Any]]:
    """Everything to run the operator, in the order to apply it."""
    rules = [
        {"apiGroups": [group], "resources": resources, "verbs": verbs}
        for group, resources, verbs in RBAC_RULES
    ]
    subject = {"kind": "ServiceAccount", "name": OPERATOR_NAME, "namespace": namespace}
    role_ref = {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": OPERATOR_NAME,
    }
    return [
        workspace_crd(),
        *peering_crds(),
        {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(namespace)},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(OPERATOR_NAME, namespace)},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": _meta(OPERATOR_NAME),
            "rules": rules,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": _meta(OPERATOR_NAME),
            "roleRef": role_ref,
            "subjects": [subject],
        },
        {
            "apiVersion": "kopf.dev/v1",
            "kind": "ClusterKopfPeering",
            "metadata": _meta(PEERING_NAME),
        },
        _deployment(namespace, image),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta(f"{OPERATOR_NAME}-metrics", namespace),
            "spec": {
                "selector": {"app.kubernetes.io/name": OPERATOR_NAME},
                "ports": [{"name": "metrics", "port": METRICS_PORT, "targetPort": "metrics"}],
            },
        },
    ]
