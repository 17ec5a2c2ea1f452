"""A small deterministic engine for API tests: words as tokens, a fixed text to generate.

It honours what the HTTP layer promises (max_tokens, stop strings across tokens, seeds,
n, logprobs, cancellation, a bounded queue) without a model, so the serving layer can be
tested fast and exactly.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Sequence

from bosun.engine.client import (
    EngineOverloadedError,
    EngineStats,
    FinishReason,
    GenerationRequest,
    InvalidRequestError,
    ModelInfo,
    TokenEvent,
    UnknownAdapterError,
)
from bosun.engine.stops import StopMatcher

__all__ = ["FAKE_VOCAB_SIZE", "FakeEngine"]

FAKE_VOCAB_SIZE = 32_000

TEXT = [
    *["The", "quick", "brown", "fox", "jumps", "over", "the", "lazy", "dog", "."],
    *["Bosun", "serves", "models", "on", "Kubernetes", "and", "on", "one", "machine", "."],
]


class FakeEngine:
    def __init__(
        self,
        name: str = "fake-model",
        max_model_len: int = 256,
        max_running: int = 8,
        max_waiting: int = 64,
        delay: float = 0.0,
        answer: str | None = None,
    ) -> None:
        self._models = [
            ModelInfo(
                name=name,
                max_model_len=max_model_len,
                created=int(time.time()),
                vocab_size=FAKE_VOCAB_SIZE,
            )
        ]
        self.max_model_len = max_model_len
        self.delay = delay
        # What it generates, word by word (words joined by spaces): TEXT, or ``answer``
        # (a tool call in some family's format, say), from its first word on.
        self.words = answer.split(" ") if answer is not None else TEXT
        self._slots = asyncio.Semaphore(max_running) if max_running else None
        self.max_running = max_running
        self.max_waiting = max_waiting
        self._running = 0
        self._waiting = 0
        self.vocab: dict[str, int] = {}
        self.started = False
        self.cancelled: list[str] = []

    @property
    def models(self) -> Sequence[ModelInfo]:
        return self._models

    async def load_adapter(self, name: str, path: str, strength: float = 1.0) -> None:
        """Bookkeeping only (the fake has no weights): the name is listed with its parent."""
        if any(m.name == name for m in self._models):
            raise InvalidRequestError(f"the model name {name!r} is already served", "lora_name")
        base = self._models[0]
        self._models.append(
            ModelInfo(
                name, base.max_model_len, base.created, parent=base.name, vocab_size=base.vocab_size
            )
        )

    async def unload_adapter(self, name: str) -> None:
        kept = [m for m in self._models if not (m.name == name and m.parent)]
        if len(kept) == len(self._models):
            raise UnknownAdapterError(f"no LoRA adapter named {name!r} is loaded", "lora_name")
        self._models = kept

    def _id(self, word: str) -> int:
        return self.vocab.setdefault(word, (len(self.vocab) + 3) % FAKE_VOCAB_SIZE)

    def tokenize(self, text: str) -> list[int]:
        return [self._id(w) for w in text.split()]

    def apply_chat_template(
        self, messages: list[dict[str, object]], tools: list[dict[str, object]] | None = None
    ) -> list[int]:
        text = " ".join(f"{m.get('role')}: {m.get('content')}" for m in messages)
        if tools:
            text += f" tools: {len(tools)}"
        return self.tokenize(text + " assistant:")

    async def embed(self, texts: list[str]) -> list[list[float]]:
        raise InvalidRequestError(f"{self._models[0].name} is not an embedding model", "model")

    def stats(self) -> EngineStats:
        return EngineStats(running=self._running, waiting=self._waiting)

    async def start(self) -> None:
        self.started = True

    async def shutdown(self) -> None:
        while self._running or self._waiting:
            await asyncio.sleep(0.01)

    async def generate(self, request: GenerationRequest) -> AsyncIterator[TokenEvent]:
        params = request.params
        prompt = len(request.prompt_token_ids)
        if not prompt:
            raise InvalidRequestError("the prompt is empty", "prompt")
        if any(not 0 <= t < FAKE_VOCAB_SIZE for t in request.prompt_token_ids):
            raise InvalidRequestError("the prompt holds token ids outside the vocabulary", "prompt")
        if prompt + params.max_tokens > self.max_model_len:
            raise InvalidRequestError(
                f"this model's maximum context length is {self.max_model_len} tokens; "
                f"the prompt has {prompt} and max_tokens asks for {params.max_tokens}",
                "max_tokens",
            )
        busy = self.max_running and self._running >= self.max_running
        if busy and self._waiting >= self.max_waiting:
            raise EngineOverloadedError("the waiting queue is full", retry_after=1.0)
        self._waiting += 1
        try:
            if self._slots is not None:
                await self._slots.acquire()
        finally:
            self._waiting -= 1
        self._running += 1
        rng = random.Random(params.seed if params.seed is not None else request.request_id)
        words = self.words
        offset = rng.randrange(len(words)) if params.temperature > 0 and words is TEXT else 0
        stops = StopMatcher(params.stop)
        finished = False
        try:
            for i in range(params.max_tokens):
                if self.delay:
                    await asyncio.sleep(self.delay)
                else:
                    await asyncio.sleep(0)
                word = words[(offset + i) % len(words)]
                text, stopped = stops.feed(("" if i == 0 else " ") + word)
                done = words is not TEXT and i == len(words) - 1  # the answer is complete
                last = stopped or done or i == params.max_tokens - 1
                reason: FinishReason | None = (
                    "stop" if stopped or done else ("length" if last else None)
                )
                if last and not stopped:
                    text += stops.flush()
                logprobs: tuple[tuple[str, float, tuple[tuple[str, float], ...]], ...] = ()
                if params.logprobs is not None:
                    alternatives = tuple(
                        (w, -1.0 - j) for j, w in enumerate(TEXT[: params.logprobs])
                    )
                    logprobs = ((word, -0.5, alternatives),)
                yield TokenEvent(
                    text=text,
                    token_ids=(self._id(word),),
                    finish_reason=reason,
                    logprobs=logprobs,
                    prompt_tokens=prompt,
                )
                if last:
                    finished = True
                    return
        finally:
            if not finished:
                self.cancelled.append(request.request_id)
            self._running -= 1
            if self._slots is not None:
                self._slots.release()
