"""Where a Workspace's web sources point, resolved from inside the cluster.

The Workspace's validation refuses internal hosts by name and literal address; only here,
at the edge, can a name be resolved, so a public-looking name that points at a private,
loopback or metadata address is refused before anything is rendered. The job that
fetches the URL resolves it again (``bosun.tuning.data``): a name may change its answer.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable

from bosun.api.validators import check_addresses, literal_address
from bosun.api.workspace import Workspace

__all__ = ["RESOLVE_TIMEOUT", "Resolver", "check_sources", "resolve"]

log = logging.getLogger("bosun.operator")

RESOLVE_TIMEOUT = 5.0  # seconds per name
Resolver = Callable[[str], Awaitable[list[str]]]


async def resolve(host: str) -> list[str]:
    """The addresses ``host`` resolves to now, through the operator's resolver."""
    loop = asyncio.get_running_loop()
    infos = await asyncio.wait_for(
        loop.getaddrinfo(host, None, proto=socket.IPPROTO_TCP), RESOLVE_TIMEOUT
    )
    return [str(info[4][0]) for info in infos]


async def check_sources(
    ws: Workspace, allowed: frozenset[str], resolver: Resolver = resolve
) -> str | None:
    """The problem with the first web source that resolves to an internal address
    (field path first), or None. A name that does not resolve now is let through: the job
    that fetches it says so, with the same check."""
    for path, host in ws.web_sources():
        if literal_address(host) is not None:
            continue  # checked by the Workspace's validation
        try:
            addresses = await resolver(host)
        except (OSError, TimeoutError) as exc:
            log.info("%s: cannot resolve %s now (%s); the fetch checks it again", path, host, exc)
            continue
        try:
            check_addresses(host, addresses, allowed)
        except ValueError as exc:
            return f"{path}: {exc}"
    return None
