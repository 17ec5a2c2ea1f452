"""Processes Bosun started, known by pid, start time *and* command line: a pid alone may
by now belong to another program (pids are reused), which must never be signalled.

Every process ``bosun up`` starts carries ``BOSUN_HOME`` and ``BOSUN_WORKSPACE`` in its
environment, so what runs is found from the process table even when the state store has
lost track of it (:func:`running`)."""

from __future__ import annotations

import os
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "HOME_ENV",
    "SUPERVISOR_MODULE",
    "WORKSPACE_ENV",
    "Found",
    "Proc",
    "alive",
    "command_line",
    "running",
    "signal_if_ours",
    "start_time",
]

HOME_ENV = "BOSUN_HOME"
WORKSPACE_ENV = "BOSUN_WORKSPACE"
SUPERVISOR_MODULE = "bosun.local.supervisor"


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (Linux), or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except OSError:
        return None
    _, sep, rest = text.rpartition(") ")  # the name may hold spaces and parentheses
    return rest.split() if sep else None


def start_time(pid: int | None) -> int | None:
    """When ``pid`` started, in clock ticks since boot (field 22 of /proc/PID/stat); None
    where that cannot be read (not Linux, or no such process)."""
    if not pid:
        return None
    fields = _stat(pid)
    if fields is None or len(fields) < 20:
        return None
    return int(fields[19])


def command_line(pid: int | None) -> list[str] | None:
    """``pid``'s argv (Linux), or None where it cannot be read."""
    if not pid:
        return None
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [part.decode(errors="replace") for part in raw.split(b"\0")[:-1]]


def _holds(argv: Sequence[str], expected: Sequence[str]) -> bool:
    """``expected`` appears in ``argv`` as a run of consecutive arguments."""
    width = len(expected)
    return any(list(argv[i : i + width]) == list(expected) for i in range(len(argv) - width + 1))


def alive(pid: int | None, started: int | None = None, argv: Sequence[str] = ()) -> bool:
    """``pid`` runs (not a zombie) and, when ``started`` is known, is the process that
    started then: the one Bosun recorded, not a later one that reuses its pid. ``argv``:
    arguments its command line must hold in a row (the recorded command, or the
    supervisor's module and workspace)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        # Another user's process: ours run as this user, so it cannot be ours when we
        # know its start time; without one, assume it runs (never signalled below).
        return started is None and not argv
    fields = _stat(pid)
    if fields is None:
        return True  # no /proc: trust the pid
    if fields[0] == "Z":
        return False
    if started is not None and int(fields[19]) != started:
        return False
    line = command_line(pid)
    return not argv or line is None or _holds(line, argv)


def signal_if_ours(
    pid: int | None, started: int | None, sig: signal.Signals, argv: Sequence[str] = ()
) -> bool:
    """Send ``sig`` only to the process recorded as (pid, start time, command line); False
    if it is gone or the pid now belongs to another process. A record without a start
    time (written by an older Bosun) is signalled when its pid runs, as before."""
    if not alive(pid, started, argv):
        return False
    assert pid is not None
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


@dataclass(frozen=True)
class Proc:
    pid: int
    started: int | None
    argv: list[str]


@dataclass
class Found:
    """What runs for one workspace, as the process table says."""

    supervisor: Proc | None = None
    server: Proc | None = None  # the server, or a job


def running(root: Path) -> dict[str, Found]:
    """Bosun's processes running for the state directory ``root``, found from the process
    table (Linux), not the state store: {workspace name: its supervisor and server}. What
    a damaged or replaced store has lost track of is still found here."""
    found: dict[str, Found] = {}
    proc = Path("/proc")
    if not proc.is_dir():
        return found
    home = f"{HOME_ENV}={root}".encode()
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue  # gone meanwhile, or another user's
        if home not in environ:
            continue
        pid = int(entry.name)
        argv = command_line(pid) or []
        if SUPERVISOR_MODULE in argv:
            at = argv.index(SUPERVISOR_MODULE)
            if at + 1 < len(argv):
                one = found.setdefault(argv[at + 1], Found())
                one.supervisor = Proc(pid, start_time(pid), argv)
            continue
        prefix = f"{WORKSPACE_ENV}=".encode()
        names = [v[len(prefix) :] for v in environ if v.startswith(prefix)]
        if names and names[0]:
            one = found.setdefault(names[0].decode(errors="replace"), Found())
            one.server = Proc(pid, start_time(pid), argv)
    return found
