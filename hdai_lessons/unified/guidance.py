"""Classifier-free guidance with norm rescaling, as JoyAI-Image's pipeline samples (digest § "Sampling").

Lesson 05.2 uses it, lesson 05.3 implements it (exercise 05.3.3), lesson 05.4 applies it to latents.

    v = v_u + w (v_c − v_u),    then    v ← v · ‖v_c‖ / ‖v‖

with the norm taken over channels at every pixel (``torch.norm(noise_pred, dim=2)`` on diffusers'
``(B, items, C, T, H, W)`` latents; ``dim=1`` on our ``(B, C, H, W)`` images). The rescale keeps the
guided velocity at the conditional velocity's magnitude, which stops large w from over-saturating.
"""
from __future__ import annotations

import torch


def cfg_combine(v_cond: torch.Tensor, v_uncond: torch.Tensor, w: float) -> torch.Tensor:
    """Plain CFG: ``v_u + w (v_c − v_u)``; ``w = 1`` is the conditional velocity. ``(B, C, H, W)``.

    Lesson 05.2 (the "w=4 plain" arm); the first half of JoyAI-Image digest § "Sampling"'s
    v = v_u + w(v_c − v_u) (the paper states no numbered equation).
    """
    return v_uncond + w * (v_cond - v_uncond)


def cfg_rescaled(v_cond: torch.Tensor, v_uncond: torch.Tensor, w: float, dim: int = 1, eps: float = 1e-6) -> torch.Tensor:
    """CFG with norm rescaling (JoyImage pipeline): ``v · ‖v_c‖ / max(‖v‖, eps)``, norms over ``dim``.

    Lesson 05.3 (exercise 05.3.3; used from lesson 05.2 on). JoyAI-Image digest § "Sampling":
    v = v_u + w(v_c − v_u), then v ← v·‖v_c‖/‖v‖ (norm over channels).

    Args:
        v_cond, v_uncond: ``(B, C, H, W)`` velocities with and without the condition.
        w: guidance scale (JoyAI-Image uses 4.0).
        dim: the channel dimension.
    Returns:
        ``(B, C, H, W)``.
    """
    v = cfg_combine(v_cond, v_uncond, w)
    cond_norm = _norm_over(v_cond, dim)  # (B, 1, H, W)
    return v * (cond_norm / _norm_over(v, dim).clamp_min(eps))


def _norm_over(x: torch.Tensor, dim: int) -> torch.Tensor:
    """The 2-norm over ``dim``, kept: ``x.norm(dim=dim, keepdim=True)``, as a sum of squares.

    On a CPU, torch's norm over a short, non-innermost dimension (3 channels of ``(B, C, H, W)``) takes ~60× as
    long as this sum (7 ms against 0.1 ms at B = 128, 24 × 24); every guided sampling step takes two."""
    return x.square().sum(dim, keepdim=True).sqrt()
