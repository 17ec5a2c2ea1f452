"""The embedder the RAG service uses: Bosun's embedding engine, in the same process."""

from __future__ import annotations

from bosun.engine.client import InvalidRequestError
from bosun.engine.embedder import EmbeddingEngine, EmbeddingOptions
from bosun.rag.library import LibraryError

__all__ = ["EngineEmbedder"]


class EngineEmbedder:
    """:class:`EmbeddingEngine` as the library's :class:`~bosun.rag.library.Embedder`."""

    def __init__(self, model: str, threads: int | None = None) -> None:
        self.engine = EmbeddingEngine(EmbeddingOptions(model, threads=threads))
        info = self.engine.models[0]
        self.name, self.max_tokens = info.name, info.max_model_len
        self.dimensions = self.engine.dimensions

    async def start(self) -> None:
        await self.engine.start()

    def count(self, text: str) -> int:
        return len(self.engine.tokenize(text))

    async def embed(self, texts: list[str]) -> list[list[float]]:
        try:
            return await self.engine.embed(texts)
        except InvalidRequestError as exc:
            raise LibraryError(422, str(exc)) from None
