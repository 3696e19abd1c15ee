"""2-D data sets with ``.sample(n, generator) -> (n, 2)`` and ``.log_prob(x: (B, 2)) -> (B,)``.

- ``GaussianMixture``: exact log-density (``circle`` builds the FMRG digest's modes-on-a-circle toy).
- ``Moons``, ``Rings``: points on curves plus isotropic Gaussian noise; the density is the noise
  kernel averaged over the curve, computed by quadrature on ``n_quad`` curve points (exact up to
  that quadrature; relative error ≪ 1 % when the spacing is below the noise std).
- ``Checkerboard``: uniform on the dark squares; exact log-density (``-inf`` off the board).

``energy_distance`` compares two sample sets (the "quality" axis of lessons 04.1–04.2).
"""
from __future__ import annotations

import abc
import math

import torch

LOG_2PI = math.log(2 * math.pi)


class GaussianMixture:
    """Mixture of isotropic Gaussians: means ``(K, D)``, stds ``(K,)`` (or a float), weights ``(K,)``.

    Lesson 04.1 (the shipped 8-mode mixture is used in 04.2–04.3); FMRG "Toy experiment for the course" ("Data";
    rings and moons: its "Manifold variant").
    """

    def __init__(self, means: torch.Tensor, stds: "float | torch.Tensor" = 1.0, weights: "torch.Tensor | None" = None):
        self.means = torch.as_tensor(means, dtype=torch.float32)
        if self.means.dim() != 2:
            raise ValueError(f"means must be (K, D), got {tuple(self.means.shape)}")
        K, self.dim = self.means.shape
        self.stds = torch.as_tensor(stds, dtype=torch.float32).expand(K).clone()
        w = torch.ones(K) if weights is None else torch.as_tensor(weights, dtype=torch.float32)
        if w.shape != (K,) or (w < 0).any():
            raise ValueError("weights must be (K,) and non-negative")
        self.weights = w / w.sum()

    @classmethod
    def circle(cls, k: int = 8, radius: float = 3.0, std: float = 0.3) -> "GaussianMixture":
        """``k`` equal modes on a circle of ``radius`` (mode i at angle 2πi/k)."""
        ang = 2 * math.pi * torch.arange(k) / k
        return cls(torch.stack([radius * torch.cos(ang), radius * torch.sin(ang)], -1), std)

    @property
    def mean(self) -> torch.Tensor:
        """Mixture mean ``(D,)``."""
        return self.weights @ self.means

    def sample(self, n: int, generator: "torch.Generator | None" = None, return_labels: bool = False):
        """``(n, D)`` samples (and ``(n,)`` component labels with ``return_labels``)."""
        comp = torch.multinomial(self.weights, n, replacement=True, generator=generator)  # (n,)
        x = self.means[comp] + self.stds[comp, None] * torch.randn(n, self.dim, generator=generator)
        return (x, comp) if return_labels else x

    def component_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log w_k + log N(x; μ_k, σ_k² I): ``(B, D) -> (B, K)``."""
        m, s = self.means.to(x), self.stds.to(x)
        d2 = (x[:, None, :] - m[None]).pow(2).sum(-1)  # (B, K)
        return self.weights.to(x).log() - 0.5 * d2 / s**2 - self.dim * (s.log() + 0.5 * LOG_2PI)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log-density ``(B, D) -> (B,)`` (differentiable)."""
        return torch.logsumexp(self.component_log_prob(x), dim=-1)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """∇_x log p(x), ``(B, D)``, in closed form."""
        post = torch.softmax(self.component_log_prob(x), dim=-1)  # (B, K)
        m, s = self.means.to(x), self.stds.to(x)
        return (post[:, :, None] * (m[None] - x[:, None, :]) / s[None, :, None] ** 2).sum(1)

    def responsibilities(self, x: torch.Tensor) -> torch.Tensor:
        """Posterior mode probabilities ``(B, K)``."""
        return torch.softmax(self.component_log_prob(x), dim=-1)


class _NoisyCurves(abc.ABC):
    """Points c(θ) on curves plus N(0, σ² I) noise; log-density by quadrature over ``_curve_points``."""

    dim = 2

    def __init__(self, noise: float, n_quad: int):
        self.noise, self.n_quad = float(noise), int(n_quad)

    @abc.abstractmethod
    def _curve(self, u: torch.Tensor) -> torch.Tensor:  # u ∈ [0, 1) (n,) -> (n, 2), uniform in arc measure
        """Points on the curves for arc parameters ``u`` (each subclass draws its own curves)."""

    def sample(self, n: int, generator: "torch.Generator | None" = None) -> torch.Tensor:
        u = torch.rand(n, generator=generator)
        return self._curve(u) + self.noise * torch.randn(n, 2, generator=generator)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log (1/Q) Σ_q N(x; c(u_q), σ² I) on Q midpoints u_q: ``(B, 2) -> (B,)``."""
        u = (torch.arange(self.n_quad, dtype=x.dtype, device=x.device) + 0.5) / self.n_quad
        c = self._curve(u).to(x)  # (Q, 2)
        out = []
        for xb in x.split(2048):  # chunks bound the (chunk, Q) distance matrix
            d2 = (xb[:, None, :] - c[None]).pow(2).sum(-1)  # (chunk, Q), smooth everywhere
            out.append(torch.logsumexp(-0.5 * d2 / self.noise**2, dim=-1))
        return torch.cat(out) - 2 * math.log(self.noise) - LOG_2PI - math.log(self.n_quad)


class Moons(_NoisyCurves):
    """Two interleaved half circles (scikit-learn's ``make_moons`` geometry), scaled and centred.

    Lesson 04.1 (the shipped 8-mode mixture is used in 04.2–04.3); FMRG "Toy experiment for the course" ("Data";
    rings and moons: its "Manifold variant").
    """

    def __init__(self, noise: float = 0.1, scale: float = 2.0, n_quad: int = 512):
        super().__init__(noise, n_quad)
        self.scale = float(scale)

    def _curve(self, u: torch.Tensor) -> torch.Tensor:
        upper = u < 0.5
        th = math.pi * torch.where(upper, 2 * u, 2 * u - 1)  # (n,) in [0, π)
        up = torch.stack([torch.cos(th), torch.sin(th)], -1)
        low = torch.stack([1 - torch.cos(th), 0.5 - torch.sin(th)], -1)
        pts = torch.where(upper[:, None], up, low) - torch.tensor([0.5, 0.25], dtype=u.dtype)
        return self.scale * pts


class Rings(_NoisyCurves):
    """Concentric circles of the given radii; points spread in proportion to circumference.

    Lesson 04.1 (the shipped 8-mode mixture is used in 04.2–04.3); FMRG "Toy experiment for the course" ("Data";
    rings and moons: its "Manifold variant").
    """

    def __init__(self, radii: "tuple[float, ...]" = (1.0, 2.5), noise: float = 0.1, n_quad: int = 1024):
        super().__init__(noise, n_quad)
        self.radii = torch.tensor(radii, dtype=torch.float32)

    def _curve(self, u: torch.Tensor) -> torch.Tensor:
        r = self.radii.to(u)
        cum = torch.cumsum(r, 0) / r.sum()  # ring k owns [cum[k-1], cum[k])
        k = torch.searchsorted(cum, u.contiguous(), right=True).clamp(max=len(r) - 1)
        lo = torch.cat([torch.zeros(1, dtype=u.dtype), cum])[k]
        th = 2 * math.pi * (u - lo) / (cum[k] - lo)
        return r[k, None] * torch.stack([torch.cos(th), torch.sin(th)], -1)


class Checkerboard:
    """Uniform on the dark squares of an ``n × n`` board of side ``size`` centred at 0.

    Lesson 04.1 (the shipped 8-mode mixture is used in 04.2–04.3); FMRG "Toy experiment for the course" ("Data";
    rings and moons: its "Manifold variant").
    """

    dim = 2

    def __init__(self, n: int = 4, size: float = 6.0):
        self.n, self.size = int(n), float(size)
        self.cell = self.size / self.n
        self.area = (self.n * self.n + 1) // 2 * self.cell**2  # dark squares: (i + j) even

    def _dark(self, x: torch.Tensor) -> torch.Tensor:
        ij = torch.floor((x + self.size / 2) / self.cell)  # (B, 2)
        inside = ((ij >= 0) & (ij < self.n)).all(-1)
        return inside & ((ij.sum(-1) % 2) == 0)

    def sample(self, n: int, generator: "torch.Generator | None" = None) -> torch.Tensor:
        n_dark = (self.n * self.n + 1) // 2
        sq = torch.randint(0, n_dark, (n,), generator=generator)
        flat = torch.arange(self.n * self.n)
        dark = flat[(flat // self.n + flat % self.n) % 2 == 0]  # (n_dark,)
        ij = torch.stack([dark[sq] // self.n, dark[sq] % self.n], -1).float()  # (n, 2)
        return (ij + torch.rand(n, 2, generator=generator)) * self.cell - self.size / 2

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """``-log(area)`` on dark squares, ``-inf`` elsewhere: ``(B, 2) -> (B,)``."""
        out = torch.full(x.shape[:1], -math.log(self.area), dtype=x.dtype, device=x.device)
        return torch.where(self._dark(x), out, torch.full_like(out, -math.inf))


DATASETS = {"gmm": GaussianMixture.circle, "moons": Moons, "rings": Rings, "checkerboard": Checkerboard}


def make_dataset(name: str, **kwargs):
    """Build a data set by name: ``"gmm"`` (8 modes on a circle), ``"moons"``, ``"rings"``, ``"checkerboard"``.

    Lesson 04.1 (the shipped 8-mode mixture is used in 04.2–04.3); FMRG "Toy experiment for the course" ("Data";
    rings and moons: its "Manifold variant").
    """
    if name not in DATASETS:
        raise ValueError(f"unknown 2-D data set {name!r}; choose one of {sorted(DATASETS)}")
    return DATASETS[name](**kwargs)
