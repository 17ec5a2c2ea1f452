"""Where the console reads Workspaces and applies new ones.

A :class:`Backend` lists Workspaces (as documents with ``status``, the shape the
operator writes), plans one, checks and applies YAML, and reads a Workspace's log.
:class:`LocalBackend` works on the state store of `bosun up`; ``cluster.ClusterBackend``
on a cluster's API server. What the page shows of a Workspace is :func:`row`: never a
Secret's value (Workspaces only name their Secrets, and neither backend reads one).
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from bosun.api import BosunError, Workspace, WorkspaceError, parse_workspace, read_workspace

if TYPE_CHECKING:
    from bosun.catalog.sizing import Plan
    from bosun.local.devices import Machine
    from bosun.local.state import Store

__all__ = [
    "Backend",
    "ConsoleError",
    "LocalBackend",
    "loss_curve",
    "plan_json",
    "row",
]

# A tuning job's log line per logged step (bosun.tuning.train's progress callback).
_STEP = re.compile(r"\bstep (\d+)/(\d+) loss ([0-9.eE+-]+|nan|inf)")
LOG_LINES = 200  # lines of a log the page shows


class ConsoleError(Exception):
    """A request the console refuses: its HTTP status, a message, and, for a Workspace
    that does not validate, each problem with its field path."""

    def __init__(
        self, status: int, message: str, problems: list[dict[str, str]] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.problems = status, message, problems or []

    def to_json(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "problems": self.problems}}


def invalid(error: BosunError) -> ConsoleError:
    """A Workspace's validation error as the page shows it: one line per field."""
    if isinstance(error, WorkspaceError):
        problems = [{"path": p.path, "message": p.message} for p in error.problems]
        lines = "; ".join(str(p) for p in error.problems)
        return ConsoleError(422, f"invalid Workspace: {lines}", problems)
    return ConsoleError(422, str(error))


class Backend(Protocol):
    mode: str  # "local" or "cluster"
    can_apply: bool

    async def workspaces(self) -> list[dict[str, Any]]:
        """Every Workspace, as :func:`row` shows it."""
        ...

    async def plan(self, name: str) -> dict[str, Any]:
        """A Workspace's plan (:func:`plan_json`); ConsoleError 404 for an unknown name."""
        ...

    async def check(self, text: str) -> dict[str, Any]:
        """The plan of a Workspace written as YAML; ConsoleError 422 naming the fields."""
        ...

    async def apply(self, text: str) -> dict[str, Any]:
        """Start (or update) the Workspace written as YAML."""
        ...

    async def logs(self, name: str, lines: int) -> list[str]:
        """The last ``lines`` of a Workspace's log."""
        ...

    async def close(self) -> None:
        """Release what the backend holds (a client's connections)."""
        ...


def row(document: Mapping[str, Any]) -> dict[str, Any]:
    """What the page shows of one Workspace document (spec and status)."""
    meta = document.get("metadata") or {}
    spec = document.get("spec") or {}
    status = document.get("status") or {}
    workload = spec.get("inference") or spec.get("tuning") or {}
    preset = (workload.get("preset") or {}).get("name")
    model = preset or (workload.get("model") or {}).get("uri") or meta.get("name", "")
    adapters = [a.get("name", "") for a in (spec.get("inference") or {}).get("adapters") or []]
    conditions = [
        {k: c.get(k, "") for k in ("type", "status", "reason", "message")}
        for c in status.get("conditions") or []
    ]
    namespace = meta.get("namespace")
    return {
        "name": f"{namespace}/{meta.get('name')}" if namespace else meta.get("name", ""),
        "kind": "tuning" if spec.get("tuning") else "inference",
        "state": status.get("state") or _state(conditions),
        "model": model,
        "adapters": adapters,
        "endpoint": status.get("endpoint"),
        "replicas": status.get("replicas") or 0,
        "wantedReplicas": (spec.get("resource") or {}).get("count", 1),
        "devices": list(status.get("allocatedDevices") or []),
        "conditions": conditions,
    }


def _state(conditions: list[dict[str, str]]) -> str:
    ready = {c["type"]: c["status"] for c in conditions}
    if ready.get("WorkspaceSucceeded") == "True":
        return "Ready"
    return "Pending" if conditions else "Unknown"


def plan_json(plan: Plan, document: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A plan as the page charts it, with why the Workspace waits for devices (the
    DRA allocator's per-node explanation the operator writes) when it does."""
    waiting = [
        c
        for c in ((document or {}).get("status") or {}).get("conditions") or []
        if c.get("status") == "False" and c.get("reason") in ("DevicesUnavailable", "NoFit")
    ]
    return {
        "plan": plan.to_json(),
        "target": plan.target,
        "devices": plan.devices_summary,
        "unschedulable": [str(c.get("message") or "") for c in waiting],
    }


def loss_curve(lines: list[str]) -> dict[str, Any]:
    """A tuning job's steps and losses read from its log: ``steps``, ``losses`` and
    ``total`` (the step it stops at; None before the first logged step)."""
    steps: list[int] = []
    losses: list[float] = []
    total = None
    for line in lines:
        found = _STEP.search(line)
        if found is None:
            continue
        step, total, loss = int(found[1]), int(found[2]), float(found[3])
        if steps and step <= steps[-1]:  # resumed from a checkpoint: the later run wins
            keep = sum(1 for s in steps if s < step)
            del steps[keep:], losses[keep:]
        steps.append(step)
        losses.append(loss)
    return {"steps": steps, "losses": losses, "total": total}


@dataclass
class LocalBackend:
    """The Workspaces of `bosun up` on this machine. Applying runs ``bosun up`` on the
    YAML (kept under ``$BOSUN_HOME/console/``), so it checks and prepares exactly as
    the command does."""

    store: Store
    allowed_hosts: frozenset[str] = frozenset()  # BOSUN_ALLOW_HOSTS, read by the caller
    mode: str = "local"
    can_apply: bool = True
    apply_timeout: float = 900.0
    _machine: Machine | None = field(default=None, init=False)

    def _here(self) -> Machine:
        if self._machine is None:
            from bosun.local.devices import machine

            self._machine = machine()
        return self._machine

    def _plan(self, ws: Workspace) -> Plan:
        from bosun.catalog import plan_workspace

        return plan_workspace(ws, target="local", local_profile=self._here().profile)

    def _rows(self) -> list[dict[str, Any]]:
        from bosun.local.runtime import show, status

        return [row(status(show(r))) for r in self.store.all() if r.kind in ("server", "job")]

    async def workspaces(self) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self._rows)

    def _stored_plan(self, name: str) -> dict[str, Any]:
        record = self.store.get(name)
        if record is None or record.kind not in ("server", "job"):
            raise ConsoleError(404, f"no local workspace named {name!r}")
        try:
            # No status: this machine's devices are allocated at `bosun up`, so nothing
            # local waits for devices the way a pending cluster claim does.
            ws = parse_workspace(record.workspace, name)
            return plan_json(self._plan(ws))
        except BosunError as exc:
            raise invalid(exc) from None

    async def plan(self, name: str) -> dict[str, Any]:
        return await asyncio.to_thread(self._stored_plan, name)

    def _check(self, text: str) -> tuple[Workspace, dict[str, Any]]:
        try:
            ws = read_workspace(text, "the Workspace", self.allowed_hosts)
            return ws, plan_json(self._plan(ws))
        except BosunError as exc:
            raise invalid(exc) from None

    async def check(self, text: str) -> dict[str, Any]:
        return (await asyncio.to_thread(self._check, text))[1]

    async def apply(self, text: str) -> dict[str, Any]:
        ws, planned = await asyncio.to_thread(self._check, text)
        if ws.spec.inference is not None and not planned["plan"]["fits"]:
            raise ConsoleError(
                422, f"{ws.name} does not fit this machine: {planned['plan']['reason']}"
            )
        if self.store.get(ws.name) is not None:
            raise ConsoleError(
                409, f"a local workspace named {ws.name!r} runs already: bosun down {ws.name} first"
            )
        folder = self.store.root / "console"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{ws.name}.yaml"
        path.write_text(text, encoding="utf-8")
        done = await asyncio.to_thread(self._up, path)
        output = (done.stdout + done.stderr).strip()
        if done.returncode != 0:
            raise ConsoleError(422, output or f"bosun up exited with {done.returncode}")
        return {"name": ws.name, "output": output, "file": str(path)}

    def _up(self, path: Path) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "bosun.cli.main", "up", str(path)]
        env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
        try:
            return subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=self.apply_timeout,
                check=False,
                env=env,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            raise ConsoleError(
                504, f"bosun up {path} did not finish in {self.apply_timeout:.0f} s"
            ) from None

    async def logs(self, name: str, lines: int) -> list[str]:
        from bosun.local.runtime import LocalError, logs

        try:
            return await asyncio.to_thread(logs, self.store, name, lines)
        except LocalError as exc:
            raise ConsoleError(404, str(exc)) from None

    async def close(self) -> None:
        return None
