"""Presets against their recorded upstream configs.

``tests/catalog/recorded/`` holds, per Hugging Face repository, the keys of its
``config.json`` that sizing reads, as published (the source is in each file). Each is read
by the same code that sizes a bring-your-own model (``spec_from_config``), and every
architecture fact must agree with the preset's: a typo in either, or a reader that
misses a field, fails here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bosun.catalog import all_presets
from bosun.catalog.byo import spec_from_config
from bosun.catalog.presets import ModelSpec, find_by_hf_id

RECORDED = sorted((Path(__file__).parent / "recorded").glob("*.json"))
FACTS = (
    "architecture",
    "layers",
    "hidden_size",
    "attention_heads",
    "kv_heads",
    "head_dim",
    "intermediate_size",
    "vocab_size",
    "max_context",
    "tied_embeddings",
    "experts",
    "experts_per_token",
    "shared_experts",
    "moe_intermediate_size",
    "shared_intermediate_size",
    "moe_latent_size",
    "first_dense_layers",
    "gated_mlp",
    "mla",
    "indexer_heads",
    "indexer_head_dim",
    "sliding_window",
    "sliding_layers",
    "global_kv_heads",
    "global_head_dim",
    "layer_pattern",
    "recurrent",
    "quantization",
)
# Families whose every preset must have a recorded config (the hybrids, whose facts are
# the easiest to get wrong).
COVERED_FAMILIES = ("nemotron", "qwen3.5")


def _load(path: Path) -> dict[str, Any]:
    config: dict[str, Any] = json.loads(path.read_text("utf-8"))
    return config


def _hf_id(path: Path) -> str:
    return path.stem.replace("__", "/", 1)


@pytest.mark.parametrize("path", RECORDED, ids=lambda p: p.stem)
def test_the_preset_agrees_with_its_recorded_config(path: Path) -> None:
    preset = find_by_hf_id(_hf_id(path))
    assert preset is not None, f"no preset serves {_hf_id(path)}"
    config = _load(path)
    assert preset.source.startswith(config["_source"].split(" ")[0])
    read = spec_from_config(config, preset.name, str(path), preset.parameters)
    differ = {
        fact: (getattr(preset, fact), getattr(read, fact))
        for fact in FACTS
        if getattr(preset, fact) != getattr(read, fact)
    }
    assert not differ, f"preset, config.json: {differ}"


@pytest.mark.parametrize(
    "preset",
    [p for p in all_presets() if p.family in COVERED_FAMILIES],
    ids=lambda p: p.name,
)
def test_every_hybrid_preset_has_a_recorded_config(preset: ModelSpec) -> None:
    assert preset.hf_id is not None
    assert any(_hf_id(path) == preset.hf_id for path in RECORDED)


def test_a_changed_fact_is_caught() -> None:
    """The check itself: one digit off in the recorded file and the preset disagree."""
    path = next(p for p in RECORDED if "Nano-9B" in p.stem)
    config = _load(path)
    config["mamba_head_dim"] = 64
    preset = find_by_hf_id(_hf_id(path))
    assert preset is not None
    read = spec_from_config(config, preset.name, str(path), preset.parameters)
    assert read.recurrent != preset.recurrent
