"""Status refreshes gathered per object: a burst of watch events (a pod's every phase, an
apply touching three objects) becomes one read and one status write, and a refresh that
fails is logged and left to the next event or periodic check."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from bosun.api.conditions import Condition

__all__ = ["DELAY", "Key", "previous_conditions", "schedule"]

log = logging.getLogger("bosun.operator")

Key = tuple[str, str]  # (namespace, name)
DELAY = 0.2  # seconds to gather a burst of events into one status update


def schedule(
    pending: dict[Key, asyncio.Task[None]],
    key: Key,
    refresh: Callable[[Key], Awaitable[None]],
    what: str,
) -> None:
    """Run ``refresh(key)`` soon, once for however many calls come before it runs."""
    task = pending.get(key)
    if task is not None and not task.done():
        return

    async def later() -> None:
        await asyncio.sleep(DELAY)
        pending.pop(key, None)
        try:
            await refresh(key)
        except Exception:  # the next event or the periodic check tries again
            log.exception("status refresh of %s %s/%s failed", what, *key)

    pending[key] = asyncio.get_running_loop().create_task(later())


def previous_conditions(body: dict[str, Any]) -> list[Condition]:
    """The conditions a body's status holds (any that are not in our shape are dropped)."""
    conditions = []
    for item in (body.get("status") or {}).get("conditions") or []:
        try:
            conditions.append(Condition.model_validate(item))
        except ValueError:
            continue  # not ours to keep
    return conditions
