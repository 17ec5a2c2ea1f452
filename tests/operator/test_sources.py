"""Web sources resolved at the operator: a public-looking name that points inside is
refused before anything is rendered (the fetching job checks again)."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from bosun.api import parse_workspace
from bosun.operator.sources import check_sources, resolve
from tests.conftest import workspace_data

ANSWERS = {
    "data.example.com": ["93.184.215.14"],
    "sneaky.example.com": ["93.184.215.14", "10.1.2.3"],
    "metadata-alias.example.com": ["::ffff:169.254.169.254"],
}


async def fake_resolver(host: str) -> list[str]:
    if host not in ANSWERS:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    return ANSWERS[host]


def _tuning(*uris: str) -> Any:
    return parse_workspace(
        workspace_data(
            inference=None,
            tuning={
                "preset": {"name": "qwen2.5-0.5b-instruct"},
                "input": {"uris": list(uris)},
                "output": {"uri": "pvc://adapters/out"},
            },
        )
    )


def check(ws: Any, allowed: frozenset[str] = frozenset()) -> str | None:
    return asyncio.run(check_sources(ws, allowed, fake_resolver))


def test_names_that_resolve_outside_pass() -> None:
    assert check(_tuning("https://data.example.com/a.jsonl", "hf://org/data")) is None


def test_a_name_that_resolves_inside_is_named_with_its_field() -> None:
    ws = _tuning("https://data.example.com/a.jsonl", "https://sneaky.example.com/b.jsonl")
    problem = check(ws)
    assert problem is not None
    assert problem.startswith("spec.tuning.input.uris[1]: host sneaky.example.com resolves")
    assert "10.1.2.3" in problem and "BOSUN_ALLOW_HOSTS=sneaky.example.com" in problem
    assert check(ws, frozenset({"sneaky.example.com"})) is None


def test_adapter_sources_are_checked_too() -> None:
    ws = parse_workspace(
        workspace_data(
            inference={
                "preset": {"name": "llama-3.1-8b-instruct"},
                "adapters": [
                    {"name": "a", "source": {"uri": "hf://org/a"}},
                    {"name": "b", "source": {"uri": "https://metadata-alias.example.com/b"}},
                ],
            }
        )
    )
    problem = check(ws)
    assert problem is not None and problem.startswith("spec.inference.adapters[1].source.uri")
    assert "169.254.169.254" in problem


def test_a_name_that_does_not_resolve_now_is_left_to_the_fetch() -> None:
    assert check(_tuning("https://not-yet.example.com/a.jsonl")) is None


def test_the_real_resolver_answers_for_this_machine() -> None:
    """The resolver the operator uses (the event loop's, bounded by a timeout)."""
    addresses = asyncio.run(resolve("localhost"))
    assert addresses and all(a in ("127.0.0.1", "::1") for a in addresses)
