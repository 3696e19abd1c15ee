"""CAT's supervised losses: train the *operated* policy, not the single sample (CAT §3, Table 1).

With ``p = π_θ(y* | x)`` the probability that one sample is the target, a test-time strategy with
budget N succeeds with probability ``S(p)``; CAT's SFT loss is ``-log S(p)``:

- Pass@N (any of N samples correct):  ``S(p) = 1 - (1 - p)^N``            (Table 1, App. A.3)
- Majority vote, threshold surrogate: ``B(p) = P[Bin(N, p) ≥ k]``          (Eq. (7)/(16) of CAT)

Both are functions of ``p`` only, so ``∇_θ(-log S) = w(p) · ∇_θ(-log p)``: the cross-entropy
gradient re-weighted per example by ``w(p) = p S'(p) / S(p)``, the "SFT-derived" (or "log")
weight. Following the official code, the loss is differentiated directly on the summed sequence
log-prob; it never multiplies cross-entropy by a differentiable ``w``.

Everything takes the *sequence log-probability* ``logp = Σ_t log π(y*_t | x, y*_<t)`` (≤ 0) and
works in log space (``log1mexp``), so float32 stays finite from ``logp = -50`` up to ``logp = 0``.
"""
from __future__ import annotations

import math

import torch

# logp is clamped to ≤ -LOGP_EPS: at logp = 0 exactly, log(1 - p) = -inf; the clamp keeps the
# loss and its gradient finite (the weight there is 0 anyway: a sure answer needs no push).
LOGP_EPS = 1e-12
_LN2 = math.log(2.0)


def log1mexp(x: torch.Tensor) -> torch.Tensor:
    """``log(1 - exp(x))`` for ``x ≤ 0``, accurate at both ends (Mächler 2012).

    Uses ``log(-expm1(x))`` for ``x > -ln 2`` and ``log1p(-exp(x))`` otherwise; both branches are
    computed on safe inputs so ``torch.where`` never back-propagates a NaN.

    Args:
        x: any shape, values ≤ 0 (positive values raise).
    Returns:
        same shape; ``-inf`` at ``x = 0``.

    Example: ``log1mexp(torch.tensor([-1e-8, -50.]))`` → ``[-18.42, -1.9e-22]``.

    Lesson 02.2; the stable −log(1 − (1 − p)^N) of CAT's SFT loss (Table 1).
    """
    if bool((x > 0).any()):
        raise ValueError("log1mexp needs x ≤ 0 (a log-probability); got a positive value")
    near = x > -_LN2
    x_near = torch.where(near, x, torch.full_like(x, -1.0))   # safe for expm1 branch
    x_far = torch.where(near, torch.full_like(x, -1.0), x)    # safe for log1p branch
    return torch.where(near, torch.log(-torch.expm1(x_near)), torch.log1p(-torch.exp(x_far)))


def _check_logp(logp: torch.Tensor) -> torch.Tensor:
    if not torch.is_tensor(logp) or not logp.is_floating_point():
        raise TypeError(f"logp must be a floating tensor of sequence log-probs, got {type(logp).__name__}")
    if bool((logp > 1e-6).any()):
        raise ValueError("logp must be a log-probability (≤ 0); got positive values — pass Σ_t log π, not π or -log π")
    return logp.clamp(max=-LOGP_EPS)


def _check_nk(N: int, k: "int | None" = None) -> None:
    if int(N) != N or N < 1:
        raise ValueError(f"N must be a positive integer budget, got {N!r}")
    if k is not None and (int(k) != k or not 1 <= k <= N):
        raise ValueError(f"the majority threshold k must be an integer in [1, N={N}], got {k!r}")


def log_passn(logp: torch.Tensor, N: int) -> torch.Tensor:
    """``log S(p) = log(1 - (1 - p)^N)`` from ``logp``, stably (Pass@N success, Table 1 of CAT).

    Args: logp ``(...)`` sequence log-probs; N the sample budget. Returns ``(...)``.

    Lesson 02.2.
    """
    _check_nk(N)
    lp = _check_logp(logp)
    return log1mexp(N * log1mexp(lp))            # N·log(1-p) ≤ 0, then log(1 - e^{that})


def passn_sft_loss(logp: torch.Tensor, N: int) -> torch.Tensor:
    """CAT-Pass@N SFT loss ``-log(1 - (1 - p)^N)`` per example (Table 1 / App. A.3 of CAT).

    ``N = 1`` is ordinary sequence cross-entropy ``-logp``. Its gradient w.r.t. ``logp`` is
    ``-passn_sft_weight(logp, N)``: cross-entropy's gradient scaled by a weight in (0, 1].

    Args:
        logp: ``(B,)`` (any shape) summed log-prob of the target, with grad.
        N: test-time budget.
    Returns:
        ``(B,)`` per-example losses (take ``.mean()`` yourself: the paper's "sequence_mean").

    Example: ``passn_sft_loss(torch.log(torch.tensor([0.1])), 16)`` → ``[0.2049]`` (= -log(1-0.9^16) = 0.20494).

    Lesson 02.2.
    """
    return -log_passn(logp, N)


def passn_sft_weight(logp: torch.Tensor, N: int) -> torch.Tensor:
    """SFT-derived ("log") Pass@N weight ``w = p S'(p)/S(p) = N p (1-p)^{N-1} / (1-(1-p)^N)``.

    The factor by which CAT-Pass@N rescales the cross-entropy gradient (Table 1 of CAT);
    → 1 as p → 0 (hard prompts train as in CE), → 0 as p → 1 (solved prompts stop sharpening).
    No gradient flows through it.

    Args: logp ``(...)`` sequence log-probs; N budget. Returns ``(...)`` weights in (0, 1].

    Lesson 02.2; Table 1 of CAT (SFT weight p S'(p)/S(p)).
    """
    with torch.no_grad():
        lp = _check_logp(logp)
        l1m = log1mexp(lp)                                      # log(1 - p)
        return torch.exp(math.log(N) + lp + (N - 1) * l1m - log1mexp(N * l1m))


def _log_binom_coef(N: int, i: torch.Tensor) -> torch.Tensor:
    """``log C(N, i)`` for an integer tensor ``i`` (float64)."""
    i = i.double()
    return math.lgamma(N + 1) - torch.lgamma(i + 1) - torch.lgamma(N - i + 1)


def log_binomial_tail(logp: torch.Tensor, N: int, k: int) -> torch.Tensor:
    """``log B(p) = log P[Bin(N, p) ≥ k] = log Σ_{i=k}^{N} C(N,i) p^i (1-p)^{N-i}`` (Eq. (7) of CAT).

    A log-sum-exp over the N - k + 1 terms, each in log space, so it stays finite for p → 0
    (``≈ log C(N,k) + k·logp``) and p → 1.

    Args: logp ``(...)``; N budget; k threshold (1 ≤ k ≤ N). Returns ``(...)``.

    Lesson 02.2.
    """
    _check_nk(N, k)
    lp = _check_logp(logp)
    i = torch.arange(k, N + 1)                                   # (N-k+1,)
    logc = _log_binom_coef(N, i).to(lp.dtype)                    # (N-k+1,)
    i = i.to(lp.dtype)
    terms = logc + lp.unsqueeze(-1) * i + log1mexp(lp).unsqueeze(-1) * (N - i)   # (..., N-k+1)
    return torch.logsumexp(terms, dim=-1)


def majority_sft_loss(logp: torch.Tensor, N: int, k: int) -> torch.Tensor:
    """CAT-Majority SFT loss ``-log B(p)``, ``B(p) = P[Bin(N, p) ≥ k]`` (Eq. (7)/(16) of CAT).

    The fixed-threshold surrogate of majority vote: "the target gets at least k of N votes"
    (it ignores how the wrong votes split). ``k = 1`` is Pass@N; ``k = N`` is ``-N·logp``.

    Args:
        logp: ``(B,)`` (any shape) summed log-prob of the target, with grad.
        N: budget; k: vote threshold.
    Returns:
        ``(B,)`` per-example losses.

    Example: ``majority_sft_loss(torch.log(torch.tensor([0.3])), 8, 3)`` → ``[0.8025]``
    (= -log P[Bin(8, 0.3) ≥ 3] = -log 0.4482).

    Lesson 02.2.
    """
    return -log_binomial_tail(logp, N, k)


def majority_sft_weight(logp: torch.Tensor, N: int, k: int) -> torch.Tensor:
    """SFT-derived majority weight ``w = p B'(p)/B(p) = k C(N,k) p^k (1-p)^{N-k} / B(p)`` (CAT Eq. (16)).

    → k as p → 0, → 0 as p → 1. No gradient flows through it.

    Args: logp ``(...)``; N budget; k threshold. Returns ``(...)`` weights in (0, k].

    Lesson 02.2.
    """
    with torch.no_grad():
        lp = _check_logp(logp)
        logc = float(_log_binom_coef(N, torch.tensor(k)))
        log_num = math.log(k) + logc + k * lp + (N - k) * log1mexp(lp)
        return torch.exp(log_num - log_binomial_tail(lp, N, k))


def cat_sft_loss(logp: torch.Tensor, strategy: str = "ce", N: int = 1, k: int = 1) -> torch.Tensor:
    """One entry point for lesson code: ``"ce"`` (``-logp``), ``"passn"`` or ``"majority"``.

    Args: logp ``(B,)``; strategy name; N, k as above. Returns ``(B,)`` per-example losses.

    Lesson 02.2; CAT's SFT losses (Table 1; Eq. (7)/(16) for majority).
    """
    if strategy == "ce":
        return -logp
    if strategy == "passn":
        return passn_sft_loss(logp, N)
    if strategy == "majority":
        return majority_sft_loss(logp, N, k)
    raise ValueError(f"unknown strategy {strategy!r}; choose 'ce', 'passn' or 'majority'")
