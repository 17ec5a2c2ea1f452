"""``GET /health`` (for probes: 503 while loading) and ``GET /metrics`` (Prometheus)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bosun.serving.responses import Health, errors, text
from bosun.serving.state import ServerDep

__all__ = ["router"]

router = APIRouter()


@router.get("/health", responses={200: {"model": Health}, 503: {"model": Health}})
async def health(server: ServerDep) -> Response:
    if server.ready:
        return JSONResponse({"status": "ok"})
    return JSONResponse({"status": server.failed or "loading"}, status_code=503)


@router.get(
    "/metrics",
    response_model=None,
    responses={200: text("Prometheus text format"), **errors(401, 500)},
)
async def metrics(server: ServerDep) -> Response:
    return Response(generate_latest(server.metrics.registry), media_type=CONTENT_TYPE_LATEST)
