"""OpenAI wire models (request fields in OpenAI's order), and the one conversion from a
request to engine :class:`SamplingParams`. Conversions never mutate the request."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bosun.engine.client import SamplingParams

__all__ = [
    "ChatCompletionRequest",
    "ChatMessage",
    "CompletionRequest",
    "EmbeddingRequest",
    "FunctionDefinition",
    "LoadLoraAdapterRequest",
    "NamedToolChoice",
    "ResponseFormat",
    "ResponsesFunctionTool",
    "ResponsesNamedToolChoice",
    "ResponsesRequest",
    "StreamOptions",
    "ToolDefinition",
    "UnloadLoraAdapterRequest",
    "check_json_schema",
    "sampling_params",
]

MAX_N = 16


class _Wire(BaseModel):
    # Clients send fields Bosun does not use (store, metadata, parallel_tool_calls...):
    # they are accepted and ignored, as OpenAI and vLLM do.
    model_config = ConfigDict(extra="allow")


class StreamOptions(_Wire):
    include_usage: bool = False


class JsonSchemaFormat(_Wire):
    name: str = "response"
    schema_: dict[str, Any] = Field(default_factory=dict, alias="schema")
    strict: bool | None = None


class ResponseFormat(_Wire):
    type: Literal["text", "json_object", "json_schema"] = "text"
    json_schema: JsonSchemaFormat | None = None

    @model_validator(mode="after")
    def _schema_given(self) -> ResponseFormat:
        if self.type == "json_schema" and self.json_schema is None:
            raise ValueError("response_format of type json_schema needs a json_schema")
        return self


class ChatMessage(_Wire):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        parts = []
        for part in self.content:
            if part.get("type") != "text":
                raise ValueError(f"content part of type {part.get('type')!r} is not supported")
            parts.append(str(part.get("text", "")))
        return "".join(parts)


_TOOL_NAME = r"^[a-zA-Z0-9_-]{1,64}$"


class FunctionDefinition(_Wire):
    name: str = Field(pattern=_TOOL_NAME, description="a-z, A-Z, 0-9, _ and -, at most 64")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None

    @field_validator("parameters")
    @classmethod
    def _json_schema(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            check_json_schema(value)
            if value.get("type", "object") != "object":
                raise ValueError(
                    f"a function's parameters are an object schema (type: object), "
                    f"not type: {value['type']!r}"
                )
        return value


class ToolDefinition(_Wire):
    type: Literal["function"]
    function: FunctionDefinition


class ToolChoiceFunction(_Wire):
    name: str


class NamedToolChoice(_Wire):
    type: Literal["function"]
    function: ToolChoiceFunction


def check_json_schema(schema: dict[str, Any]) -> None:
    """``schema`` is a JSON Schema (draft 2020-12, which OpenAI's tools use)."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "the top level"
        raise ValueError(f"not a JSON Schema: at {where}: {exc.message}") from None


class _Sampling(_Wire):
    """Parameters chat and completions share (OpenAI's, then common extensions)."""

    frequency_penalty: float = Field(default=0.0, ge=-2.0, le=2.0)
    logit_bias: dict[str, float] | None = None
    n: int = Field(default=1, ge=1, le=MAX_N)
    presence_penalty: float = Field(default=0.0, ge=-2.0, le=2.0)
    seed: int | None = Field(default=None, ge=-(2**63), le=2**63 - 1)
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float = Field(default=1.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    user: str | None = None
    # Extensions vLLM popularised.
    top_k: int = Field(default=0, ge=-1)
    min_p: float = Field(default=0.0, ge=0.0, le=1.0)
    repetition_penalty: float = Field(default=1.0, gt=0.0, le=2.0)
    ignore_eos: bool = False
    min_tokens: int = Field(default=0, ge=0)
    stop_token_ids: list[int] | None = None

    @field_validator("stop")
    @classmethod
    def _four_stops(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > 4:
            raise ValueError("at most 4 stop sequences")
        return value

    @field_validator("logit_bias")
    @classmethod
    def _bias_range(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        for token, bias in (value or {}).items():
            if not token.lstrip("-").isdigit():
                raise ValueError(f"logit_bias keys are token ids, got {token!r}")
            if not -100 <= bias <= 100:
                raise ValueError(f"logit_bias values lie in [-100, 100], got {bias}")
        return value

    @model_validator(mode="after")
    def _stream_options_need_stream(self) -> _Sampling:
        if self.stream_options is not None and not self.stream:
            raise ValueError("stream_options is only allowed when stream is true")
        return self


class ChatCompletionRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    model: str
    logprobs: bool = False
    max_completion_tokens: int | None = Field(default=None, ge=1)
    max_tokens: int | None = Field(default=None, ge=1)
    response_format: ResponseFormat | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    tools: list[ToolDefinition] | None = Field(default=None, max_length=128)
    parallel_tool_calls: bool = True
    top_logprobs: int | None = Field(default=None, ge=0, le=20)

    @model_validator(mode="after")
    def _top_logprobs_need_logprobs(self) -> ChatCompletionRequest:
        if self.top_logprobs and not self.logprobs:
            raise ValueError("top_logprobs needs logprobs: true")
        return self

    @model_validator(mode="after")
    def _tools_as_chosen(self) -> ChatCompletionRequest:
        names = [t.function.name for t in self.tools or []]
        if len(set(names)) != len(names):
            raise ValueError("tools: each function needs a name of its own")
        choice = self.tool_choice
        if isinstance(choice, NamedToolChoice) and choice.function.name not in names:
            raise ValueError(
                f"tool_choice: names {choice.function.name!r}, which is not among the tools "
                f"offered ({', '.join(names) or 'none'})"
            )
        if choice == "required" and not names:
            raise ValueError("tool_choice: required needs at least one tool in tools")
        return self

    @property
    def requested_max_tokens(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


class CompletionRequest(_Sampling):
    model: str
    prompt: str | list[str] | list[int] | list[list[int]]
    best_of: int | None = Field(default=None, ge=1, le=MAX_N)
    echo: bool = False
    logprobs: int | None = Field(default=None, ge=0, le=5)
    max_tokens: int | None = Field(default=16, ge=1)
    suffix: str | None = None

    @model_validator(mode="after")
    def _supported(self) -> CompletionRequest:
        if self.suffix:
            raise ValueError("suffix is not supported")
        if self.best_of is not None and self.best_of != self.n:
            raise ValueError("best_of other than n is not supported")
        return self

    @property
    def requested_max_tokens(self) -> int | None:
        return self.max_tokens


class ResponsesFunctionTool(FunctionDefinition):
    """A function tool as the Responses API writes it (flat, not under ``function``)."""

    type: Literal["function"]


class ResponsesNamedToolChoice(_Wire):
    type: Literal["function"]
    name: str


class ResponsesRequest(_Wire):
    """``POST /v1/responses``: text or message input, function tools, a stored
    conversation to continue (``previous_response_id``)."""

    model: str
    input: str | list[dict[str, Any]] = Field(min_length=1)
    instructions: str | None = None
    tools: list[ResponsesFunctionTool] | None = Field(default=None, max_length=128)
    tool_choice: Literal["none", "auto", "required"] | ResponsesNamedToolChoice | None = None
    parallel_tool_calls: bool = True
    max_output_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    stream: bool = False
    store: bool = True
    previous_response_id: str | None = None
    metadata: dict[str, str] | None = None
    user: str | None = None


class EmbeddingRequest(_Wire):
    model: str
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)
    user: str | None = None


class LoadLoraAdapterRequest(_Wire):
    """vLLM's ``/v1/load_lora_adapter`` body, plus Bosun's ``strength``."""

    lora_name: str = Field(min_length=1, max_length=253)
    lora_path: str = Field(min_length=1)
    strength: float = Field(default=1.0, ge=0.0, le=1.0)


class UnloadLoraAdapterRequest(_Wire):
    lora_name: str = Field(min_length=1)


def sampling_params(
    request: ChatCompletionRequest | CompletionRequest, max_tokens: int, index: int = 0
) -> SamplingParams:
    """The engine's view of a request: the only place wire fields become engine fields.

    ``index`` is the choice number when ``n > 1``: each choice gets its own seed.
    """
    stop = request.stop
    stops = (stop,) if isinstance(stop, str) else tuple(stop or ())
    if isinstance(request, ChatCompletionRequest):
        logprobs = (request.top_logprobs or 0) if request.logprobs else None
        fmt = request.response_format
    else:
        logprobs = request.logprobs
        fmt = None
    seed = None if request.seed is None else request.seed + index
    return SamplingParams(
        max_tokens=max_tokens,
        temperature=request.temperature,
        top_p=request.top_p,
        top_k=max(request.top_k, 0),
        min_p=request.min_p,
        seed=seed,
        presence_penalty=request.presence_penalty,
        frequency_penalty=request.frequency_penalty,
        repetition_penalty=request.repetition_penalty,
        logit_bias={int(k): v for k, v in (request.logit_bias or {}).items()},
        stop=stops,
        stop_token_ids=tuple(request.stop_token_ids or ()),
        ignore_eos=request.ignore_eos,
        min_tokens=request.min_tokens,
        logprobs=logprobs,
        json_schema=(
            fmt.json_schema.schema_
            if fmt and fmt.type == "json_schema" and fmt.json_schema
            else None
        ),
        json_object=bool(fmt and fmt.type == "json_object"),
    )
