"""The gateway's HTTP side: one OpenAI endpoint in front of a set of replicas.

``POST /v1/chat/completions``, ``/v1/completions`` and ``/v1/embeddings`` go to a replica
serving the request's ``model`` (models.py), chosen by policy.py; the answer comes back
as the replica sends it, a stream chunk by chunk. ``GET /v1/models`` lists every model
behind the gateway. The replicas' model lists and loads are read every few seconds from
their ``/v1/models`` and ``/metrics``; a replica that does not answer leaves the table
until it does again.

Faults: a request that could not reach its replica (no connection, so never started) is
sent again, to another replica or to its Workspace once it is back (at most MAX_SENDS
sends); a replica that fails mid-stream ends that stream with an error event, and no
other. No replica at all is a 503 with Retry-After.

Where the replicas are comes from a source (sources.py). A request for a model whose
Workspace has no replica serving (scaled to zero, starting, restarting) waits in a
bounded queue for one, and one scaled to zero is started; it is answered once a replica
serves, refused with 429 when the queue is full, and with 503 when the model does not
come up within ``cold_start_timeout``. A Workspace that scales to zero is stopped after
its idle time-out with no request.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

import aiohttp
from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Receive, Scope, Send

from bosun.gateway.load import ReportedLoad, reported_load
from bosun.gateway.metrics import GatewayMetrics
from bosun.gateway.models import ModelTable, Target, UnknownModelError, served_models
from bosun.gateway.policy import (
    NoReplicaError,
    Replica,
    choose,
    prefix_key,
    request_text,
    round_robin,
)
from bosun.gateway.sources import Source, StaticSource, Workload

__all__ = ["GatewaySettings", "build_gateway"]

log = logging.getLogger("bosun.gateway")

ROUTES = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings")
# The metrics' model label of requests that name no model, or one no replica serves.
NO_MODEL, UNKNOWN_MODEL = "(none)", "(unknown)"
# Request headers passed on to the replica (the rest are the gateway's own connection's).
FORWARDED = ("authorization", "content-type", "accept", "x-request-id")
# Sends of one request that did not connect (so were never started) before it fails.
MAX_SENDS = 3


@dataclass(frozen=True)
class GatewaySettings:
    replicas: tuple[str, ...] = ()  # base URLs (http://host:port), without /v1
    refresh_seconds: float = 2.0  # how often replicas' models and loads are read
    max_body_bytes: int = 16 * 2**20
    connect_timeout: float = 5.0
    retry_after_seconds: int = 2
    max_queue: int = 256  # requests waiting per model for a replica to come up
    cold_start_timeout: float = 600.0  # how long they wait
    waiting_refresh_seconds: float = 0.25  # how often sources are read while requests wait
    # "cache-aware" (policy.choose), or "round-robin" (the baseline benchmarks compare with)
    policy: str = "cache-aware"
    # A bearer token every request must carry but /health and the console's page itself
    # (its files hold no data; what it shows comes from /api, which needs the key).
    api_key: str | None = None


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

    def __init__(
        self, settings: GatewaySettings, session: aiohttp.ClientSession, source: Source
    ) -> None:
        self.settings, self.session, self.source = settings, session, source
        self.table = ModelTable()
        self.loads: dict[str, ReportedLoad] = {}
        self.others: dict[str, int] = {}  # replica -> requests of other clients, last seen
        self.outstanding: Counter[str] = Counter()
        self.metrics = GatewayMetrics()
        self.workloads: dict[str, Workload] = {}
        self.owner: dict[str, str] = {}  # replica URL -> its workload
        self.queued: Counter[str] = Counter()  # model -> requests waiting for a replica
        self.turns: Counter[str] = Counter()  # model -> requests routed round-robin
        self.last_used: dict[str, float] = {}  # workload -> when a request last used it
        self.woken: dict[str, tuple[float, str]] = {}  # workload -> (when, by which model)
        self.stopping: set[str] = set()  # workloads being scaled to zero
        self.refreshed = asyncio.Condition()  # notified after each refresh
        self.begun = self.done = 0  # refreshes begun, and the last one done
        self.last_began = 0.0  # when the last refresh began (monotonic)
        self.hurry = asyncio.Event()  # set when requests wait: refresh now
        self._tasks: set[asyncio.Task[None]] = set()

    async def refresh(self) -> None:
        """Read the source, then every replica's models and load (one that fails leaves
        the table); scale down what has been idle too long."""
        self.begun += 1
        number = self.begun
        self.last_began = time.monotonic()
        try:
            workloads = await self.source.workloads()
        except Exception as exc:  # a source that fails keeps the last table
            log.warning("the replica source failed: %s", exc)
            workloads = list(self.workloads.values())
        self.workloads = {w.name: w for w in workloads}
        self.owner = {
            url: w.name for w in workloads if w.name not in self.stopping for url in w.replicas
        }
        for gone in set(self.table.replicas) - set(self.owner):
            self.table.remove(gone)
        await asyncio.gather(*(self._refresh(url) for url in self.owner))
        self._count_cold_starts()
        self._scale_down_idle()
        async with self.refreshed:
            self.done = number
            self.refreshed.notify_all()

    async def fresh(self, timeout: float = 5.0) -> None:
        """Wait until a refresh begun after this call is done (a Workspace started a
        moment ago is then known)."""
        wanted = self.begun + 1
        self.hurry.set()
        async with self.refreshed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self.refreshed.wait_for(lambda: self.done >= wanted), timeout
                )

    async def refresher(self) -> None:
        """Refresh every ``refresh_seconds``; more often while requests wait, or when one
        hurries it, but never sooner than ``waiting_refresh_seconds`` after the last
        began: waiting requests (each hurries it after every refresh) and requests naming
        unknown models cannot make it read the replicas and the API server back to back."""
        settings = self.settings
        while True:
            pause = settings.waiting_refresh_seconds if self.queued.total() else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.hurry.wait(), pause or settings.refresh_seconds)
            soonest = self.last_began + settings.waiting_refresh_seconds
            await asyncio.sleep(max(0.0, soonest - time.monotonic()))
            self.hurry.clear()
            await self.refresh()

    def _count_cold_starts(self) -> None:
        now = time.monotonic()
        for name, (began, model) in list(self.woken.items()):
            workload = self.workloads.get(name)
            if workload is None or workload.state == "Failed":
                del self.woken[name]
            elif any(url in self.table.replicas for url in workload.replicas):
                self.metrics.cold_start_seconds.labels(model).observe(now - began)
                log.info("%s started from zero in %.1f s", name, now - began)
                del self.woken[name]

    def _scale_down_idle(self) -> None:
        """Stop each Workload that scales to zero and had no request for its idle
        time-out (none in flight, none waiting)."""
        now = time.monotonic()
        for w in self.workloads.values():
            if not w.scale_to_zero or w.state != "Ready" or w.name in self.stopping:
                continue
            busy = any(self.outstanding[url] for url in w.replicas) or any(
                self.queued[m] for m in w.models
            )
            last = self.last_used.setdefault(w.name, now)
            if busy:
                self.last_used[w.name] = now
            elif now - last >= w.idle_timeout:
                self.stopping.add(w.name)
                for url in w.replicas:  # new requests wait for it to start again
                    self.table.remove(url)
                    self.owner.pop(url, None)
                task = asyncio.create_task(self._stop(w))
                self._tasks.add(task)  # held until done: the loop keeps only weak references
                task.add_done_callback(self._tasks.discard)

    async def _stop(self, workload: Workload) -> None:
        try:
            log.info("%s idle for %.0f s: scaling it to zero", workload.name, workload.idle_timeout)
            if await self.source.sleep(workload.name):
                for model, parent in workload.models.items():
                    if parent is None:  # counted once, by its base model
                        self.metrics.scale_downs.labels(model).inc()
        except Exception:  # logged; the next idle check tries again
            log.exception("scaling %s to zero failed", workload.name)
        finally:
            self.stopping.discard(workload.name)
            self.last_used.pop(workload.name, None)
            self.hurry.set()  # requests that came meanwhile wake it again

    async def _read(self, url: str) -> tuple[int, str]:
        """(status, body) of a GET, within the connect time-out."""
        limit = aiohttp.ClientTimeout(total=self.settings.connect_timeout)
        async with self.session.get(url, timeout=limit) as response:
            return response.status, await response.text()

    async def _refresh(self, url: str) -> None:
        try:
            status, text = await self._read(f"{url}/v1/models")
            if status != 200:
                raise ValueError(f"/v1/models answered {status}")
            listing = json.loads(text)
            if not isinstance(listing, dict):
                raise ValueError("/v1/models is not a JSON object")
            self.table.update(url, served_models(listing))
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            if url in self.table.replicas:
                log.warning("replica %s left the table: %s", url, exc)
            self.table.remove(url)
            return
        before = self.outstanding[url]
        try:
            status, text = await self._read(f"{url}/metrics")
            reported = reported_load(text) if status == 200 else ReportedLoad()
        except (aiohttp.ClientError, TimeoutError, ValueError):
            reported = ReportedLoad()  # its load unknown: the gateway's own count decides
        self.loads[url] = reported
        # What the replica holds beyond this gateway's own requests (other clients, other
        # gateway replicas). Kept apart: the gateway's own count is exact at every
        # request, the report up to a refresh old. Its own are taken as the most it had
        # while the report was read, so requests ending meanwhile are not taken for others.
        mine = max(before, self.outstanding[url])
        self.others[url] = max(0, reported.running + reported.waiting - mine)

    async def forward(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Send a request on to a replica of its model, and its answer back (or the
        error), as a plain ASGI app: the proxied routes skip FastAPI's routing and
        middleware, which cost more than the proxying itself."""
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        body = await self._body(receive, headers)
        model, response = await self._route(body, headers, scope["path"])
        self.metrics.requests.labels(model, str(response.status_code)).inc()
        await response(scope, receive, send)

    async def _route(
        self, body: bytes | None, request_headers: dict[str, str], path: str
    ) -> tuple[str, Response | Relay]:
        """(the model's label for the metrics, the response). Labels are the models the
        table knows: a client naming others cannot grow the metrics without bound."""
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
        key = prefix_key(request_text(payload))
        headers = {k: v for k, v in request_headers.items() if k in FORWARDED}
        # The answer's bytes are passed on as they come: uncompressed, since the client
        # gets no Content-Encoding from the gateway.
        headers["accept-encoding"] = "identity"
        tried: set[str] = set()
        for _ in range(MAX_SENDS):
            target = await self._target(model, tried)
            if not isinstance(target, Target):
                known = tried or target.status_code != 404
                return (model if known else UNKNOWN_MODEL), target
            replicas = [self._replica(url) for url in target.replicas]
            try:
                if self.settings.policy == "round-robin":
                    self.turns[model] += 1
                    choice = round_robin(replicas, self.turns[model], exclude=tried)
                else:
                    choice = choose(replicas, prefix=key, adapter=target.adapter, exclude=tried)
            except NoReplicaError:
                break
            url = choice.replica.name
            if tried:
                self.metrics.retries.labels(model).inc()
            tried.add(url)
            self.metrics.routed.labels(model, choice.reason, str(choice.home).lower()).inc()
            self._track(url, +1)
            try:
                response = await self.session.post(f"{url}{path}", data=body, headers=headers)
            except (TimeoutError, aiohttp.ClientConnectorError) as exc:
                # Not started, so safe to send again: elsewhere, or to this Workspace once
                # it is back. It leaves the table until a refresh finds it answering.
                self._track(url, -1)
                self.table.remove(url)
                self.hurry.set()
                log.warning("replica %s unreachable (%s): trying another", url, exc)
                continue
            except BaseException:
                self._track(url, -1)
                raise
            return model, Relay(self, model, url, response)
        return model, self._unavailable(f"no replica of {model!r} is reachable; retry shortly")

    def _unavailable(self, message: str) -> JSONResponse:
        """503 with Retry-After."""
        retry = {"Retry-After": str(self.settings.retry_after_seconds)}
        return _error(503, message, kind="service_unavailable", headers=retry)

    async def _target(self, model: str, tried: set[str]) -> Target | Response:
        """Where a request for ``model`` may go, once a replica serves it: a Workspace
        starting (or scaled to zero, or restarting after a crash) is waited for. An error
        response when none will: 404 for a model nobody serves (after one more look at
        the source: it may have been started a moment ago), 503 when the replicas
        ``tried`` were its last."""
        try:
            return self.table.target(model)
        except UnknownModelError:
            if not tried and not self._declaring(model):
                await self.fresh()
                with contextlib.suppress(UnknownModelError):
                    return self.table.target(model)
            if self._declaring(model):
                waited = await self._wait_for(model)
                if isinstance(waited, Target):
                    tried.clear()  # what came back since answers again
                return waited
            if tried:
                return self._unavailable(f"no replica of {model!r} is reachable; retry shortly")
            # Named with the closest of every model behind the gateway, running or not.
            known = UnknownModelError(model, [m["id"] for m in self.listing()])
            return _error(
                404, str(known), kind="invalid_request_error", param="model", code="model_not_found"
            )

    def _track(self, url: str, change: int) -> None:
        self.outstanding[url] += change
        self.metrics.in_flight.labels(url).set(self.outstanding[url])
        if url in self.owner:
            self.last_used[self.owner[url]] = time.monotonic()

    def _listed(self, workload: Workload) -> bool:
        """Every replica of ``workload`` is in the table (its models were read)."""
        return all(url in self.table.replicas for url in workload.replicas)

    def _declaring(self, model: str) -> list[Workload]:
        """Workloads that serve ``model`` once up (none when their source cannot say)."""
        return [w for w in self.workloads.values() if model in w.models]

    async def _wait_for(self, model: str) -> Target | Response:
        """Hold a request until a replica of ``model`` serves, starting a Workload scaled
        to zero; an error response when the queue is full, the model fails to start, or
        it does not come up within the time-out."""
        settings = self.settings
        if self.queued[model] >= settings.max_queue:
            return _error(
                429,
                f"{settings.max_queue} requests already wait for {model!r} to start; retry shortly",
                kind="rate_limit_error",
                headers={"Retry-After": str(settings.retry_after_seconds)},
            )
        began = time.monotonic()
        deadline = began + settings.cold_start_timeout
        self.queued[model] += 1
        self.metrics.queue_depth.labels(model).set(self.queued[model])
        try:
            while True:
                with contextlib.suppress(UnknownModelError):
                    return self.table.target(model)
                declaring = self._declaring(model)
                for w in declaring:  # (a Workspace at zero without minReplicas: 0 is left
                    # to whoever scales it, as KEDA on the queue depth)
                    if w.state == "Idle" and w.scale_to_zero and w.name not in self.stopping:
                        await self._wake(w, model)
                up = [w for w in declaring if w.replicas and self._listed(w)]
                if up and len(up) == len(declaring):  # up, but not serving it after all
                    names = ", ".join(w.name for w in up)
                    return _error(
                        404,
                        f"model {model!r} is not served by {names}, though its Workspace "
                        f"names it (served: {', '.join(self.table.models())})",
                        kind="invalid_request_error",
                        param="model",
                        code="model_not_found",
                    )
                failed = [w for w in declaring if w.state == "Failed"]
                if not declaring or len(failed) == len(declaring):
                    why = "; ".join(f"{w.name}: {w.message}" for w in failed) or "it is gone"
                    return _error(
                        503, f"{model!r} failed to start ({why})", kind="service_unavailable"
                    )
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    names = ", ".join(w.name for w in declaring)
                    stuck = [w.name for w in declaring if w.state == "Idle" and not w.scale_to_zero]
                    why = (
                        f"{', '.join(stuck)} has no replica and does not start on demand "
                        "(spec.resource.minReplicas: 0 lets the gateway start it)"
                        if stuck
                        else f"workspace {names}: its log says why"
                    )
                    return self._unavailable(
                        f"{model!r} did not start within {settings.cold_start_timeout:g} s ({why})"
                    )
                self.hurry.set()
                async with self.refreshed:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.refreshed.wait(), remaining)
        finally:
            self.queued[model] -= 1
            self.metrics.queue_depth.labels(model).set(self.queued[model])
            self.metrics.queue_seconds.labels(model).observe(time.monotonic() - began)

    async def _wake(self, workload: Workload, model: str) -> None:
        if await self.source.wake(workload.name):
            log.info("%s scaled to zero: starting it for a request for %s", workload.name, model)
            self.woken[workload.name] = (time.monotonic(), model)
            self.metrics.cold_starts.labels(model).inc()
            # Seen as Starting until the next read of the source: not woken twice.
            self.workloads[workload.name] = replace(workload, replicas=(), state="Starting")

    async def _body(self, receive: Receive, headers: dict[str, str]) -> bytes | None:
        """The request's body, or None past max_body_bytes (read no further than that)."""
        limit = self.settings.max_body_bytes
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            return None
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return bytes(body)  # the client went away; what came is answered to no one
            body += message.get("body", b"")
            if len(body) > limit:
                return None
            if not message.get("more_body", False):
                return bytes(body)

    def _replica(self, url: str) -> Replica:
        """The replica as the policy sees it: its load is this gateway's requests in
        flight to it (exact) and what others had there at the last refresh."""
        load = self.loads.get(url, ReportedLoad())
        mine = self.outstanding[url]
        return Replica(url, mine, mine + self.others.get(url, 0), 0, load.kv_usage)

    def listing(self) -> list[dict[str, Any]]:
        """Every model behind the gateway, served or not: OpenAI's model objects with
        ``parent`` (adapters), ``replicas`` serving it and its ``state`` (ready, or the
        state of the Workspaces that serve it once up: idle, starting, failed)."""
        served = self.table.models()
        declared: dict[str, tuple[str | None, str]] = {}
        for w in self.workloads.values():
            for name, parent in w.models.items():
                if name not in served:
                    state = "stopping" if w.name in self.stopping else w.state.lower()
                    declared.setdefault(name, (parent, state))
        rows = {name: (parent, "ready") for name, parent in served.items()} | declared
        return [
            {
                "id": name,
                "object": "model",
                "owned_by": "bosun",
                "root": parent or name,
                "parent": parent,
                "replicas": len(self.table.target(name).replicas) if name in served else 0,
                "state": state,
            }
            for name, (parent, state) in sorted(rows.items())
        ]


class Relay:
    """A replica's answer passed on as it arrives, as an ASGI response: each chunk is
    sent to the client as soon as it is read, unbuffered. A replica failing mid-answer
    ends this stream with an error event; a client that goes away stops the relay and
    closes the upstream answer (the replica stops generating for no one). The replica's
    outstanding count drops when either ends."""

    def __init__(
        self, gateway: Gateway, model: str, url: str, upstream: aiohttp.ClientResponse
    ) -> None:
        self.gateway, self.model, self.url, self.upstream = gateway, model, url, upstream
        self.status_code = upstream.status

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        upstream = self.upstream
        finished = False
        media = upstream.headers.get("content-type", "application/json")
        # One task waits for the client to go away (uvicorn says so only to receive), and
        # then closes the replica's answer at once: a relay waiting on a slow token (or a
        # long prefill) is not left waiting for it.
        gone = asyncio.ensure_future(_disconnected(receive))

        def hang_up(task: asyncio.Future[None]) -> None:
            if not task.cancelled():  # cancelled: the relay ended first
                upstream.close()

        gone.add_done_callback(hang_up)
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": upstream.status,
                    "headers": [(b"content-type", media.encode("latin-1"))],
                }
            )
            try:
                async for chunk in upstream.content.iter_any():
                    if gone.done():
                        return
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                if gone.done():
                    return
            except (TimeoutError, aiohttp.ClientError) as exc:
                if gone.done():
                    return  # closed above: the client went away, not the replica
                # The replica died.
                log.warning("replica %s failed mid-stream: %s", self.url, exc)
                self.gateway.metrics.broken.labels(self.model).inc()
                error = {
                    "error": {
                        "message": f"the replica serving this request failed: {exc}",
                        "type": "server_error",
                        "param": None,
                        "code": None,
                    }
                }
                chunk = f"data: {json.dumps(error)}\n\n".encode()
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            finished = True
        finally:
            gone.cancel()
            self.gateway._track(self.url, -1)
            # Read to its end, the connection goes back to the pool; else it is closed (the
            # replica stops generating for no one).
            if finished:
                upstream.release()
            else:
                upstream.close()


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def _keyed(path: str) -> bool:
    """Whether a path needs the API key (where one is set): everything that answers with
    data. The console's page and its static files do not."""
    return path.startswith(("/v1/", "/api/")) or path in ("/v1", "/api", "/metrics")


def build_gateway(
    settings: GatewaySettings, source: Source | None = None, console: FastAPI | None = None
) -> ASGIApp:
    """The gateway's app: its replicas (``source``, by default ``settings.replicas``)
    read at start and every ``refresh_seconds``. The proxied routes are served by
    :meth:`Gateway.forward`; the rest (health, metrics, the model list) by FastAPI, and
    what none of those serve by ``console`` (the web console, its lifespan run with the
    gateway's)."""
    state: dict[str, Gateway] = {}
    expected = f"Bearer {settings.api_key}".encode() if settings.api_key else None

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # aiohttp, with its HTTP parser in C: per request it cost about half what httpx
        # did (httpx2, the fork whose pool keeps up with many connections: 1-3.5 ms added
        # at 64 streams against 0.65-1.0). Connections to the replicas are kept for reuse,
        # as many as run at once; answers are passed on as they come, uncompressed.
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=settings.connect_timeout),
            auto_decompress=False,
        )
        async with session:
            origin = source or StaticSource(settings.replicas)
            gateway = Gateway(settings, session, origin)
            state["gateway"] = gateway
            await gateway.refresh()
            task = asyncio.create_task(gateway.refresher())
            try:
                if console is None:
                    yield
                else:
                    async with console.router.lifespan_context(console):
                        yield
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                await origin.close()

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
        return {"object": "list", "data": state["gateway"].listing()}

    if console is not None:
        app.mount("/", console)

    async def gateway(scope: Scope, receive: Receive, send: Send) -> None:
        if expected is not None and scope["type"] == "http" and _keyed(scope["path"]):
            given = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not hmac.compare_digest(given, expected):
                refused = _error(
                    401,
                    "Incorrect API key provided.",
                    kind="invalid_request_error",
                    code="invalid_api_key",
                )
                await refused(scope, receive, send)
                return
        if scope["type"] == "http" and scope["path"] in ROUTES:
            if scope["method"] == "POST":
                await state["gateway"].forward(scope, receive, send)
                return
            allowed = _error(405, "use POST", kind="invalid_request_error")
            allowed.headers["Allow"] = "POST"
            await allowed(scope, receive, send)
            return
        await app(scope, receive, send)

    return gateway
