"""The gateway's own Prometheus metrics, per model: requests and their outcome, where the
router sent them (and whether a prefix or adapter key found its home replica), retries,
replicas that failed mid-answer, and requests in flight per replica."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

__all__ = ["GatewayMetrics"]


class GatewayMetrics:
    """One registry per gateway app (several in one process do not clash)."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.requests = Counter(
            "bosun_gateway_requests",
            "Requests answered, by model and HTTP status.",
            ["model", "status"],
            registry=r,
        )
        self.routed = Counter(
            "bosun_gateway_routing_decisions",
            "Requests routed, by model, reason (prefix, adapter, least-loaded) and whether "
            "the key's home replica took it.",
            ["model", "reason", "home"],
            registry=r,
        )
        self.retries = Counter(
            "bosun_gateway_retries",
            "Requests sent again to another replica (the first could not be reached).",
            ["model"],
            registry=r,
        )
        self.broken = Counter(
            "bosun_gateway_broken_streams",
            "Answers cut off by their replica failing mid-answer.",
            ["model"],
            registry=r,
        )
        self.in_flight = Gauge(
            "bosun_gateway_in_flight",
            "Requests the gateway has in flight to each replica.",
            ["replica"],
            registry=r,
        )
