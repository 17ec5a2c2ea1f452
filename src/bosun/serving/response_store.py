"""Stored responses of the Responses API (``store: true``, the default): what
``previous_response_id``, ``GET`` and ``DELETE /v1/responses/{id}`` read.

Kept in SQLite, for a bounded time (``ttl_s``) and number (``max_items``, oldest dropped
first): in memory by default, or in a file (``bosun serve --responses-store``; ``bosun up``
keeps it beside the workspace's state). Each row holds the response as answered and the
conversation it ended (input and output as chat messages), to continue from.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

__all__ = ["ResponseStore", "Stored"]

_SCHEMA = """CREATE TABLE IF NOT EXISTS responses (
    id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    response TEXT NOT NULL,
    conversation TEXT NOT NULL
)"""

Stored = tuple[dict[str, Any], list[dict[str, Any]]]  # (response, conversation)


class ResponseStore:
    def __init__(
        self, path: Path | None = None, ttl_s: float = 3600.0, max_items: int = 10_000
    ) -> None:
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(
            str(path) if path is not None else ":memory:", check_same_thread=False
        )
        self._lock = threading.Lock()
        self.ttl_s, self.max_items = ttl_s, max_items
        with self._lock, self._db:
            self._db.execute(_SCHEMA)

    def put(self, response: dict[str, Any], conversation: list[dict[str, Any]]) -> None:
        with self._lock, self._db:
            self._expire()
            self._db.execute(
                "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?)",
                (response["id"], time.time(), json.dumps(response), json.dumps(conversation)),
            )
            self._db.execute(
                "DELETE FROM responses WHERE id NOT IN "
                "(SELECT id FROM responses ORDER BY created DESC LIMIT ?)",
                (self.max_items,),
            )

    def get(self, response_id: str) -> Stored | None:
        with self._lock, self._db:
            self._expire()
            row = self._db.execute(
                "SELECT response, conversation FROM responses WHERE id = ?", (response_id,)
            ).fetchone()
        return None if row is None else (json.loads(row[0]), json.loads(row[1]))

    def delete(self, response_id: str) -> bool:
        with self._lock, self._db:
            gone = self._db.execute("DELETE FROM responses WHERE id = ?", (response_id,))
        return gone.rowcount > 0

    def _expire(self) -> None:
        self._db.execute("DELETE FROM responses WHERE created < ?", (time.time() - self.ttl_s,))
