"""The FastAPI application: ``build_app(settings, engine)``. No work at import time.

One module per endpoint, as vLLM's entrypoints are: ``chat.py``, ``completions.py``,
``responses_api.py``, ``embeddings.py``, ``models.py`` (models and adapters), ``system.py``
(health and metrics),
each an ``APIRouter``; what they share lives in ``state.py`` (settings, checks, a
generation run) and ``generation.py`` (collecting and streaming choices). Wire models:
``protocol.py`` (requests) and ``responses.py`` (answers, as documented)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from bosun.engine.client import EngineClient
from bosun.serving import chat, completions, embeddings, models, responses_api, system
from bosun.serving.errors import install_error_handlers
from bosun.serving.guard import GuardSettings, RequestGuard
from bosun.serving.responses import install_openapi
from bosun.serving.state import Server, ServeSettings, warm_up

__all__ = ["ServeSettings", "build_app"]


def build_app(settings: ServeSettings, engine: EngineClient) -> FastAPI:
    """The OpenAI-compatible app over ``engine``; the engine starts with the app."""
    server = Server(settings, engine)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async def load() -> None:
            try:
                await engine.start()
                if settings.warmup:
                    await warm_up(server)
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
    app.state.server = server
    for module in (system, models, chat, completions, embeddings, responses_api):
        app.include_router(module.router)
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
    return app
