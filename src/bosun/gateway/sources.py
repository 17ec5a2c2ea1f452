"""Where the gateway learns which Workspaces are behind it, and how it scales them.

A :class:`Source` reports :class:`Workload` s: a Workspace's declared models (known even
while nothing serves them), the replicas serving it now, its state, and whether it may
be scaled to zero. The proxy reads each replica's ``/v1/models`` and ``/metrics`` itself;
a source only says where replicas are and starts or stops them.

- :class:`StaticSource`: the servers given on the command line (``--replica``); nothing
  to scale.
- :class:`LocalSource`: the workspaces `bosun up` runs on this machine (the state
  store); scale from zero starts and stops their supervisors.
- ``cluster.KubernetesSource``: Workspaces and their EndpointSlices in a cluster; scale
  from zero patches the Workspace's scale subresource.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from bosun.api import DEFAULT_IDLE_TIMEOUT_S

if TYPE_CHECKING:  # the state store is imported on use: only local mode needs it
    from bosun.local.state import Store

__all__ = ["LocalSource", "Source", "StaticSource", "Workload"]


@dataclass(frozen=True)
class Workload:
    """A Workspace behind the gateway, as its source last reported it."""

    name: str
    replicas: tuple[str, ...]  # base URLs (http://host:port) of the replicas serving now
    state: str = "Ready"  # Ready, Starting, Restarting, Idle (scaled to zero), Failed
    # Model names (base and adapters, each with its parent) it serves once up; empty when
    # the source cannot know them (the replicas' own lists say).
    models: Mapping[str, str | None] = field(default_factory=dict)
    scale_to_zero: bool = False
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT_S
    message: str = ""  # why it failed


class Source(Protocol):
    async def workloads(self) -> list[Workload]:
        """Every Workload behind the gateway, as it stands now."""
        ...

    async def wake(self, name: str) -> bool:
        """Start a Workload scaled to zero; False if it was not (already woken)."""
        ...

    async def sleep(self, name: str) -> bool:
        """Scale a Workload to zero; False if it does not serve."""
        ...

    async def close(self) -> None:
        """Release what the source holds (a client's connections)."""
        ...


@dataclass(frozen=True)
class StaticSource:
    """Servers named on the command line, each its own Workload (named by its URL)."""

    urls: tuple[str, ...]

    async def workloads(self) -> list[Workload]:
        return [Workload(url, (url,)) for url in self.urls]

    async def wake(self, name: str) -> bool:
        return False

    async def sleep(self, name: str) -> bool:
        return False

    async def close(self) -> None:
        return None


def _declared(workspace: Mapping[str, Any], model: str) -> dict[str, str | None]:
    """The model names a stored Workspace serves: its model, and each adapter."""
    inference = (workspace.get("spec") or {}).get("inference") or {}
    adapters = inference.get("adapters") or []
    names: dict[str, str | None] = {model: None}
    names.update({a["name"]: model for a in adapters if isinstance(a, dict) and a.get("name")})
    return names


class LocalSource:
    """The servers `bosun up` runs for one state directory, read from its store."""

    def __init__(self, store: Store | None = None) -> None:
        from bosun.local.state import Store

        self.store = store or Store()

    def _read(self) -> list[Workload]:
        from bosun.local.runtime import show

        out = []
        for record in self.store.all():
            if record.kind not in ("server", "rag"):
                continue  # jobs serve nothing; the gateway is not its own replica
            shown = show(record)
            resource = (record.workspace.get("spec") or {}).get("resource") or {}
            ready = shown.state == "Ready"
            out.append(
                Workload(
                    name=record.name,
                    replicas=(f"http://127.0.0.1:{record.port}",) if ready else (),
                    state=shown.state,
                    models=_declared(record.workspace, record.model),
                    scale_to_zero=resource.get("minReplicas") == 0,
                    idle_timeout=float(
                        resource.get("idleTimeoutSeconds") or DEFAULT_IDLE_TIMEOUT_S
                    ),
                    message=record.message,
                )
            )
        return out

    async def workloads(self) -> list[Workload]:
        return await asyncio.to_thread(self._read)

    async def wake(self, name: str) -> bool:
        from bosun.local.runtime import wake

        return await asyncio.to_thread(wake, self.store, name)

    async def sleep(self, name: str) -> bool:
        from bosun.local.runtime import sleep

        return await asyncio.to_thread(sleep, self.store, name)

    async def close(self) -> None:
        return None
