"""The embedding engine: sentence vectors from an encoder model (BERT-like), as
sentence-transformers computes them, behind the same engine interface as generation.

A sentence-transformers directory says how: ``modules.json`` lists the modules (the
transformer, then pooling, then optionally normalization), ``1_Pooling/config.json`` the
pooling (mean over the tokens, the [CLS] token, or the max), and
``sentence_bert_config.json`` the longest input. A plain Hugging Face encoder without them
is mean-pooled and normalized, the common choice.

Texts are embedded in batches of ``batch_size``, sorted by length so that a batch pads
little; one batch runs at a time, on the engine's own thread (the event loop keeps
serving). One thread, always the same: torch's OpenMP workers spin a while after a call
on the thread that made it, and calls from a pool's changing threads kept two teams of
workers fighting for the cores (a 15-token query took 11-12 ms so, 6 ms on one thread;
all-MiniLM-L6-v2 on 2 cores). A text longer than the model takes is refused, naming it,
rather than cut silently.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import torch

from bosun.engine.client import (
    EngineError,
    EngineOverloadedError,
    EngineStats,
    GenerationRequest,
    InvalidRequestError,
    ModelInfo,
    TokenEvent,
)
from bosun.engine.loader import LocalModel, load_tokenizer, resolve_model

__all__ = ["EmbeddingEngine", "EmbeddingOptions", "Pooling", "is_embedding_model", "pooling_of"]

T = TypeVar("T")
# Encoder architectures served as embedding models (their config's ``architectures``).
ENCODERS = frozenset(
    {"BertModel", "XLMRobertaModel", "RobertaModel", "MPNetModel", "NomicBertModel"}
)
Mode = Literal["mean", "cls", "max"]


@dataclass(frozen=True)
class Pooling:
    mode: Mode = "mean"
    normalize: bool = True
    max_tokens: int = 512


def is_embedding_model(model: LocalModel) -> bool:
    """A sentence-transformers directory, or a plain encoder (no language-model head)."""
    if (model.path / "modules.json").is_file():
        return True
    return bool(set(model.config.get("architectures") or ()) & ENCODERS)


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def pooling_of(model: LocalModel) -> Pooling:
    """How a model's token vectors become one vector, from its sentence-transformers
    files (mean pooling and normalization where it has none)."""
    limit = int(model.config.get("max_position_embeddings") or 512)
    settings = _json(model.path / "sentence_bert_config.json") or {}
    limit = min(limit, int(settings.get("max_seq_length") or limit))
    modules = _json(model.path / "modules.json")
    if modules is None:
        return Pooling(max_tokens=limit)
    kinds = {str(m.get("type", "")).rsplit(".", 1)[-1]: m for m in modules}
    mode: Mode = "mean"
    if "Pooling" in kinds:
        config = _json(model.path / kinds["Pooling"].get("path", "") / "config.json") or {}
        if config.get("pooling_mode_cls_token"):
            mode = "cls"
        elif config.get("pooling_mode_max_tokens"):
            mode = "max"
        elif not config.get("pooling_mode_mean_tokens", True):
            raise EngineError(f"{model.path}: a pooling Bosun does not implement ({config})")
    return Pooling(mode=mode, normalize="Normalize" in kinds, max_tokens=limit)


@dataclass(frozen=True)
class EmbeddingOptions:
    model: str
    served_name: str | None = None
    batch_size: int = 32
    device: str = "cpu"
    threads: int | None = None
    max_waiting: int = 64  # embedding requests queued behind the running one


class EmbeddingEngine:
    """An encoder model serving ``/v1/embeddings``."""

    def __init__(self, options: EmbeddingOptions) -> None:
        """Finds the model and reads its settings (fast); :meth:`start` loads it."""
        self.options = options
        self._local = resolve_model(options.model)
        if not is_embedding_model(self._local):
            raise EngineError(f"--model: {self._local.path} is not an embedding (encoder) model")
        self._pooling = pooling_of(self._local)
        self._info = ModelInfo(
            name=options.served_name or self._local.name,
            max_model_len=self._pooling.max_tokens,
            created=int(time.time()),
            embeddings=True,
            vocab_size=int(self._local.config.get("vocab_size") or 0) or None,
        )
        self._model: Any = None
        self._tokenizer: Any = load_tokenizer(self._local)
        self._lock = asyncio.Lock()
        # Every torch call of this engine, loading included (see the module's notes).
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="bosun-embed")
        self._waiting = 0
        self._running = 0

    @property
    def models(self) -> Sequence[ModelInfo]:
        return [self._info]

    @property
    def dimensions(self) -> int:
        """The length of its vectors (the encoder's hidden size)."""
        return int(self._local.config["hidden_size"])

    async def _on_thread(self, work: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, work, *args)

    async def start(self) -> None:
        await self._on_thread(self._load)

    def _load(self) -> None:
        from transformers import AutoModel

        if self.options.threads:
            torch.set_num_threads(self.options.threads)
        model = AutoModel.from_pretrained(self._local.path, dtype=torch.float32)
        self._model = model.to(self.options.device).eval()

    def tokenize(self, text: str) -> list[int]:
        ids: list[int] = self._tokenizer(text, add_special_tokens=True, verbose=False)["input_ids"]
        return ids

    def apply_chat_template(
        self, messages: list[dict[str, object]], tools: list[dict[str, object]] | None = None
    ) -> list[int]:
        raise InvalidRequestError(self._not_generative(), "model")

    def _not_generative(self) -> str:
        return (
            f"{self._info.name} is an embedding model: it answers /v1/embeddings, not completions"
        )

    async def generate(self, request: GenerationRequest) -> AsyncIterator[TokenEvent]:
        raise InvalidRequestError(self._not_generative(), "model")
        yield  # pragma: no cover - makes this an async generator, as the interface is

    async def embed(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            raise InvalidRequestError("input: give at least one text", "input")
        for i, text in enumerate(texts):
            if not text.strip():
                raise InvalidRequestError(f"input[{i}]: an empty text has no embedding", "input")
        if self._waiting >= self.options.max_waiting:
            raise EngineOverloadedError(
                f"{self.options.max_waiting} embedding requests are already waiting"
            )
        self._waiting += 1
        try:
            await self._lock.acquire()
        finally:
            self._waiting -= 1
        self._running += 1
        try:
            return await self._on_thread(self._embed, texts)
        finally:
            self._running -= 1
            self._lock.release()

    def _embed(self, texts: list[str]) -> list[list[float]]:
        if self._model is None:
            raise EngineError("the engine is not started")
        pooling = self._pooling
        encoded = [
            self._tokenizer(t, add_special_tokens=True, verbose=False)["input_ids"] for t in texts
        ]
        for i, ids in enumerate(encoded):
            if len(ids) > pooling.max_tokens:
                raise InvalidRequestError(
                    f"input[{i}]: {len(ids)} tokens, more than this model's "
                    f"{pooling.max_tokens}: split the text",
                    "input",
                )
        order = sorted(range(len(texts)), key=lambda i: len(encoded[i]))
        out: list[list[float]] = [[] for _ in texts]
        pad = int(self._tokenizer.pad_token_id or 0)
        size = self.options.batch_size
        with torch.inference_mode():
            for start in range(0, len(order), size):
                chosen = order[start : start + size]
                width = max(len(encoded[i]) for i in chosen)
                ids = torch.full((len(chosen), width), pad, dtype=torch.long)
                mask = torch.zeros((len(chosen), width), dtype=torch.long)
                for row, i in enumerate(chosen):
                    ids[row, : len(encoded[i])] = torch.tensor(encoded[i])
                    mask[row, : len(encoded[i])] = 1
                device = self.options.device
                hidden = self._model(
                    input_ids=ids.to(device), attention_mask=mask.to(device)
                ).last_hidden_state
                vectors = _pool(hidden, mask.to(device), pooling)
                for row, i in enumerate(chosen):
                    out[i] = vectors[row].float().cpu().tolist()
        return out

    def stats(self) -> EngineStats:
        return EngineStats(running=self._running, waiting=self._waiting)

    async def load_adapter(self, name: str, path: str, strength: float = 1.0) -> None:
        raise InvalidRequestError("an embedding model takes no LoRA adapters", "lora_name")

    async def unload_adapter(self, name: str) -> None:
        raise InvalidRequestError("an embedding model takes no LoRA adapters", "lora_name")

    async def shutdown(self) -> None:
        async with self._lock:
            self._model = None
        self._thread.shutdown(wait=False)


def _pool(hidden: torch.Tensor, mask: torch.Tensor, pooling: Pooling) -> torch.Tensor:
    """One vector per row of ``hidden`` (batch, tokens, width), padding masked out."""
    if pooling.mode == "cls":
        vectors = hidden[:, 0]
    elif pooling.mode == "max":
        vectors = hidden.masked_fill(mask.unsqueeze(-1) == 0, float("-inf")).amax(dim=1)
    else:
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        vectors = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
    if pooling.normalize:
        vectors = torch.nn.functional.normalize(vectors, p=2, dim=1)
    return vectors
