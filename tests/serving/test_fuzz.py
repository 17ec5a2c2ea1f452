"""Fuzz the app's own OpenAPI schema (schemathesis): no input may cause a 5xx."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from bosun.engine.fake import FakeEngine
from tests.serving.server import running_server


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    with running_server(FakeEngine(max_model_len=512, max_waiting=1000)) as url:
        yield url


def test_no_input_makes_a_server_error(base: str) -> None:
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    failures: list[str] = []
    calls: dict[str, int] = {}
    for operation in schema.get_all_operations():
        op = operation.ok()

        @settings(
            max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        @given(case=op.as_strategy())
        def check(case: schemathesis.Case) -> None:
            response = case.call(base_url=base, timeout=30)
            path = case.operation.path
            calls[path] = calls.get(path, 0) + 1
            try:
                case.validate_response(response, checks=[not_a_server_error])
            except Exception as exc:  # collect, then report every failing operation
                failures.append(f"{case.method} {path}: {exc}")

        check()
    assert failures == []
    # Every route was exercised, POST bodies included.
    assert {"/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/health"} <= set(calls)
    posts = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings")
    assert all(calls[p] >= 10 for p in posts), calls
