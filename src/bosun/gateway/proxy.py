"""The gateway's HTTP side: one OpenAI endpoint in front of a set of replicas.

``POST /v1/chat/completions``, ``/v1/completions`` and ``/v1/embeddings`` go to a replica
serving the request's ``model`` (models.py), chosen by policy.py; the answer comes back
as the replica sends it, a stream chunk by chunk. ``GET /v1/models`` lists every model
behind the gateway. The replicas' model lists and loads are read every few seconds from
their ``/v1/models`` and ``/metrics``; a replica that does not answer leaves the table
until it does again.

Faults: a request that could not reach its replica (no connection) is sent once more to
another; a replica that fails mid-stream ends that stream with an error event, and no
other. No replica at all is a 503 with Retry-After.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bosun.gateway.load import ReportedLoad, reported_load
from bosun.gateway.metrics import GatewayMetrics
from bosun.gateway.models import ModelTable, UnknownModelError, served_models
from bosun.gateway.policy import NoReplicaError, Replica, choose, prefix_key, request_text

__all__ = ["GatewaySettings", "build_gateway"]

log = logging.getLogger("bosun.gateway")

ROUTES = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings")
# The metrics' model label of requests that name no model, or one no replica serves.
NO_MODEL, UNKNOWN_MODEL = "(none)", "(unknown)"
# Request headers passed on to the replica (the rest are the gateway's own connection's).
FORWARDED = ("authorization", "content-type", "accept", "x-request-id")


@dataclass(frozen=True)
class GatewaySettings:
    replicas: tuple[str, ...]  # base URLs (http://host:port), without /v1
    refresh_seconds: float = 2.0  # how often replicas' models and loads are read
    max_body_bytes: int = 16 * 2**20
    connect_timeout: float = 5.0
    retry_after_seconds: int = 2


def _error(
    status: int,
    message: str,
    *,
    kind: str,
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """An error in OpenAI's shape."""
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


class Gateway:
    """What the gateway knows of its replicas, and how it forwards a request."""

    def __init__(self, settings: GatewaySettings, client: httpx.AsyncClient) -> None:
        self.settings, self.client = settings, client
        self.table = ModelTable()
        self.loads: dict[str, ReportedLoad] = {}
        self.outstanding: Counter[str] = Counter()
        self.metrics = GatewayMetrics()

    async def refresh(self) -> None:
        """Read every replica's models and load; one that fails leaves the table."""
        await asyncio.gather(*(self._refresh(url) for url in self.settings.replicas))

    async def _refresh(self, url: str) -> None:
        try:
            models = await self.client.get(
                f"{url}/v1/models", timeout=self.settings.connect_timeout
            )
            models.raise_for_status()
            self.table.update(url, served_models(models.json()))
        except (httpx.HTTPError, ValueError) as exc:
            if url in self.table.replicas:
                log.warning("replica %s left the table: %s", url, exc)
            self.table.remove(url)
            return
        try:
            metrics = await self.client.get(f"{url}/metrics", timeout=self.settings.connect_timeout)
            self.loads[url] = reported_load(metrics.text) if metrics.is_success else ReportedLoad()
        except (httpx.HTTPError, ValueError):
            self.loads[url] = ReportedLoad()  # its load unknown: the gateway's own count decides

    async def forward(self, request: Request, path: str) -> Response:
        """Send the request on to a replica of its model; the answer, or the error."""
        model, response = await self._route(request, path)
        self.metrics.requests.labels(model, str(response.status_code)).inc()
        return response

    async def _route(self, request: Request, path: str) -> tuple[str, Response]:
        """(the model's label for the metrics, the response). Labels are the models the
        table knows: a client naming others cannot grow the metrics without bound."""
        body = await self._body(request)
        if body is None:
            limit = self.settings.max_body_bytes
            message = f"the request body exceeds {limit} bytes"
            return NO_MODEL, _error(413, message, kind="invalid_request_error")
        try:
            payload = json.loads(body)
        except ValueError:
            return NO_MODEL, _error(
                400, "the request body is not JSON", kind="invalid_request_error"
            )
        model = payload.get("model") if isinstance(payload, dict) else None
        if not isinstance(model, str) or not model:
            message = "model: a model name is required"
            return NO_MODEL, _error(400, message, kind="invalid_request_error", param="model")
        try:
            target = self.table.target(model)
        except UnknownModelError as exc:
            return UNKNOWN_MODEL, _error(
                404, str(exc), kind="invalid_request_error", param="model", code="model_not_found"
            )
        key = prefix_key(request_text(payload))
        headers = {k: v for k, v in request.headers.items() if k.lower() in FORWARDED}
        # The answer's bytes are passed on as they come: uncompressed, since the client
        # gets no Content-Encoding from the gateway.
        headers["accept-encoding"] = "identity"
        tried: set[str] = set()
        for _ in range(2):  # the first replica, then once more elsewhere if it was unreachable
            replicas = [self._replica(url) for url in target.replicas]
            try:
                choice = choose(replicas, prefix=key, adapter=target.adapter, exclude=tried)
            except NoReplicaError:
                break
            url = choice.replica.name
            if tried:
                self.metrics.retries.labels(model).inc()
            tried.add(url)
            self.metrics.routed.labels(model, choice.reason, str(choice.home).lower()).inc()
            upstream = self.client.build_request(
                "POST", f"{url}{path}", content=body, headers=headers
            )
            self._track(url, +1)
            try:
                response = await self.client.send(upstream, stream=True)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                self._track(url, -1)
                log.warning("replica %s unreachable (%s): trying another", url, exc)
                continue
            except BaseException:
                self._track(url, -1)
                raise
            return model, self._relay(model, url, response)
        return model, _error(
            503,
            f"no replica of {model!r} is reachable; retry shortly",
            kind="service_unavailable",
            headers={"Retry-After": str(self.settings.retry_after_seconds)},
        )

    def _track(self, url: str, change: int) -> None:
        self.outstanding[url] += change
        self.metrics.in_flight.labels(url).set(self.outstanding[url])

    async def _body(self, request: Request) -> bytes | None:
        """The request's body, or None past max_body_bytes (read no further than that)."""
        limit = self.settings.max_body_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            return None
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                return None
        return bytes(body)

    def _replica(self, url: str) -> Replica:
        load = self.loads.get(url, ReportedLoad())
        return Replica(url, self.outstanding[url], load.running, load.waiting, load.kv_usage)

    def _relay(self, model: str, url: str, response: httpx.Response) -> Response:
        """The replica's answer, passed on as it arrives; the outstanding count drops once
        it has all been sent (or the client went away)."""
        media = response.headers.get("content-type", "application/json")

        async def chunks() -> AsyncIterator[bytes]:
            try:
                async for chunk in response.aiter_raw():
                    yield chunk
            except httpx.HTTPError as exc:  # the replica died mid-answer: this stream ends
                log.warning("replica %s failed mid-stream: %s", url, exc)
                self.metrics.broken.labels(model).inc()
                error = {
                    "error": {
                        "message": f"the replica serving this request failed: {exc}",
                        "type": "server_error",
                        "param": None,
                        "code": None,
                    }
                }
                yield f"data: {json.dumps(error)}\n\n".encode()
            finally:
                self._track(url, -1)
                await response.aclose()

        return StreamingResponse(chunks(), status_code=response.status_code, media_type=media)


def build_gateway(settings: GatewaySettings) -> FastAPI:
    """The gateway's app: its replicas read at start and every ``refresh_seconds``."""
    state: dict[str, Gateway] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        timeout = httpx.Timeout(None, connect=settings.connect_timeout)
        async with httpx.AsyncClient(timeout=timeout) as client:
            gateway = Gateway(settings, client)
            state["gateway"] = gateway
            await gateway.refresh()

            async def refresher() -> None:
                while True:
                    await asyncio.sleep(settings.refresh_seconds)
                    await gateway.refresh()

            task = asyncio.create_task(refresher())
            try:
                yield
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    app = FastAPI(title="Bosun gateway", lifespan=lifespan)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "replicas": len(state["gateway"].table.replicas)}

    @app.get("/metrics")
    async def metrics() -> Response:
        registry = state["gateway"].metrics.registry
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        table = state["gateway"].table
        data = [
            {
                "id": name,
                "object": "model",
                "owned_by": "bosun",
                "root": parent or name,
                "parent": parent,
                "replicas": len(table.target(name).replicas),
            }
            for name, parent in table.models().items()
        ]
        return {"object": "list", "data": data}

    def forwarding(path: str) -> Any:
        async def route(request: Request) -> Response:
            return await state["gateway"].forward(request, path)

        return route

    for path in ROUTES:
        app.add_api_route(path, forwarding(path), methods=["POST"])
    return app
