"""Fetching what users point Bosun at on the web (training data, documents to index):
public addresses only, checked where the connection is made.

A URL's host is checked by name and literal address (:func:`check_public_host`), and
every address it resolves to is checked when the socket connects, to the address that
is then used: a name that resolves to a public address at check time and to an internal
one a moment later (DNS rebinding) cannot slip through. Each redirect is checked the same
way. Hosts in ``BOSUN_ALLOW_HOSTS`` are trusted. A size limit stops reading past it.
"""

from __future__ import annotations

import http.client
import os
import shutil
import socket
import ssl
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bosun.api.validators import (
    ALLOW_HOSTS_ENV,
    check_addresses,
    check_public_host,
    parse_allowed_hosts,
)

__all__ = ["Fetched", "TooLargeError", "WebError", "check_url", "download", "fetch"]

TIMEOUT = 60.0
CHUNK = 1 << 16


class WebError(ValueError):
    """A URL that may not or cannot be fetched; the message names it."""


class TooLargeError(WebError):
    """The body is over the size limit."""


@dataclass(frozen=True)
class Fetched:
    data: bytes
    content_type: str | None
    url: str  # after redirects


def _allowed() -> frozenset[str]:
    return parse_allowed_hosts(os.environ.get(ALLOW_HOSTS_ENV, ""))


def _host_key(host: str) -> str:
    return host.strip("[]").lower().rstrip(".")


def _checked_connect(
    address: tuple[str, int], timeout: Any = None, source_address: Any = None
) -> socket.socket:
    """``socket.create_connection``, to an address of the host that passed the check."""
    host, port = address
    allowed = _allowed()
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise WebError(f"cannot resolve {host}: {exc}") from None
    if _host_key(host) not in allowed:
        try:
            check_addresses(host, [str(info[4][0]) for info in infos], allowed)
        except ValueError as exc:
            raise WebError(str(exc)) from None
    error: OSError | None = None
    for family, kind, proto, _, sockaddr in infos:
        sock = socket.socket(family, kind, proto)
        try:
            if timeout is not None:
                sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            error = exc
            sock.close()
    raise error or OSError(f"cannot connect to {host}")


class _HTTPConnection(http.client.HTTPConnection):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._create_connection = _checked_connect


class _HTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._create_connection = _checked_connect


class _HTTPHandler(urllib.request.HTTPHandler):
    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_HTTPConnection, req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self) -> None:
        super().__init__(context=ssl.create_default_context())

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_HTTPSConnection, req, context=self._context)  # type: ignore[attr-defined]


def check_url(url: str) -> None:
    """An http(s) URL whose host is not internal by name or literal address (its
    resolved addresses are checked when it is fetched)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebError(f"{url}: not an http(s) URL")
    try:
        check_public_host(parts.hostname, _allowed())
    except ValueError as exc:
        raise WebError(f"{url}: {exc}") from None


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
    """Each redirect is checked like the first URL: no detour to an internal address."""

    def redirect_request(
        self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str
    ) -> Any:
        try:
            check_url(newurl)
        except WebError as exc:
            fp.close()  # the redirect's own response
            raise WebError(f"{req.full_url}: redirected to {exc}") from None
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _open(url: str, timeout: float) -> Any:
    check_url(url)
    opener = urllib.request.build_opener(_HTTPHandler, _HTTPSHandler, _CheckedRedirects)
    request = urllib.request.Request(url, headers={"User-Agent": "bosun"})
    try:
        return opener.open(request, timeout=timeout)
    except WebError as exc:
        message = str(exc)
        raise WebError(message if message.startswith(url) else f"{url}: {message}") from None
    except urllib.error.HTTPError as exc:
        raise WebError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, WebError):
            raise WebError(f"{url}: {reason}") from None
        raise WebError(f"{url}: cannot fetch: {reason}") from None


def fetch(url: str, limit: int, timeout: float = TIMEOUT) -> Fetched:
    """The body at ``url`` (at most ``limit`` bytes, else :class:`WebError`)."""
    with _open(url, timeout) as response:
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > limit:
            raise TooLargeError(f"{url}: {declared} bytes, more than the {limit} allowed")
        try:
            data = response.read(limit + 1)
        except (OSError, http.client.HTTPException) as exc:
            raise WebError(f"{url}: cannot fetch: {exc}") from None
        if len(data) > limit:
            raise TooLargeError(f"{url}: more than the {limit} bytes allowed")
        return Fetched(data, response.headers.get("Content-Type"), response.geturl())


def download(url: str, target: Path, timeout: float = TIMEOUT) -> None:
    """The body at ``url`` streamed into ``target`` (removed if the download fails)."""
    try:
        with _open(url, timeout) as response, target.open("wb") as out:
            shutil.copyfileobj(response, out, CHUNK)
    except (OSError, http.client.HTTPException) as exc:
        target.unlink(missing_ok=True)
        raise WebError(f"{url}: cannot download: {exc}") from None
    except WebError:
        target.unlink(missing_ok=True)
        raise
