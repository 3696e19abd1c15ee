"""Conditional flow matching on the linear path (paper convention: t = 0 noise, t = 1 data).

The linear interpolant of the FMRG digest, I_t = (1 − t) x_0 + t x_1 with x_0 ~ N(0, I) and
x_1 ~ data, has conditional velocity d/dt I_t = x_1 − x_0. Regressing a network onto it,

    L(θ) = E_{t, x_0, x_1} ‖ b_θ(I_t, t) − (x_1 − x_0) ‖²,

gives, at the optimum, the marginal velocity b_t(x) = E[x_1 − x_0 | I_t = x] whose ODE
transports noise to data. Everything here takes ``(B, ...)`` tensors (dimension-agnostic:
module 05 reuses it on image latents).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from hdai_lessons.core.progress import progress
from hdai_lessons.core.scale import by_scale
from hdai_lessons.flows.models import bcast
from hdai_lessons.flows.sampling import VelocityField


def linear_path(x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """I_t = (1 − t) x_0 + t x_1. ``x0, x1 (B, ...)``, ``t (B,)`` → ``(B, ...)``.

    Lesson 04.1; the linear interpolant I_t of FMRG "Base flow and flow map" (Albergo & Vanden-Eijnden 2023,
    stochastic interpolants).
    """
    tb = bcast(t, x0)  # (B, 1, ..., 1)
    return (1 - tb) * x0 + tb * x1


def cfm_target(x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
    """Conditional velocity of the linear path, d/dt I_t = x_1 − x_0. ``(B, ...)``.

    Lesson 04.1; the conditional velocity of the linear path, FMRG "Base flow and flow map"; the target of
    Lipman et al. 2023's conditional flow matching.
    """
    return x1 - x0


def cfm_pair(x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A training pair of conditional flow matching: the input ``I_t`` and the target ``x_1 − x_0``.

    ``x0`` noise ``(B, ...)``, ``x1`` data ``(B, ...)``, ``t (B,)`` → ``(x_t, u)``, both ``(B, ...)``.

    Lesson 04.1 (exercise 04.1.1); the conditional flow-matching loss of Lipman et al. 2023 on the linear
    interpolant of Albergo & Vanden-Eijnden 2023 (stochastic interpolants).
    """
    return linear_path(x0, x1, t), cfm_target(x0, x1)


def denoiser(v: VelocityField, x: torch.Tensor, t: "float | torch.Tensor") -> torch.Tensor:
    """E[x_1 | x_t = x] = x + (1 − t) b_t(x): one Euler step from t to 1 (FMRG digest). ``(B, ...)``.

    Lesson 04.1 (used again in 04.3); the denoiser E[x_1 | x_t] = x + (1 − t) b_t(x) of FMRG "Base flow and flow
    map".
    """
    from hdai_lessons.flows.models import as_time

    t = as_time(t, x)
    return x + bcast(1 - t, x) * v(x, t)


def sample_times(n: int, generator: "torch.Generator | None" = None, dist: str = "uniform") -> torch.Tensor:
    """Training times ``(n,)`` in [0, 1]: ``"uniform"`` or ``"logit_normal"`` (σ(N(0, 1)), as SD3 uses).

    Lesson 04.1 (module 05 uses "logit_normal"); the training-time distribution of the conditional flow-matching
    loss of Lipman et al. 2023 on the linear interpolant of Albergo & Vanden-Eijnden 2023 (stochastic
    interpolants).
    """
    if dist == "uniform":
        return torch.rand(n, generator=generator)
    if dist == "logit_normal":
        return torch.sigmoid(torch.randn(n, generator=generator))
    raise ValueError(f"dist must be 'uniform' or 'logit_normal', got {dist!r}")


def cfm_loss(v: VelocityField, x1: torch.Tensor, x0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The conditional flow-matching loss on one batch (a scalar).

    ``mean_b Σ_d (b_θ(I_t, t) − (x_1 − x_0))²`` — squared error summed over the data
    dimensions, averaged over the batch. ``x1, x0 (B, ...)``, ``t (B,)``.

    Lesson 04.1 (exercise 04.1.2); the conditional flow-matching loss of Lipman et al. 2023 on the linear
    interpolant of Albergo & Vanden-Eijnden 2023 (stochastic interpolants).
    """
    xt, u = cfm_pair(x0, x1, t)
    err = v(xt, t) - u  # (B, ...)
    return err.pow(2).flatten(1).sum(1).mean()


def adam_cosine_fit(params, batch_loss: Callable[[], torch.Tensor], steps: int, lr: float, desc: str) -> list[float]:
    """Minimise ``batch_loss()`` (a fresh batch each call) by Adam with a cosine-decayed learning rate.

    ``steps`` optimiser steps from ``lr`` down to 0; returns the loss of every step. The loop shared by
    flow matching (``train_cfm``) and flow-map distillation (``flowmap.distill_flow_map``).

    Lessons 04.1–04.2; FMRG "Toy experiment for the course" ("Velocity model": Adam).
    """
    opt = torch.optim.Adam(params, lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1))
    losses = []
    for _ in progress(range(steps), desc=desc):
        loss = batch_loss()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    return losses


@dataclass
class CFMConfig:
    """Flow-matching training settings (``train_cfm``).

    Lesson 04.1; the conditional flow-matching loss of Lipman et al. 2023 on the linear interpolant of Albergo &
    Vanden-Eijnden 2023 (stochastic interpolants).
    """

    steps: int = 3000
    """Optimiser steps."""
    batch: int = 512
    """Data points per step."""
    lr: float = 2e-3
    """Adam learning rate (cosine-decayed to 0)."""
    t_dist: str = "uniform"
    """Training-time distribution (``sample_times``)."""


def train_cfm(v: torch.nn.Module, sample_data: Callable[[int, torch.Generator], torch.Tensor], cfg: CFMConfig = CFMConfig(), generator: "torch.Generator | None" = None, desc: str = "flow matching") -> list[float]:
    """Train ``v`` in place by conditional flow matching; returns the loss of every step.

    ``sample_data(n, generator) -> (n, ...)`` draws data points x_1 (e.g. ``GaussianMixture.sample``)
    on the CPU; batches move to the device of ``v``'s parameters (so a GPU run needs only ``v.to("cuda")``).

    Lesson 04.1; the conditional flow-matching loss of Lipman et al. 2023 on the linear interpolant of Albergo &
    Vanden-Eijnden 2023 (stochastic interpolants); FMRG "Toy experiment for the course" ("Velocity model").
    """
    dev = next(v.parameters()).device  # data and noise are drawn on the CPU (seeded), then moved

    def batch_loss() -> torch.Tensor:
        x1 = sample_data(cfg.batch, generator)
        x0 = torch.randn(x1.shape, generator=generator, dtype=x1.dtype)
        t = sample_times(cfg.batch, generator, cfg.t_dist).to(x1.dtype)
        return cfm_loss(v, x1.to(dev), x0.to(dev), t.to(dev))

    return adam_cosine_fit(v.parameters(), batch_loss, cfg.steps, cfg.lr, desc)


@dataclass
class FlowMatchingLessonConfig:
    """Lesson 04.1's sizes: the velocity network, its training run, the evaluation and the claim's seeds.

    Lesson 04.1; FMRG "Toy experiment for the course" ("Velocity model").
    """

    hidden: int = 96
    """Width of the ``VelocityMLP``'s hidden layers."""
    depth: int = 3
    """Hidden layers of the ``VelocityMLP``."""
    train: CFMConfig = field(default_factory=lambda: CFMConfig(steps=1500, batch=512, lr=3e-3))
    """The flow-matching run (``train_cfm``)."""
    n_eval: int = 2000
    """Samples per evaluation (noise, reference data, energy distances)."""
    n_seeds: int = 4
    """Independently trained velocity fields for the claim (§7)."""
    nfes: tuple = (1, 2, 4, 8, 16, 32, 64)
    """The NFE budgets of the quality sweep (``nfe_quality_sweep``)."""

    @property
    def net(self) -> dict:
        """``VelocityMLP`` size arguments: ``VelocityMLP(dim=2, **cfg.net)``."""
        return {"hidden": self.hidden, "depth": self.depth}

    @classmethod
    def for_scale(cls, scale) -> FlowMatchingLessonConfig:
        """The rung's sizes: smoke (seconds), toy (a laptop CPU, the default), full (a GPU)."""
        return by_scale(scale,
                        smoke=cls(hidden=32, depth=2, train=CFMConfig(steps=30, batch=128, lr=3e-3), n_eval=300,
                                  n_seeds=2, nfes=(1, 2, 4)),
                        toy=cls(),
                        full=cls(hidden=256, depth=4, train=CFMConfig(steps=20_000, batch=4096, lr=1e-3), n_eval=8000,
                                 n_seeds=5, nfes=(1, 2, 4, 8, 16, 32, 64, 128)))
