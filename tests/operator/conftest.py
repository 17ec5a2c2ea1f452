"""The operator scenarios record the API requests the operator sends (``RECORDED``); the
RBAC test needs all of them, and knows from here which have run in this session."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.operator.cluster import RECORDED

# Node ids of the operator scenarios that have run to the end in this session.
FINISHED: set[str] = set()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "teardown":
        FINISHED.add(report.nodeid)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """A run started by the RBAC test hands what it recorded back through a file."""
    out = os.environ.get("BOSUN_RECORDED_REQUESTS")
    if out:
        Path(out).write_text(json.dumps(sorted(RECORDED)), encoding="utf-8")
