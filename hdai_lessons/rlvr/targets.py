"""Implicit targets of group-based RLVR (LPO Theorem 1, Proposition 1 and Table 1).

Every group-based advantage scheme ``A_k = (R_k − baseline) / τ`` is, on-policy, a step toward the
Gibbs target ``w* = softmax(R / τ)`` on the response simplex (Proposition 1, Eq. (5) of LPO).
The baseline cancels inside the softmax, so a scheme's normalisation only sets the temperature
``τ``. This module computes, for each scheme of Table 1, the advantages, the implicit temperature
and the implicit target, and the LPO target of Theorem 1 (Eq. (8)), ``w* = softmax(R/τ + s_t)``.

Shapes: ``rewards`` is ``(..., K)``, one group of K responses to the same prompt in the last
dimension (e.g. ``(B, K)``). Temperatures are ``(..., 1)`` so they broadcast against a group.
"""
from __future__ import annotations

import torch

from hdai_lessons.core.ops import group_advantages

#: Advantage schemes of LPO Table 1 (plus plain REINFORCE, which the paper does not list).
SCHEMES = ("reinforce", "rloo", "grpo", "dr_grpo", "maxrl", "reinforce_pp")

#: Temperature rules LPO pairs with a baseline (Section 4.3): σ_G, 1, μ_G; "rloo" = (K−1)/K.
TAU_RULES = ("std", "one", "mean", "rloo")

DEFAULT_EPS = 1e-6


def _check_rewards(rewards: torch.Tensor) -> None:
    if not torch.is_tensor(rewards) or rewards.dim() < 1:
        raise ValueError(f"rewards must be a tensor of shape (..., K), got {type(rewards).__name__}")
    if rewards.shape[-1] < 2:
        raise ValueError(f"a group needs K ≥ 2 responses in the last dimension, got shape {tuple(rewards.shape)}")
    if not rewards.is_floating_point():
        raise ValueError(f"rewards must be floating point, got {rewards.dtype}")


def group_is_constant(rewards: torch.Tensor) -> torch.Tensor:
    """``(..., 1)`` bool: True where all K rewards of a group are equal (no learning signal).

    Lesson 01.1; Section 4.3 of LPO (τ per group; the digest's inferred uniform target when all rewards are equal).
    """
    return (rewards == rewards[..., :1]).all(dim=-1, keepdim=True)


def tau_from_rule(rewards: torch.Tensor, rule: str = "std", eps: float = DEFAULT_EPS) -> torch.Tensor:
    """The LPO temperature paired with a baseline (Section 4.3, Table 1), per group.

    Args:
        rewards: ``(..., K)``.
        rule: ``"std"`` → σ_G + eps (GRPO-matched; population std, the same eps as
            ``ops.group_advantages`` so the two match exactly), ``"one"`` → 1 (Dr.GRPO / ReMax),
            ``"mean"`` → μ_G + eps (MaxRL), ``"rloo"`` → (K − 1)/K (RLOO).
    Returns:
        ``(..., 1)`` temperatures (> 0 wherever the rule allows it).

    Lesson 01.1.
    """
    _check_rewards(rewards)
    K = rewards.shape[-1]
    if rule == "std":
        return rewards.std(dim=-1, unbiased=False, keepdim=True) + eps
    if rule == "one":
        return torch.ones_like(rewards[..., :1])
    if rule == "mean":
        return rewards.mean(dim=-1, keepdim=True) + eps
    if rule == "rloo":
        return torch.full_like(rewards[..., :1], (K - 1) / K)
    raise ValueError(f"unknown tau rule {rule!r}; choose one of {TAU_RULES}")


def lpo_log_target(rewards: torch.Tensor, tau: "torch.Tensor | float", s_t: "torch.Tensor | None" = None) -> torch.Tensor:
    """``log w*`` of Theorem 1 (Eq. (8) of LPO): ``log_softmax(R/τ + s_t)`` over the group.

    Where all K rewards of a group are equal, ``R/τ`` carries no information (and τ = σ_G is 0);
    the limit of the target is then ``softmax(s_t)`` = P_t, i.e. uniform when ``s_t`` is None.
    This rule is inferred (the paper does not state it), see ``papers/lpo.md`` open point 3.

    Args:
        rewards: ``(..., K)``.
        tau: a float or a tensor broadcastable to ``rewards`` (e.g. ``(..., 1)``), > 0 in every
            group whose rewards are not all equal.
        s_t: optional ``(..., K)`` listwise logits of the pre-update policy,
            ``s_t,k = log π_t(y_k|x) − log π_b(y_k|x)`` (0 when π_t = π_b, as in Algorithm 1).
    Returns:
        ``(..., K)`` log-probabilities (log-sum-exp 0 over the last dim).

    Lesson 01.1; Theorem 1, Eq. (8) of LPO.
    """
    _check_rewards(rewards)
    tau_t = torch.as_tensor(tau, dtype=rewards.dtype, device=rewards.device)
    const = group_is_constant(rewards)  # (..., 1)
    if bool(((tau_t <= 0) & ~const).any()):
        raise ValueError("tau must be > 0 in every group whose rewards are not all equal "
                         f"(got min tau {float(tau_t.min()):.3g}); use a tau rule such as 'std' or 'one'")
    safe_tau = torch.where(const, torch.ones_like(tau_t), tau_t)  # avoid 0/0 in constant groups
    phi = torch.where(const, torch.zeros_like(rewards), rewards / safe_tau)  # (..., K), Eq. (8) φ − s_t
    if s_t is not None:
        if s_t.shape != rewards.shape:
            raise ValueError(f"s_t {tuple(s_t.shape)} must have the shape of rewards {tuple(rewards.shape)}")
        phi = phi + s_t
    return torch.log_softmax(phi, dim=-1)


def lpo_target(rewards: torch.Tensor, tau: "torch.Tensor | float", s_t: "torch.Tensor | None" = None) -> torch.Tensor:
    """The listwise Gibbs target of Theorem 1 (Eq. (8) of LPO), ``w* = softmax(R/τ + s_t)``.

    ``w*`` is the unique maximiser on the simplex of ``Ĵ(w) = Σ_k w_k R_k − τ KL(w ‖ P_t)``
    (Eq. (7)) with ``P_t = softmax(s_t)``. Uniform (``softmax(s_t)``) where a group's rewards are
    all equal.

    Args:
        rewards: ``(..., K)``; tau: float or broadcastable tensor (e.g. ``(..., 1)``);
        s_t: optional ``(..., K)`` (see ``lpo_log_target``).
    Returns:
        ``(..., K)`` probabilities on the simplex.

    Example (K = 8, one correct, τ = σ_G, on-policy): ``w*_correct ≈ 0.746``.

    Lesson 01.1; Theorem 1, Eq. (8) of LPO.
    """
    return lpo_log_target(rewards, tau, s_t).exp()


def proximal_objective(w: torch.Tensor, rewards: torch.Tensor, tau: "torch.Tensor | float", P_t: torch.Tensor) -> torch.Tensor:
    """Eq. (7) of LPO: ``Ĵ(w) = Σ_k w_k R_k − τ KL(w ‖ P_t)``; ``w, rewards, P_t``: ``(..., K)`` → ``(...,)``.

    Lesson 01.1; Eq. (7) of LPO.
    """
    tau_t = torch.as_tensor(tau, dtype=rewards.dtype, device=rewards.device)
    if tau_t.dim() > 0 and tau_t.shape[-1] == 1:
        tau_t = tau_t.squeeze(-1)
    kl = (w * (torch.log(w.clamp_min(1e-300)) - torch.log(P_t))).sum(-1)
    return (w * rewards).sum(-1) - tau_t * kl


def advantages(rewards: torch.Tensor, scheme: str = "grpo", eps: float = DEFAULT_EPS) -> torch.Tensor:
    """Group advantages of LPO Table 1.

    Args:
        rewards: ``(..., K)``; for ``"reinforce_pp"`` the batch statistics are taken over every
            group in the tensor.
        scheme: one of ``SCHEMES``:
            - ``"reinforce"``: ``A_k = R_k`` (no baseline; not zero-sum, not in the paper);
            - ``"rloo"``: ``R_k − mean_{j≠k} R_j = K/(K−1) (R_k − μ_G)``;
            - ``"grpo"``: ``(R_k − μ_G)/(σ_G + eps)`` (``ops.group_advantages``);
            - ``"dr_grpo"``: ``R_k − μ_G``;
            - ``"maxrl"``: ``(R_k − μ_G)/(μ_G + eps)`` (Tajwar et al. 2026);
            - ``"reinforce_pp"``: REINFORCE++ with baseline, ``((R_k − μ_G) − μ_B′)/(σ_B′ + eps)``
              with μ_B′, σ_B′ the batch mean/std of the group-centred rewards.
    Returns:
        ``(..., K)``.

    Lesson 01.1; Table 1 of LPO.
    """
    _check_rewards(rewards)
    K = rewards.shape[-1]
    centred = rewards - rewards.mean(dim=-1, keepdim=True)  # (..., K)
    if scheme == "reinforce":
        return rewards.clone()
    if scheme == "rloo":
        return centred * K / (K - 1)
    if scheme == "grpo":
        return group_advantages(rewards, eps=eps)
    if scheme == "dr_grpo":
        return centred
    if scheme == "maxrl":
        return centred / (rewards.mean(dim=-1, keepdim=True) + eps)
    if scheme == "reinforce_pp":
        return (centred - centred.mean()) / (centred.std(unbiased=False) + eps)
    raise ValueError(f"unknown advantage scheme {scheme!r}; choose one of {SCHEMES}")


def implicit_temperature(rewards: torch.Tensor, scheme: str = "grpo", eps: float = DEFAULT_EPS) -> torch.Tensor:
    """The temperature τ of a scheme's implicit target ``softmax(R/τ)`` (LPO Table 1).

    ``grpo`` → σ_G + eps; ``dr_grpo`` and ``reinforce`` → 1; ``rloo`` → (K − 1)/K;
    ``maxrl`` → μ_G + eps; ``reinforce_pp`` → σ_B′ + eps (the same for every group).

    Args:
        rewards: ``(..., K)``.
    Returns:
        ``(..., 1)``, so that ``softmax(advantages(R)) == lpo_target(R, implicit_temperature(R))``.

    Lesson 01.1; Table 1 of LPO.
    """
    _check_rewards(rewards)
    if scheme == "grpo":
        return tau_from_rule(rewards, "std", eps)
    if scheme in ("dr_grpo", "reinforce"):
        return tau_from_rule(rewards, "one", eps)
    if scheme == "rloo":
        return tau_from_rule(rewards, "rloo", eps)
    if scheme == "maxrl":
        return tau_from_rule(rewards, "mean", eps)
    if scheme == "reinforce_pp":
        centred = rewards - rewards.mean(dim=-1, keepdim=True)
        return (centred.std(unbiased=False) + eps).expand(*rewards.shape[:-1], 1).clone()
    raise ValueError(f"unknown advantage scheme {scheme!r}; choose one of {SCHEMES}")


def implicit_target(rewards: torch.Tensor, scheme: str = "grpo", eps: float = DEFAULT_EPS) -> torch.Tensor:
    """Proposition 1: the on-policy PG step with advantages A is −∇KL(P_θ ‖ softmax(A)); return ``softmax(A)``.

    ``(..., K)`` → ``(..., K)``. For every scheme this equals ``softmax(R/τ)`` with τ from
    ``implicit_temperature`` (shift invariance: the baseline cancels).

    Lesson 01.1; Proposition 1, Eq. (5) of LPO.
    """
    return torch.softmax(advantages(rewards, scheme, eps), dim=-1)
