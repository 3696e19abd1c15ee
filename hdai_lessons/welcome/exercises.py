"""Lesson 00.1's warm-up exercises: three functions later modules reuse from ``hdai_lessons.core.ops``."""
from __future__ import annotations

import torch

from hdai_lessons.course.checkers import Case, Exercise, Mistake, register
from hdai_lessons.core.ops import group_advantages, group_log_softmax, masked_mean


def _log_softmax_cases() -> list[Case]:
    g = torch.Generator().manual_seed(0)
    return [
        Case((torch.randn(4, 8, generator=g, dtype=torch.float64),), label="small logits, 4 groups of 8"),
        Case((torch.tensor([[-1000.0, -1001.0, -1003.0], [-5.0, -2.0, -7.0]], dtype=torch.float64),),
             label="sequence log-probs near -1000"),
        Case((torch.randn(2, 3, 5, generator=g, dtype=torch.float64) * 50 - 400,), label="3-D batch, large magnitudes"),
    ]


register(Exercise(
    id="00.1.1",
    title="numerically stable log-softmax over a group of sequence log-probs",
    reference=group_log_softmax,
    cases=_log_softmax_cases,
    grad_wrt=(0,),
    difficulty=1, importance=3, minutes=10,
    mistakes=[
        Mistake("naive formula", lambda x: torch.log(torch.exp(x) / torch.exp(x).sum(-1, keepdim=True)),
                "exp(-1000) underflows to 0 and log(0/0) is NaN: subtract the group maximum before exp."),
        Mistake("wrong axis", lambda x: x - torch.logsumexp(x, dim=0, keepdim=True),
                "normalise over the last dimension (the K responses of one group), not the batch."),
        Mistake("forgot the normaliser", lambda x: x - x.max(-1, keepdim=True).values,
                "after subtracting the max you still need − log Σ exp(x − max)."),
        Mistake("returned probabilities", lambda x: torch.softmax(x, -1),
                "the function returns log-probabilities; drop the final exp."),
        Mistake("stop-gradient on the normaliser", lambda x: x - torch.logsumexp(x, -1, keepdim=True).detach(),
                "the log-normaliser depends on every logit; detaching it breaks the gradient."),
    ],
))


def _masked_mean_cases() -> list[Case]:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 6, generator=g, dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1]], dtype=torch.float64)
    empty = torch.tensor([[1, 1, 0], [0, 0, 0]], dtype=torch.float64)
    return [
        Case((x, mask), label="padded rows"),
        Case((torch.randn(2, 3, generator=g, dtype=torch.float64), empty), label="a fully masked row"),
        Case((x.T.contiguous(), mask.T.contiguous()), {"dim": 0}, label="mean over dim 0"),
    ]


register(Exercise(
    id="00.1.2",
    title="masked mean over tokens",
    reference=masked_mean,
    cases=_masked_mean_cases,
    grad_wrt=(0,),
    difficulty=1, importance=3, minutes=8,
    mistakes=[
        Mistake("ignored the mask", lambda x, m, dim=-1: x.mean(dim),
                "padding tokens must not count: multiply by the mask and divide by the mask's sum."),
        Mistake("divided by the full length", lambda x, m, dim=-1: (x * m).mean(dim),
                "divide by the number of real tokens (mask.sum), not by T."),
        Mistake("mask only in the denominator", lambda x, m, dim=-1: x.sum(dim) / m.sum(dim).clamp_min(1),
                "padding values leak into the numerator: sum x * mask."),
        Mistake("NaN on empty rows", lambda x, m, dim=-1: (x * m).sum(dim) / m.sum(dim),
                "a row with no real tokens divides 0 by 0: clamp the count to at least 1."),
    ],
))


def _advantage_cases() -> list[Case]:
    g = torch.Generator().manual_seed(2)
    return [
        Case((torch.randint(0, 2, (5, 8), generator=g).double(),), label="binary rewards, 5 groups of 8"),
        Case((torch.tensor([[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 1.0]], dtype=torch.float64),),
             label="a group with equal rewards"),
        Case((torch.randn(2, 3, 6, generator=g, dtype=torch.float64),), label="real-valued rewards, 3-D"),
    ]


register(Exercise(
    id="00.1.3",
    title="group-normalised advantages (population std)",
    reference=group_advantages,
    cases=_advantage_cases,
    difficulty=1, importance=3, minutes=8,
    mistakes=[
        Mistake("sample std (K − 1)", lambda r, eps=1e-6: (r - r.mean(-1, keepdim=True)) / (r.std(-1, keepdim=True) + eps),
                "use the population std (unbiased=False), as σ_G in LPO's Table 1."),
        Mistake("normalised over the whole batch", lambda r, eps=1e-6: (r - r.mean()) / (r.std(unbiased=False) + eps),
                "statistics are per group (per prompt): reduce over the last dimension only."),
        Mistake("no eps", lambda r, eps=1e-6: (r - r.mean(-1, keepdim=True)) / r.std(-1, unbiased=False, keepdim=True),
                "a group with equal rewards has std 0: add eps so its advantages are 0, not NaN."),
        Mistake("no centring", lambda r, eps=1e-6: r / (r.std(-1, unbiased=False, keepdim=True) + eps),
                "subtract the group mean first: advantages must sum to zero within a group."),
    ],
))
