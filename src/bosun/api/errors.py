"""Typed errors of the pure core; the CLI maps each to one clear message and exit code 2."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["BosunError", "Problem", "WorkspaceError"]


class BosunError(Exception):
    """Bad input or an impossible request: the user can fix it, so no traceback is shown."""


@dataclass(frozen=True)
class Problem:
    path: str  # a field path, as spec.resource.accelerator.count
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class WorkspaceError(BosunError):
    """A Workspace (or another Bosun resource: ``kind``) that does not parse or validate;
    each problem names its field path."""

    def __init__(self, source: str, problems: Sequence[Problem], kind: str = "Workspace") -> None:
        self.source = source
        self.problems = list(problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"{source}: invalid {kind}\n{lines}")
