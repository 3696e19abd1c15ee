"""Evaluation metrics shared by the modules: the unbiased pass@k estimator (Chen et al. 2021).

With ``n ≥ k`` samples of which ``c`` are correct, ``pass@k = 1 − C(n−c, k)/C(n, k)`` is the
probability that at least one of ``k`` samples drawn *without replacement* from the ``n`` is
correct (§2.1 of arXiv 2107.03374). The plug-in ``1 − (1 − c/n)^k`` is biased.
"""
from __future__ import annotations

import numpy as np
import torch


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k in the numerically stable product form (Chen et al. 2021, §2.1).

    ``1 − Π_{i=n−c+1}^{n} (1 − k/i)``, and 1.0 when ``n − c < k`` (every k-subset holds a correct one).

    Args:
        n: samples drawn for the problem; c: how many are correct (0 ≤ c ≤ n); k: 1 ≤ k ≤ n.
    Returns:
        a float in [0, 1]. Example: ``pass_at_k(10, 3, 5)`` → 0.9167.

    Lesson 01.2 (exercise 01.2.3); Chen et al. 2021, the unbiased pass@k estimator.
    """
    for name, v in (("n", n), ("c", c), ("k", k)):
        if int(v) != v:
            raise ValueError(f"{name} must be an integer, got {v!r}")
    n, c, k = int(n), int(c), int(k)
    if not (0 <= c <= n):
        raise ValueError(f"need 0 ≤ c ≤ n, got n={n}, c={c}")
    if not (1 <= k <= n):
        raise ValueError(f"need 1 ≤ k ≤ n, got n={n}, k={k}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def pass_at_k_tensor(n: "torch.Tensor | int", c: torch.Tensor, k: int) -> torch.Tensor:
    """Vectorised unbiased pass@k: ``c`` correct out of ``n`` per problem, any shape ``(...)`` → ``(...)``.

    Uses ``C(n−c, k)/C(n, k) = Π_{j=0}^{k−1} (n−c−j)/(n−j)`` in float64, clamped at 0 (which is
    where ``n − c < k``), so it needs no loops over problems.

    Lessons 01.2, 02.1; Chen et al. 2021, the unbiased pass@k estimator.
    """
    c = torch.as_tensor(c, dtype=torch.float64)
    n_t = torch.as_tensor(n, dtype=torch.float64).expand_as(c)
    if bool((c < 0).any()) or bool((c > n_t).any()):
        raise ValueError("need 0 ≤ c ≤ n for every problem")
    if k < 1 or bool((n_t < k).any()):
        raise ValueError(f"need 1 ≤ k ≤ n, got k={k}")
    j = torch.arange(k, dtype=torch.float64)  # (k,)
    terms = ((n_t - c).unsqueeze(-1) - j) / (n_t.unsqueeze(-1) - j)  # (..., k)
    fail = terms.clamp_min(0.0).prod(-1)
    return 1.0 - fail


def pass_at_k_from_probs(p_correct: torch.Tensor, k: int) -> torch.Tensor:
    """Exact pass@k of a policy with per-problem success probability ``p`` (k i.i.d. samples).

    ``1 − (1 − p)^k``; ``(...)`` → ``(...)``. (Exact for a known policy, unlike the plug-in on samples.)

    Lessons 02.1, 02.2; pass@k = 1 − (1 − p)^k, the strategy CAT aligns training to (CAT digest, toy section).
    """
    return 1.0 - (1.0 - p_correct).clamp(0.0, 1.0) ** k
