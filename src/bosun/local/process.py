"""Processes Bosun started, known by pid *and* start time: a pid alone may by now belong
to another program (pids are reused), which must never be signalled."""

from __future__ import annotations

import os
import signal
from pathlib import Path

__all__ = ["alive", "signal_if_ours", "start_time"]


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


def alive(pid: int | None, started: int | None = None) -> bool:
    """``pid`` runs (not a zombie) and, when ``started`` is known, is the process that
    started then: the one Bosun recorded, not a later one that reuses its pid."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        # Another user's process: ours run as this user, so it cannot be ours when we
        # know its start time; without one, assume it runs (never signalled below).
        return started is None
    fields = _stat(pid)
    if fields is None:
        return True  # no /proc: trust the pid
    if fields[0] == "Z":
        return False
    return started is None or int(fields[19]) == started


def signal_if_ours(pid: int | None, started: int | None, sig: signal.Signals) -> bool:
    """Send ``sig`` only to the process recorded as (pid, start time); False if it is gone
    or the pid now belongs to another process. A record without a start time (written by
    an older Bosun) is signalled when its pid runs, as before."""
    if not alive(pid, started):
        return False
    assert pid is not None
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def supervisors(root: Path) -> dict[str, tuple[int, int | None]]:
    """Bosun supervisors running for the state directory ``root``, found from the process
    table (Linux), not the state store: {workspace name: (pid, start time)}. What a
    damaged or replaced store has lost track of is still found here."""
    found: dict[str, tuple[int, int | None]] = {}
    proc = Path("/proc")
    if not proc.is_dir():
        return found
    wanted = f"BOSUN_HOME={root}".encode()
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if b"bosun.local.supervisor" not in argv:
                continue
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue  # gone meanwhile, or another user's
        at = argv.index(b"bosun.local.supervisor")
        if at + 1 >= len(argv) or wanted not in environ:
            continue
        pid = int(entry.name)
        found[argv[at + 1].decode(errors="replace")] = (pid, start_time(pid))
    return found
