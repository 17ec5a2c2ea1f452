"""The console's HTTP side: the page (static files in the package) and the JSON API it
calls under ``/api``. The gateway serves both at ``/`` beside its OpenAI routes, which
the page's playground calls as any client would.

API (every answer JSON; an error is ``{"error": {"message", "problems"}}``, where
``problems`` names each field of a Workspace that does not validate):

- ``GET /api/info``: local or cluster, whether the page may apply Workspaces.
- ``GET /api/workspaces``: every Workspace with its state, model, endpoint, replicas,
  devices and conditions.
- ``GET /api/workspaces/{name}/plan``: its sizing, layout and, when it waits for devices,
  why (the allocator's explanation per node).
- ``GET /api/workspaces/{name}/logs?lines=N`` and ``.../progress`` (a tuning job's loss
  per step, read from its log).
- ``POST /api/plan`` and ``POST /api/apply`` with ``{"yaml": "..."}``.
- ``GET /api/metrics``: per model, the last minutes of requests/s, tokens/s, TTFT, KV
  usage and requests running and waiting, read from the replicas' ``/metrics``.

The API key, where one is set, is checked by the gateway before a request gets here.
Another site's page cannot call the API from a user's browser: a request with another
origin is refused, and without a key only loopback host names are answered (a rebound
DNS name is not).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from bosun.console.backends import LOG_LINES, Backend, ConsoleError, loss_curve
from bosun.console.sampler import Sampler
from bosun.gateway.sources import Source

__all__ = ["MAX_YAML_CHARS", "build_console"]

STATIC = resources.files("bosun.console") / "static"
MAX_YAML_CHARS = 256 * 1024
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
# A tuning job's progress is read from this many of its last log lines (a line a step).
PROGRESS_LINES = 20_000


class WorkspaceText(BaseModel):
    yaml: str = Field(max_length=MAX_YAML_CHARS, description="A Workspace, as YAML or JSON.")


def _foreign(request: Request, keyed: bool) -> str | None:
    """Why a call to the API is refused as another site's, or None. A browser sends the
    page's origin with a cross-site request, which must be this console's own; and a
    console without an API key answers only to its loopback names, so that a web page
    whose host name is rebound to 127.0.0.1 cannot drive it from the user's browser."""
    host = request.headers.get("host", "")
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != host:
        return f"a request from another site ({origin}) is refused"
    if not keyed and (urlsplit(f"//{host}").hostname or "") not in LOOPBACK_NAMES:
        return (
            f"without an API key the console answers only at 127.0.0.1 or localhost, "
            f"not {host or 'a request without a Host'}: run it with --api-key to reach it "
            "under another name"
        )
    return None


def build_console(
    backend: Backend,
    source: Source,
    *,
    keyed: bool = False,
    locked: str | None = None,
    interval: float = 2.0,
    history: float = 600.0,
) -> FastAPI:
    """The console for ``backend``'s Workspaces, with metrics read from the replicas
    ``source`` reports every ``interval`` seconds (``history`` seconds kept).
    ``keyed``: the gateway checks an API key before a request gets here; without one,
    only loopback names are answered. ``locked``: why the API refuses every call (a
    cluster console without an API key)."""
    state: dict[str, Sampler] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with aiohttp.ClientSession() as session:
            sampler = Sampler(source, session, interval, history)
            state["sampler"] = sampler
            task = asyncio.create_task(sampler.run())
            try:
                yield
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                await backend.close()

    app = FastAPI(title="Bosun console", lifespan=lifespan, docs_url=None, redoc_url=None)

    @app.exception_handler(ConsoleError)
    async def refused(request: Request, exc: ConsoleError) -> JSONResponse:
        return JSONResponse(exc.to_json(), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def malformed(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {"path": ".".join(str(p) for p in e["loc"][1:]) or "body", "message": e["msg"]}
            for e in exc.errors()
        ]
        lines = "; ".join(f"{p['path']}: {p['message']}" for p in problems)
        return JSONResponse(
            ConsoleError(422, f"the request: {lines}", problems).to_json(), status_code=422
        )

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Any:
        if request.url.path.startswith("/api/"):
            why = locked or _foreign(request, keyed)
            if why:
                return JSONResponse(ConsoleError(403, why).to_json(), status_code=403)
        return await call_next(request)

    @app.get("/api/info")
    async def info() -> dict[str, Any]:
        return {"mode": backend.mode, "canApply": backend.can_apply}

    @app.get("/api/workspaces")
    async def workspaces() -> dict[str, Any]:
        return {"items": await backend.workspaces()}

    @app.get("/api/workspaces/{name:path}/plan")
    async def plan(name: str) -> dict[str, Any]:
        return await backend.plan(name)

    @app.get("/api/workspaces/{name:path}/logs")
    async def logs(name: str, lines: int = Query(LOG_LINES, ge=1, le=10_000)) -> dict[str, Any]:
        return {"lines": await backend.logs(name, lines)}

    @app.get("/api/workspaces/{name:path}/progress")
    async def progress(name: str) -> dict[str, Any]:
        return loss_curve(await backend.logs(name, PROGRESS_LINES))

    @app.post("/api/plan")
    async def check(body: WorkspaceText) -> dict[str, Any]:
        return await backend.check(body.yaml)

    @app.post("/api/apply")
    async def apply(body: WorkspaceText) -> dict[str, Any]:
        if not backend.can_apply:
            raise ConsoleError(403, "this console does not apply Workspaces")
        return await backend.apply(body.yaml)

    @app.get("/api/metrics")
    async def metrics() -> dict[str, Any]:
        return state["sampler"].to_json()

    @app.api_route("/api/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    async def unknown(rest: str) -> None:
        raise ConsoleError(404, f"/api/{rest}: no such console API")

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(str(STATIC / "index.html"), headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    return app
