"""The console's metrics: a replica's exposition read into counters, and two readings
into one point of each chart."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from bosun.console.sampler import SERIES, Counters, Sampler, point, read_counters
from bosun.gateway.sources import StaticSource, Workload

EXPOSITION = """\
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{model_name="m"} 2.0
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{model_name="m"} 3.0
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{model_name="m"} 0.25
# TYPE vllm:request_success counter
vllm:request_success_total{finished_reason="stop",model_name="m"} 10.0
vllm:request_success_total{finished_reason="length",model_name="m"} 5.0
# TYPE vllm:generation_tokens counter
vllm:generation_tokens_total{model_name="m"} 400.0
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{le="+Inf",model_name="m"} 15.0
vllm:time_to_first_token_seconds_count{model_name="m"} 15.0
vllm:time_to_first_token_seconds_sum{model_name="m"} 3.0
"""


def test_a_replicas_exposition_read_into_counters() -> None:
    read = read_counters(EXPOSITION)
    assert read == Counters(
        requests=15, tokens=400, ttft_sum=3.0, ttft_count=15, running=2, waiting=3, kv_usage=0.25
    )
    # Two replicas of one model: counts add up, the cache usage is the fuller one's.
    both = read + Counters(requests=1, kv_usage=0.5)
    assert both.requests == 16 and both.kv_usage == 0.5 and both.running == 2


def test_what_is_not_prometheus_text_is_refused_and_nan_left_out() -> None:
    with pytest.raises(ValueError, match="Prometheus"):
        read_counters("this is { not metrics")
    assert read_counters("vllm:num_requests_running NaN\n").running == 0


def test_two_readings_make_one_point_of_each_chart() -> None:
    before = Counters(requests=10, tokens=100, ttft_sum=1.0, ttft_count=10)
    after = Counters(
        requests=14, tokens=300, ttft_sum=2.0, ttft_count=12, running=1, waiting=2, kv_usage=0.1
    )
    got = point(before, after, 2.0)
    assert set(got) == set(SERIES)
    assert got["requests_per_s"] == 2.0 and got["tokens_per_s"] == 100.0
    assert got["ttft_s"] == 0.5  # (2.0 - 1.0) s over the 2 requests that began
    assert (got["running"], got["waiting"], got["kv_usage"]) == (1, 2, 0.1)
    # No first token in the interval: no TTFT (a gap in the chart, not a zero).
    assert point(after, after, 2.0)["ttft_s"] is None


def test_a_restarted_replica_does_not_make_a_negative_rate() -> None:
    before = Counters(requests=50, tokens=5000)
    after = Counters(requests=3, tokens=60)  # its counters began again
    got = point(before, after, 3.0)
    assert got["requests_per_s"] == 1.0 and got["tokens_per_s"] == 20.0


def test_the_sampler_keeps_minutes_of_points_per_model_and_skips_the_silent() -> None:
    class Source(StaticSource):
        async def workloads(self) -> list[Workload]:
            return [
                Workload("ws", ("http://127.0.0.1:9",), models={"m": None, "lora": "m"}),
                Workload("down", ()),  # nothing serves: not read
            ]

    async def run() -> Sampler:
        async with aiohttp.ClientSession() as session:
            sampler = Sampler(Source(()), session, interval=1.0, history=3.0)
            sampler._record(0.0, [("m", Counters(tokens=0))])
            for second in range(1, 6):
                sampler._record(float(second), [("m", Counters(tokens=10.0 * second))])
            await sampler.sample()  # the replica does not answer: no point, no error
            return sampler

    sampler = asyncio.run(run())
    shown = sampler.to_json()["models"]["m"]
    assert shown["t"] == [3.0, 4.0, 5.0]  # three seconds kept, the oldest dropped
    assert shown["tokens_per_s"] == [10.0, 10.0, 10.0]
