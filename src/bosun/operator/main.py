"""`bosun operator`: connect to the API server and run the kopf handlers until stopped."""

from __future__ import annotations

import asyncio
import gc
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

import kopf
from prometheus_client import REGISTRY, start_http_server

from bosun.operator.connection import load_configuration
from bosun.operator.handlers import OperatorConfig, build_registry
from bosun.render import RenderOptions
from bosun.render.install import PEERING_NAME

__all__ = ["OperatorOptions", "load_configuration", "run"]

# Allocations between young collections of the cyclic garbage collector (Python's default
# is 700). The operator keeps state per Workspace (kopf's and its own), and thousands of
# short-lived tasks are in flight while many Workspaces change at once: with the default,
# those tasks survived young collections, filled the old generation and set off full
# collections of the whole heap (over 1 s each at 5,000 Workspaces; 13 s of a 44 s run
# of benchmarks/operator_bench.py). With 10,000, they die young: 4.7 s, 2.6x the floor
# instead of 3.3x. The cost is at most that many young objects more in memory.
GC_YOUNG = 10_000


@dataclass(frozen=True)
class OperatorOptions:
    namespaces: tuple[str, ...] = ()  # empty: every namespace
    kubeconfig: Path | None = None
    health_port: int = 8080  # /healthz
    metrics_port: int = 8081  # /metrics (0: off)
    priority: int | None = None  # peering priority; default: random, so replicas differ
    peering: bool = True
    images: RenderOptions = field(default_factory=RenderOptions)


def run(options: OperatorOptions) -> None:
    """Run until SIGINT/SIGTERM. Raises :class:`BosunError` for unusable options."""
    configuration = asyncio.run(load_configuration(options.kubeconfig))
    # What is loaded by now (modules, the catalog) lives as long as the process: no
    # collection needs to look at it again.
    gc.freeze()
    gc.set_threshold(GC_YOUNG, 10, 10)
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
