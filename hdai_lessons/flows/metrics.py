"""Metrics for guided samples: reward, on-manifold-ness, control effort, distance to a target, spread.

All take samples ``x: (B, D)`` and return Python floats (means over the batch), so lessons can
print and compare them directly.

- ``mean_reward``: E[r(x)], the quantity guidance maximises.
- ``data_log_density``: E[log ρ_1(x)] under the *true* data density (on the 2-D toys it is known in
  closed form): the "distance from the prior" / on-manifold score of the FMRG digest's toy.
- ``control_energy``: ∫‖u_t‖² dt ≈ Σ_k ‖u_k‖² Δt_k, the running cost of the control problem
  (without the 1/(2λ)), averaged over samples.
- ``energy_distance`` and ``mmd``: distances between two sample sets (e.g. guided vs the tilt).
- ``sample_variance``: total variance tr Cov(x), the "variance collapse" meter.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch


def _check(x: torch.Tensor, name: str = "x") -> torch.Tensor:
    if x.dim() != 2:
        raise ValueError(f"{name} must be (B, D) samples, got {tuple(x.shape)}")
    return x


@torch.no_grad()
def mean_reward(x: torch.Tensor, reward: Callable[[torch.Tensor], torch.Tensor]) -> float:
    """E[r(x)] over the batch: (B, D) → float.

    Lesson 04.3; FMRG "Toy experiment for the course" ("Plots").
    """
    return float(reward(_check(x)).mean())


@torch.no_grad()
def data_log_density(x: torch.Tensor, log_prob: Callable[[torch.Tensor], torch.Tensor],
                     floor: "float | None" = None) -> float:
    """E[log ρ_1(x)] under the true data density (``dataset.log_prob``): (B, D) → float.

    ``floor`` clamps each log-density from below first, so one far-off sample cannot dominate
    the mean (report it alongside ``on_manifold_fraction``).

    Lesson 04.3; FMRG "Toy experiment for the course" ("Plots").
    """
    lp = log_prob(_check(x)).reshape(-1)
    if floor is not None:
        lp = lp.clamp_min(floor)
    return float(lp.mean())


@torch.no_grad()
def on_manifold_fraction(x: torch.Tensor, log_prob: Callable[[torch.Tensor], torch.Tensor], threshold: float) -> float:
    """Fraction of samples with log ρ_1(x) ≥ ``threshold``: (B, D) → float in [0, 1].

    Lesson 04.3; FMRG "Toy experiment for the course" ("Plots").
    """
    return float((log_prob(_check(x)).reshape(-1) >= threshold).double().mean())


def control_energy(controls: Sequence[torch.Tensor], dts: Sequence[float]) -> float:
    """Σ_k ‖u_k‖² Δt_k averaged over samples; ``controls[k]``: (B, D), ``dts[k]``: float → float.

    The running cost ∫‖u_t‖² dt of FMRG's control problem (times 1/(2λ) in the objective).

    Lesson 04.3; FMRG "Toy experiment for the course" ("Plots").
    """
    if len(controls) != len(dts):
        raise ValueError(f"{len(controls)} controls but {len(dts)} time steps")
    if not controls:
        return 0.0
    total = sum((u.detach() ** 2).sum(-1) * dt for u, dt in zip(controls, dts))  # (B,)
    return float(total.mean())


def _pdist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.cdist(a.double(), b.double())  # (Na, Nb)


@torch.no_grad()
def energy_distance(x: torch.Tensor, y: torch.Tensor) -> float:
    """Energy distance 2E‖X−Y‖ − E‖X−X'‖ − E‖Y−Y'‖ (V-statistic, ≥ 0): (N, D), (M, D) → float.

    Zero iff the two distributions are equal (in the large-sample limit).

    Lesson 04.1 (used in every lesson of module 04; exercise 04.4.3); FMRG "Toy experiment for the course"
    ("Plots": energy distance / MMD).
    """
    x, y = _check(x, "x"), _check(y, "y")
    return float(2 * _pdist(x, y).mean() - _pdist(x, x).mean() - _pdist(y, y).mean())


@torch.no_grad()
def mmd(x: torch.Tensor, y: torch.Tensor, bandwidth: float = 1.0) -> float:
    """Squared MMD with the RBF kernel k(u, v) = exp(−‖u−v‖²/(2h²)) (V-statistic): (N, D), (M, D) → float.

    Lesson 04.3; FMRG "Toy experiment for the course" ("Plots").
    """
    x, y = _check(x, "x"), _check(y, "y")

    def k(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.exp(-_pdist(a, b) ** 2 / (2 * bandwidth**2))

    return float(k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean())


@torch.no_grad()
def sample_variance(x: torch.Tensor) -> float:
    """Total variance tr Cov(x) (population): (B, D) → float.

    Lesson 04.3; FMRG "Toy experiment for the course" ("Plots").
    """
    x = _check(x).double()
    return float(((x - x.mean(0)) ** 2).mean(0).sum())
