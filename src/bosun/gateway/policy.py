"""Which replica of a model takes a request: pure functions over what the proxy knows.

Three rules, in order:

- **Adapter affinity.** A request for a LoRA adapter goes where that adapter's other
  requests go, so that it stays loaded on few replicas: consistent hashing on the
  adapter's name.
- **Prefix affinity.** Requests whose prompts begin alike (a tenant's system prompt, a
  shared document) go to the replica that likely holds that prefix in its cache:
  consistent hashing on a hash of the prompt's leading characters.
- **Least outstanding requests** where a request has neither (no prompt text).

``round_robin`` is the baseline the benchmark compares with (``bosun gateway --policy
round-robin``): each request to the next replica in turn, whatever it holds.

Hashing is bounded (Mirrokni, Thorup and Zadimoghaddam, "Consistent Hashing with Bounded
Loads", 2018): a key goes to the first replica after its point on the ring whose load is
under ``load_factor`` times the mean, so a hot prefix spills to its next replicas instead
of queueing on one, and adding or removing a replica moves only the keys next to it.

A replica's load is the requests the gateway has in flight to it plus those of other
clients: what its own ``/metrics`` last reported running and waiting, less the gateway's
own at the time (the proxy works this out; see ``Replica.load``).
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "LOAD_FACTOR",
    "PREFIX_CHARS",
    "SPILL_FLOOR",
    "Choice",
    "NoReplicaError",
    "Replica",
    "choose",
    "prefix_key",
    "request_text",
    "round_robin",
]

# Characters of a prompt's beginning that make its routing key: long enough that a shared
# system prompt decides where its requests go, short enough that the key is the shared
# part. About 50-100 tokens of English.
PREFIX_CHARS = 256
# A replica takes a hashed request while its load is under this many times the mean...
LOAD_FACTOR = 1.25
# ... or under this many requests. A replica batches a few requests for little more than
# the cost of one, while a request sent away from its prefix pays its whole prompt again.
# gateway_bench.py, 24 tenants, 6 requests at a time over 3 replicas: with no floor a
# fifth of the requests left their prefix's replica; with a floor of 4, 8-10% did and the
# hit rate was 1.9x round-robin's; with 8, none did: 2.29x, and a TTFT p50 44% lower.
# Above the floor the bound holds: 64 requests over 3 replicas put at most 27 on one.
SPILL_FLOOR = 8
# Points per replica on the ring: enough that keys spread evenly over a few replicas.
VIRTUAL_NODES = 160

Reason = Literal["adapter", "prefix", "least-loaded", "round-robin"]


class NoReplicaError(Exception):
    """No replica is left to choose (none serves the model, or all were excluded)."""


@dataclass(frozen=True)
class Replica:
    """One replica as the router sees it: a stable name (its URL) and its load."""

    name: str
    outstanding: int = 0  # requests the gateway has in flight to it
    running: int = 0  # from its /metrics
    waiting: int = 0  # from its /metrics
    kv_usage: float = 0.0  # from its /metrics, 0 to 1

    @property
    def load(self) -> int:
        return max(self.outstanding, self.running + self.waiting)


@dataclass(frozen=True)
class Choice:
    """Where a request goes, and why. ``home``: the key's own replica took it (for the
    prefix-hit metric); False when it spilled to another under load, or had no key."""

    replica: Replica
    reason: Reason
    home: bool


def request_text(body: Mapping[str, Any]) -> str:
    """The text a request's prompt begins with, as far as routing cares: chat messages
    (role and text, in order), a completion's prompt, or an embedding's input. Empty when
    there is none (token ids are text too: their digits)."""
    messages = body.get("messages")
    if isinstance(messages, list):
        parts: list[str] = []
        for message in messages:
            if not isinstance(message, Mapping):
                continue
            parts.append(str(message.get("role", "")))
            parts.append(_content_text(message.get("content")))
        return "\n".join(parts)
    for field in ("prompt", "input"):
        value = body.get(field)
        if isinstance(value, list) and value and not all(isinstance(t, int) for t in value):
            value = value[0]  # a batch of prompts: the first one's
        if isinstance(value, str):
            return value
        if isinstance(value, list):  # token ids
            return " ".join(str(t) for t in value)
    return ""


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: their text, images as a marker
        return "".join(
            str(part.get("text", "")) if part.get("type") == "text" else f"[{part.get('type')}]"
            for part in content
            if isinstance(part, Mapping)
        )
    return ""


def prefix_key(text: str, chars: int = PREFIX_CHARS) -> str | None:
    """The routing key of a prompt that begins with ``text``: a hash of its first
    ``chars`` characters; None for an empty prompt."""
    if not text:
        return None
    return hashlib.blake2b(text[:chars].encode("utf-8"), digest_size=8).hexdigest()


def choose(
    replicas: Sequence[Replica],
    *,
    prefix: str | None = None,
    adapter: str | None = None,
    exclude: Collection[str] = (),
    load_factor: float = LOAD_FACTOR,
    spill_floor: int = SPILL_FLOOR,
) -> Choice:
    """The replica for a request (see the module's notes). ``exclude``: names already
    tried (a retry goes elsewhere). Raises :class:`NoReplicaError` when none is left."""
    if load_factor < 1:
        raise ValueError(f"load_factor: expected at least 1, got {load_factor}")
    candidates = [r for r in replicas if r.name not in exclude]
    if not candidates:
        raise NoReplicaError("no replica left for this request")
    key = f"adapter:{adapter}" if adapter else prefix
    reason: Reason = "adapter" if adapter else "prefix"
    if key is None or len(candidates) == 1:
        best = min(candidates, key=lambda r: (r.load, r.kv_usage, r.name))
        return Choice(best, "least-loaded" if key is None else reason, key is not None)
    by_name = {r.name: r for r in candidates}
    total = sum(r.load for r in candidates)
    # Each replica may hold up to this many, the new request counted: with every replica
    # at the cap the mean is exceeded by at most the factor.
    cap = max(math.ceil(load_factor * (total + 1) / len(candidates)), spill_floor)
    walk = _walk(tuple(sorted(by_name)), _point(key))
    # Some replica is under the cap: len(candidates) * cap > total.
    taker = next(name for name in walk if by_name[name].load < cap)
    return Choice(by_name[taker], reason, taker == walk[0])


def round_robin(replicas: Sequence[Replica], turn: int, exclude: Collection[str] = ()) -> Choice:
    """Replica number ``turn`` (modulo their number) of those not excluded, in name
    order. Raises :class:`NoReplicaError` when none is left."""
    candidates = sorted((r for r in replicas if r.name not in exclude), key=lambda r: r.name)
    if not candidates:
        raise NoReplicaError("no replica left for this request")
    return Choice(candidates[turn % len(candidates)], "round-robin", False)


def _point(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "big")


@functools.lru_cache(maxsize=64)
def _ring(names: tuple[str, ...]) -> tuple[list[int], list[str]]:
    """The ring of a set of replicas: each name at VIRTUAL_NODES points, sorted."""
    points = sorted((_point(f"{name}#{v}"), name) for name in names for v in range(VIRTUAL_NODES))
    return [p for p, _ in points], [n for _, n in points]


def _walk(names: tuple[str, ...], point: int) -> list[str]:
    """Every replica once, in the order the ring meets them clockwise from ``point``."""
    points, owners = _ring(names)
    start = bisect.bisect_left(points, point)
    order: list[str] = []
    seen: set[str] = set()
    for i in range(len(owners)):
        name = owners[(start + i) % len(owners)]
        if name not in seen:
            seen.add(name)
            order.append(name)
            if len(order) == len(names):
                break
    return order
