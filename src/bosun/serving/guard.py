"""What every HTTP request passes before a route sees it: the API key and the body limit.

A plain ASGI middleware, so that both are decided from the headers alone, before a byte
of the body is read or parsed: a client without the key cannot make the server parse
(or even receive) its body, and an oversized body is refused by its Content-Length, or
as soon as a chunked one passes the limit.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bosun.serving.errors import ClientGoneError, error_body

__all__ = ["DEFAULT_MAX_REQUEST_BYTES", "GuardSettings", "RequestGuard"]

log = logging.getLogger("bosun.serving")

# Far above any real chat request (a 128k-token prompt is about 0.5 MB of text).
DEFAULT_MAX_REQUEST_BYTES = 4 * 2**20
# Probes must answer without credentials.
_OPEN_PATHS = frozenset({"/health"})


@dataclass(frozen=True)
class GuardSettings:
    api_key: str | None = None
    public_metrics: bool = False
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    body_timeout: float = 30.0  # seconds for the whole body to arrive


class RequestGuard:
    def __init__(self, app: ASGIApp, settings: GuardSettings) -> None:
        self.app, self.settings = app, settings
        key = settings.api_key
        self._expected = f"Bearer {key}".encode() if key is not None else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        if not self._authorized(scope["path"], headers.get(b"authorization", b"")):
            await _reply(send, 401, "Incorrect API key provided.", code="invalid_api_key")
            return
        limit = self.settings.max_request_bytes
        length = headers.get(b"content-length")
        if length is not None:
            if not length.isdigit():
                await _reply(send, 400, "Content-Length is not a number")
                return
            if int(length) > limit:
                await _reply(send, 413, _too_large(limit), code="request_too_large")
                return
        # The whole body (at most the limit) is read here, within a time limit, so that a
        # slow or endless one never reaches a route; the route reads it from memory.
        try:
            body = await asyncio.wait_for(_read_body(receive, limit), self.settings.body_timeout)
        except TimeoutError:
            await _reply(send, 408, "the request body did not arrive in time", code="timeout")
            return
        except ClientGoneError:
            return  # before its body arrived: nothing to answer
        if body is None:  # a chunked body over the limit
            await _reply(send, 413, _too_large(limit), code="request_too_large")
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # the disconnect, when it comes

        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, replay, tracked)
        except ClientGoneError:
            log.info("%s %s: the client disconnected", scope.get("method"), scope["path"])
        except Exception:
            # A real server fault: logged with its traceback, answered in OpenAI's shape,
            # and not raised on, so that the connection stays usable for the next request.
            log.exception("%s %s failed", scope.get("method"), scope["path"])
            if not started:
                await _reply(send, 500, "internal server error", kind="server_error")

    def _authorized(self, path: str, header: bytes) -> bool:
        if self._expected is None or path in _OPEN_PATHS:
            return True
        if path == "/metrics" and self.settings.public_metrics:
            return True
        return hmac.compare_digest(header, self._expected)


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise ClientGoneError
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _too_large(limit: int) -> str:
    return f"the request body exceeds {limit} bytes (bosun serve --max-request-bytes)"


async def _reply(
    send: Send, status: int, message: str, code: str | None = None, kind: str | None = None
) -> None:
    if kind is None:
        kind = "authentication_error" if status == 401 else "invalid_request_error"
    body: dict[str, Any] = error_body(message, kind, None, code)
    raw = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": raw})
