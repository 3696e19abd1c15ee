"""Conditional flow matching on the linear path (paper convention: t = 0 noise, t = 1 data).

The linear interpolant of the FMRG digest, I_t = (1 − t) x_0 + t x_1 with x_0 ~ N(0, I) and
x_1 ~ data, has conditional velocity d/dt I_t = x_1 − x_0. Regressing a network onto it,

    L(θ) = E_{t, x_0, x_1} ‖ b_θ(I_t, t) − (x_1 − x_0) ‖²,

gives, at the optimum, the marginal velocity b_t(x) = E[x_1 − x_0 | I_t = x] whose ODE
transports noise to data. Everything here takes ``(B, ...)`` tensors (dimension-agnostic:
module 05 reuses it on image latents).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from hdai_lessons.core.progress import progress
from hdai_lessons.flows.models import bcast
from hdai_lessons.flows.sampling import VelocityField


def linear_path(x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """I_t = (1 − t) x_0 + t x_1. ``x0, x1 (B, ...)``, ``t (B,)`` → ``(B, ...)``."""
    tb = bcast(t, x0)  # (B, 1, ..., 1)
    return (1 - tb) * x0 + tb * x1


def cfm_target(x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
    """Conditional velocity of the linear path, d/dt I_t = x_1 − x_0. ``(B, ...)``."""
    return x1 - x0


def cfm_pair(x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A training pair of conditional flow matching: the input ``I_t`` and the target ``x_1 − x_0``.

    ``x0`` noise ``(B, ...)``, ``x1`` data ``(B, ...)``, ``t (B,)`` → ``(x_t, u)``, both ``(B, ...)``.
    """
    return linear_path(x0, x1, t), cfm_target(x0, x1)


def denoiser(v: VelocityField, x: torch.Tensor, t: "float | torch.Tensor") -> torch.Tensor:
    """E[x_1 | x_t = x] = x + (1 − t) b_t(x): one Euler step from t to 1 (FMRG digest). ``(B, ...)``."""
    from hdai_lessons.flows.models import as_time

    t = as_time(t, x)
    return x + bcast(1 - t, x) * v(x, t)


def sample_times(n: int, generator: "torch.Generator | None" = None, dist: str = "uniform") -> torch.Tensor:
    """Training times ``(n,)`` in [0, 1]: ``"uniform"`` or ``"logit_normal"`` (σ(N(0, 1)), as SD3 uses)."""
    if dist == "uniform":
        return torch.rand(n, generator=generator)
    if dist == "logit_normal":
        return torch.sigmoid(torch.randn(n, generator=generator))
    raise ValueError(f"dist must be 'uniform' or 'logit_normal', got {dist!r}")


def cfm_loss(v: VelocityField, x1: torch.Tensor, x0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The conditional flow-matching loss on one batch (a scalar).

    ``mean_b Σ_d (b_θ(I_t, t) − (x_1 − x_0))²`` — squared error summed over the data
    dimensions, averaged over the batch. ``x1, x0 (B, ...)``, ``t (B,)``.
    """
    xt, u = cfm_pair(x0, x1, t)
    err = v(xt, t) - u  # (B, ...)
    return err.pow(2).flatten(1).sum(1).mean()


@dataclass
class CFMConfig:
    """Flow-matching training settings."""

    steps: int = 3000     #: optimiser steps
    batch: int = 512      #: data points per step
    lr: float = 2e-3      #: Adam learning rate (cosine-decayed to 0)
    t_dist: str = "uniform"  #: training-time distribution (``sample_times``)


def train_cfm(v: torch.nn.Module, sample_data: Callable[[int, torch.Generator], torch.Tensor], cfg: CFMConfig = CFMConfig(), generator: "torch.Generator | None" = None, desc: str = "flow matching") -> list[float]:
    """Train ``v`` in place by conditional flow matching; returns the loss of every step.

    ``sample_data(n, generator) -> (n, ...)`` draws data points x_1 (e.g. ``GaussianMixture.sample``)
    on the CPU; batches move to the device of ``v``'s parameters (so a GPU run needs only ``v.to("cuda")``).
    """
    dev = next(v.parameters()).device  # data and noise are drawn on the CPU (seeded), then moved
    opt = torch.optim.Adam(v.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(cfg.steps, 1))
    losses = []
    for _ in progress(range(cfg.steps), desc=desc):
        x1 = sample_data(cfg.batch, generator)
        x0 = torch.randn(x1.shape, generator=generator, dtype=x1.dtype)
        t = sample_times(cfg.batch, generator, cfg.t_dist).to(x1.dtype)
        loss = cfm_loss(v, x1.to(dev), x0.to(dev), t.to(dev))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    return losses
