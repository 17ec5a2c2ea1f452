"""A replica's load as its own ``/metrics`` reports it, under vLLM's names: requests
running and waiting, and KV-cache usage. Bosun's server and vLLM both export them;
``vllm:gpu_cache_usage_perc`` is the name older vLLM releases give the cache usage."""

from __future__ import annotations

import math
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

__all__ = ["ReportedLoad", "reported_load"]

_RUNNING = "vllm:num_requests_running"
_WAITING = "vllm:num_requests_waiting"
_KV_USAGE = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")


@dataclass(frozen=True)
class ReportedLoad:
    running: int = 0
    waiting: int = 0
    kv_usage: float = 0.0  # 0 to 1; the fullest of the models it serves


def reported_load(text: str, model: str | None = None) -> ReportedLoad:
    """Requests running and waiting (summed over the models the replica serves, or only
    ``model``'s samples when given) and its KV-cache usage, from a Prometheus text
    exposition. Metrics it lacks count as zero. Raises ValueError for text that is not
    Prometheus' format; samples that are NaN, infinite or negative are left out."""
    running = waiting = 0.0
    kv_usage = 0.0
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if model is not None and sample.labels.get("model_name", model) != model:
                    continue
                if not math.isfinite(sample.value) or sample.value < 0:
                    continue  # a NaN or a negative count says nothing about load
                if sample.name == _RUNNING:
                    running += sample.value
                elif sample.name == _WAITING:
                    waiting += sample.value
                elif sample.name in _KV_USAGE:
                    kv_usage = max(kv_usage, sample.value)
    except ValueError as exc:  # the parser's own: a line it cannot read
        raise ValueError(f"/metrics: not in Prometheus' text format ({exc})") from None
    return ReportedLoad(round(running), round(waiting), min(kv_usage, 1.0))
