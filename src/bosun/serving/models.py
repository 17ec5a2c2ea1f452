"""``GET /v1/models`` and LoRA adapters loaded and unloaded at run time (vLLM's routes)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import PlainTextResponse

from bosun.serving.errors import APIError
from bosun.serving.protocol import LoadLoraAdapterRequest, UnloadLoraAdapterRequest
from bosun.serving.responses import ModelList, errors, text
from bosun.serving.state import Server, ServerDep

__all__ = ["router"]

router = APIRouter()


@router.get("/v1/models", responses={200: {"model": ModelList}, **errors(401, 500)})
async def models(server: ServerDep) -> dict[str, Any]:
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
            for m in server.engine.models
        ],
    }


def _runtime_lora(server: Server) -> None:
    if not server.settings.runtime_lora:
        raise APIError(
            403,
            "loading and unloading adapters at run time is off: start bosun serve with "
            "--allow-runtime-lora (or list adapters with --adapter)",
            type="permission_error",
        )


@router.post(
    "/v1/load_lora_adapter",
    response_model=None,
    responses={200: text("Success: ..."), **errors(400, 401, 403, 408, 413, 500, 503)},
)
async def load_lora_adapter(body: LoadLoraAdapterRequest, server: ServerDep) -> Response:
    """Serve a PEFT LoRA adapter under ``lora_name`` from now on (no restart)."""
    _runtime_lora(server)
    server.model(server.engine.models[0].name)  # 503 while the model loads
    await server.engine.load_adapter(body.lora_name, body.lora_path, body.strength)
    return PlainTextResponse(f"Success: LoRA adapter '{body.lora_name}' added successfully.")


@router.post(
    "/v1/unload_lora_adapter",
    response_model=None,
    responses={200: text("Success: ..."), **errors(400, 401, 403, 404, 408, 413, 500, 503)},
)
async def unload_lora_adapter(body: UnloadLoraAdapterRequest, server: ServerDep) -> Response:
    _runtime_lora(server)
    server.model(server.engine.models[0].name)
    await server.engine.unload_adapter(body.lora_name)
    return PlainTextResponse(f"Success: LoRA adapter '{body.lora_name}' removed successfully.")
