"""Shared fixtures of the engine tests."""

from __future__ import annotations

from typing import Any

import pytest

from bosun.engine.model import Decoder
from tests.engine.tiny import hf_reference, tiny_decoder


@pytest.fixture(scope="module")
def model() -> Decoder:
    """The Bosun decoder of the tiny random Llama."""
    return tiny_decoder()


@pytest.fixture(scope="module")
def reference() -> Any:
    """transformers' Llama with the same weights."""
    return hf_reference()
