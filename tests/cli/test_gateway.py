"""`bosun gateway` as a user starts it: a process in front of a running server, answering
the official openai client; replica URLs it cannot use refused by name."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import httpx
import openai
import pytest
from typer.testing import CliRunner

from bosun.cli.main import app
from bosun.engine.fake import FakeEngine
from tests.serving.server import free_port, running_server


@pytest.mark.parametrize(
    ("replica", "words"),
    [
        ("ftp://127.0.0.1:8000", "write a server's URL"),
        ("http://127.0.0.1:8000/v1/chat", "write a server's URL"),
        ("http://127.0.0.1:99999", "its port is not a number"),
        ("127.0.0.1:8000", "write a server's URL"),
    ],
)
def test_a_replica_it_cannot_use_is_refused_by_name(replica: str, words: str) -> None:
    result = CliRunner().invoke(app, ["gateway", "--replica", replica])
    assert result.exit_code == 2
    assert f"--replica {replica!r}" in result.stderr and words in result.stderr


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ([], "give the servers with --replica URL"),
        (["--local", "--kubernetes"], "give the servers with --replica URL"),
        (["--local", "--namespace", "team"], "--namespace goes with --kubernetes"),
        (["--kubernetes", "--namespace", "Bad_NS"], "--namespace: 'Bad_NS' is not"),
        (["--local", "--kubeconfig", "/k"], "--kubeconfig goes with --kubernetes"),
        (["--local", "--policy", "random"], "--policy 'random': cache-aware or round-robin"),
        (["--local", "--api-key", " "], "--api-key (or $BOSUN_API_KEY) is empty"),
    ],
)
def test_options_that_do_not_go_together_are_refused_by_name(args: list[str], words: str) -> None:
    result = CliRunner().invoke(app, ["gateway", *args])
    assert result.exit_code == 2 and words in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ([], "give --local (bosun up's workspaces here) or --kubernetes"),
        (["--local", "--kubernetes"], "give --local (bosun up's workspaces here) or --kubernetes"),
        (["--local", "--namespace", "team"], "--namespace goes with --kubernetes"),
    ],
)
def test_the_console_alone_is_refused_options_that_do_not_go_together(
    args: list[str], words: str
) -> None:
    result = CliRunner().invoke(app, ["console", *args])
    assert result.exit_code == 2 and words in result.stderr
    assert "Traceback" not in result.stderr


def test_the_gateway_process_serves_the_models_behind_it() -> None:
    """...and closes a connection that sends no complete headers in time (here 0.5 s), as
    bosun serve does: idle sockets cannot pile up on the one endpoint."""
    with running_server(FakeEngine(name="fake-model", answer="through the gateway")) as url:
        port = free_port()
        command = [sys.executable, "-m", "bosun.cli.main", "gateway", "--replica", f"{url}/v1"]
        command += ["--port", str(port), "--log-level", "warning", "--header-timeout", "0.5"]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{base}/health", timeout=2).json()["replicas"] == 1:
                        break
                except httpx.TransportError:
                    pass
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                assert time.monotonic() < deadline, "the gateway did not start"
                time.sleep(0.1)
            with openai.OpenAI(base_url=f"{base}/v1", api_key="none", max_retries=0) as client:
                assert [m.id for m in client.models.list().data] == ["fake-model"]
                answer = client.chat.completions.create(
                    model="fake-model", messages=[{"role": "user", "content": "hi"}], max_tokens=3
                )
            assert answer.choices[0].message.content == "through the gateway"
            with socket.create_connection(("127.0.0.1", port)) as trickle:
                trickle.sendall(b"GET /v1/models HTTP/1.1\r\nHost: x")
                trickle.settimeout(30)  # a regression fails here, not by hanging
                assert trickle.recv(1) == b""  # the gateway closed it
        finally:
            process.terminate()
            process.wait(timeout=30)
            if process.stderr:
                process.stderr.close()
