"""The console's API as the page calls it: through the gateway, behind its API key; a
cluster console without a key refuses every call; a bad request names its field."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from bosun.console.app import MAX_YAML_CHARS, build_console
from bosun.console.backends import LocalBackend
from bosun.gateway.proxy import GatewaySettings, build_gateway
from bosun.gateway.sources import StaticSource
from bosun.local.state import Store
from tests.console.helpers import running_console

KEY = "s3cret-console-key"


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`bosun console --local --api-key` over an empty state directory."""
    with running_console(tmp_path_factory.mktemp("console") / "home", KEY) as url:
        yield url


def test_every_api_the_page_calls_needs_the_key_and_the_page_does_not(console: str) -> None:
    page = httpx.get(f"{console}/")
    assert page.status_code == 200 and "Bosun console" in page.text
    assert httpx.get(f"{console}/static/console.js").status_code == 200
    assert httpx.get(f"{console}/static/vendor/uplot/LICENSE").status_code == 200
    for path in ("/api/workspaces", "/api/metrics", "/api/info", "/v1/models", "/metrics"):
        refused = httpx.get(f"{console}{path}")
        assert refused.status_code == 401, path
        assert refused.json()["error"]["code"] == "invalid_api_key"
        wrong = httpx.get(f"{console}{path}", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401, path
    refused = httpx.post(f"{console}/api/apply", json={"yaml": "kind: Workspace"})
    assert refused.status_code == 401
    keyed = {"Authorization": f"Bearer {KEY}"}
    assert httpx.get(f"{console}/api/info", headers=keyed).json() == {
        "mode": "local",
        "canApply": True,
    }
    assert httpx.get(f"{console}/api/workspaces", headers=keyed).json() == {"items": []}


def test_bad_requests_name_what_is_wrong(console: str) -> None:
    keyed = {"Authorization": f"Bearer {KEY}"}
    missing = httpx.post(f"{console}/api/plan", headers=keyed, json={"text": "x"})
    assert missing.status_code == 422
    assert missing.json()["error"]["problems"][0]["path"] == "yaml"
    huge = httpx.post(
        f"{console}/api/plan", headers=keyed, json={"yaml": "a" * (MAX_YAML_CHARS + 1)}
    )
    assert huge.status_code == 422 and "yaml" in huge.json()["error"]["message"]
    unknown = httpx.get(f"{console}/api/nothing", headers=keyed)
    assert unknown.status_code == 404 and "/api/nothing" in unknown.json()["error"]["message"]
    nobody = httpx.get(f"{console}/api/workspaces/ghost/logs", headers=keyed)
    assert nobody.status_code == 404 and "ghost" in nobody.json()["error"]["message"]
    lines = httpx.get(f"{console}/api/workspaces/ghost/logs?lines=0", headers=keyed)
    assert lines.status_code == 422 and "lines" in lines.json()["error"]["message"]


def test_a_console_locked_for_want_of_a_key_refuses_every_api_call(tmp_path: Path) -> None:
    why = "in a cluster the console needs an API key"
    web = build_console(LocalBackend(Store(tmp_path)), StaticSource(()), locked=why)
    app = build_gateway(GatewaySettings(), StaticSource(()), web)
    with TestClient(app) as client:
        assert client.get("/").status_code == 200  # the page says why, from the API's answer
        for path in ("/api/workspaces", "/api/metrics", "/api/info"):
            refused = client.get(path)
            assert refused.status_code == 403 and why in refused.json()["error"]["message"]
        assert client.get("/health").status_code == 200


def test_another_sites_page_cannot_drive_the_console_from_a_users_browser(
    tmp_path: Path,
) -> None:
    web = build_console(LocalBackend(Store(tmp_path)), StaticSource(()))
    app = build_gateway(GatewaySettings(), StaticSource(()), web)
    with TestClient(app, base_url="http://127.0.0.1:8090") as client:
        assert client.get("/api/info").status_code == 200
        assert client.get("/api/info", headers={"Host": "localhost:8090"}).status_code == 200
        # A page of another site posting here (its browser sends its origin).
        posted = client.post(
            "/api/apply",
            content='{"yaml": "kind: Workspace"}',
            headers={"Origin": "http://evil.example", "Content-Type": "text/plain"},
        )
        assert posted.status_code == 403 and "another site" in posted.json()["error"]["message"]
        # A name of the attacker's rebound to 127.0.0.1: same origin, foreign host.
        rebound = client.get(
            "/api/workspaces",
            headers={"Host": "evil.example:8090", "Origin": "http://evil.example:8090"},
        )
        assert rebound.status_code == 403 and "--api-key" in rebound.json()["error"]["message"]
        same = client.get("/api/workspaces", headers={"Origin": "http://127.0.0.1:8090"})
        assert same.status_code == 200
