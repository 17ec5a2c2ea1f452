"""What `bosun install` prints: the CRDs, a namespace, the operator's ServiceAccount and
least-privilege RBAC, its Deployment and metrics Service; and the gateway's (one OpenAI
endpoint for every Workspace): its ServiceAccount and RBAC, Deployment and Service.
``config/`` holds the same objects as a kustomize tree (a test keeps the two equal).

Each ClusterRole lists exactly the (verb, resource) pairs its component sends; the
operator's and the gateway's tests record every request each makes and check both
directions.
"""

from __future__ import annotations

from typing import Any

from bosun import __version__
from bosun.api.crd import crds
from bosun.render.pods import container_security, pod_security

__all__ = [
    "CONSOLE_RBAC_RULES",
    "GATEWAY_IMAGE",
    "GATEWAY_NAME",
    "GATEWAY_RBAC_RULES",
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
GATEWAY_NAME = "bosun-gateway"
GATEWAY_IMAGE = f"ghcr.io/bosun-dev/bosun-gateway:{__version__}"
GATEWAY_PORT = 8090
# kubectl create secret generic bosun-gateway-api-key -n bosun-system --from-literal=api-key=...
GATEWAY_KEY_SECRET = "bosun-gateway-api-key"

_READ = ["get", "list", "watch"]
# (apiGroup, resources, verbs): what the operator does, and nothing more.
RBAC_RULES: list[tuple[str, list[str], list[str]]] = [
    # Workspaces: watched; kopf patches its finalizer and bookkeeping annotations.
    ("bosun.dev", ["workspaces"], ["list", "watch", "get", "patch"]),
    ("bosun.dev", ["workspaces/status"], ["patch"]),
    # RAGEngines likewise; their index claims are applied, never deleted.
    ("bosun.dev", ["ragengines"], ["list", "watch", "get", "patch"]),
    ("bosun.dev", ["ragengines/status"], ["patch"]),
    ("", ["persistentvolumeclaims"], ["list", "watch", "patch"]),
    # What a Workspace renders: server-side applied, watched for drift, pruned; read at a
    # restart where the watches have not shown it yet (config maps and claim templates
    # are not: they are applied again instead).
    ("apps", ["deployments"], [*_READ, "patch", "delete"]),
    ("leaderworkerset.x-k8s.io", ["leaderworkersets"], [*_READ, "patch", "delete"]),
    ("batch", ["jobs"], [*_READ, "patch", "delete"]),
    ("", ["services"], ["list", "watch", "get", "patch"]),
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
# The gateway: reads Workspaces, RAGEngines and their Services' EndpointSlices, scales Workspaces
# from and to zero through their scale subresource.
GATEWAY_RBAC_RULES: list[tuple[str, list[str], list[str]]] = [
    ("bosun.dev", ["workspaces", "ragengines"], ["list"]),
    ("bosun.dev", ["workspaces/scale"], ["get", "patch"]),
    ("discovery.k8s.io", ["endpointslices"], ["list"]),
]
# The console the gateway serves: reads Workspaces and a tuning job's log; never Secrets
# (the gateway's API key comes to its own pod from its Secret, through the kubelet). It
# cannot write Workspaces: grant patch on workspaces to apply from the page.
CONSOLE_RBAC_RULES: list[tuple[str, list[str], list[str]]] = [
    ("bosun.dev", ["workspaces"], ["get", "list"]),
    ("", ["pods"], ["list"]),
    ("", ["pods/log"], ["get"]),
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


def _labels(component: str = "operator") -> dict[str, str]:
    return {
        "app.kubernetes.io/name": f"bosun-{component}",
        "app.kubernetes.io/part-of": "bosun",
        "app.kubernetes.io/component": component,
    }


def _meta(name: str, namespace: str | None = None, component: str = "operator") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": _labels(component)}
    if namespace:
        meta["namespace"] = namespace
    return meta


def _rbac(
    name: str, namespace: str, rules: list[tuple[str, list[str], list[str]]]
) -> list[dict[str, Any]]:
    """A ServiceAccount, its ClusterRole with exactly ``rules``, and their binding."""
    component = name.removeprefix("bosun-")
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": _meta(name, namespace, component),
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": _meta(name, component=component),
            "rules": [
                {"apiGroups": [group], "resources": resources, "verbs": verbs}
                for group, resources, verbs in rules
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": _meta(name, component=component),
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": name,
            },
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        },
    ]


def _gateway(namespace: str, image: str) -> list[dict[str, Any]]:
    """The gateway's Deployment (two replicas: it holds no state) and its Service."""
    selector = {"app.kubernetes.io/name": GATEWAY_NAME}
    probe = {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 10}
    args = ["gateway", "--kubernetes", "--host", "0.0.0.0", "--port", str(GATEWAY_PORT)]
    container = {
        "name": "gateway",
        "image": image,
        "args": args,
        "ports": [{"name": "http", "containerPort": GATEWAY_PORT}],
        # The API key from the Secret GATEWAY_KEY_SECRET, where one is made: with it the
        # OpenAI routes and the console need the key; without, the console stays locked.
        "env": [
            {
                "name": "BOSUN_API_KEY",
                "valueFrom": {
                    "secretKeyRef": {"name": GATEWAY_KEY_SECRET, "key": "api-key", "optional": True}
                },
            }
        ],
        "livenessProbe": {**probe, "initialDelaySeconds": 10},
        "readinessProbe": probe,
        "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
        "securityContext": {**container_security(), "readOnlyRootFilesystem": True},
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": _meta(GATEWAY_NAME, namespace, "gateway"),
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": selector},
                "template": {
                    "metadata": {"labels": _labels("gateway")},
                    "spec": {
                        "serviceAccountName": GATEWAY_NAME,
                        "securityContext": pod_security(),
                        "containers": [container],
                        "volumes": [{"name": "tmp", "emptyDir": {}}],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta(GATEWAY_NAME, namespace, "gateway"),
            "spec": {
                "selector": selector,
                "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
            },
        },
    ]


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
    namespace: str = "bosun-system",
    image: str = OPERATOR_IMAGE,
    gateway_image: str = GATEWAY_IMAGE,
) -> list[dict[str, Any]]:
    """Everything to run the operator and the gateway, in the order to apply it."""
    return [
        *crds(),
        *peering_crds(),
        {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(namespace)},
        *_rbac(OPERATOR_NAME, namespace, RBAC_RULES),
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
        *_rbac(GATEWAY_NAME, namespace, GATEWAY_RBAC_RULES + CONSOLE_RBAC_RULES),
        *_gateway(namespace, gateway_image),
    ]
