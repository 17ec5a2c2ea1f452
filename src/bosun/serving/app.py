"""The FastAPI application: ``build_app(settings, engine)``. No work at import time."""

from __future__ import annotations

import asyncio
import base64
import json
import struct
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from bosun.engine.client import EngineClient, GenerationRequest, ModelInfo, TokenEvent
from bosun.serving.errors import APIError, ClientGoneError, install_error_handlers
from bosun.serving.guard import DEFAULT_MAX_REQUEST_BYTES, GuardSettings, RequestGuard
from bosun.serving.metrics import Metrics
from bosun.serving.protocol import (
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingRequest,
    LoadLoraAdapterRequest,
    UnloadLoraAdapterRequest,
    sampling_params,
)
from bosun.serving.responses import (
    ChatCompletion,
    ChatCompletionChunk,
    Completion,
    CompletionChunk,
    EmbeddingList,
    Health,
    ModelList,
    errors,
    events,
    install_openapi,
)

__all__ = ["ServeSettings", "build_app"]


@dataclass(frozen=True)
class ServeSettings:
    api_key: str | None = None
    warmup: bool = True
    public_metrics: bool = False  # /metrics without the key (it names no user data)
    # /v1/load_lora_adapter and unload: any client may then make the server read a local
    # directory, so it is off unless asked for (vLLM's VLLM_ALLOW_RUNTIME_LORA_UPDATING).
    runtime_lora: bool = False
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES


@dataclass
class _Choice:
    """What one choice accumulates while its tokens arrive."""

    index: int
    text: str = ""
    token_ids: list[int] = field(default_factory=list)
    finish_reason: str | None = None
    logprobs: list[tuple[str, float, tuple[tuple[str, float], ...]]] = field(default_factory=list)
    prompt_tokens: int = 0
    cached_tokens: int = 0


def _now() -> int:
    return int(time.time())


class _Server:
    def __init__(self, settings: ServeSettings, engine: EngineClient) -> None:
        self.settings, self.engine = settings, engine
        self.tokenizer_thread = ThreadPoolExecutor(1, thread_name_prefix="bosun-tokenize")
        self.ready = False
        self.failed: str | None = None
        model = engine.models[0].name
        self.metrics = Metrics(model, engine.stats)

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
        choice: _Choice,
        on_event: Callable[[TokenEvent], Awaitable[None]] | None = None,
    ) -> _Choice:
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


def _usage(choices: list[_Choice], prompt_tokens: int) -> dict[str, Any]:
    completion = sum(len(c.token_ids) for c in choices)
    cached = max((c.cached_tokens for c in choices), default=0)
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": prompt_tokens + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    }


def _chat_logprobs(choice: _Choice) -> dict[str, Any]:
    def entry(token: str, logprob: float) -> dict[str, Any]:
        return {"token": token, "logprob": logprob, "bytes": list(token.encode())}

    return {
        "content": [
            {**entry(tok, lp), "top_logprobs": [entry(t, p) for t, p in top]}
            for tok, lp, top in choice.logprobs
        ]
    }


def _completion_logprobs(choice: _Choice, offset: int = 0) -> dict[str, Any]:
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


def _sse(data: dict[str, Any] | str) -> str:
    return f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n"


async def _watch_disconnect(request: Request, task: asyncio.Future[Any]) -> bool:
    """Cancel ``task`` when the client leaves; True if it did."""
    while not task.done():
        if await request.is_disconnected():
            task.cancel()
            return True
        await asyncio.sleep(0.1)
    return False


def build_app(settings: ServeSettings, engine: EngineClient) -> FastAPI:
    """The OpenAI-compatible app over ``engine``; the engine starts with the app."""
    server = _Server(settings, engine)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async def load() -> None:
            try:
                await engine.start()
                if settings.warmup:
                    await _warm_up(server)
                server.ready = True
            except Exception as exc:  # surfaced through /health and 503s
                server.failed = f"the model failed to load: {exc}"

        loading = asyncio.create_task(load())
        try:
            yield
        finally:
            loading.cancel()
            await engine.shutdown()
            server.tokenizer_thread.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="Bosun", version="0.1.0", lifespan=lifespan)
    install_error_handlers(app)
    install_openapi(app)
    # The key and the body limit are checked on the headers, before any body is read.
    app.add_middleware(
        RequestGuard,
        settings=GuardSettings(
            api_key=settings.api_key,
            public_metrics=settings.public_metrics,
            max_request_bytes=settings.max_request_bytes,
        ),
    )

    @app.get("/health", responses={200: {"model": Health}, 503: {"model": Health}})
    async def health() -> Response:
        if server.ready:
            return JSONResponse({"status": "ok"})
        return JSONResponse({"status": server.failed or "loading"}, status_code=503)

    @app.get(
        "/metrics",
        response_model=None,
        responses={200: _text("Prometheus text format"), **errors(401, 500)},
    )
    async def metrics() -> Response:
        return Response(generate_latest(server.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models", responses={200: {"model": ModelList}, **errors(401, 500)})
    async def models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [
                {
                    "id": m.name,
                    "object": "model",
                    "created": m.created,
                    "owned_by": m.owned_by,
                    "root": m.parent or m.name,
                    "parent": m.parent,
                    "max_model_len": m.max_model_len,
                }
                for m in engine.models
            ],
        }

    @app.post(
        "/v1/load_lora_adapter",
        response_model=None,
        responses={200: _text("Success: ..."), **errors(400, 401, 403, 408, 413, 500, 503)},
    )
    async def load_lora_adapter(body: LoadLoraAdapterRequest) -> Response:
        """Serve a PEFT LoRA adapter under ``lora_name`` from now on (no restart)."""
        _runtime_lora(settings)
        server.model(server.engine.models[0].name)  # 503 while the model loads
        await engine.load_adapter(body.lora_name, body.lora_path, body.strength)
        return PlainTextResponse(f"Success: LoRA adapter '{body.lora_name}' added successfully.")

    @app.post(
        "/v1/unload_lora_adapter",
        response_model=None,
        responses={200: _text("Success: ..."), **errors(400, 401, 403, 404, 408, 413, 500, 503)},
    )
    async def unload_lora_adapter(body: UnloadLoraAdapterRequest) -> Response:
        _runtime_lora(settings)
        server.model(server.engine.models[0].name)
        await engine.unload_adapter(body.lora_name)
        return PlainTextResponse(f"Success: LoRA adapter '{body.lora_name}' removed successfully.")

    @app.post(
        "/v1/chat/completions",
        response_model=None,
        responses={200: _generated(ChatCompletion, ChatCompletionChunk), **GENERATION_ERRORS},
    )
    async def chat(body: ChatCompletionRequest, request: Request) -> Response | dict[str, Any]:
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
                f"{rid}-{i}", prompt, sampling_params(body, max_tokens, i), _adapter(info)
            )
            for i in range(body.n)
        ]
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            return await _stream(
                server,
                request,
                requests,
                rid,
                info,
                chat=True,
                include_usage=include_usage,
                prompt_tokens=len(prompt),
            )
        choices = await _collect(server, request, requests)
        return {
            "id": rid,
            "object": "chat.completion",
            "created": _now(),
            "model": info.name,
            "choices": [
                {
                    "index": c.index,
                    "message": {"role": "assistant", "content": c.text},
                    "logprobs": _chat_logprobs(c) if body.logprobs else None,
                    "finish_reason": c.finish_reason,
                }
                for c in choices
            ],
            "usage": _usage(choices, len(prompt)),
        }

    @app.post(
        "/v1/completions",
        response_model=None,
        responses={200: _generated(Completion, CompletionChunk), **GENERATION_ERRORS},
    )
    async def completions(body: CompletionRequest, request: Request) -> Response | dict[str, Any]:
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
            GenerationRequest(
                f"{rid}-{p}-{i}", ids, sampling_params(body, budget, i), _adapter(info)
            )
            for p, (ids, budget) in enumerate(zip(encoded, budgets, strict=True))
            for i in range(body.n)
        ]
        prompt_tokens = sum(len(ids) for ids in encoded)
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            return await _stream(
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
        choices = await _collect(server, request, requests)
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
                    "logprobs": _completion_logprobs(c, len(prefix))
                    if body.logprobs is not None
                    else None,
                    "finish_reason": c.finish_reason,
                }
            )
        return {
            "id": rid,
            "object": "text_completion",
            "created": _now(),
            "model": info.name,
            "choices": out,
            "usage": _usage(choices, prompt_tokens),
        }

    @app.post(
        "/v1/embeddings",
        response_model=None,
        responses={200: {"model": EmbeddingList}, **GENERATION_ERRORS},
    )
    async def embeddings(body: EmbeddingRequest) -> dict[str, Any]:
        info = server.model(body.model)
        texts = [body.input] if isinstance(body.input, str) else body.input
        if not all(isinstance(t, str) for t in texts):
            raise APIError(400, "input: token-id input is not supported; send text", param="input")
        vectors = await engine.embed([str(t) for t in texts])
        tokens = sum([len(await server.tokenize(str(t))) for t in texts])
        return {
            "object": "list",
            "model": info.name,
            "data": [
                {"object": "embedding", "index": i, "embedding": _encoded(v, body.encoding_format)}
                for i, v in enumerate(vectors)
            ],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    return app


GENERATION_ERRORS = errors(400, 401, 404, 408, 413, 429, 500, 503)


def _runtime_lora(settings: ServeSettings) -> None:
    if not settings.runtime_lora:
        raise APIError(
            403,
            "loading and unloading adapters at run time is off: start bosun serve with "
            "--allow-runtime-lora (or list adapters with --adapter)",
            type="permission_error",
        )


def _text(description: str) -> dict[str, Any]:
    return {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": description}


def _generated(model: type[BaseModel], chunk: type[BaseModel]) -> dict[str, Any]:
    """A generation's 200: ``model`` as JSON, or server-sent events of ``chunk``."""
    return {
        "model": model,
        "content": {"text/event-stream": {"schema": events(chunk)}},
        "description": "JSON, or with stream: true server-sent events ending in [DONE]",
    }


def _encoded(vector: list[float], encoding_format: str) -> list[float] | str:
    """OpenAI's base64 form is the vector's float32 bytes, little-endian."""
    if encoding_format == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
    return vector


def _adapter(info: ModelInfo) -> str | None:
    """A model with a parent is a LoRA adapter over it."""
    return info.name if info.parent else None


def _prompts(prompt: Any) -> list[str | list[int]]:
    if isinstance(prompt, str):
        return [prompt]
    if prompt and all(isinstance(p, int) for p in prompt):
        return [list(prompt)]
    if not prompt:
        raise APIError(400, "prompt: must not be empty", param="prompt")
    return list(prompt)


async def _warm_up(server: _Server) -> None:
    """One real generation before reporting ready."""
    from bosun.engine.client import SamplingParams

    ids = server.engine.tokenize("Hello")
    request = GenerationRequest(f"warmup-{uuid.uuid4().hex}", ids, SamplingParams(max_tokens=2))
    async for _ in server.engine.generate(request):
        pass


async def _collect(
    server: _Server, request: Request, requests: list[GenerationRequest]
) -> list[_Choice]:
    tasks = [asyncio.create_task(server.run(r, _Choice(i))) for i, r in enumerate(requests)]
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


async def _stream(
    server: _Server,
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
) -> StreamingResponse:
    """Start the generations, wait for the first token (so that a full queue or a bad
    request is still an HTTP error), then stream Server-Sent Events."""
    created = _now()
    kind = "chat.completion.chunk" if chat else "text_completion"
    queue: asyncio.Queue[tuple[int, TokenEvent | None]] = asyncio.Queue()
    choices = [_Choice(i) for i in range(len(requests))]

    async def one(i: int, r: GenerationRequest) -> None:
        async def push(event: TokenEvent) -> None:
            await queue.put((i, event))

        try:
            await server.run(r, choices[i], push)
        finally:
            await queue.put((i, None))

    tasks = [asyncio.create_task(one(i, r)) for i, r in enumerate(requests)]
    first = await queue.get()
    if first[1] is None and tasks[first[0]].done() and tasks[first[0]].exception() is not None:
        for t in tasks:
            t.cancel()
        raise tasks[first[0]].exception()  # type: ignore[misc]

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
        done = 0
        pending = [first]
        try:
            while done < len(requests):
                i, event = pending.pop() if pending else await queue.get()
                if event is None:
                    done += 1
                    error = (
                        tasks[i].exception()
                        if tasks[i].done() and not tasks[i].cancelled()
                        else None
                    )
                    if error is not None:
                        yield _sse(
                            {
                                "error": {
                                    "message": str(error),
                                    "type": "server_error",
                                    "param": None,
                                    "code": None,
                                }
                            }
                        )
                        return
                    continue
                if i not in started:
                    started.add(i)
                    if chat:
                        yield _sse(chunk(i, {"role": "assistant", "content": ""}, None))
                    elif echo is not None:
                        yield _sse(chunk(i, {"text": echo[i // n]}, None))
                logprobs = None
                if event.logprobs:
                    c = _Choice(i, logprobs=list(event.logprobs))
                    logprobs = _chat_logprobs(c) if chat else _completion_logprobs(c)
                payload = {"content": event.text} if chat else {"text": event.text}
                if event.text or event.finish_reason is None or logprobs:
                    yield _sse(chunk(i, payload, None, logprobs))
                if event.finish_reason is not None:
                    yield _sse(chunk(i, {} if chat else {"text": ""}, event.finish_reason))
            if include_usage:
                yield _sse(
                    {
                        "id": rid,
                        "object": kind,
                        "created": created,
                        "model": info.name,
                        "choices": [],
                        "usage": _usage(choices, prompt_tokens),
                    }
                )
            yield _sse("[DONE]")
        finally:
            # A client that goes away closes this generator: its generations are cancelled.
            for t in tasks:
                t.cancel()

    return StreamingResponse(
        events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
    )
