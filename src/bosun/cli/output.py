"""Printing: YAML and JSON documents, errors without tracebacks, and rich tables."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import Any, NoReturn

import typer
import yaml
from rich.console import Console

__all__ = ["Format", "console", "dump", "error", "fail", "log_to_stderr", "progress_bar", "warn"]

# Pipes and CI logs get a wide console rather than rich's 80-column default.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
_stderr = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 160)


class Format(StrEnum):
    TABLE = "table"
    JSON = "json"
    YAML = "yaml"


class _Dumper(yaml.SafeDumper):
    pass


def _str_presenter(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _str_presenter)


def dump(data: Any, fmt: Format) -> None:
    """Write ``data`` (a document, or a list of documents for YAML) to stdout."""
    if fmt is Format.JSON:
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
    elif isinstance(data, list) and data and all(isinstance(d, dict) and "kind" in d for d in data):
        sys.stdout.write(yaml.dump_all(data, Dumper=_Dumper, sort_keys=False, width=100))
    else:
        sys.stdout.write(yaml.dump(data, Dumper=_Dumper, sort_keys=False, width=100))


def error(message: str) -> None:
    """Print one clear error without exiting (a command that reports several)."""
    _stderr.print(f"[bold red]error:[/bold red] {message}", soft_wrap=True)


def warn(message: str) -> None:
    _stderr.print(f"[yellow]warning:[/yellow] {message}", soft_wrap=True)


def fail(message: str, code: int = 2) -> NoReturn:
    """Print one clear error and exit (2: the input is at fault)."""
    _stderr.print(f"[bold red]error:[/bold red] {message}", soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def progress_bar(title: str) -> Iterator[Callable[[str, float], None]]:
    """A rich progress bar on stderr; yields ``update(what, fraction_done)``."""
    from rich.progress import (
        BarColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    columns = (
        SpinnerColumn(),
        TextColumn("[bold]{task.fields[title]}[/bold] {task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=_stderr, transient=False) as bar:
        task = bar.add_task("", total=1.0, title=title)

        def update(what: str, done: float) -> None:
            bar.update(task, description=what, completed=done)

        yield update


def log_to_stderr(logger: str, level: str) -> None:
    """Show ``logger``'s records (which engine serves, a replica that left) beside
    uvicorn's, in its format."""
    import logging

    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s:     %(message)s"))
    target = logging.getLogger(logger)
    target.addHandler(handler)
    target.setLevel(level.upper())
