"""The batched choice of the next token: each row's own temperature, top-k, top-p, min-p
and seed in one draw, and the distribution it draws from."""

from __future__ import annotations

import torch

from bosun.engine.client import SamplingParams
from bosun.engine.sampling import Sampler, choose

LOGITS = torch.tensor([2.0, 1.0, 0.5, 0.0, -1.0, -3.0])


def sampler(**params: object) -> Sampler:
    return Sampler(SamplingParams(**params), prompt=[], eos=set())  # type: ignore[arg-type]


def test_draws_follow_the_tempered_distribution() -> None:
    rows = 20_000
    picks = choose(LOGITS.repeat(rows, 1), [sampler(temperature=0.7)] * rows)
    seen = torch.bincount(torch.tensor(picks), minlength=len(LOGITS)).float() / rows
    torch.testing.assert_close(seen, torch.softmax(LOGITS / 0.7, -1), atol=0.015, rtol=0)


def test_each_row_keeps_its_own_truncation() -> None:
    """One batch, four rules: top-k 2, top-p 0.5, min-p 0.3, greedy."""
    rows = 4_000
    rules = [
        sampler(temperature=5.0, top_k=2),
        sampler(temperature=1.0, top_p=0.5),
        sampler(temperature=1.0, min_p=0.3),
        sampler(temperature=0.0),
    ]
    picks = torch.tensor(choose(LOGITS.repeat(rows, 1), rules * (rows // 4))).view(-1, 4)
    assert set(picks[:, 0].tolist()) == {0, 1}  # both, at temperature 5
    assert set(picks[:, 1].tolist()) == {0}  # token 0 alone holds 0.55 of the mass
    # Token 1 has e^-1 = 0.37 of the top token's probability (kept), token 2 e^-1.5 = 0.22.
    assert set(picks[:, 2].tolist()) == {0, 1}
    assert set(picks[:, 3].tolist()) == {0}


def test_a_seed_draws_the_same_tokens_whatever_shares_the_batch() -> None:
    def draws(with_others: bool) -> list[int]:
        seeded = sampler(temperature=1.5, seed=1234)
        out = []
        for _ in range(30):
            if with_others:
                rows = [sampler(temperature=1.5), seeded, sampler(temperature=1.5, seed=9)]
                out.append(choose(LOGITS.repeat(3, 1), rows)[1])
            else:
                out.append(choose(LOGITS[None], [seeded])[0])
        return out

    alone = draws(False)
    assert draws(True) == alone
    assert len(set(alone)) > 1  # it does sample
    other = sampler(temperature=1.5, seed=4321)
    assert [choose(LOGITS[None], [other])[0] for _ in range(30)] != alone
