"""Module 01's exercise bank: lessons 01.1 (response simplex) and 01.2 (reasoning bandit).

Lessons 01.3–01.4 register theirs in ``exercises_llm.py``, loaded at the end of this file.
"""
from __future__ import annotations

import math

import torch

from hdai_lessons.course.checkers import Case, Exercise, Mistake, register
from hdai_lessons.core.metrics import pass_at_k
from hdai_lessons.rlvr.losses import grpo_surrogate, listwise_logits, lpo_forward_coefficients, lpo_reverse_coefficients
from hdai_lessons.rlvr.targets import implicit_temperature, lpo_target

D = torch.float64

# ------------------------------------------------------------------------------------------------
# 01.1.1 — implicit temperature of Table 1


def implicit_temperature_ref(rewards: torch.Tensor, scheme: str) -> torch.Tensor:
    """Exercise 01.1.1 reference: τ of ``softmax(R/τ)`` for grpo / dr_grpo / rloo / maxrl, ``(..., K)`` → ``(..., 1)``.

    Lesson 01.1; Table 1 of LPO.
    """
    return implicit_temperature(rewards, scheme, eps=0.0)


def _tau_cases() -> list[Case]:
    g = torch.Generator().manual_seed(11)
    R = torch.randint(0, 2, (6, 8), generator=g).to(D)
    R[0] = torch.tensor([1, 0, 0, 0, 0, 0, 0, 0], dtype=D)
    Rc = torch.rand(2, 3, 5, generator=g, dtype=D)
    return [Case((R, s), label=f"binary rewards, {s}") for s in ("grpo", "dr_grpo", "rloo", "maxrl")] + [
        Case((Rc, s), label=f"real rewards (2, 3, 5), {s}") for s in ("grpo", "rloo", "maxrl")]


def _tau_wrong_std(R, scheme):
    if scheme == "grpo":
        return R.std(-1, keepdim=True)
    return implicit_temperature_ref(R, scheme)


def _tau_wrong_rloo(R, scheme):
    if scheme == "rloo":
        K = R.shape[-1]
        return torch.full_like(R[..., :1], K / (K - 1))
    return implicit_temperature_ref(R, scheme)


def _tau_wrong_maxrl(R, scheme):
    if scheme == "maxrl":
        return R.std(-1, unbiased=False, keepdim=True)
    return implicit_temperature_ref(R, scheme)


def _tau_no_keepdim(R, scheme):
    return implicit_temperature_ref(R, scheme).squeeze(-1)


register(Exercise(
    id="01.1.1",
    title="the implicit temperature of an advantage scheme (LPO Table 1)",
    reference=implicit_temperature_ref,
    cases=_tau_cases,
    difficulty=1, importance=3, minutes=10,
    mistakes=[
        Mistake("sample std for GRPO", _tau_wrong_std,
                "GRPO divides by the population std σ_G (unbiased=False), so τ = σ_G."),
        Mistake("RLOO temperature inverted", _tau_wrong_rloo,
                "RLOO's advantage is K/(K−1)·(R − μ), i.e. (R − μ)/τ with τ = (K−1)/K, not K/(K−1)."),
        Mistake("MaxRL divides by the std", _tau_wrong_maxrl,
                "MaxRL normalises by the group mean μ_G (an implicit curriculum), so τ = μ_G."),
        Mistake("dropped the group dimension", _tau_no_keepdim,
                "return (..., 1) so τ broadcasts against a group of K rewards (keepdim=True)."),
    ],
))

# ------------------------------------------------------------------------------------------------
# 01.1.2 — the LPO target (Theorem 1)


def lpo_target_ref(rewards: torch.Tensor, tau: torch.Tensor, s_t: torch.Tensor) -> torch.Tensor:
    """Exercise 01.1.2 reference: ``softmax(R/τ + s_t)``, ``softmax(s_t)`` where rewards are all equal.

    Lesson 01.1; Theorem 1, Eq. (8) of LPO.
    """
    return lpo_target(rewards, tau, s_t)


def _target_cases() -> list[Case]:
    g = torch.Generator().manual_seed(12)
    R = torch.randint(0, 2, (5, 8), generator=g).to(D)
    R[0] = 1.0
    R[1] = 0.0
    R[2] = torch.tensor([1, 0, 0, 0, 0, 0, 0, 0], dtype=D)
    tau = R.std(-1, unbiased=False, keepdim=True)  # exactly 0 in the constant groups
    s_t = 0.3 * torch.randn(5, 8, generator=g, dtype=D)
    Rr = torch.rand(3, 4, generator=g, dtype=D)
    return [
        Case((R, tau, torch.zeros_like(R)), label="on-policy (s_t = 0), binary, with constant groups"),
        Case((R, tau, s_t), label="off-policy s_t, binary, with constant groups"),
        Case((Rr, torch.full((3, 1), 0.5, dtype=D), 0.5 * torch.randn(3, 4, generator=g, dtype=D)), label="real rewards, τ = 0.5"),
    ]


def _target_nan(R, tau, s_t):
    return torch.softmax(R / tau + s_t, -1)


def _target_no_st(R, tau, s_t):
    const = (R == R[..., :1]).all(-1, keepdim=True)
    safe = torch.where(const, torch.ones_like(tau), tau)
    return torch.softmax(torch.where(const, torch.zeros_like(R), R / safe), -1)


def _target_times_tau(R, tau, s_t):
    const = (R == R[..., :1]).all(-1, keepdim=True)
    return torch.softmax(torch.where(const, torch.zeros_like(R), R * tau) + s_t, -1)


def _target_wrong_axis(R, tau, s_t):
    const = (R == R[..., :1]).all(-1, keepdim=True)
    safe = torch.where(const, torch.ones_like(tau), tau)
    return torch.softmax(torch.where(const, torch.zeros_like(R), R / safe) + s_t, 0)


register(Exercise(
    id="01.1.2",
    title="the listwise Gibbs target w* = softmax(R/τ + s_t) (LPO Theorem 1)",
    reference=lpo_target_ref,
    cases=_target_cases,
    difficulty=1, importance=3, minutes=10,
    mistakes=[
        Mistake("NaN in equal-reward groups", _target_nan,
                "where all K rewards are equal σ_G = 0 and R/τ is 0/0: use R/τ → 0 there (target softmax(s_t))."),
        Mistake("forgot s_t", _target_no_st,
                "Theorem 1's target is P_t·exp(R/τ)/Z: add the pre-update listwise logits s_t to R/τ."),
        Mistake("multiplied by τ", _target_times_tau,
                "τ is a temperature: divide the rewards by it (small τ → sharp target)."),
        Mistake("softmax over the batch", _target_wrong_axis,
                "normalise over the K responses of a group (the last dimension), not over prompts."),
    ],
))

# ------------------------------------------------------------------------------------------------
# 01.1.3 — forward-KL coefficients


def _coef_cases() -> list[Case]:
    g = torch.Generator().manual_seed(13)
    R = torch.randint(0, 2, (6, 8), generator=g).to(D)
    w = lpo_target(R, R.std(-1, unbiased=False, keepdim=True) + 1e-6)
    s_off = 0.4 * torch.randn(6, 8, generator=g, dtype=D)
    R3 = torch.rand(2, 4, 3, generator=g, dtype=D)
    w3 = lpo_target(R3, 0.3)
    return [
        Case((s_off, w), label="off-policy s, K = 8"),
        Case((torch.log(w) + 0.7, w), label="P_θ already at w* (coefficients vanish)"),
        Case((torch.randn(2, 4, 3, generator=g, dtype=D), w3), label="3-D batch, K = 3"),
    ]


register(Exercise(
    id="01.1.3",
    title="LPO forward-KL coefficients c = P_θ − w* (Eq. (13))",
    reference=lpo_forward_coefficients,
    cases=_coef_cases,
    grad_wrt=(0,),
    difficulty=1, importance=3, minutes=8,
    mistakes=[
        Mistake("sign error", lambda s, w: w - torch.softmax(s, -1),
                "the descent coefficient is P_θ − w*: negative where the target wants more mass."),
        Mistake("used s instead of P_θ", lambda s, w: s - w,
                "P_θ = softmax(s) over the group; s are log-ratios, not probabilities."),
        Mistake("assumed on-policy", lambda s, w: torch.full_like(s, 1.0 / s.shape[-1]) - w,
                "P_θ is uniform only before the first inner step; use softmax(s) so c shrinks to 0 on arrival."),
        Mistake("softmax over the wrong axis", lambda s, w: torch.softmax(s, 0) - w,
                "the listwise distribution normalises over the K responses (last dimension)."),
    ],
))

# ------------------------------------------------------------------------------------------------
# 01.1.4 — reverse-KL coefficients


def lpo_reverse_coefficients_ref(s: torch.Tensor, w_star: torch.Tensor) -> torch.Tensor:
    """Exercise 01.1.4 reference: ``c_k = P_k (d_k − d̄)``, ``d = s − log w*``, ``d̄ = Σ P_j d_j``.

    Lesson 01.1; Eq. (17) of LPO.
    """
    return lpo_reverse_coefficients(s, w_star)


def _rev_no_dbar(s, w):
    P = torch.softmax(s, -1)
    return P * (s - torch.log(w))


def _rev_plain_mean(s, w):
    P = torch.softmax(s, -1)
    d = s - torch.log(w)
    return P * (d - d.mean(-1, keepdim=True))


def _rev_no_log(s, w):
    P = torch.softmax(s, -1)
    d = s - w
    return P * (d - (P * d).sum(-1, keepdim=True))


def _rev_sign(s, w):
    return -lpo_reverse_coefficients(s, w)


register(Exercise(
    id="01.1.4",
    title="LPO reverse-KL coefficients c = P_θ (d − d̄) (Eq. (17))",
    reference=lpo_reverse_coefficients_ref,
    cases=_coef_cases,
    grad_wrt=(0,),
    difficulty=2, importance=2, minutes=12,
    mistakes=[
        Mistake("forgot d̄", _rev_no_dbar,
                "subtract the P_θ-weighted mean d̄ = Σ_j P_j d_j: without it the coefficients do not sum to 0."),
        Mistake("unweighted mean", _rev_plain_mean,
                "d̄ is weighted by P_θ (it comes from differentiating log Σ exp), not a plain mean."),
        Mistake("d = s − w*", _rev_no_log,
                "the logit gap compares s with φ = log w* (a log-probability), not with w*."),
        Mistake("sign error", _rev_sign,
                "descent convention: c = +P(d − d̄); on-policy it equals −A/K."),
    ],
))

# ------------------------------------------------------------------------------------------------
# 01.2.1 — clipped token log-ratio → listwise logits


def listwise_logits_ref(logp: torch.Tensor, old_logp: torch.Tensor, mask: torch.Tensor, eps: float, agg: str) -> torch.Tensor:
    """Exercise 01.2.1 reference: ``s_k = agg_i clamp(logp − sg(old_logp), log(1−ε), log(1+ε))`` over real tokens.

    Lesson 01.2; Eq. (4) of LPO with the token clip of Section 4.3.
    """
    return listwise_logits(logp, old_logp, mask, eps, agg)


def _ll_cases() -> list[Case]:
    g = torch.Generator().manual_seed(21)
    B, K, T = 3, 4, 6
    old = torch.log(torch.rand(B, K, T, generator=g, dtype=D) * 0.9 + 0.05)
    logp = old + 0.4 * torch.randn(B, K, T, generator=g, dtype=D)
    lengths = torch.randint(1, T + 1, (B, K), generator=g)
    mask = (torch.arange(T) < lengths.unsqueeze(-1)).to(D)
    return [
        Case((logp, old, mask, 0.2, "mean"), label="token mean, ε = 0.2, padded"),
        Case((logp, old, mask, 0.2, "sum"), label="token sum, ε = 0.2, padded"),
        Case((logp, old, mask, 0.5, "mean"), label="token mean, ε = 0.5"),
    ]


def _ll_no_clip(logp, old, mask, eps, agg):
    d = (logp - old.detach()) * mask
    return d.sum(-1) if agg == "sum" else d.sum(-1) / mask.sum(-1).clamp_min(1)


def _ll_eps_clip(logp, old, mask, eps, agg):
    d = (logp - old.detach()).clamp(-eps, eps) * mask
    return d.sum(-1) if agg == "sum" else d.sum(-1) / mask.sum(-1).clamp_min(1)


def _ll_mean_over_T(logp, old, mask, eps, agg):
    d = (logp - old.detach()).clamp(math.log(1 - eps), math.log(1 + eps)) * mask
    return d.sum(-1) if agg == "sum" else d.mean(-1)


def _ll_no_stopgrad(logp, old, mask, eps, agg):
    d = (logp - old).clamp(math.log(1 - eps), math.log(1 + eps)) * mask
    return d.sum(-1) if agg == "sum" else d.sum(-1) / mask.sum(-1).clamp_min(1)


register(Exercise(
    id="01.2.1",
    title="clipped token log-ratios aggregated into the listwise logits s_k",
    reference=listwise_logits_ref,
    cases=_ll_cases,
    grad_wrt=(0, 1),
    difficulty=2, importance=3, minutes=12,
    mistakes=[
        Mistake("no clip", _ll_no_clip,
                "clamp each token's log-ratio to [log(1−ε), log(1+ε)] before aggregating (the trust region)."),
        Mistake("clipped at ±ε", _ll_eps_clip,
                "the clip is on the *log*-ratio: bounds log(1−ε) and log(1+ε), matching ratio ∈ [1−ε, 1+ε]."),
        Mistake("mean over padding", _ll_mean_over_T,
                "the token mean divides by the number of real tokens (mask.sum), not by T."),
        Mistake("no stop-gradient on π_b", _ll_no_stopgrad,
                "old_logp comes from the frozen behaviour policy: detach it so no gradient flows into it."),
    ],
))

# ------------------------------------------------------------------------------------------------
# 01.2.3 — unbiased pass@k


def _pk_cases() -> list[Case]:
    return [Case((n, c, k), label=f"n={n}, c={c}, k={k}") for n, c, k in
            [(10, 3, 5), (10, 3, 1), (8, 0, 4), (8, 7, 4), (32, 2, 8), (200, 5, 100), (5, 5, 5),
             (10, 6, 4)]]                                        # n − c = k: exactly one all-wrong k-subset


def _pk_plugin(n, c, k):
    return 1.0 - (1.0 - c / n) ** k


def _pk_off_by_one(n, c, k):
    if n - c < k:
        return 1.0
    prod = 1.0
    for i in range(n - c, n + 1):
        prod *= 1.0 - k / i if i > 0 else 1.0
    return 1.0 - prod


def _pk_no_complement(n, c, k):
    return math.comb(n - c, k) / math.comb(n, k)


def _pk_linear(n, c, k):
    return min(1.0, k * c / n)


def _pk_certain_too_early(n, c, k):
    return 1.0 if n - c <= k else 1.0 - math.comb(n - c, k) / math.comb(n, k)


register(Exercise(
    id="01.2.3",
    title="the unbiased pass@k estimator (Chen et al. 2021)",
    reference=pass_at_k,
    cases=_pk_cases,
    difficulty=1, importance=3, minutes=10,
    mistakes=[
        Mistake("plug-in estimate", _pk_plugin,
                "1 − (1 − c/n)^k samples with replacement and is biased; use 1 − C(n−c, k)/C(n, k)."),
        Mistake("off-by-one in the product", _pk_off_by_one,
                "the stable product runs over i = n−c+1 … n (c factors), not from n−c."),
        Mistake("forgot the complement", _pk_no_complement,
                "C(n−c, k)/C(n, k) is the chance that *all* k are wrong; pass@k is one minus it."),
        Mistake("union bound", _pk_linear,
                "k·c/n double-counts subsets holding several correct samples; count failures instead."),
        Mistake("certain one step too early", _pk_certain_too_early,
                "pass@k is 1 only when n − c < k; at n − c = k one k-subset (all the wrong samples) fails."),
    ],
))

# ------------------------------------------------------------------------------------------------
# 01.2.2 — GRPO's clipped surrogate (per-sequence mean)


def grpo_surrogate_ref(logp: torch.Tensor, old_logp: torch.Tensor, mask: torch.Tensor, adv: torch.Tensor, eps: float) -> torch.Tensor:
    """Exercise 01.2.2 reference: GRPO's loss per group, ``−(1/K) Σ_k (1/|y_k|) Σ_i min(r A, clip(r) A)`` (Eq. (2)).

    Lesson 01.2; Eq. (2) of LPO.
    """
    return grpo_surrogate(logp, old_logp, mask, adv, eps, agg="seq_mean")


def _gs_cases() -> list[Case]:
    cases = []
    for seed, (B, K, T) in enumerate([(2, 4, 5), (3, 8, 3)]):
        g = torch.Generator().manual_seed(30 + seed)
        old = torch.log(torch.rand(B, K, T, generator=g, dtype=D) * 0.9 + 0.05)
        logp = old + 0.3 * torch.randn(B, K, T, generator=g, dtype=D)
        lengths = torch.randint(1, T + 1, (B, K), generator=g)
        mask = (torch.arange(T) < lengths.unsqueeze(-1)).to(D)
        adv = torch.randn(B, K, generator=g, dtype=D)
        cases.append(Case((logp, old, mask, adv, 0.2), label=f"B={B}, K={K}, T={T}, padded"))
    return cases


def _gs_tokens(logp, old, mask, adv, eps):
    r = torch.exp(logp - old.detach())
    A = adv[..., None]
    return torch.minimum(r * A, r.clamp(1 - eps, 1 + eps) * A) * mask


def _gs_no_min(logp, old, mask, adv, eps):
    r = torch.exp(logp - old.detach())
    tok = r.clamp(1 - eps, 1 + eps) * adv[..., None] * mask
    return -(tok.sum(-1) / mask.sum(-1).clamp_min(1)).mean(-1)


def _gs_no_mask(logp, old, mask, adv, eps):
    r = torch.exp(logp - old.detach())
    A = adv[..., None]
    tok = torch.minimum(r * A, r.clamp(1 - eps, 1 + eps) * A)
    return -tok.mean(-1).mean(-1)


def _gs_token_norm(logp, old, mask, adv, eps):
    return -_gs_tokens(logp, old, mask, adv, eps).sum((-1, -2)) / mask.sum((-1, -2))


def _gs_sign(logp, old, mask, adv, eps):
    return -grpo_surrogate_ref(logp, old, mask, adv, eps)


register(Exercise(
    id="01.2.2",
    title="GRPO's clipped token-level surrogate, per-sequence mean (Eq. (2))",
    reference=grpo_surrogate_ref,
    cases=_gs_cases,
    grad_wrt=(0,),
    difficulty=2, importance=3, minutes=15,
    mistakes=[
        Mistake("no min (clipped term only)", _gs_no_min,
                "take min(r·A, clip(r)·A): the clip only removes the incentive to move further, never adds one."),
        Mistake("padding counted", _gs_no_mask,
                "multiply by the mask and divide each response by its own length |y_k|."),
        Mistake("token-normalised instead of per-sequence", _gs_token_norm,
                "GRPO averages tokens within each response first (1/|y_k|), then over the K responses."),
        Mistake("returned the objective", _gs_sign,
                "return a loss to minimise: the negative of the surrogate."),
    ],
))

try:  # lessons 01.3–01.4 (the tiny-LM half of the module)
    import importlib as _importlib

    _importlib.import_module(f"{__package__}.exercises_llm")  # i.e. from . import exercises_llm  # noqa: F401,E402
except ModuleNotFoundError as err:  # not written yet
    if err.name != f"{__package__}.exercises_llm":
        raise
