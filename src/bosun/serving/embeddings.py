"""``POST /v1/embeddings``: vectors for texts, as floats or OpenAI's base64."""

from __future__ import annotations

import base64
import struct
from typing import Any

from fastapi import APIRouter

from bosun.serving.errors import APIError
from bosun.serving.generation import GENERATION_ERRORS
from bosun.serving.protocol import EmbeddingRequest
from bosun.serving.responses import EmbeddingList
from bosun.serving.state import ServerDep

__all__ = ["router"]

router = APIRouter()


def _encoded(vector: list[float], encoding_format: str) -> list[float] | str:
    """OpenAI's base64 form is the vector's float32 bytes, little-endian."""
    if encoding_format == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
    return vector


@router.post(
    "/v1/embeddings",
    response_model=None,
    responses={200: {"model": EmbeddingList}, **GENERATION_ERRORS},
)
async def embeddings(body: EmbeddingRequest, server: ServerDep) -> dict[str, Any]:
    info = server.model(body.model)
    texts = [body.input] if isinstance(body.input, str) else body.input
    if not all(isinstance(t, str) for t in texts):
        raise APIError(400, "input: token-id input is not supported; send text", param="input")
    vectors = await server.engine.embed([str(t) for t in texts])
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
