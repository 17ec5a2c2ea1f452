"""The interface between the HTTP layer and an engine, and the types that cross it.

Wire types (OpenAI protocol) live in :mod:`bosun.serving.protocol`; they are converted to
:class:`SamplingParams` in exactly one place. Engines never see HTTP types.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

__all__ = [
    "EngineClient",
    "EngineError",
    "EngineOverloadedError",
    "EngineStats",
    "FinishReason",
    "GenerationRequest",
    "InvalidRequestError",
    "ModelInfo",
    "SamplingParams",
    "TemplateAbilities",
    "TokenEvent",
    "UnknownAdapterError",
]

FinishReason = Literal["stop", "length", "abort"]


class EngineError(Exception):
    """The engine failed on a request (not the caller's fault)."""


class InvalidRequestError(EngineError):
    """The request cannot be served as asked (too long for the context...).

    ``param`` names the offending request parameter for the HTTP error body.
    """

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class UnknownAdapterError(InvalidRequestError):
    """No LoRA adapter of that name is loaded (404 on the wire)."""


class EngineOverloadedError(EngineError):
    """The waiting queue is full; try again after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class SamplingParams:
    """How to pick tokens. Defaults are greedy-free OpenAI defaults (temperature 1)."""

    max_tokens: int = 16
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0  # 0: off
    min_p: float = 0.0
    seed: int | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    repetition_penalty: float = 1.0
    logit_bias: dict[int, float] = field(default_factory=dict)
    stop: tuple[str, ...] = ()
    stop_token_ids: tuple[int, ...] = ()
    ignore_eos: bool = False
    min_tokens: int = 0
    logprobs: int | None = None  # number of top alternatives to return, or None
    json_schema: dict[str, object] | None = None  # constrain output to this schema
    json_object: bool = False
    schema_param: str = "response_format"  # the request field the schema came from


@dataclass(frozen=True)
class GenerationRequest:
    request_id: str
    prompt_token_ids: Sequence[int]
    params: SamplingParams
    adapter: str | None = None


@dataclass(frozen=True)
class TokenEvent:
    """One step of a generation: new text, and on the last event the finish reason."""

    text: str
    token_ids: tuple[int, ...]
    finish_reason: FinishReason | None = None
    # Per token: (chosen token's logprob, [(token text, logprob), ...] top alternatives).
    logprobs: tuple[tuple[str, float, tuple[tuple[str, float], ...]], ...] = ()
    prompt_tokens: int = 0
    cached_tokens: int = 0


@dataclass(frozen=True)
class TemplateAbilities:
    """What the model's chat template renders (:func:`bosun.engine.chat_template.probe`)."""

    tools: bool = False  # the tool definitions it is given (``tools=``)
    tool_calls: bool = False  # an assistant message's calls and the tool results
    parallel_calls: bool = False  # ... also two calls in one assistant message
    system: bool = True  # a system message (Gemma 2's refuses one)
    # ... also when the conversation ends with a tool result, not a user message (Mistral's
    # template shows it only in a last user message)
    system_mid_conversation: bool = True


@dataclass(frozen=True)
class ModelInfo:
    name: str
    max_model_len: int
    created: int
    owned_by: str = "bosun"
    parent: str | None = None
    embeddings: bool = False
    vocab_size: int | None = None  # token ids a prompt may hold: 0 to vocab_size - 1
    template: TemplateAbilities = TemplateAbilities()


@dataclass
class EngineStats:
    running: int = 0
    waiting: int = 0
    kv_cache_usage: float = 0.0
    preemptions: int = 0
    prefix_cache_queries: int = 0
    prefix_cache_hits: int = 0


@runtime_checkable
class EngineClient(Protocol):
    """What the HTTP layer may ask of an engine."""

    @property
    def models(self) -> Sequence[ModelInfo]: ...

    def tokenize(self, text: str) -> list[int]: ...

    def apply_chat_template(
        self, messages: list[dict[str, object]], tools: list[dict[str, object]] | None = None
    ) -> list[int]: ...

    def generate(self, request: GenerationRequest) -> AsyncIterator[TokenEvent]:
        """Stream the generation; closing the iterator cancels it and frees its memory."""
        ...

    async def embed(self, texts: list[str]) -> list[list[float]]: ...

    def stats(self) -> EngineStats: ...

    async def load_adapter(self, name: str, path: str, strength: float = 1.0) -> None:
        """Load a PEFT LoRA adapter, served as model ``name`` (its parent: the base)."""
        ...

    async def unload_adapter(self, name: str) -> None:
        """Stop serving the adapter; requests already using it finish with it."""
        ...

    async def start(self) -> None:
        """Load and warm up; ``/health`` turns ready only after this returns."""

    async def shutdown(self) -> None:
        """Finish in-flight requests, then release resources."""
