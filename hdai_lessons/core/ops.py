"""Tensor operations every module reuses (lesson 00's warm-up exercises are these functions).

- ``group_log_softmax``: log-probabilities of a group of responses from their sequence log-probs.
- ``masked_mean``: the mean over real tokens only (padding masked out).
- ``group_advantages``: rewards standardised within each group of K responses (GRPO-style).
"""
from __future__ import annotations

import torch


def group_log_softmax(logps: torch.Tensor) -> torch.Tensor:
    """Numerically stable log-softmax over the last dimension (a group of K responses).

    Sequence log-probs are sums over tokens and easily reach −1000, where ``exp`` underflows;
    subtracting the group maximum first keeps every term finite.

    Args:
        logps: ``(..., K)`` unnormalised log-weights, e.g. sequence log-probs ``log π(y_k|x)``.
    Returns:
        ``(..., K)`` with ``logsumexp == 0`` along the last dimension.

    Example: ``group_log_softmax(torch.tensor([-1000., -1001.]))`` → ``[-0.3133, -1.3133]``.

    Lesson 00.1 (exercise 00.1.1); no paper equation.
    """
    m = logps.max(dim=-1, keepdim=True).values
    shifted = logps - m  # (..., K), max entry is 0
    return shifted - shifted.exp().sum(dim=-1, keepdim=True).log()


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Mean of ``x`` over ``dim`` counting only positions where ``mask`` is 1 (0 for empty rows).

    Args:
        x: ``(B, T)`` (any shape) values, e.g. per-token losses.
        mask: same shape as ``x``, 1.0 for real tokens, 0.0 for padding (bool or float).
        dim: the dimension to average over.
    Returns:
        ``x`` reduced over ``dim``, e.g. ``(B,)``.

    Example: ``masked_mean(tensor([[1., 2., 9.]]), tensor([[1., 1., 0.]]))`` → ``tensor([1.5])``.

    Lesson 00.1 (exercise 00.1.2); the token mean of LPO Eq. (3).
    """
    if x.shape != mask.shape:
        raise ValueError(f"x {tuple(x.shape)} and mask {tuple(mask.shape)} must have the same shape")
    m = mask.to(x.dtype)
    return (x * m).sum(dim) / m.sum(dim).clamp_min(1.0)


def group_advantages(rewards: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Rewards standardised within each group: ``(r − mean) / (std + eps)`` over the last dim.

    The population standard deviation σ_G (divide by K, not K − 1) is used, as in LPO's Table 1;
    a group whose rewards are all equal gets zero advantages, not NaN.

    Args:
        rewards: ``(..., K)`` scalar rewards of K responses to the same prompt.
    Returns:
        ``(..., K)`` advantages with zero mean per group.

    Example: ``group_advantages(tensor([1., 0., 0., 0.]))`` → ``[1.7321, -0.5774, -0.5774, -0.5774]``.

    Lesson 00.1 (exercise 00.1.3); GRPO's group-normalised advantage (LPO Table 1).
    """
    mean = rewards.mean(dim=-1, keepdim=True)
    std = rewards.std(dim=-1, unbiased=False, keepdim=True)
    return (rewards - mean) / (std + eps)
