"""Local workspaces in SQLite (WAL mode): one row per workspace, written by the CLI and by
its supervisor, read by every terminal."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from pydantic import TypeAdapter, ValidationError

from bosun.api.errors import BosunError

__all__ = ["DamagedRecordError", "Record", "State", "Store", "boot_id", "home"]

# Servers: Starting, Ready, Restarting, and Idle (scaled to zero: the gateway starts it on
# its next request). Jobs (fine-tuning): Starting, Running, Succeeded.
State = Literal[
    "Starting", "Ready", "Restarting", "Idle", "Running", "Succeeded", "Failed", "Stopped"
]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS workspaces (
    name TEXT PRIMARY KEY,
    data TEXT NOT NULL
)
"""


def home() -> Path:
    """``$BOSUN_HOME``, else the user's state directory (XDG)."""
    configured = os.environ.get("BOSUN_HOME")
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "bosun"


def boot_id() -> str:
    """This boot of the machine (Linux), so that pids recorded before a restart, which
    may now belong to other processes, are not taken for ours; empty elsewhere."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text(encoding="utf-8").strip()
    except OSError:
        return ""


class DamagedRecordError(BosunError):
    """A stored row that is not a workspace record."""


@dataclass
class Record:
    """One local workspace as stored."""

    name: str
    model: str
    file: str  # the Workspace file it came from
    port: int
    command: list[str]  # the server's command line
    devices: list[str] = field(default_factory=list)
    state: State = "Starting"
    pid: int | None = None  # the server
    supervisor_pid: int | None = None
    # Their start times (clock ticks since boot): a pid reused by another process after
    # ours exited does not match, and is never taken for ours nor signalled.
    pid_start: int | None = None
    supervisor_start: int | None = None
    restarts: int = 0
    started: float = field(default_factory=time.time)  # when the server last started
    created: float = field(default_factory=time.time)
    message: str = ""  # why it failed, with the last log lines
    workspace: dict[str, Any] = field(default_factory=dict)  # as it was when started
    env: dict[str, str] = field(default_factory=dict)  # for the server (CUDA_VISIBLE_DEVICES)
    shared: bool = False  # its GPUs may be shared with other sharing workspaces
    boot: str = field(default_factory=boot_id)  # the machine's boot it started in
    # server (restarted when it exits), job (runs to completion), or the gateway (a
    # server in front of the others, restarted like one)
    kind: str = "server"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1" if self.kind != "job" else ""

    @classmethod
    def from_json(cls, text: str) -> Record:
        """A stored row; one that is not a record (damaged by hand, by a disk, by another
        version) raises :class:`DamagedRecordError` naming what is wrong."""
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, TypeError):
            raise DamagedRecordError("it is not JSON") from None
        if not isinstance(data, dict):
            raise DamagedRecordError("it is not a JSON object")
        known = {f.name for f in fields(cls)}
        try:
            return _RECORD.validate_python({k: v for k, v in data.items() if k in known})
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "the row"
            raise DamagedRecordError(f"{where}: {first['msg']}") from None


_RECORD: TypeAdapter[Record] = TypeAdapter(Record)


class Store:
    """The state database at ``root/state.db``. A file that is not a readable database is
    moved aside (``state.db.unreadable-<time>``, never deleted) and a new one started:
    ``recovered`` then names the backup."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or home()
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "logs").mkdir(exist_ok=True)
        self.path = self.root / "state.db"
        self.recovered: Path | None = None
        try:
            self._check()
        except sqlite3.DatabaseError:
            backup = self.path.with_name(f"state.db.unreadable-{int(time.time())}")
            self.path.rename(backup)
            for suffix in ("-wal", "-shm"):
                side = self.path.with_name(self.path.name + suffix)
                if side.exists():
                    side.rename(backup.with_name(backup.name + suffix))
            self.recovered = backup
            self._check()

    def _check(self) -> None:
        with self._connect() as db:
            db.execute(_SCHEMA)
            db.execute("SELECT count(*) FROM workspaces").fetchone()

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA busy_timeout=10000")
            yield db
        finally:
            db.close()

    def log_path(self, name: str) -> Path:
        return self.root / "logs" / f"{name}.log"

    def get(self, name: str) -> Record | None:
        """The stored workspace; :class:`DamagedRecordError` if its row is damaged."""
        with self._connect() as db:
            row = db.execute("SELECT data FROM workspaces WHERE name = ?", (name,)).fetchone()
        if row is None:
            return None
        try:
            return Record.from_json(row[0])
        except DamagedRecordError as exc:
            raise DamagedRecordError(f"{name}: its stored row is damaged ({exc})") from None

    def all(self) -> list[Record]:
        return self.scan()[0]

    def scan(self) -> tuple[list[Record], dict[str, str]]:
        """Every readable workspace, and {name: what is wrong} for each damaged row."""
        with self._connect() as db:
            rows = db.execute("SELECT name, data FROM workspaces ORDER BY name").fetchall()
        records, damaged = [], {}
        for name, data in rows:
            try:
                records.append(Record.from_json(data))
            except DamagedRecordError as exc:
                damaged[str(name)] = str(exc)
        return records, damaged

    def put(self, record: Record) -> None:
        with self._connect() as db:
            db.execute(
                "INSERT INTO workspaces (name, data) VALUES (?, ?) "
                "ON CONFLICT(name) DO UPDATE SET data = excluded.data",
                (record.name, json.dumps(asdict(record))),
            )

    def insert_new(self, name: str, build: Callable[[list[Record]], Record]) -> Record | None:
        """Store ``build(other records)`` under ``name`` in one transaction (so what it
        derives from the others, such as free devices, cannot change meanwhile); None if
        the name is taken. An exception from ``build`` stores nothing."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                rows = db.execute("SELECT name, data FROM workspaces").fetchall()
                if any(row[0] == name for row in rows):
                    db.execute("ROLLBACK")
                    return None
                record = build(_readable(row[1] for row in rows))
                db.execute(
                    "INSERT INTO workspaces (name, data) VALUES (?, ?)",
                    (record.name, json.dumps(asdict(record))),
                )
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
            return record

    def update(
        self, name: str, when: Callable[[Record], bool] | None = None, **changes: Any
    ) -> Record | None:
        """Change some fields of a stored workspace, in one transaction; with ``when``,
        only if ``when(the stored record)`` holds (None otherwise)."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            row = db.execute("SELECT data FROM workspaces WHERE name = ?", (name,)).fetchone()
            try:
                record = Record.from_json(row[0]) if row is not None else None
            except DamagedRecordError:
                record = None  # left for `bosun down` to remove; never overwritten blindly
            if record is None or (when is not None and not when(record)):
                db.execute("ROLLBACK")
                return None
            for key, value in changes.items():
                setattr(record, key, value)
            db.execute(
                "UPDATE workspaces SET data = ? WHERE name = ?",
                (json.dumps(asdict(record)), name),
            )
            db.execute("COMMIT")
            return record

    def delete(self, name: str) -> None:
        with self._connect() as db:
            db.execute("DELETE FROM workspaces WHERE name = ?", (name,))


def _readable(rows: Iterable[str]) -> list[Record]:
    out = []
    for data in rows:
        try:
            out.append(Record.from_json(data))
        except DamagedRecordError:
            continue
    return out
