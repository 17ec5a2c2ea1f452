"""Training data from http(s) URLs: fetched only from public addresses, redirects
included, and saved under a plain file name (a real HTTP server on loopback, which
BOSUN_ALLOW_HOSTS lets through where a test says so)."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from bosun.tuning.data import DataError, resolve_inputs

ROW = b'{"prompt": "hi", "completion": "there"}\n'


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.startswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(ROW)))
        self.end_headers()
        self.wfile.write(ROW)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_a_loopback_url_is_refused_unless_allowed(
    server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BOSUN_ALLOW_HOSTS", raising=False)
    with pytest.raises(DataError, match="loopback, private, link-local or metadata"):
        resolve_inputs([f"{server}/data.jsonl"], tmp_path)
    assert not any(tmp_path.iterdir())
    monkeypatch.setenv("BOSUN_ALLOW_HOSTS", "127.0.0.1")
    (file,) = resolve_inputs([f"{server}/data.jsonl"], tmp_path)
    assert file == tmp_path / "data.jsonl" and file.read_bytes() == ROW


def test_a_redirect_to_a_metadata_address_is_refused(
    server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BOSUN_ALLOW_HOSTS", "127.0.0.1")
    with pytest.raises(DataError, match=r"169\.254\.169\.254"):
        resolve_inputs([f"{server}/redirect"], tmp_path)


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/..", "data.jsonl"),
        ("/a/%2e%2e", "data.jsonl"),
        ("/x/..%2fescape.jsonl", ".._escape.jsonl"),
    ],
)
def test_the_saved_file_stays_in_the_download_directory(
    server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, path: str, name: str
) -> None:
    monkeypatch.setenv("BOSUN_ALLOW_HOSTS", "127.0.0.1")
    downloads = tmp_path / "downloads"
    (file,) = resolve_inputs([server + path], downloads)
    assert file == downloads / name and file.parent == downloads


def test_a_name_that_resolves_inside_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """localhost.my.test is no known internal name, but resolves to loopback here."""
    monkeypatch.delenv("BOSUN_ALLOW_HOSTS", raising=False)
    real = socket.getaddrinfo

    def fake(host: str, *args: object, **kw: object) -> object:
        if host == "data.example.test":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 0))]
        return real(host, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    with pytest.raises(DataError, match=r"data\.example\.test resolves to 127\.0\.0\.1"):
        resolve_inputs(["http://data.example.test/data.jsonl"], tmp_path)
