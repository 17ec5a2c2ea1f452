"""Stored responses are bounded: by age and by number, oldest dropped first."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bosun.serving.response_store import ResponseStore


def response(n: int) -> dict[str, object]:
    return {"id": f"resp_{n}", "object": "response", "output": []}


def test_the_oldest_go_first_past_the_limit(tmp_path: Path) -> None:
    store = ResponseStore(tmp_path / "r.db", max_items=3)
    for n in range(5):
        store.put(response(n), [{"role": "user", "content": str(n)}])
        time.sleep(0.01)  # distinct creation times
    assert [store.get(f"resp_{n}") is not None for n in range(5)] == [
        False,
        False,
        True,
        True,
        True,
    ]
    stored = store.get("resp_4")
    assert stored == (response(4), [{"role": "user", "content": "4"}])
    # A file store outlives the object that wrote it (a restarted server reads it).
    assert ResponseStore(tmp_path / "r.db").get("resp_4") == stored


def test_responses_expire(monkeypatch: pytest.MonkeyPatch) -> None:
    store = ResponseStore(ttl_s=60)
    store.put(response(1), [])
    assert store.get("resp_1") is not None
    later = time.time() + 61
    monkeypatch.setattr(time, "time", lambda: later)
    assert store.get("resp_1") is None and not store.delete("resp_1")
