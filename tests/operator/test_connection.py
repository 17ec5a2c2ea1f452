"""How the operator (and the gateway) connect: proxies from the environment are honoured
only where they are set."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml

from bosun.operator.connection import PROXY_VARIABLES, load_configuration


def _kubeconfig(tmp_path: Path) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://10.0.0.1:6443"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        ),
        encoding="utf-8",
    )
    return path


@pytest.fixture(autouse=True)
def no_proxy_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def test_without_proxy_variables_the_client_does_not_search_the_environment(
    tmp_path: Path,
) -> None:
    configuration = asyncio.run(load_configuration(_kubeconfig(tmp_path)))
    assert configuration.host == "https://10.0.0.1:6443"
    assert configuration.client_session_kwargs == {"trust_env": False}


@pytest.mark.parametrize("name", ["HTTPS_PROXY", "https_proxy", "NO_PROXY"])
def test_a_proxy_variable_makes_the_client_honour_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv(name, "http://proxy.internal:3128")
    configuration = asyncio.run(load_configuration(_kubeconfig(tmp_path)))
    assert configuration.client_session_kwargs == {"trust_env": True}
