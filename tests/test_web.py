"""Fetching from the web (bosun.web): public addresses only, checked at the connection
itself (so a name that resolves public, then internal, is refused where it connects), at
every redirect, and never past the size limit. A real HTTP server on loopback, which
BOSUN_ALLOW_HOSTS lets through where a test says so."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator

import pytest

from bosun.web import TooLargeError, WebError, fetch

PAGE = b"<html><body><h1>Refunds</h1><p>Paid within five days.</p></body></html>"


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.startswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", "http://localhost:1/secret")
            self.end_headers()
            return
        body = PAGE * (1000 if self.path == "/big" else 1)
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        if self.path != "/unsized":
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body * (1000 if self.path == "/unsized" else 1))

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, int]]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield "127.0.0.1", int(httpd.server_address[1])
    httpd.shutdown()
    httpd.server_close()


def test_a_public_page_is_fetched_with_its_type_and_loopback_only_when_allowed(
    server: tuple[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    host, port = server
    monkeypatch.delenv("BOSUN_ALLOW_HOSTS", raising=False)
    with pytest.raises(WebError, match="loopback, private, link-local or metadata"):
        fetch(f"http://{host}:{port}/page", 10_000)
    monkeypatch.setenv("BOSUN_ALLOW_HOSTS", host)
    page = fetch(f"http://{host}:{port}/page", 10_000)
    assert page.data == PAGE and page.content_type == "text/html; charset=utf-8"


def test_a_name_that_turns_internal_after_the_check_is_refused_where_it_connects(
    server: tuple[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs.example.test passes the check by name (it is no internal name), and resolves
    to loopback only when the connection is made: refused there, nothing read."""
    monkeypatch.setenv("BOSUN_ALLOW_HOSTS", "")
    real = socket.getaddrinfo

    def rebinding(host: str, *args: object, **kw: object) -> object:
        if host == "docs.example.test":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", server[1]))]
        return real(host, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    with pytest.raises(WebError, match=r"docs\.example\.test resolves to 127\.0\.0\.1"):
        fetch(f"http://docs.example.test:{server[1]}/page", 10_000)


def test_a_redirect_inside_is_refused(
    server: tuple[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    host, port = server
    monkeypatch.setenv("BOSUN_ALLOW_HOSTS", host)
    with pytest.raises(WebError, match=r"/redirect: redirected to http://localhost:1/secret"):
        fetch(f"http://{host}:{port}/redirect", 10_000)


@pytest.mark.parametrize("path", ["/big", "/unsized"])
def test_a_body_over_the_limit_is_refused_without_reading_it_all(
    server: tuple[str, int], monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    host, port = server
    monkeypatch.setenv("BOSUN_ALLOW_HOSTS", host)
    with pytest.raises(TooLargeError, match="10000"):
        fetch(f"http://{host}:{port}{path}", 10_000)


@pytest.mark.parametrize("url", ["ftp://example.com/x", "file:///etc/passwd", "http:///x"])
def test_only_http_urls_are_fetched(url: str) -> None:
    with pytest.raises(WebError, match="not an http"):
        fetch(url, 10_000)
