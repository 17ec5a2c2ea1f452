"""Stop strings that may span token boundaries, found in streamed text.

Text is held back while it could still be the start of a stop string, so a client never
sees part of a stop sequence; on a match the text before it is released and the
generation stops.
"""

from __future__ import annotations

__all__ = ["StopMatcher"]


class StopMatcher:
    def __init__(self, stops: tuple[str, ...]) -> None:
        self.stops = tuple(s for s in stops if s)
        self._held = ""

    def feed(self, text: str) -> tuple[str, bool]:
        """(text safe to emit now, whether a stop string was reached)."""
        if not self.stops:
            return text, False
        buffer = self._held + text
        first = min(((buffer.find(s), s) for s in self.stops if s in buffer), default=None)
        if first is not None:
            self._held = ""
            return buffer[: first[0]], True
        keep = 0
        for stop in self.stops:
            for n in range(min(len(stop) - 1, len(buffer)), 0, -1):
                if buffer.endswith(stop[:n]):
                    keep = max(keep, n)
                    break
        self._held = buffer[len(buffer) - keep :] if keep else ""
        return buffer[: len(buffer) - keep], False

    def flush(self) -> str:
        """Whatever is held back, at the end of a generation without a stop."""
        held, self._held = self._held, ""
        return held
