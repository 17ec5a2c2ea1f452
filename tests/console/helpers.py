"""`bosun console` as a process of its own, for the tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.local.cli import environment
from tests.processes import bosun_process


@contextmanager
def running_console(home: Path, api_key: str) -> Iterator[str]:
    """`bosun console --local --api-key KEY` over ``home``'s state; its URL once it answers."""
    args = ["console", "--local", "--api-key", api_key]
    with bosun_process(args, environment(home), timeout=60) as url:
        yield url
