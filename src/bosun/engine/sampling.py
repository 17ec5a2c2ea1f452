"""Choosing the next token: penalties, logit bias, temperature, top-k, top-p, min-p, seeds,
and the log-probabilities OpenAI's ``logprobs`` returns."""

from __future__ import annotations

from collections import Counter

import torch

from bosun.engine.client import SamplingParams
from bosun.engine.structured import JsonConstraint

__all__ = ["Sampler", "is_plain_greedy"]


def is_plain_greedy(params: SamplingParams) -> bool:
    """Argmax with nothing to apply first: such rows can be decided in one batched op."""
    return (
        params.temperature == 0
        and not params.logit_bias
        and params.presence_penalty == 0
        and params.frequency_penalty == 0
        and params.repetition_penalty == 1
        and params.logprobs is None
        and params.min_tokens == 0
        and params.json_schema is None
        and not params.json_object
    )


class Sampler:
    """The sampling state of one sequence (its seeded generator and token counts)."""

    def __init__(
        self,
        params: SamplingParams,
        prompt: list[int],
        eos: set[int],
        constraint: JsonConstraint | None = None,
    ) -> None:
        self.params = params
        self.constraint = constraint
        self.eos = eos
        self.prompt = set(prompt)
        self.counts: Counter[int] = Counter()
        self.generator: torch.Generator | None = None
        if params.seed is not None:
            self.generator = torch.Generator()
            self.generator.manual_seed(params.seed & (2**63 - 1))

    def record(self, token: int) -> None:
        self.counts[token] += 1
        if self.constraint is not None:
            self.constraint.advance(token)

    def process(self, logits: torch.Tensor, generated: int) -> torch.Tensor:
        """Logits [V] after bias and penalties (a new tensor)."""
        p = self.params
        logits = logits.clone()
        if p.logit_bias:
            ids = torch.tensor(list(p.logit_bias), dtype=torch.long)
            valid = ids[(ids >= 0) & (ids < logits.shape[-1])]
            if len(valid):
                bias = torch.tensor([p.logit_bias[int(i)] for i in valid], dtype=logits.dtype)
                logits[valid] += bias
        if p.repetition_penalty != 1 and (self.counts or self.prompt):
            seen = torch.tensor(sorted(set(self.counts) | self.prompt), dtype=torch.long)
            values = logits[seen]
            logits[seen] = torch.where(
                values > 0, values / p.repetition_penalty, values * p.repetition_penalty
            )
        if (p.presence_penalty or p.frequency_penalty) and self.counts:
            ids = torch.tensor(list(self.counts), dtype=torch.long)
            counts = torch.tensor(list(self.counts.values()), dtype=logits.dtype)
            logits[ids] -= p.frequency_penalty * counts + p.presence_penalty
        if generated < p.min_tokens and not p.ignore_eos:
            for token in self.eos:
                logits[token] = float("-inf")
        if self.constraint is not None:
            logits = self.constraint.mask(logits)
        return logits

    def choose(self, logits: torch.Tensor) -> int:
        p = self.params
        if p.temperature == 0:
            return int(torch.argmax(logits))
        logits = logits / p.temperature
        if p.top_k and p.top_k < logits.shape[-1]:
            kth = torch.topk(logits, p.top_k).values[-1]
            logits = torch.where(logits < kth, float("-inf"), logits)
        probs = torch.softmax(logits, dim=-1)
        if p.min_p > 0:
            probs = torch.where(probs < p.min_p * probs.max(), 0.0, probs)
        if p.top_p < 1:
            sorted_probs, order = torch.sort(probs, descending=True)
            cumulative = torch.cumsum(sorted_probs, dim=-1)
            drop = cumulative - sorted_probs > p.top_p
            sorted_probs[drop] = 0.0
            probs = torch.zeros_like(probs).scatter_(0, order, sorted_probs)
        return int(torch.multinomial(probs, 1, generator=self.generator))
