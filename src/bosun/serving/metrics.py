"""Prometheus metrics under vLLM's names, which dashboards and autoscalers already read."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from bosun.engine.client import EngineStats

__all__ = ["Metrics"]

_LATENCY = (
    0.001,
    0.005,
    0.01,
    0.02,
    0.04,
    0.06,
    0.08,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
    20.0,
    40.0,
    80.0,
)
_TOKENS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)


class _EngineGauges(Collector):
    def __init__(self, model: str, stats: Callable[[], EngineStats]) -> None:
        self.model, self.stats = model, stats

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        s = self.stats()
        for name, doc, value in (
            ("vllm:num_requests_running", "Requests in model execution batches.", s.running),
            ("vllm:num_requests_waiting", "Requests waiting to be processed.", s.waiting),
            ("vllm:kv_cache_usage_perc", "KV-cache usage; 1 means 100 percent.", s.kv_cache_usage),
        ):
            family = GaugeMetricFamily(name, doc, labels=["model_name"])
            family.add_metric([self.model], value)
            yield family
        # The engine counts these since it started: exported as counters (_total).
        for name, doc, count in (
            ("vllm:prefix_cache_queries", "Prefix cache queries (tokens).", s.prefix_cache_queries),
            ("vllm:prefix_cache_hits", "Prefix cache hits (tokens).", s.prefix_cache_hits),
            ("vllm:num_preemptions", "Cumulative preemptions.", s.preemptions),
        ):
            counter = CounterMetricFamily(name, doc, labels=["model_name"])
            counter.add_metric([self.model], count)
            yield counter


class Metrics:
    """One registry per app, so several servers in one process do not clash."""

    def __init__(self, model: str, stats: Callable[[], EngineStats]) -> None:
        self.model = model
        self.registry = CollectorRegistry()
        self.registry.register(_EngineGauges(model, stats))
        r, labels = self.registry, ["model_name"]
        self.prompt_tokens = Counter(
            "vllm:prompt_tokens", "Prefill tokens processed.", labels, registry=r
        )
        self.generation_tokens = Counter(
            "vllm:generation_tokens", "Generation tokens processed.", labels, registry=r
        )
        self.success = Counter(
            "vllm:request_success",
            "Successfully processed requests.",
            [*labels, "finished_reason"],
            registry=r,
        )
        self.ttft = Histogram(
            "vllm:time_to_first_token_seconds",
            "Time to first token.",
            labels,
            buckets=_LATENCY,
            registry=r,
        )
        self.itl = Histogram(
            "vllm:inter_token_latency_seconds",
            "Inter-token latency.",
            labels,
            buckets=_LATENCY,
            registry=r,
        )
        self.e2e = Histogram(
            "vllm:e2e_request_latency_seconds",
            "End-to-end request latency.",
            labels,
            buckets=_LATENCY,
            registry=r,
        )
        self.queue = Histogram(
            "vllm:request_queue_time_seconds",
            "Time waiting for a slot.",
            labels,
            buckets=_LATENCY,
            registry=r,
        )
        self.request_prompt = Histogram(
            "vllm:request_prompt_tokens",
            "Prompt tokens per request.",
            labels,
            buckets=_TOKENS,
            registry=r,
        )
        self.request_generation = Histogram(
            "vllm:request_generation_tokens",
            "Generated tokens per request.",
            labels,
            buckets=_TOKENS,
            registry=r,
        )
