"""The console's metrics: each model's replicas read every few seconds from the same
``/metrics`` they export to Prometheus (vLLM's names), kept for the last minutes.

:func:`read_counters` turns one replica's exposition into :class:`Counters`;
:func:`point` turns two readings of a model (its replicas summed) into one point of
each chart: requests/s, tokens/s, mean TTFT over the interval, KV-cache usage, requests
running and waiting. Both are pure. :class:`Sampler` does the reading.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from bosun.gateway.sources import Source, Workload

__all__ = ["SERIES", "Counters", "Sampler", "point", "read_counters"]

log = logging.getLogger("bosun.console")

# The charts, in the order the page draws them.
SERIES = ("requests_per_s", "tokens_per_s", "ttft_s", "kv_usage", "running", "waiting")


@dataclass(frozen=True)
class Counters:
    """What one reading of a model's replicas says (sums over its replicas)."""

    requests: float = 0.0  # vllm:request_success_total, every finished reason
    tokens: float = 0.0  # vllm:generation_tokens_total
    ttft_sum: float = 0.0  # vllm:time_to_first_token_seconds (sum and count)
    ttft_count: float = 0.0
    running: float = 0.0
    waiting: float = 0.0
    kv_usage: float = 0.0  # the fullest replica's, 0 to 1

    def __add__(self, other: Counters) -> Counters:
        summed = {f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)}
        return Counters(**{**summed, "kv_usage": max(self.kv_usage, other.kv_usage)})


_SAMPLES = {
    "vllm:request_success_total": "requests",
    "vllm:generation_tokens_total": "tokens",
    "vllm:time_to_first_token_seconds_sum": "ttft_sum",
    "vllm:time_to_first_token_seconds_count": "ttft_count",
    "vllm:num_requests_running": "running",
    "vllm:num_requests_waiting": "waiting",
}
_KV_USAGE = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")


def read_counters(text: str) -> Counters:
    """One replica's counters from its Prometheus text (every model it serves summed).
    Raises ValueError for text that is not Prometheus' format; NaN, infinite and negative
    samples are left out."""
    values = dict.fromkeys(_SAMPLES.values(), 0.0)
    kv_usage = 0.0
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if not math.isfinite(sample.value) or sample.value < 0:
                    continue
                if sample.name in _SAMPLES:
                    values[_SAMPLES[sample.name]] += sample.value
                elif sample.name in _KV_USAGE:
                    kv_usage = max(kv_usage, sample.value)
    except ValueError as exc:
        raise ValueError(f"/metrics: not in Prometheus' text format ({exc})") from None
    return Counters(**values, kv_usage=min(kv_usage, 1.0))


def _grown(before: float, after: float) -> float:
    """How much a counter grew; a counter that went down restarted (a replica restarted)
    and grew by what it holds now."""
    return after - before if after >= before else after


def point(before: Counters, after: Counters, seconds: float) -> dict[str, float | None]:
    """One point of each chart over the ``seconds`` between two readings. TTFT is the mean
    of the requests that got their first token in the interval, None when none did."""
    seconds = max(seconds, 1e-6)
    firsts = _grown(before.ttft_count, after.ttft_count)
    return {
        "requests_per_s": round(_grown(before.requests, after.requests) / seconds, 3),
        "tokens_per_s": round(_grown(before.tokens, after.tokens) / seconds, 2),
        "ttft_s": round(_grown(before.ttft_sum, after.ttft_sum) / firsts, 4) if firsts else None,
        "kv_usage": round(after.kv_usage, 4),
        "running": after.running,
        "waiting": after.waiting,
    }


def model_name(workload: Workload) -> str:
    """The name a Workspace's charts go by: its base model (adapters run on it)."""
    bases = [name for name, parent in workload.models.items() if parent is None]
    return bases[0] if bases else workload.name


@dataclass
class History:
    """One model's points, the oldest dropped past ``size``."""

    size: int
    times: deque[float] = field(init=False)
    values: dict[str, deque[float | None]] = field(init=False)

    def __post_init__(self) -> None:
        self.times = deque(maxlen=self.size)
        self.values = {name: deque(maxlen=self.size) for name in SERIES}

    def add(self, when: float, values: dict[str, float | None]) -> None:
        self.times.append(when)
        for name in SERIES:
            self.values[name].append(values[name])

    def to_json(self) -> dict[str, list[Any]]:
        return {"t": list(self.times), **{name: list(v) for name, v in self.values.items()}}


class Sampler:
    """Reads every serving model's replicas each ``interval`` seconds and keeps
    ``history`` seconds of points per model. A replica that does not answer is left out
    of that reading (its model's point is what the others said)."""

    def __init__(
        self,
        source: Source,
        session: aiohttp.ClientSession,
        interval: float = 2.0,
        history: float = 600.0,
    ) -> None:
        self.source, self.session, self.interval = source, session, interval
        self.size = max(2, int(history / interval))
        self.histories: dict[str, History] = {}
        self.last: dict[str, tuple[float, Counters]] = {}

    async def _replica(self, url: str) -> Counters | None:
        try:
            timeout = aiohttp.ClientTimeout(total=max(1.0, self.interval))
            async with self.session.get(f"{url}/metrics", timeout=timeout) as response:
                if response.status != 200:
                    return None
                return read_counters(await response.text())
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            log.debug("metrics of %s: %s", url, exc)
            return None

    async def _model(self, workload: Workload) -> Counters | None:
        found = await asyncio.gather(*(self._replica(url) for url in workload.replicas))
        read = [c for c in found if c is not None]
        return sum(read, Counters()) if read else None

    async def sample(self) -> None:
        """One reading of every model that has a replica serving."""
        try:
            workloads = await self.source.workloads()
        except Exception as exc:  # a source that fails skips this reading
            log.warning("the console's replica source failed: %s", exc)
            return
        serving = [w for w in workloads if w.replicas]
        readings = await asyncio.gather(*(self._model(w) for w in serving))
        now = time.time()
        self._record(now, ((model_name(w), r) for w, r in zip(serving, readings, strict=True)))

    def _record(self, now: float, readings: Iterable[tuple[str, Counters | None]]) -> None:
        for model, counters in readings:
            if counters is None:
                continue
            previous = self.last.get(model)
            self.last[model] = (now, counters)
            if previous is None:
                continue  # a rate needs two readings
            history = self.histories.setdefault(model, History(self.size))
            history.add(now, point(previous[1], counters, now - previous[0]))

    def to_json(self) -> dict[str, Any]:
        return {
            "interval": self.interval,
            "models": {m: h.to_json() for m, h in sorted(self.histories.items())},
        }

    async def run(self) -> None:
        while True:
            began = time.monotonic()
            try:
                await self.sample()
            except Exception:  # a bug: said, and the next reading tried all the same
                log.exception("reading the replicas' metrics failed")
            await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - began)))
