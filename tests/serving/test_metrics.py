"""The server's Prometheus metrics under vLLM's names: the engine's own counters (prefix
cache, preemptions) reach /metrics as counters. They were declared but never counted; the
gateway's benchmark and dashboards read the prefix-cache hit rate from them."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from bosun.engine.client import EngineStats
from bosun.serving.metrics import Metrics


def samples(metrics: Metrics) -> dict[str, float]:
    text = generate_latest(metrics.registry).decode()
    return {
        s.name: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.labels.get("model_name") == "m"
    }


def test_the_prefix_cache_counts_are_the_engines_own() -> None:
    stats = EngineStats(
        running=2, waiting=1, preemptions=3, prefix_cache_queries=1000, prefix_cache_hits=640
    )
    seen = samples(Metrics("m", lambda: stats))
    assert seen["vllm:prefix_cache_queries_total"] == 1000
    assert seen["vllm:prefix_cache_hits_total"] == 640
    assert seen["vllm:num_requests_running"] == 2 and seen["vllm:num_requests_waiting"] == 1
    assert seen["vllm:num_preemptions_total"] == 3
    later = EngineStats(prefix_cache_queries=1500, prefix_cache_hits=1100)
    assert samples(Metrics("m", lambda: later))["vllm:prefix_cache_hits_total"] == 1100
