"""Structured output: decoding constrained to a JSON schema (``response_format``).

Uses llguidance (Microsoft's Rust grammar engine behind Guidance): it runs on CPUs with no
extra build, reads Hugging Face tokenizers directly, and computes a token mask per step
in well under a millisecond. (xgrammar and outlines-core were the alternatives; llguidance
has the smallest footprint here and needs no torch integration of its own.)
"""

from __future__ import annotations

import json
from typing import Any

import torch

from bosun.engine.client import InvalidRequestError, SamplingParams

__all__ = ["JsonConstraint", "TokenizerGrammar"]


class TokenizerGrammar:
    """llguidance's view of one tokenizer, built once per engine."""

    def __init__(self, tokenizer: Any) -> None:
        import llguidance.hf

        self._tokenizer = llguidance.hf.from_tokenizer(tokenizer)

    def constraint(self, params: SamplingParams) -> JsonConstraint | None:
        if params.json_schema is None and not params.json_object:
            return None
        schema = params.json_schema if params.json_schema is not None else {"type": "object"}
        return JsonConstraint(self._tokenizer, schema, params.schema_param)


class JsonConstraint:
    """The allowed next tokens of one sequence, advanced token by token."""

    def __init__(
        self, tokenizer: Any, schema: dict[str, Any], param: str = "response_format"
    ) -> None:
        import llguidance

        try:
            grammar = llguidance.LLMatcher.grammar_from_json_schema(
                json.dumps(schema), defaults={"whitespace_flexible": False}
            )
        except (ValueError, TypeError) as exc:
            raise InvalidRequestError(f"{param}: {exc}", param) from None
        self._matcher = llguidance.LLMatcher(tokenizer, grammar)
        if self._matcher.is_error():
            raise InvalidRequestError(
                f"{param}: the JSON schema is not supported: {self._matcher.get_error()}", param
            )

    def mask(self, logits: torch.Tensor) -> torch.Tensor:
        """Logits with every token the grammar forbids set to -inf."""
        allowed = torch.frombuffer(bytearray(self._matcher.compute_logit_bias()), dtype=torch.uint8)
        vocab = min(len(allowed), logits.shape[-1])
        masked = torch.full_like(logits, float("-inf"))
        keep = allowed[:vocab] > 0
        masked[:vocab][keep] = logits[:vocab][keep]
        return masked

    def advance(self, token: int) -> None:
        self._matcher.consume_token(token)

    @property
    def finished(self) -> bool:
        return bool(self._matcher.is_stopped())
