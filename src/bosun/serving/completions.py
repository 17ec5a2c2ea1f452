"""``POST /v1/completions``: raw prompts, text or token ids, one or several."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request, Response

from bosun.engine.client import GenerationRequest
from bosun.serving.errors import APIError
from bosun.serving.generation import (
    GENERATION_ERRORS,
    adapter_of,
    collect,
    completion_logprobs,
    generated,
    stream,
    usage,
)
from bosun.serving.protocol import CompletionRequest, sampling_params
from bosun.serving.responses import Completion, CompletionChunk
from bosun.serving.state import ServerDep, now

__all__ = ["router"]

router = APIRouter()


def _prompts(prompt: Any) -> list[str | list[int]]:
    if isinstance(prompt, str):
        return [prompt]
    if prompt and all(isinstance(p, int) for p in prompt):
        return [list(prompt)]
    if not prompt:
        raise APIError(400, "prompt: must not be empty", param="prompt")
    return list(prompt)


@router.post(
    "/v1/completions",
    response_model=None,
    responses={200: generated(Completion, CompletionChunk), **GENERATION_ERRORS},
)
async def completions(
    body: CompletionRequest, request: Request, server: ServerDep
) -> Response | dict[str, Any]:
    info = server.model(body.model)
    prompts = _prompts(body.prompt)
    encoded = [await server.tokenize(p) if isinstance(p, str) else list(p) for p in prompts]
    for ids in encoded:
        server.check_prompt(info, ids, "prompt")
    budgets = [
        server.budget(info, len(ids), body.requested_max_tokens, "prompt") for ids in encoded
    ]
    rid = f"cmpl-{uuid.uuid4().hex}"
    requests = [
        GenerationRequest(f"{rid}-{p}-{i}", ids, sampling_params(body, budget, i), adapter_of(info))
        for p, (ids, budget) in enumerate(zip(encoded, budgets, strict=True))
        for i in range(body.n)
    ]
    prompt_tokens = sum(len(ids) for ids in encoded)
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return await stream(
            server,
            request,
            requests,
            rid,
            info,
            chat=False,
            include_usage=include_usage,
            prompt_tokens=prompt_tokens,
            echo=[p if isinstance(p, str) else "" for p in prompts] if body.echo else None,
            n=body.n,
        )
    choices = await collect(server, request, requests)
    out = []
    for c in choices:
        prefix = ""
        if body.echo:
            p = prompts[c.index // body.n]
            prefix = p if isinstance(p, str) else ""
        out.append(
            {
                "index": c.index,
                "text": prefix + c.text,
                "logprobs": completion_logprobs(c, len(prefix))
                if body.logprobs is not None
                else None,
                "finish_reason": c.finish_reason,
            }
        )
    return {
        "id": rid,
        "object": "text_completion",
        "created": now(),
        "model": info.name,
        "choices": out,
        "usage": usage(choices, prompt_tokens),
    }
