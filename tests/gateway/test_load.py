"""Reading a replica's load from its /metrics (gateway/load.py): Bosun's own exposition,
vLLM's older cache-usage name, several models on one replica, and text that is not
Prometheus'."""

from __future__ import annotations

import pytest
from prometheus_client import generate_latest

from bosun.engine.client import EngineStats
from bosun.gateway.load import ReportedLoad, reported_load
from bosun.serving.metrics import Metrics


def test_bosun_servers_report_what_their_engine_says() -> None:
    stats = EngineStats(running=3, waiting=5, kv_cache_usage=0.42)
    metrics = Metrics("smollm2", lambda: stats)
    load = reported_load(generate_latest(metrics.registry).decode())
    assert load == ReportedLoad(running=3, waiting=5, kv_usage=0.42)


def test_older_vllm_names_and_several_models() -> None:
    text = "\n".join(
        [
            "# TYPE vllm:num_requests_running gauge",
            'vllm:num_requests_running{model_name="a"} 2.0',
            'vllm:num_requests_running{model_name="b"} 1.0',
            "# TYPE vllm:num_requests_waiting gauge",
            'vllm:num_requests_waiting{model_name="a"} 4.0',
            "# TYPE vllm:gpu_cache_usage_perc gauge",
            'vllm:gpu_cache_usage_perc{model_name="a"} 0.5',
            'vllm:gpu_cache_usage_perc{model_name="b"} 0.9',
            "",
        ]
    )
    assert reported_load(text) == ReportedLoad(running=3, waiting=4, kv_usage=0.9)
    assert reported_load(text, model="a") == ReportedLoad(running=2, waiting=4, kv_usage=0.5)
    assert reported_load("", model="a") == ReportedLoad()


def test_text_that_is_not_prometheus_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="/metrics: not in Prometheus' text format"):
        reported_load("<html>502 Bad Gateway</html>")


def test_nonsense_values_are_left_out() -> None:
    text = "\n".join(
        [
            "vllm:num_requests_running NaN",
            "vllm:num_requests_waiting -3",
            "vllm:num_requests_waiting +Inf",
            "vllm:kv_cache_usage_perc 7",
            "",
        ]
    )
    assert reported_load(text) == ReportedLoad(running=0, waiting=0, kv_usage=1.0)
