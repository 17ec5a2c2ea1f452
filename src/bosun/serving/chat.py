"""``POST /v1/chat/completions``: a conversation through the model's chat template, with
tool calling (``tools.py``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from bosun.engine.client import GenerationRequest, ModelInfo
from bosun.serving.conversation import prompt_messages
from bosun.serving.errors import APIError
from bosun.serving.generation import (
    GENERATION_ERRORS,
    adapter_of,
    chat_logprobs,
    collect,
    generated,
    sse,
    stream,
    usage,
)
from bosun.serving.protocol import ChatCompletionRequest, sampling_params
from bosun.serving.responses import ChatCompletion, ChatCompletionChunk
from bosun.serving.state import Choice, Server, ServerDep, now
from bosun.serving.tools import (
    PARSERS,
    StreamHolder,
    ToolCall,
    ToolMode,
    call_schema,
    mode_of,
    parse_constrained,
)

__all__ = ["Prepared", "answer_of", "prepare", "router"]

router = APIRouter()


@router.post(
    "/v1/chat/completions",
    response_model=None,
    responses={200: generated(ChatCompletion, ChatCompletionChunk), **GENERATION_ERRORS},
)
async def chat(
    body: ChatCompletionRequest, request: Request, server: ServerDep
) -> Response | dict[str, Any]:
    rid = f"chatcmpl-{uuid.uuid4().hex}"
    run = await prepare(server, body, rid)
    info, prompt, requests = run.info, run.prompt, run.requests
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    if body.stream and run.mode in ("none", "auto"):
        holder = None
        if run.mode == "auto":  # content streams; what may be a call is held, then parsed
            names = {t.function.name for t in body.tools or []}
            holder = StreamHolder(server.settings.tool_parser, names, body.parallel_tool_calls)
        return await stream(
            server,
            request,
            requests,
            rid,
            info,
            chat=True,
            include_usage=include_usage,
            prompt_tokens=len(prompt),
            holder=holder,
        )
    choices = await collect(server, request, requests)
    answers = [answer_of(c, body, run.mode, server.settings.tool_parser) for c in choices]
    if body.stream:  # a required call: known once its JSON is complete
        return _streamed(rid, info.name, answers, choices, len(prompt), include_usage)
    return {
        "id": rid,
        "object": "chat.completion",
        "created": now(),
        "model": info.name,
        "choices": [
            {
                "index": c.index,
                "message": {
                    "role": "assistant",
                    "content": content,
                    **({"tool_calls": [call.wire() for call in calls]} if calls else {}),
                },
                "logprobs": chat_logprobs(c) if body.logprobs else None,
                "finish_reason": "tool_calls" if calls else c.finish_reason,
            }
            for c, (content, calls) in zip(choices, answers, strict=True)
        ],
        "usage": usage(choices, len(prompt)),
    }


@dataclass(frozen=True)
class Prepared:
    """A chat request made ready to generate: its model, how tools are used, the prompt's
    tokens and one engine request per choice."""

    info: ModelInfo
    mode: ToolMode
    prompt: list[int]
    requests: list[GenerationRequest]


async def prepare(server: Server, body: ChatCompletionRequest, rid: str) -> Prepared:
    """Checks, the chat template, the context budget and each choice's sampling (held to a
    tool call where ``tool_choice`` requires one). The Responses API shares it."""
    info = server.model(body.model)
    mode, named = mode_of(body)
    shaped = body.response_format is not None and body.response_format.type != "text"
    if mode in ("required", "named") and shaped:
        raise APIError(
            400,
            "response_format: a JSON format and a required tool call cannot both shape the answer",
            param="response_format",
        )
    messages, tools = prompt_messages(body, mode, info.template)
    prompt = await server.chat_prompt(messages, tools)
    server.check_prompt(info, prompt, "messages")
    max_tokens = server.budget(info, len(prompt), body.requested_max_tokens, "messages")
    schema = call_schema(body, named) if mode in ("required", "named") else None
    requests = []
    for i in range(body.n):
        params = sampling_params(body, max_tokens, i)
        if schema is not None:  # held to a valid call of the offered tools
            params = replace(params, json_schema=schema, json_object=False, schema_param="tools")
        requests.append(GenerationRequest(f"{rid}-{i}", prompt, params, adapter_of(info)))
    return Prepared(info, mode, prompt, requests)


def answer_of(
    choice: Choice, body: ChatCompletionRequest, mode: ToolMode, parser: str
) -> tuple[str | None, list[ToolCall]]:
    """A choice's content and tool calls."""
    if mode == "none":
        return choice.text, []
    if mode in ("required", "named"):
        try:
            return None, parse_constrained(choice.text)
        except (ValueError, KeyError, TypeError):  # cut short by max_tokens: no call
            return choice.text, []
    names = {t.function.name for t in body.tools or []}
    content, calls = PARSERS[parser](choice.text, names)
    if not body.parallel_tool_calls:
        calls = calls[:1]
    return content, calls


def _streamed(
    rid: str,
    model: str,
    answers: list[tuple[str | None, list[ToolCall]]],
    choices: list[Choice],
    prompt_tokens: int,
    include_usage: bool,
) -> StreamingResponse:
    """Finished choices as OpenAI's chunks: the role, the content, each call (whole, with
    its index), then the finish reason; usage last when asked for."""
    created = now()

    def chunk(index: int, delta: dict[str, Any], finish: str | None) -> str:
        body: dict[str, Any] = {
            "id": rid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [
                {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
            ],
        }
        if include_usage:
            body["usage"] = None
        return sse(body)

    def events() -> list[str]:
        out = []
        for c, (content, calls) in zip(choices, answers, strict=True):
            out.append(chunk(c.index, {"role": "assistant", "content": ""}, None))
            if content:
                out.append(chunk(c.index, {"content": content}, None))
            if calls:
                wire = [call.wire(k) for k, call in enumerate(calls)]
                out.append(chunk(c.index, {"tool_calls": wire}, None))
            out.append(chunk(c.index, {}, "tool_calls" if calls else c.finish_reason))
        if include_usage:
            last = {
                "id": rid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [],
                "usage": usage(choices, prompt_tokens),
            }
            out.append(sse(last))
        out.append(sse("[DONE]"))
        return out

    async def send() -> Any:
        for event in events():
            yield event

    return StreamingResponse(
        send(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
    )
