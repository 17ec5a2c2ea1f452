"""`bosun operator`: connect to the API server and run the kopf handlers until stopped."""

from __future__ import annotations

import asyncio
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

import kopf
from kubernetes.aio import config as kube_config
from kubernetes.aio.client import Configuration
from prometheus_client import REGISTRY, start_http_server

from bosun.api.errors import BosunError
from bosun.operator.handlers import OperatorConfig, build_registry
from bosun.render import RenderOptions
from bosun.render.install import PEERING_NAME

__all__ = ["OperatorOptions", "load_configuration", "run"]

SERVICE_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


@dataclass(frozen=True)
class OperatorOptions:
    namespaces: tuple[str, ...] = ()  # empty: every namespace
    kubeconfig: Path | None = None
    health_port: int = 8080  # /healthz
    metrics_port: int = 8081  # /metrics (0: off)
    priority: int | None = None  # peering priority; default: random, so replicas differ
    peering: bool = True
    images: RenderOptions = field(default_factory=RenderOptions)


async def load_configuration(kubeconfig: Path | None) -> Configuration:
    """The API server's address and credentials: ``kubeconfig`` when given, the pod's
    service account inside a cluster, else ``$KUBECONFIG`` or ``~/.kube/config``."""
    configuration = Configuration()
    try:
        if kubeconfig is None and SERVICE_TOKEN.exists():
            kube_config.load_incluster_config(client_configuration=configuration)
        else:
            await kube_config.load_kube_config(
                config_file=str(kubeconfig) if kubeconfig else os.environ.get("KUBECONFIG"),
                client_configuration=configuration,
                persist_config=False,
            )
    except (OSError, kube_config.ConfigException) as exc:
        where = f"--kubeconfig {kubeconfig}" if kubeconfig else "the kubeconfig"
        raise BosunError(f"{where}: cannot load it: {exc}") from None
    return configuration


def run(options: OperatorOptions) -> None:
    """Run until SIGINT/SIGTERM. Raises :class:`BosunError` for unusable options."""
    configuration = asyncio.run(load_configuration(options.kubeconfig))
    if options.metrics_port:
        start_http_server(options.metrics_port)
    metrics = REGISTRY if options.metrics_port else None
    registry = build_registry(
        OperatorConfig(configuration, options.images, options.peering, metrics)
    )
    priority = options.priority
    if priority is None:
        # Peers with the same priority all pause; distinct ones elect the highest.
        priority = random.randint(1, 2**31 - 1)
    kopf.configure(
        verbose=bool(os.environ.get("BOSUN_DEBUG"))
    )  # kopf's log format and levels: INFO, to stderr
    kopf.run(
        registry=registry,
        clusterwide=not options.namespaces,
        namespaces=list(options.namespaces),
        liveness_endpoint=f"http://0.0.0.0:{options.health_port}/healthz",
        peering_name=PEERING_NAME,
        priority=priority,
        standalone=not options.peering,
    )
