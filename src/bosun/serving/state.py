"""What every endpoint shares: the server's settings, the engine behind it, the checks
every request passes (model, prompt, context budget) and one generation run with its
metrics. The endpoints (``chat.py``, ``completions.py``, ...) reach it through
:func:`get_server`."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request

from bosun.engine.client import EngineClient, GenerationRequest, ModelInfo, TokenEvent
from bosun.serving.errors import APIError
from bosun.serving.guard import DEFAULT_MAX_REQUEST_BYTES
from bosun.serving.metrics import Metrics
from bosun.serving.response_store import ResponseStore

__all__ = ["Choice", "ServeSettings", "Server", "ServerDep", "get_server", "now", "warm_up"]


@dataclass(frozen=True)
class ServeSettings:
    api_key: str | None = None
    warmup: bool = True
    public_metrics: bool = False  # /metrics without the key (it names no user data)
    # /v1/load_lora_adapter and unload: any client may then make the server read a local
    # directory, so it is off unless asked for (vLLM's VLLM_ALLOW_RUNTIME_LORA_UPDATING).
    runtime_lora: bool = False
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    # How the model writes tool calls under tool_choice "auto" (tools.PARSERS).
    tool_parser: str = "hermes"
    # Where stored responses (the Responses API's store: true) are kept: a SQLite file,
    # or None for memory; for how long.
    responses_store: Path | None = None
    responses_ttl_s: float = 3600.0


@dataclass
class Choice:
    """What one choice accumulates while its tokens arrive."""

    index: int
    text: str = ""
    token_ids: list[int] = field(default_factory=list)
    finish_reason: str | None = None
    logprobs: list[tuple[str, float, tuple[tuple[str, float], ...]]] = field(default_factory=list)
    prompt_tokens: int = 0
    cached_tokens: int = 0


def now() -> int:
    return int(time.time())


class Server:
    def __init__(self, settings: ServeSettings, engine: EngineClient) -> None:
        self.settings, self.engine = settings, engine
        self.tokenizer_thread = ThreadPoolExecutor(1, thread_name_prefix="bosun-tokenize")
        self.ready = False
        self.failed: str | None = None
        model = engine.models[0].name
        self.metrics = Metrics(model, engine.stats)
        self.responses = ResponseStore(settings.responses_store, settings.responses_ttl_s)

    # ------------------------------------------------------------------ checks

    async def tokenize(self, text: str) -> list[int]:
        """Off the event loop (a long text takes seconds), on one thread: fast tokenizers
        must not be driven from two threads at once."""
        return await asyncio.get_running_loop().run_in_executor(
            self.tokenizer_thread, self.engine.tokenize, text
        )

    async def chat_prompt(
        self, messages: list[dict[str, object]], tools: list[dict[str, object]] | None
    ) -> list[int]:
        return await asyncio.get_running_loop().run_in_executor(
            self.tokenizer_thread, self.engine.apply_chat_template, messages, tools
        )

    def check_prompt(self, info: ModelInfo, ids: list[int], param: str) -> None:
        """Every token id is one the model has, and there is at least one."""
        if not ids:
            raise APIError(400, f"{param}: must not be empty", param=param)
        vocab = info.vocab_size
        if vocab is not None:
            bad = next((t for t in ids if not 0 <= t < vocab), None)
            if bad is not None:
                raise APIError(
                    400,
                    f"{param}: token id {bad} is not in the model's vocabulary (0 to {vocab - 1})",
                    param=param,
                )

    def model(self, name: str) -> ModelInfo:
        if not self.ready:
            raise APIError(
                503,
                self.failed or "the model is still loading",
                type="server_error",
                code="model_loading",
                headers={"Retry-After": "5"},
            )
        for info in self.engine.models:
            if info.name == name:
                return info
        raise APIError(
            404,
            f"The model `{name}` does not exist.",
            type="not_found_error",
            param="model",
            code="model_not_found",
        )

    def budget(self, info: ModelInfo, prompt: int, asked: int | None, param: str) -> int:
        limit = info.max_model_len
        if prompt >= limit:
            raise APIError(
                400,
                f"This model's maximum context length is {limit} tokens. However, your "
                f"request has {prompt} input tokens. Please reduce the length of the input.",
                param=param,
                code="context_length_exceeded",
            )
        if asked is None:
            return limit - prompt
        if prompt + asked > limit:
            raise APIError(
                400,
                f"This model's maximum context length is {limit} tokens. However, you requested "
                f"{prompt + asked} tokens ({prompt} in the input, {asked} for the completion).",
                param="max_tokens",
                code="context_length_exceeded",
            )
        return asked

    # ------------------------------------------------------------------ generation

    async def run(
        self,
        request: GenerationRequest,
        choice: Choice,
        on_event: Callable[[TokenEvent], Awaitable[None]] | None = None,
    ) -> Choice:
        m, model = self.metrics, self.engine.models[0].name
        start = time.perf_counter()
        last = None
        stream = self.engine.generate(request)
        try:
            async for event in stream:
                now = time.perf_counter()
                if last is None:
                    m.ttft.labels(model).observe(now - start)
                    choice.prompt_tokens = event.prompt_tokens
                    choice.cached_tokens = event.cached_tokens
                else:
                    m.itl.labels(model).observe(now - last)
                last = now
                choice.text += event.text
                choice.token_ids.extend(event.token_ids)
                choice.logprobs.extend(event.logprobs)
                if event.finish_reason is not None:
                    choice.finish_reason = event.finish_reason
                if on_event is not None:
                    await on_event(event)
        finally:
            await stream.aclose()  # type: ignore[attr-defined]
        m.prompt_tokens.labels(model).inc(choice.prompt_tokens)
        m.generation_tokens.labels(model).inc(len(choice.token_ids))
        m.request_prompt.labels(model).observe(choice.prompt_tokens)
        m.request_generation.labels(model).observe(len(choice.token_ids))
        m.e2e.labels(model).observe(time.perf_counter() - start)
        m.success.labels(model, choice.finish_reason or "abort").inc()
        return choice


def get_server(request: Request) -> Server:
    """The server of the app that received ``request`` (set by ``build_app``)."""
    server: Server = request.app.state.server
    return server


ServerDep = Annotated[Server, Depends(get_server)]


async def warm_up(server: Server) -> None:
    """One real generation (an embedding, for an embedding model) before reporting ready."""
    from bosun.engine.client import SamplingParams

    if all(m.embeddings for m in server.engine.models):
        await server.engine.embed(["Hello"])
        return
    ids = server.engine.tokenize("Hello")
    request = GenerationRequest(f"warmup-{uuid.uuid4().hex}", ids, SamplingParams(max_tokens=2))
    async for _ in server.engine.generate(request):
        pass
