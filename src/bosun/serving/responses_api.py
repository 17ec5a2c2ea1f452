"""The Responses API: ``POST /v1/responses``, ``GET`` and ``DELETE /v1/responses/{id}``.

A request becomes a chat request (input items as messages, ``instructions`` as the
system message, function tools in chat's shape) and runs through the same preparation,
tool handling and parsing as ``/v1/chat/completions`` (``chat.prepare``,
``chat.answer_of``); its answer becomes output items: a ``message`` with ``output_text``
and ``function_call`` items. With ``store`` (the default) the response and the
conversation it ended are kept (``response_store.py``), so ``previous_response_id``
continues it. Streaming sends the documented events (``response.created`` ...
``response.completed``) once the answer is complete.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ValidationError

from bosun.serving.chat import Prepared, answer_of, prepare
from bosun.serving.errors import APIError
from bosun.serving.generation import LiveRun, collect, sse
from bosun.serving.protocol import ChatCompletionRequest, ResponsesRequest
from bosun.serving.responses import errors
from bosun.serving.state import Choice, Server, ServerDep, now
from bosun.serving.tools import StreamHolder, ToolCall

__all__ = ["router"]

router = APIRouter()

_TEXT_PARTS = ("input_text", "output_text", "text")


_CREATED = {
    "description": "The response, or with stream: true its events (server-sent)",
    "content": {
        "application/json": {"schema": {"type": "object", "required": ["id", "object", "output"]}},
        "text/event-stream": {"schema": {"type": "object", "required": ["data"]}},
    },
}


@router.post(
    "/v1/responses",
    response_model=None,
    responses={200: _CREATED, **errors(400, 401, 404, 408, 413, 429, 500, 503)},
)
async def create(body: ResponsesRequest, request: Request, server: ServerDep) -> Response:
    earlier: list[dict[str, Any]] = []
    if body.previous_response_id is not None:
        stored = server.responses.get(body.previous_response_id)
        if stored is None:
            raise APIError(
                404,
                f"previous_response_id: no stored response {body.previous_response_id!r} "
                "(never stored, deleted, or expired)",
                type="not_found_error",
                param="previous_response_id",
            )
        earlier = stored[1]
    given = _messages(body.input)
    conversation = [*earlier, *given]
    chat = _as_chat(body, conversation)
    rid = f"resp_{uuid.uuid4().hex}"
    run = await prepare(server, chat, rid)
    if body.stream and run.mode in ("none", "auto"):  # text as it comes
        return await _live(server, body, chat, run, rid, conversation)
    (choice,) = await collect(server, request, run.requests)
    content, calls = answer_of(choice, chat, run.mode, server.settings.tool_parser)
    output = _output(content, calls)
    response = _response(body, rid, run.info.name, output, choice, "completed")
    if body.store:
        server.responses.put(response, [*conversation, *_as_messages(content, calls)])
    if body.stream:
        return _streamed(response)
    return JSONResponse(response)


@router.get("/v1/responses/{response_id}", responses=errors(401, 404, 500))
async def retrieve(response_id: str, server: ServerDep) -> dict[str, Any]:
    stored = server.responses.get(response_id)
    if stored is None:
        raise _not_found(response_id)
    return stored[0]


@router.delete("/v1/responses/{response_id}", responses=errors(401, 404, 500))
async def delete(response_id: str, server: ServerDep) -> dict[str, Any]:
    if not server.responses.delete(response_id):
        raise _not_found(response_id)
    return {"id": response_id, "object": "response", "deleted": True}


def _not_found(response_id: str) -> APIError:
    return APIError(
        404,
        f"no stored response {response_id!r} (never stored, deleted, or expired)",
        type="not_found_error",
        param="response_id",
    )


def _messages(given: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Input items as chat messages: messages, function calls (merged into one assistant
    message per run of them) and their outputs (``tool`` messages)."""
    if isinstance(given, str):
        return [{"role": "user", "content": given}]
    out: list[dict[str, Any]] = []
    for i, item in enumerate(given):
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            if role not in ("user", "system", "developer", "assistant"):
                raise _bad(i, "role", f"{role!r} is not user, system, developer or assistant")
            out.append({"role": role, "content": _text(item.get("content"), i)})
        elif kind == "function_call":
            call = {
                "id": item.get("call_id"),
                "type": "function",
                "function": {"name": item.get("name"), "arguments": item.get("arguments", "{}")},
            }
            last = out[-1] if out else None
            if last is not None and last["role"] == "assistant" and last.get("tool_calls"):
                last["tool_calls"].append(call)
            else:
                out.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item.get("output")
            text = output if isinstance(output, str) else json.dumps(output)
            out.append({"role": "tool", "tool_call_id": item.get("call_id"), "content": text})
        else:
            raise _bad(i, "type", f"{kind!r} is not message, function_call or function_call_output")
    return out


def _text(content: Any, i: int) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise _bad(i, "content", "must be text or a list of text parts")
    parts = []
    for part in content:
        if not isinstance(part, dict) or part.get("type") not in _TEXT_PARTS:
            kind = part.get("type") if isinstance(part, dict) else type(part).__name__
            raise _bad(i, "content", f"parts of type {kind!r} are not supported (text only)")
        parts.append(str(part.get("text", "")))
    return "".join(parts)


def _bad(i: int, field: str, message: str) -> APIError:
    return APIError(400, f"input[{i}].{field}: {message}", param="input")


def _as_chat(body: ResponsesRequest, conversation: list[dict[str, Any]]) -> ChatCompletionRequest:
    """The chat request the response is computed as (``instructions`` are this request's
    only: they are not carried to the next response, as OpenAI documents)."""
    messages = [{"role": "system", "content": body.instructions}] if body.instructions else []
    choice: Any = body.tool_choice
    if choice is not None and not isinstance(choice, str):
        choice = {"type": "function", "function": {"name": choice.name}}
    fields: dict[str, Any] = {
        "model": body.model,
        "messages": [*messages, *conversation],
        "tools": [
            {"type": "function", "function": t.model_dump(exclude={"type"}, exclude_none=True)}
            for t in body.tools or []
        ]
        or None,
        "tool_choice": choice,
        "parallel_tool_calls": body.parallel_tool_calls,
        "max_completion_tokens": body.max_output_tokens,
        "temperature": body.temperature if body.temperature is not None else 1.0,
        "top_p": body.top_p if body.top_p is not None else 1.0,
    }
    try:
        return ChatCompletionRequest.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "input"
        message = str(first["msg"]).removeprefix("Value error, ")
        raise APIError(400, f"{where}: {message}", param="input") from None


def _output(content: str | None, calls: list[ToolCall]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    if content:
        items.append(
            {
                "type": "message",
                "id": f"msg_{uuid.uuid4().hex}",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": content, "annotations": []}],
            }
        )
    for call in calls:
        items.append(
            {
                "type": "function_call",
                "id": f"fc_{uuid.uuid4().hex}",
                "call_id": call.id,
                "name": call.name,
                "arguments": call.arguments,
                "status": "completed",
            }
        )
    return items


def _as_messages(content: str | None, calls: list[ToolCall]) -> list[dict[str, Any]]:
    """The answer as chat messages, for the stored conversation."""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = [call.wire() for call in calls]
    return [message]


def _response(
    body: ResponsesRequest,
    rid: str,
    model: str,
    output: list[dict[str, Any]],
    choice: Choice,
    status: str,
) -> dict[str, Any]:
    cut = choice.finish_reason == "length" and not any(o["type"] == "function_call" for o in output)
    tools = [t.model_dump(exclude_none=True) for t in body.tools or []]
    choice_out: Any = body.tool_choice or ("auto" if tools else "none")
    if not isinstance(choice_out, str):
        choice_out = choice_out.model_dump()
    return {
        "id": rid,
        "object": "response",
        "created_at": now(),
        "status": "incomplete" if cut else status,
        "incomplete_details": {"reason": "max_output_tokens"} if cut else None,
        "error": None,
        "model": model,
        "instructions": body.instructions,
        "output": output,
        "parallel_tool_calls": body.parallel_tool_calls,
        "previous_response_id": body.previous_response_id,
        "max_output_tokens": body.max_output_tokens,
        "temperature": body.temperature if body.temperature is not None else 1.0,
        "top_p": body.top_p if body.top_p is not None else 1.0,
        "tools": tools,
        "tool_choice": choice_out,
        "text": {"format": {"type": "text"}},
        "truncation": "disabled",
        "metadata": body.metadata or {},
        "store": body.store,
        "usage": {
            "input_tokens": choice.prompt_tokens,
            "input_tokens_details": {"cached_tokens": choice.cached_tokens},
            "output_tokens": len(choice.token_ids),
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": choice.prompt_tokens + len(choice.token_ids),
        },
    }


class _Events:
    """Numbered Responses API events, as server-sent events."""

    def __init__(self) -> None:
        self.sent = 0

    def __call__(self, kind: str, **fields: Any) -> str:
        event = {"type": kind, "sequence_number": self.sent, **fields}
        self.sent += 1
        return f"event: {kind}\n{sse(event)}"


async def _live(
    server: Server,
    body: ResponsesRequest,
    chat: ChatCompletionRequest,
    run: Prepared,
    rid: str,
    conversation: list[dict[str, Any]],
) -> StreamingResponse:
    """Stream the text token by token (under ``"auto"``, holding what may be a call), then
    the calls, then the completed response, which is stored as the others are."""
    live = await LiveRun.start(server, run.requests)
    names = {t.function.name for t in chat.tools or []}
    parser = server.settings.tool_parser
    holder = StreamHolder(parser, names, chat.parallel_tool_calls) if run.mode == "auto" else None
    emit = _Events()
    message_id = f"msg_{uuid.uuid4().hex}"
    base = {"item_id": message_id, "output_index": 0, "content_index": 0}
    start = _response(body, rid, run.info.name, [], live.choices[0], "in_progress")

    async def events() -> AsyncIterator[str]:
        shown = ""

        def delta(text: str) -> list[str]:
            """A piece of the message's text; the message opens with its first piece."""
            lines = []
            if not shown:
                item: dict[str, Any] = {"type": "message", "id": message_id, "role": "assistant"}
                item |= {"status": "in_progress", "content": []}
                part = {"type": "output_text", "text": "", "annotations": []}
                lines.append(emit("response.output_item.added", output_index=0, item=item))
                lines.append(emit("response.content_part.added", **base, part=part))
            lines.append(emit("response.output_text.delta", **base, delta=text, logprobs=[]))
            return lines

        try:
            yield emit("response.created", response={**start, "usage": None})
            yield emit("response.in_progress", response={**start, "usage": None})
            async for _, event in live:
                if event is None:
                    error = live.error(0)
                    if error is not None:
                        yield emit("error", code="server_error", message=str(error), param=None)
                        return
                    continue
                text = event.text if holder is None else holder.feed(0, event.text)
                if text:
                    for line in delta(text):
                        yield line
                    shown += text
            choice = live.choices[0]
            calls: list[ToolCall] = []
            if holder is not None:  # what was held: calls, or text after all
                rest, _, _ = holder.finish(0, choice.finish_reason)
                _, calls = answer_of(choice, chat, run.mode, parser)
                if rest and not calls:
                    for line in delta(rest):
                        yield line
                    shown += rest
            output = _output(shown or None, calls)
            if shown:
                output[0]["id"] = message_id
                part = output[0]["content"][0]
                yield emit("response.output_text.done", **base, text=shown, logprobs=[])
                yield emit("response.content_part.done", **base, part=part)
                yield emit("response.output_item.done", output_index=0, item=output[0])
            for index, item in enumerate(output):
                if item["type"] == "function_call":
                    for line in _call_events(emit, index, item):
                        yield line
            response = _response(body, rid, run.info.name, output, choice, "completed")
            if body.store:
                server.responses.put(response, [*conversation, *_as_messages(shown or None, calls)])
            done = (
                "response.completed" if response["status"] == "completed" else "response.incomplete"
            )
            yield emit(done, response=response)
        finally:
            live.cancel()

    return StreamingResponse(
        events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
    )


def _call_events(emit: _Events, index: int, item: dict[str, Any]) -> list[str]:
    base = {"item_id": item["id"], "output_index": index}
    return [
        emit(
            "response.output_item.added",
            output_index=index,
            item={**item, "status": "in_progress", "arguments": ""},
        ),
        emit("response.function_call_arguments.delta", **base, delta=item["arguments"]),
        emit(
            "response.function_call_arguments.done",
            **base,
            name=item["name"],
            arguments=item["arguments"],
        ),
        emit("response.output_item.done", output_index=index, item=item),
    ]


def _streamed(response: dict[str, Any]) -> StreamingResponse:
    """The documented event sequence for a response known whole (a required call): created,
    in progress, each output item, completed."""
    emit = _Events()
    started = {**response, "status": "in_progress", "output": [], "usage": None}
    lines = [emit("response.created", response=started)]
    lines.append(emit("response.in_progress", response=started))
    for index, item in enumerate(response["output"]):
        if item["type"] == "message":
            part = item["content"][0]
            lines.append(
                emit(
                    "response.output_item.added",
                    output_index=index,
                    item={**item, "status": "in_progress", "content": []},
                )
            )
            base = {"item_id": item["id"], "output_index": index, "content_index": 0}
            lines.append(emit("response.content_part.added", **base, part={**part, "text": ""}))
            lines.append(
                emit("response.output_text.delta", **base, delta=part["text"], logprobs=[])
            )
            lines.append(emit("response.output_text.done", **base, text=part["text"], logprobs=[]))
            lines.append(emit("response.content_part.done", **base, part=part))
            lines.append(emit("response.output_item.done", output_index=index, item=item))
        else:
            lines += _call_events(emit, index, item)
    final = "response.completed" if response["status"] == "completed" else "response.incomplete"
    lines.append(emit(final, response=response))

    async def send() -> AsyncIterator[str]:
        for line in lines:
            yield line

    return StreamingResponse(
        send(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
    )
