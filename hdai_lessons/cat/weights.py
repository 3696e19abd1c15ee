"""CAT's RL weights: the policy gradient re-weighted by ``S'(p)`` (CAT §3, Table 1, code ``rl.py``).

For a reward-maximising policy gradient, differentiating the strategy's success ``S(p)`` instead
of ``p`` multiplies each prompt's (or sample's) gradient by a weight:

===============  ======================================  =============================================
strategy         "raw" RL weight ``S'(p)``                "log" (SFT-derived) weight ``p S'(p)/S(p)``
===============  ======================================  =============================================
Pass@N           ``N (1-p)^{N-1}``                        ``N p (1-p)^{N-1} / (1-(1-p)^N)``
Majority (k)     ``N C(N-1,k-1) p^{k-1} (1-p)^{N-k}``     ``k C(N,k) p^k (1-p)^{N-k} / B(p)``
Best-of-N        ``N q^{N-1}`` (q = reward quantile)      —
===============  ======================================  =============================================

Pass@N up-weights *hard* prompts (small p); majority peaks at the *pivotal* p ≈ (k-1)/(N-1).
``p`` is estimated per prompt (Laplace-smoothed ``p̂ = (c+1)/(M+2)`` over M rollouts) or per
sample from the sequence probability; weights are computed without gradient, optionally clipped
and divided by their batch mean, exactly as the official code does.
"""
from __future__ import annotations

import math

import torch

from hdai_lessons.cat.losses import majority_sft_weight, passn_sft_weight


def _as_prob(p: torch.Tensor) -> torch.Tensor:
    if not torch.is_tensor(p) or not p.is_floating_point():
        raise TypeError(f"p must be a floating tensor of probabilities, got {type(p).__name__}")
    if bool(((p < 0) | (p > 1)).any()):
        raise ValueError("p must lie in [0, 1]")
    return p


def passn_rl_weight(p: torch.Tensor, N: int) -> torch.Tensor:
    """Raw CAT-Pass@N RL weight ``S'(p) = N (1-p)^{N-1}`` (Table 1 of CAT).

    Args: p ``(...)`` probability a single sample is correct; N budget. Returns ``(...)``.

    Example: ``passn_rl_weight(torch.tensor([0.01, 0.1, 0.3]), 16)`` → ``[13.8, 3.29, 0.0760]``.

    Lessons 02.3 and 02.4.
    """
    p = _as_prob(p)
    return N * (1 - p) ** (N - 1)


def majority_rl_weight(p: torch.Tensor, N: int, k: "int | torch.Tensor") -> torch.Tensor:
    """Raw CAT-Majority RL weight ``B'(p) = N C(N-1,k-1) p^{k-1} (1-p)^{N-k}`` (Table 1 / Eq. (7) of CAT).

    The density of the k-th order statistic: it peaks at ``p = (k-1)/(N-1)``, the "pivotal"
    prompts whose vote can still flip. ``k`` may be a tensor broadcastable to ``p`` (the
    per-prompt dynamic threshold, see ``dynamic_majority_k``).

    Args: p ``(...)``; N budget; k threshold(s) in [1, N]. Returns ``(...)``.

    Example: ``majority_rl_weight(torch.tensor([0.1, 0.3, 0.5]), 8, 3)`` → ``[0.992, 2.54, 1.31]``.

    Lessons 02.3 and 02.4.
    """
    p = _as_prob(p)
    k_t = torch.as_tensor(k, dtype=torch.float64)
    if bool(((k_t < 1) | (k_t > N) | (k_t != k_t.round())).any()):
        raise ValueError(f"k must be integers in [1, N={N}]")
    log_c = math.lgamma(N) - torch.lgamma(k_t) - torch.lgamma(N - k_t + 1)   # log C(N-1, k-1)
    coef = (N * torch.exp(log_c)).to(p.dtype)
    k_t = k_t.to(p.dtype)
    return coef * p ** (k_t - 1) * (1 - p) ** (N - k_t)


def bon_rl_weight(q: torch.Tensor, N: int) -> torch.Tensor:
    """Best-of-N RL weight ``N q^{N-1}``, with ``q = P[R(Y') < R(y)]`` the reward quantile (CAT Table 1).

    The density that y is the best of N draws: only the top of the reward distribution matters.

    Args: q ``(...)`` quantiles in [0, 1]; N budget. Returns ``(...)``.

    Lesson 02.3 (the weight curves).
    """
    q = _as_prob(q)
    return N * q ** (N - 1)


def bon_quantile(rewards: torch.Tensor) -> torch.Tensor:
    """Within-prompt reward quantile ``q = (#strictly lower rewards + 1) / (M + 1)`` (CAT code, BoN).

    Args: rewards ``(B, M)`` rewards of M rollouts per prompt. Returns ``(B, M)`` in (0, 1).

    Lesson 02.3 (the weight curves).
    """
    if rewards.dim() < 1:
        raise ValueError("rewards must have a last dimension of M rollouts")
    M = rewards.shape[-1]
    lower = (rewards.unsqueeze(-1) > rewards.unsqueeze(-2)).sum(-1)     # (B, M): # r_j < r_i
    return (lower.to(rewards.dtype if rewards.is_floating_point() else torch.float32) + 1) / (M + 1)


def empirical_p(correct: torch.Tensor) -> torch.Tensor:
    """Laplace-smoothed per-prompt success ``p̂ = (c + 1) / (M + 2)`` (CAT code, ``probability="empirical"``).

    Never 0 or 1, so Pass@N weights of an all-wrong group stay finite and an all-right group
    still gets a (small) weight.

    Args: correct ``(B, M)`` 0/1 (or bool) rewards of M rollouts. Returns ``(B,)`` float.

    Example: ``empirical_p(torch.tensor([[0., 0, 0, 0], [1, 1, 0, 0]]))`` → ``[0.1667, 0.5]``.

    Lesson 02.3.
    """
    c = correct.float().sum(-1)
    return (c + 1) / (correct.shape[-1] + 2)


def most_frequent_wrong_count(answers: torch.Tensor, correct: torch.Tensor) -> torch.Tensor:
    """``c_max``: how many of the M rollouts gave the most frequent *wrong* answer, per prompt.

    Args:
        answers: ``(B, M)`` integer answer ids (equal ids = same final answer).
        correct: ``(B, M)`` bool/0-1, whether each rollout is correct.
    Returns:
        ``(B,)`` long; 0 when every rollout is correct.

    Lessons 02.3 and 02.4; CAT's dynamic majority threshold (official code).
    """
    if answers.shape != correct.shape:
        raise ValueError(f"answers {tuple(answers.shape)} and correct {tuple(correct.shape)} must match")
    wrong = ~correct.bool()
    same = (answers.unsqueeze(-1) == answers.unsqueeze(-2)) & wrong.unsqueeze(-1) & wrong.unsqueeze(-2)  # (B, M, M)
    return same.sum(-1).max(-1).values


def dynamic_majority_k(N: int, c_max: torch.Tensor, M: int) -> torch.Tensor:
    """Per-prompt majority threshold ``k = max(2, min(N//2 + 1, ⌊N c_max / M⌋ + 1))`` (CAT code).

    To win the vote among N samples the correct answer must beat the strongest rival, which is
    expected to get ``N·c_max/M`` votes; ``k`` is capped at a strict majority and floored at 2.

    Args: N budget; c_max ``(B,)`` counts of the top wrong answer; M rollouts. Returns ``(B,)`` long.

    Example: ``dynamic_majority_k(8, torch.tensor([0, 2, 3, 8]), 8)`` → ``[2, 3, 4, 5]``.

    Lessons 02.3 and 02.4.
    """
    k = torch.div(N * c_max.long(), M, rounding_mode="floor") + 1
    return k.clamp(max=N // 2 + 1).clamp(min=min(2, N))


def clip_and_normalise(w: torch.Tensor, clip: "float | None" = None, normalise: bool = True,
                       eps: float = 1e-8) -> torch.Tensor:
    """Clip weights at ``clip`` then divide by their mean over the (logical) batch (CAT code).

    Normalising keeps the overall step size that of the unweighted algorithm, so only the
    *relative* emphasis across prompts changes.

    Args: w ``(B,)`` (any shape) non-negative weights. Returns same shape.

    Lesson 02.3.
    """
    if clip is not None:
        w = w.clamp(max=clip)
    if normalise:
        w = w / (w.mean() + eps)
    return w


def cat_weights(p: torch.Tensor, strategy: str, N: int, k: "int | torch.Tensor" = 1, form: str = "raw",
                clip: "float | None" = None, normalise: bool = False) -> torch.Tensor:
    """The CAT weight of each prompt (or sample) for a strategy, form, clip and normalisation.

    Args:
        p: ``(B,)`` estimated single-sample success (e.g. ``empirical_p``).
        strategy: ``"passn"`` | ``"majority"`` | ``"none"`` (all ones: plain GRPO).
        N: budget; k: majority threshold (int or ``(B,)``).
        form: ``"raw"`` (``S'(p)``, the RL weight) or ``"log"`` (``p S'(p)/S(p)``, the SFT-derived one).
        clip, normalise: see ``clip_and_normalise``.
    Returns:
        ``(B,)`` weights, no gradient.

    Lesson 02.3; CAT's RL weights (Table 1) in the official code's forms.
    """
    with torch.no_grad():
        if strategy == "none":
            w = torch.ones_like(p)
        elif form == "raw":
            if strategy == "passn":
                w = passn_rl_weight(p, N)
            elif strategy == "majority":
                w = majority_rl_weight(p, N, k)
            else:
                raise ValueError(f"unknown strategy {strategy!r}; choose 'passn', 'majority' or 'none'")
        elif form == "log":
            logp = torch.log(_as_prob(p).clamp_min(1e-45))
            if strategy == "passn":
                w = passn_sft_weight(logp, N)
            elif strategy == "majority":
                if torch.is_tensor(k) and k.numel() > 1:
                    w = torch.stack([majority_sft_weight(lp, N, int(kk)) for lp, kk in zip(logp, k)])
                else:
                    w = majority_sft_weight(logp, N, int(k))
            else:
                raise ValueError(f"unknown strategy {strategy!r}; choose 'passn', 'majority' or 'none'")
        else:
            raise ValueError(f"form must be 'raw' or 'log', got {form!r}")
        return clip_and_normalise(w, clip, normalise)
