"""The gateway's own Prometheus metrics, per model: requests and their outcome, where the
router sent them (and whether a prefix or adapter key found its home replica), retries,
replicas that failed mid-answer, requests in flight per replica, and for models that
scale from zero: requests waiting (the queue depth autoscalers scale on), time in the
queue, cold starts and how long they took, scale-downs."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["GatewayMetrics"]

# Seconds: a request queued while its model starts waits from milliseconds (a replica
# freed) to minutes (a large model loading).
_WAIT_BUCKETS = (0.01, 0.1, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600)


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
        self.queue_depth = Gauge(
            "bosun_gateway_queue_depth",
            "Requests waiting for a replica of their model (it is starting, or scaled to "
            "zero): what KEDA or an HPA scales on.",
            ["model"],
            registry=r,
        )
        self.queue_seconds = Histogram(
            "bosun_gateway_queue_seconds",
            "Seconds requests waited for a replica of their model.",
            ["model"],
            buckets=_WAIT_BUCKETS,
            registry=r,
        )
        self.cold_starts = Counter(
            "bosun_gateway_cold_starts",
            "Workspaces started from zero by a request.",
            ["model"],
            registry=r,
        )
        self.cold_start_seconds = Histogram(
            "bosun_gateway_cold_start_seconds",
            "Seconds from a request starting its model from zero to the model answering.",
            ["model"],
            buckets=_WAIT_BUCKETS,
            registry=r,
        )
        self.scale_downs = Counter(
            "bosun_gateway_scale_downs",
            "Workspaces scaled to zero after their idle time-out.",
            ["model"],
            registry=r,
        )
