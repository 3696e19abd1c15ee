"""Other pass@k-aligned training signals, for comparison with CAT's weights.

- Pass@k Training (Chen et al. 2025, arXiv 2508.10751, ``passk_adv.py``): analytic group
  advantages for binary rewards when the "reward" of a group is whether any of k responses is
  correct.
- PKPO (Walder & Karkhanis 2025, arXiv 2505.15201), binary case: the unbiased per-sample weights
  whose policy gradient is an unbiased estimate of ∇ pass@k.

Both, like CAT-Pass@N, put extra weight on prompts that are rarely solved; unlike CAT they act
on the rollouts of one group rather than through a closed-form weight of p.
"""
from __future__ import annotations

import math

import torch


def _comb(n: int, k: int) -> float:
    return float(math.comb(n, k)) if 0 <= k <= n else 0.0


def passk_training_advantages(correct: torch.Tensor, k: int) -> torch.Tensor:
    """Pass@k-Training analytic advantages (arXiv 2508.10751, ``passk_adv.py``).

    For a group of N rollouts with N_neg wrong::

        ρ̄ = 1 - C(N_neg, k)/C(N, k)        (mean pass@k over the k-subsets of the group)
        σ = sqrt(ρ̄ (1 - ρ̄))
        A_pos = (1 - ρ̄) / σ
        A_neg = (1 - ρ̄ - C(N_neg - 1, k - 1)/C(N - 1, k - 1)) / σ

    A group that is all right or all wrong (σ = 0) gets zero advantages.

    Args:
        correct: ``(B, N)`` 0/1 rewards of N rollouts per prompt.
        k: the pass@k budget (1 ≤ k ≤ N).
    Returns:
        ``(B, N)`` float advantages.

    Lesson 02.3 (a baseline named beside CAT); not a CAT equation.
    """
    B, N = correct.shape
    if not 1 <= k <= N:
        raise ValueError(f"need 1 ≤ k ≤ N = {N}, got k = {k}")
    out = torch.zeros(B, N, dtype=torch.float64)
    for b in range(B):
        n_neg = int(N - correct[b].sum().item())
        rho = 1 - _comb(n_neg, k) / _comb(N, k)
        sigma = math.sqrt(rho * (1 - rho))
        if sigma < 1e-12:
            continue
        a_pos = (1 - rho) / sigma
        a_neg = (1 - rho - _comb(n_neg - 1, k - 1) / _comb(N - 1, k - 1)) / sigma
        out[b] = torch.where(correct[b].bool(), torch.tensor(a_pos, dtype=torch.float64), torch.tensor(a_neg, dtype=torch.float64))
    return out.to(correct.dtype if correct.is_floating_point() else torch.float32)


def _rho(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of a group with n samples and c correct: ``1 - C(n-c, k)/C(n, k)``."""
    if k <= 0:
        return 0.0
    return 1.0 - _comb(n - c, k) / _comb(n, k)


def pkpo_weights(correct: torch.Tensor, k: int) -> torch.Tensor:
    """PKPO's unbiased pass@k gradient weights, binary rewards (arXiv 2505.15201).

    ``s_i`` = the average, over the k-subsets of the n samples that contain i, of the subset's
    pass (max reward), times ``C(n-1,k-1)/C(n,k) = k/n``::

        s_i = k/n                          if sample i is correct
        s_i = (k/n) · ρ(n-1, c, k-1)       if it is wrong      (ρ = unbiased pass@k, c = #correct)

    ``Σ_i s_i ∇log π(y_i)`` is an unbiased estimate of ∇ pass@k. (PKPO then subtracts
    leave-one-out baselines; that variance reduction is not reproduced here.)

    Args: correct ``(B, n)`` 0/1; k ≤ n. Returns ``(B, n)`` float.

    Lesson 02.3 (a baseline named beside CAT); not a CAT equation.
    """
    B, n = correct.shape
    if not 1 <= k <= n:
        raise ValueError(f"need 1 ≤ k ≤ n = {n}, got k = {k}")
    out = torch.zeros(B, n, dtype=torch.float64)
    for b in range(B):
        c = int(correct[b].sum().item())
        w_pos = k / n
        w_neg = (k / n) * _rho(n - 1, c, k - 1)
        out[b] = torch.where(correct[b].bool(), torch.tensor(w_pos, dtype=torch.float64), torch.tensor(w_neg, dtype=torch.float64))
    return out.to(correct.dtype if correct.is_floating_point() else torch.float32)
