"""``POST /v1/chat/completions``: a conversation through the model's chat template."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request, Response

from bosun.engine.client import GenerationRequest
from bosun.serving.errors import APIError
from bosun.serving.generation import (
    GENERATION_ERRORS,
    adapter_of,
    chat_logprobs,
    collect,
    generated,
    stream,
    usage,
)
from bosun.serving.protocol import ChatCompletionRequest, sampling_params
from bosun.serving.responses import ChatCompletion, ChatCompletionChunk
from bosun.serving.state import ServerDep, now

__all__ = ["router"]

router = APIRouter()


@router.post(
    "/v1/chat/completions",
    response_model=None,
    responses={200: generated(ChatCompletion, ChatCompletionChunk), **GENERATION_ERRORS},
)
async def chat(
    body: ChatCompletionRequest, request: Request, server: ServerDep
) -> Response | dict[str, Any]:
    info = server.model(body.model)
    try:
        messages: list[dict[str, object]] = [
            {"role": m.role, "content": m.text(), **({"name": m.name} if m.name else {})}
            for m in body.messages
        ]
    except ValueError as exc:
        raise APIError(400, str(exc), param="messages") from None
    prompt = await server.chat_prompt(messages, body.tools)
    server.check_prompt(info, prompt, "messages")
    max_tokens = server.budget(info, len(prompt), body.requested_max_tokens, "messages")
    rid = f"chatcmpl-{uuid.uuid4().hex}"
    requests = [
        GenerationRequest(
            f"{rid}-{i}", prompt, sampling_params(body, max_tokens, i), adapter_of(info)
        )
        for i in range(body.n)
    ]
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return await stream(
            server,
            request,
            requests,
            rid,
            info,
            chat=True,
            include_usage=include_usage,
            prompt_tokens=len(prompt),
        )
    choices = await collect(server, request, requests)
    return {
        "id": rid,
        "object": "chat.completion",
        "created": now(),
        "model": info.name,
        "choices": [
            {
                "index": c.index,
                "message": {"role": "assistant", "content": c.text},
                "logprobs": chat_logprobs(c) if body.logprobs else None,
                "finish_reason": c.finish_reason,
            }
            for c in choices
        ],
        "usage": usage(choices, len(prompt)),
    }
