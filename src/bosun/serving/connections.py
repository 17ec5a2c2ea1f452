"""uvicorn's h11 protocol with a header time-out: a connection that opens and sends no
complete request headers within the limit (a half-open socket, a slowloris trickling
bytes) is closed, however much of a request line it sent. uvicorn has a keep-alive
time-out only, armed after a response and cancelled by any byte received."""

from __future__ import annotations

import asyncio
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["DEFAULT_HEADER_TIMEOUT", "guarded_h11"]

DEFAULT_HEADER_TIMEOUT = 10.0


class _GuardedH11Protocol(H11Protocol):
    header_timeout = DEFAULT_HEADER_TIMEOUT

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None

    def _arm(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE:
            self._arm()  # a new request begins: its headers have the limit too
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._disarm()  # the headers are in; the body has its own limit (the guard's)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _too_slow(self) -> None:
        self._header_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()


def guarded_h11(header_timeout: float = DEFAULT_HEADER_TIMEOUT) -> type[H11Protocol]:
    """The protocol class for ``uvicorn.run(..., http=...)`` with this header limit."""
    return type("GuardedH11Protocol", (_GuardedH11Protocol,), {"header_timeout": header_timeout})
