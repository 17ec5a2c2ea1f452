"""What the server answers, as documented in its OpenAPI schema.

The handlers build their answers as plain dicts (no second validation on the hot path);
these models only describe them, so clients, generated SDKs and the schema fuzzer
(``tests/serving/test_fuzz.py``, which checks every response against them) see the real
wire surface: OpenAI's bodies, and errors as ``{"error": {...}}`` with their true status
codes rather than FastAPI's 422.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, Field
from pydantic.json_schema import models_json_schema

__all__ = [
    "ERRORS",
    "ChatCompletion",
    "ChatCompletionChunk",
    "Completion",
    "CompletionChunk",
    "EmbeddingList",
    "ErrorResponse",
    "Health",
    "ModelList",
    "errors",
    "events",
    "install_openapi",
    "text",
]

FinishReason = Literal["stop", "length", "abort", "tool_calls"]


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorResponse(BaseModel):
    """Every error, whatever its status: OpenAI's shape."""

    error: ErrorDetail


class Health(BaseModel):
    status: str = Field(description="ok; while not ready: loading, or why loading failed")


class PromptTokensDetails(BaseModel):
    cached_tokens: int = Field(ge=0)


class Usage(BaseModel):
    prompt_tokens: int = Field(ge=0)
    completion_tokens: int = Field(ge=0)
    total_tokens: int = Field(ge=0)
    prompt_tokens_details: PromptTokensDetails | None = None


class TopLogprob(BaseModel):
    token: str
    logprob: float
    bytes: list[int] | None


class TokenLogprob(TopLogprob):
    top_logprobs: list[TopLogprob]


class ChatLogprobs(BaseModel):
    content: list[TokenLogprob] | None


class FunctionCall(BaseModel):
    name: str
    arguments: str = Field(description="JSON text")


class ToolCall(BaseModel):
    id: str
    type: Literal["function"]
    function: FunctionCall


class AssistantMessage(BaseModel):
    role: Literal["assistant"]
    content: str | None
    tool_calls: list[ToolCall] | None = None


class ChatChoice(BaseModel):
    index: int = Field(ge=0)
    message: AssistantMessage
    logprobs: ChatLogprobs | None
    finish_reason: FinishReason | None


class ChatCompletion(BaseModel):
    """``stream: false``; with ``stream: true`` the answer is ``text/event-stream`` of
    ``chat.completion.chunk`` events, ended by ``data: [DONE]``."""

    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage


class ToolCallDelta(ToolCall):
    index: int = Field(ge=0)


class Delta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None
    tool_calls: list[ToolCallDelta] | None = None


class ChatChunkChoice(BaseModel):
    index: int = Field(ge=0)
    delta: Delta
    logprobs: ChatLogprobs | None
    finish_reason: FinishReason | None


class ChatCompletionChunk(BaseModel):
    """One event of a streamed chat completion; with ``include_usage`` every chunk has
    ``usage: null`` and a last one, with no choices, has the totals."""

    id: str
    object: Literal["chat.completion.chunk"]
    created: int
    model: str
    choices: list[ChatChunkChoice]
    usage: Usage | None = None


class CompletionLogprobs(BaseModel):
    tokens: list[str]
    token_logprobs: list[float]
    top_logprobs: list[dict[str, float]]
    text_offset: list[int]


class CompletionChoice(BaseModel):
    index: int = Field(ge=0)
    text: str
    logprobs: CompletionLogprobs | None
    finish_reason: FinishReason | None


class Completion(BaseModel):
    """``stream: false``; with ``stream: true``, ``text/event-stream`` as for chat."""

    id: str
    object: Literal["text_completion"]
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage


class CompletionChunk(BaseModel):
    """One event of a streamed completion (``usage`` as for chat)."""

    id: str
    object: Literal["text_completion"]
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None


class Embedding(BaseModel):
    object: Literal["embedding"]
    index: int = Field(ge=0)
    embedding: list[float] | str = Field(
        description="floats, or with encoding_format base64 their float32 bytes, base64"
    )


class EmbeddingUsage(BaseModel):
    prompt_tokens: int = Field(ge=0)
    total_tokens: int = Field(ge=0)


class EmbeddingList(BaseModel):
    object: Literal["list"]
    model: str
    data: list[Embedding]
    usage: EmbeddingUsage


class ModelCard(BaseModel):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str
    root: str
    parent: str | None
    max_model_len: int


class ModelList(BaseModel):
    object: Literal["list"]
    data: list[ModelCard]


_WHY = {
    400: "The request cannot be served as written; `param` names the field.",
    401: "A key is set and the request has none, or a wrong one.",
    403: "The server was not started to allow this (--allow-runtime-lora).",
    404: "No such model, adapter or route.",
    408: "The request body did not arrive in time.",
    413: "The request body is over --max-request-bytes.",
    429: "Too many requests are waiting; Retry-After says when to try again.",
    500: "A fault in the server; the request failed alone.",
    503: "The model is still loading, or failed to load.",
}
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": why} for status, why in _WHY.items()
}


def text(description: str) -> dict[str, Any]:
    """A plain-text 200 (metrics, adapter loading)."""
    return {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": description}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The documented error answers of a route: ``statuses``, each in OpenAI's shape."""
    return {status: ERRORS[status] for status in statuses}


_COMPONENTS = "#/components/schemas/{model}"


def events(chunk: type[BaseModel]) -> dict[str, Any]:
    """The schema of each server-sent event of a stream of ``chunk``: its data is a chunk,
    an error (a failure after the stream started), or ``[DONE]`` at the end."""
    json_data = {
        "type": "string",
        "contentMediaType": "application/json",
        "contentSchema": {
            "anyOf": [
                {"$ref": _COMPONENTS.format(model=chunk.__name__)},
                {"$ref": _COMPONENTS.format(model=ErrorResponse.__name__)},
            ]
        },
    }
    return {
        "type": "object",
        "required": ["data"],
        "properties": {"data": {"anyOf": [{"const": "[DONE]"}, json_data]}},
    }


def install_openapi(app: FastAPI) -> None:
    """The app's schema without FastAPI's 422 answers: a body that fails validation is a
    400 in OpenAI's shape here (``errors.py``), which the routes document themselves."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    operation.get("responses", {}).pop("422", None)
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for name in ("HTTPValidationError", "ValidationError"):
                components.pop(name, None)
            # What the event streams carry (no route returns these models directly).
            _, found = models_json_schema(
                [(m, "serialization") for m in (ChatCompletionChunk, CompletionChunk)],
                ref_template=_COMPONENTS,
            )
            components.update(found.get("$defs", {}))
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
