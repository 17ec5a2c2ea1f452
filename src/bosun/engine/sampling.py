"""Choosing the next token: penalties, logit bias, temperature, top-k, top-p, min-p, seeds.

Everything runs where the logits are (on the GPU, no copy of a vocabulary-sized row to
the host): each row's penalties and masks first (:meth:`Sampler.process`), then one
batched choice for the whole step (:func:`choose`): temperature, top-k, min-p and top-p
as per-row tensors, and a draw by the exponential race (argmax of p / E with E ~ Exp(1)
is a draw from p), whose noise comes from each seeded request's own generator on the
device, so a seed gives the same tokens whichever requests share the batch.
"""

from __future__ import annotations

from collections import Counter

import torch

from bosun.engine.client import SamplingParams
from bosun.engine.structured import JsonConstraint

__all__ = ["Sampler", "choose", "is_plain_greedy"]


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
        self._generator: torch.Generator | None = None

    def generator(self, device: torch.device) -> torch.Generator | None:
        """The request's seeded generator on ``device`` (None without a seed)."""
        seed = self.params.seed
        if seed is None:
            return None
        if self._generator is None or self._generator.device != device:
            self._generator = torch.Generator(device=device)
            self._generator.manual_seed(seed & (2**63 - 1))
        return self._generator

    def record(self, token: int) -> None:
        self.counts[token] += 1
        if self.constraint is not None:
            self.constraint.advance(token)

    def process(self, logits: torch.Tensor, generated: int) -> torch.Tensor:
        """Logits [V] after bias, penalties and masks (a new tensor, on their device)."""
        p = self.params
        device = logits.device
        logits = logits.clone()
        if p.logit_bias:
            ids = torch.tensor(list(p.logit_bias), dtype=torch.long)
            valid = ids[(ids >= 0) & (ids < logits.shape[-1])]
            if len(valid):
                bias = [p.logit_bias[int(i)] for i in valid]
                logits[valid.to(device)] += torch.tensor(bias, dtype=logits.dtype, device=device)
        if p.repetition_penalty != 1 and (self.counts or self.prompt):
            seen = torch.tensor(sorted(set(self.counts) | self.prompt), device=device)
            values = logits[seen]
            logits[seen] = torch.where(
                values > 0, values / p.repetition_penalty, values * p.repetition_penalty
            )
        if (p.presence_penalty or p.frequency_penalty) and self.counts:
            ids = torch.tensor(list(self.counts), dtype=torch.long, device=device)
            counts = torch.tensor(list(self.counts.values()), dtype=logits.dtype, device=device)
            logits[ids] -= p.frequency_penalty * counts + p.presence_penalty
        if generated < p.min_tokens and not p.ignore_eos:
            for token in self.eos:
                logits[token] = float("-inf")
        if self.constraint is not None:
            logits = self.constraint.mask(logits)
        return logits


def choose(logits: torch.Tensor, samplers: list[Sampler]) -> list[int]:
    """One token per row of ``logits`` [B, V] (already processed), row i drawn with
    ``samplers[i]``'s parameters and generator; temperature 0 is argmax."""
    params = [s.params for s in samplers]
    device, vocab = logits.device, logits.shape[-1]
    greedy = torch.tensor([p.temperature == 0 for p in params], device=device)
    if bool(greedy.all()):
        return [int(t) for t in torch.argmax(logits, dim=-1).tolist()]

    def column(values: list[float]) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.float32, device=device)[:, None]

    scaled = logits.float() / column([p.temperature or 1.0 for p in params])
    top_k = [p.top_k if 0 < p.top_k < vocab else vocab for p in params]
    if min(top_k) < vocab:  # below each row's k-th largest: out
        kth = torch.topk(scaled, max(top_k), dim=-1).values
        index = torch.tensor(top_k, device=device)[:, None] - 1
        scaled = scaled.masked_fill(scaled < kth.gather(1, index), float("-inf"))
    probs = torch.softmax(scaled, dim=-1)
    min_p = column([p.min_p for p in params])
    if bool((min_p > 0).any()):
        probs = probs.masked_fill(probs < min_p * probs.amax(dim=-1, keepdim=True), 0.0)
    top_p = column([p.top_p for p in params])
    if bool((top_p < 1).any()):  # the most likely tokens until their mass reaches top_p
        ordered, order = torch.sort(probs, dim=-1, descending=True)
        drop = torch.cumsum(ordered, dim=-1) - ordered > top_p
        probs = probs.scatter(1, order, ordered.masked_fill(drop, 0.0))
    noise = torch.empty_like(probs).exponential_()
    for row, sampler in enumerate(samplers):
        generator = sampler.generator(device)
        if generator is not None:
            noise[row].exponential_(generator=generator)
    drawn = torch.argmax(probs / noise, dim=-1)
    tokens = torch.where(greedy, torch.argmax(logits, dim=-1), drawn)
    return [int(t) for t in tokens.tolist()]
