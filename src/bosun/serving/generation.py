"""Generation shared by the endpoints that generate: running a request's choices to the
end (:func:`collect`) or streaming them as server-sent events (:func:`stream`), and the
OpenAI shapes of usage and logprobs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any, Protocol

from fastapi import Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from bosun.engine.client import GenerationRequest, ModelInfo, TokenEvent
from bosun.serving.errors import ClientGoneError, error_body
from bosun.serving.responses import errors, events
from bosun.serving.state import Choice, Server, now

__all__ = [
    "GENERATION_ERRORS",
    "Holder",
    "LiveRun",
    "adapter_of",
    "chat_logprobs",
    "collect",
    "completion_logprobs",
    "generated",
    "sse",
    "stream",
    "usage",
]

GENERATION_ERRORS = errors(400, 401, 404, 408, 413, 429, 500, 503)


class Holder(Protocol):
    """Holds back streamed text that may turn out to be something else (a tool call)."""

    def feed(self, index: int, delta: str) -> str:
        """What of choice ``index``'s new text may be sent now."""
        ...

    def finish(
        self, index: int, reason: str | None
    ) -> tuple[str, list[dict[str, Any]], str | None]:
        """At the end: content still to send, tool calls as deltas, the finish reason."""
        ...


def generated(model: type[BaseModel], chunk: type[BaseModel]) -> dict[str, Any]:
    """A generation's 200: ``model`` as JSON, or server-sent events of ``chunk``."""
    return {
        "model": model,
        "content": {"text/event-stream": {"schema": events(chunk)}},
        "description": "JSON, or with stream: true server-sent events ending in [DONE]",
    }


def adapter_of(info: ModelInfo) -> str | None:
    """A model with a parent is a LoRA adapter over it."""
    return info.name if info.parent else None


def usage(choices: list[Choice], prompt_tokens: int) -> dict[str, Any]:
    completion = sum(len(c.token_ids) for c in choices)
    cached = max((c.cached_tokens for c in choices), default=0)
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": prompt_tokens + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    }


def chat_logprobs(choice: Choice) -> dict[str, Any]:
    def entry(token: str, logprob: float) -> dict[str, Any]:
        return {"token": token, "logprob": logprob, "bytes": list(token.encode())}

    return {
        "content": [
            {**entry(tok, lp), "top_logprobs": [entry(t, p) for t, p in top]}
            for tok, lp, top in choice.logprobs
        ]
    }


def completion_logprobs(choice: Choice, offset: int = 0) -> dict[str, Any]:
    offsets, position = [], offset
    for tok, _, _ in choice.logprobs:
        offsets.append(position)
        position += len(tok)
    return {
        "tokens": [t for t, _, _ in choice.logprobs],
        "token_logprobs": [lp for _, lp, _ in choice.logprobs],
        "top_logprobs": [dict(top) for _, _, top in choice.logprobs],
        "text_offset": offsets,
    }


def sse(data: dict[str, Any] | str) -> str:
    return f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n"


async def _watch_disconnect(request: Request, task: asyncio.Future[Any]) -> bool:
    """Cancel ``task`` when the client leaves; True if it did."""
    while not task.done():
        if await request.is_disconnected():
            task.cancel()
            return True
        await asyncio.sleep(0.1)
    return False


async def collect(
    server: Server, request: Request, requests: list[GenerationRequest]
) -> list[Choice]:
    tasks = [asyncio.create_task(server.run(r, Choice(i))) for i, r in enumerate(requests)]
    gathered = asyncio.gather(*tasks)
    watcher = asyncio.create_task(_watch_disconnect(request, gathered))
    try:
        return list(await gathered)
    except asyncio.CancelledError:
        if watcher.done() and not watcher.cancelled() and watcher.result():
            raise ClientGoneError from None
        raise
    finally:
        # One choice refused (a full queue, a bad prompt) or the client gone: no other
        # choice of this request keeps generating for nobody.
        watcher.cancel()
        for task in tasks:
            task.cancel()


class LiveRun:
    """A request's choices generating in the background, their events read in arrival
    order (``async for index, event``; ``None`` ends a choice). :meth:`start` waits for the
    first event, so a request refused up front (a full queue, bad input) is still an HTTP
    error rather than a stream that fails."""

    def __init__(self, server: Server, requests: list[GenerationRequest]) -> None:
        self.choices = [Choice(i) for i in range(len(requests))]
        self._queue: asyncio.Queue[tuple[int, TokenEvent | None]] = asyncio.Queue()
        self._tasks = [asyncio.create_task(self._one(server, i, r)) for i, r in enumerate(requests)]
        self._pending: list[tuple[int, TokenEvent | None]] = []
        self._ended = 0

    @classmethod
    async def start(cls, server: Server, requests: list[GenerationRequest]) -> LiveRun:
        live = cls(server, requests)
        first = await live._queue.get()
        if first[1] is None and live.error(first[0]) is not None:
            live.cancel()
            raise live.error(first[0])  # type: ignore[misc]
        live._pending.append(first)
        return live

    async def _one(self, server: Server, i: int, request: GenerationRequest) -> None:
        async def push(event: TokenEvent) -> None:
            await self._queue.put((i, event))

        try:
            await server.run(request, self.choices[i], push)
        finally:
            await self._queue.put((i, None))

    def __aiter__(self) -> AsyncIterator[tuple[int, TokenEvent | None]]:
        return self._events()

    async def _events(self) -> AsyncIterator[tuple[int, TokenEvent | None]]:
        while self._ended < len(self._tasks):
            item = self._pending.pop() if self._pending else await self._queue.get()
            if item[1] is None:
                self._ended += 1
            yield item

    def error(self, i: int) -> BaseException | None:
        """Why choice ``i`` ended, if it failed."""
        task = self._tasks[i]
        return task.exception() if task.done() and not task.cancelled() else None

    def cancel(self) -> None:
        for task in self._tasks:
            task.cancel()


async def stream(
    server: Server,
    request: Request,
    requests: list[GenerationRequest],
    rid: str,
    info: ModelInfo,
    *,
    chat: bool,
    include_usage: bool,
    prompt_tokens: int,
    echo: list[str] | None = None,
    n: int = 1,
    holder: Holder | None = None,
) -> StreamingResponse:
    """Start the generations, wait for the first token (so that a full queue or a bad
    request is still an HTTP error), then stream Server-Sent Events."""
    created = now()
    kind = "chat.completion.chunk" if chat else "text_completion"
    live = await LiveRun.start(server, requests)
    choices = live.choices

    def chunk(
        index: int,
        payload: dict[str, Any],
        finish: str | None,
        logprobs: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"index": index}
        if chat:
            body["delta"] = payload
        else:
            body.update(payload)
        body["logprobs"] = logprobs
        body["finish_reason"] = finish
        out = {"id": rid, "object": kind, "created": created, "model": info.name, "choices": [body]}
        if include_usage:
            out["usage"] = None
        return out

    async def events() -> AsyncIterator[str]:
        started: set[int] = set()
        try:
            async for i, event in live:
                if event is None:  # this choice ended; with an error, the stream does too
                    error = live.error(i)
                    if error is not None:
                        yield sse(error_body(str(error), "server_error"))
                        return
                    continue
                if i not in started:
                    started.add(i)
                    if chat:
                        yield sse(chunk(i, {"role": "assistant", "content": ""}, None))
                    elif echo is not None:
                        yield sse(chunk(i, {"text": echo[i // n]}, None))
                logprobs = None
                if event.logprobs:
                    c = Choice(i, logprobs=list(event.logprobs))
                    logprobs = chat_logprobs(c) if chat else completion_logprobs(c)
                text = event.text if holder is None else holder.feed(i, event.text)
                payload = {"content": text} if chat else {"text": text}
                if text or logprobs or (event.finish_reason is None and holder is None):
                    yield sse(chunk(i, payload, None, logprobs))
                if event.finish_reason is None:
                    continue
                reason: str | None = event.finish_reason
                if holder is not None:  # what was held, as content or as calls
                    rest, calls, reason = holder.finish(i, reason)
                    if rest:
                        yield sse(chunk(i, {"content": rest}, None))
                    if calls:
                        yield sse(chunk(i, {"tool_calls": calls}, None))
                yield sse(chunk(i, {} if chat else {"text": ""}, reason))
            if include_usage:
                yield sse(
                    {
                        "id": rid,
                        "object": kind,
                        "created": created,
                        "model": info.name,
                        "choices": [],
                        "usage": usage(choices, prompt_tokens),
                    }
                )
            yield sse("[DONE]")
        finally:
            # A client that goes away closes this generator: its generations are cancelled.
            live.cancel()

    return StreamingResponse(
        events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
    )
