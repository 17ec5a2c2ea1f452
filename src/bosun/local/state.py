"""Local workspaces in SQLite (WAL mode): one row per workspace, written by the CLI and by
its supervisor, read by every terminal."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

__all__ = ["Record", "State", "Store", "boot_id", "home"]

# Servers: Starting, Ready, Restarting. Jobs (fine-tuning): Starting, Running, Succeeded.
State = Literal["Starting", "Ready", "Restarting", "Running", "Succeeded", "Failed", "Stopped"]

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
    restarts: int = 0
    started: float = field(default_factory=time.time)  # when the server last started
    created: float = field(default_factory=time.time)
    message: str = ""  # why it failed, with the last log lines
    workspace: dict[str, Any] = field(default_factory=dict)  # as it was when started
    env: dict[str, str] = field(default_factory=dict)  # for the server (CUDA_VISIBLE_DEVICES)
    shared: bool = False  # its GPUs may be shared with other sharing workspaces
    boot: str = field(default_factory=boot_id)  # the machine's boot it started in
    kind: str = "server"  # server (restarted when it exits) or job (runs to completion)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1" if self.kind == "server" else ""

    @classmethod
    def from_json(cls, text: str) -> Record:
        data: dict[str, Any] = json.loads(text)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


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
        with self._connect() as db:
            row = db.execute("SELECT data FROM workspaces WHERE name = ?", (name,)).fetchone()
        return Record.from_json(row[0]) if row else None

    def all(self) -> list[Record]:
        with self._connect() as db:
            rows = db.execute("SELECT data FROM workspaces ORDER BY name").fetchall()
        return [Record.from_json(r[0]) for r in rows]

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
                record = build([Record.from_json(row[1]) for row in rows])
                db.execute(
                    "INSERT INTO workspaces (name, data) VALUES (?, ?)",
                    (record.name, json.dumps(asdict(record))),
                )
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
            return record

    def update(self, name: str, **changes: Any) -> Record | None:
        """Change some fields of a stored workspace, in one transaction."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            row = db.execute("SELECT data FROM workspaces WHERE name = ?", (name,)).fetchone()
            if row is None:
                db.execute("ROLLBACK")
                return None
            record = Record.from_json(row[0])
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
