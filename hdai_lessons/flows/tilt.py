"""Reference distributions for guidance: the reward tilt, and the 1-D Gaussian model solved exactly.

**The tilt.** Guidance is usually posed as sampling ρ̃(x) ∝ e^{β r(x)} ρ_1(x) (FMRG, "Core idea").
``tilt_resample`` draws from it by self-normalised importance resampling (SNIR) of unguided
samples: weights w_i ∝ e^{β r(x_i)}, normalised, then multinomial resampling. ``gaussian_tilt``
is the closed form for a Gaussian base and a quadratic reward, the test's ground truth.

**The paper's analytic toy** (FMRG, "Early stopping"): data N(μ_1, σ_1²) in 1-D, noise N(0, 1),
linear path x_t = (1−t)x_0 + t x_1, reward r(x) = −α(x−a)²/2. Everything is affine:

- marginal std s_t = √((1−t)² + t²σ_1²); flow map X_{t,1}(x) = μ_1 + (σ_1/s_t)(x − tμ_1), so the
  Jacobian ∂X_{t,1}/∂x = σ_1/s_t;
- the predicted endpoint y_t = X_{t,1}(x_t) moves only through the control:
  dy/dt = (σ_1/s_t)·u_t.  (inferred: differentiate X_{t,1}(x_t) along ẋ = b + u)

Then for the three control laws (derivations inferred, they reproduce the site's statements):

- **FMRG-J (greedy)** u = λ (σ_1/s_t) r'(y): y − a decays as exp(−λα G(t_stop)), with
  G(τ) = ∫_0^τ σ_1²/s_t² dt. The variance contracts *exponentially* in λ.
- **FMRG-E** u = λ r'(y): the rate uses ∫ σ_1/s_t dt instead.
- **Exact optimal control** u_t = λ Φ(1,t) r'(x_1) with Φ(1,t) = σ_1/s_t (Pontryagin):
  x_1 − a = (y_0 − a)/(1 + λαG(1)), a *polynomial* contraction, like the tilt's
  σ_T² = σ_1²/(1 + λασ_1²) (tilt ∝ e^{λ r} ρ_1).

Early stopping (guide on [0, t_stop] only) replaces G(1) by G(t_stop) < G(1).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch


# ----------------------------------------------------------------------------------------- tilt
def gaussian_tilt(mean: torch.Tensor, cov: torch.Tensor, a: torch.Tensor, Q: torch.Tensor,
                  beta: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Closed-form tilt of N(mean, cov) by e^{β r}, r(x) = −(x − a)ᵀQ(x − a)/2.

    The tilt is Gaussian with precision P = cov⁻¹ + βQ and mean P⁻¹(cov⁻¹ mean + βQa).
    Shapes: mean, a (D,); cov, Q (D, D) → (mean_T (D,), cov_T (D, D)).

    Lesson 04.3; the reward tilt ρ̃ ∝ e^{r}ρ of FMRG "Core idea"; its Gaussian closed form in FMRG "Early
    stopping".
    """
    mean, a = torch.as_tensor(mean, dtype=torch.float64), torch.as_tensor(a, dtype=torch.float64)
    cov, Q = torch.as_tensor(cov, dtype=torch.float64), torch.as_tensor(Q, dtype=torch.float64)
    if cov.shape != (mean.numel(), mean.numel()) or Q.shape != cov.shape:
        raise ValueError(f"cov and Q must be (D, D) with D={mean.numel()}; got {tuple(cov.shape)}, {tuple(Q.shape)}")
    prec0 = torch.linalg.inv(cov)
    prec = prec0 + beta * Q  # (D, D)
    cov_t = torch.linalg.inv(prec)
    mean_t = cov_t @ (prec0 @ mean + beta * Q @ a)  # (D,)
    return mean_t, cov_t


@dataclass
class TiltSample:
    """Output of ``tilt_resample``: resampled points and the importance-sampling diagnostics.

    Lesson 04.3; FMRG "Toy experiment for the course" ("Methods": the reference tilt by self-normalised
    importance resampling).
    """

    samples: torch.Tensor   # (n_out, D)
    weights: torch.Tensor   # (n_pool,) normalised self-normalised importance weights
    ess: float              # effective sample size 1/Σw², out of n_pool


def snis_weights(rewards: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
    """Self-normalised importance weights w_i = e^{β r_i} / Σ_j e^{β r_j}: (N,) → (N,), stable (log-sum-exp).

    Lesson 04.3; FMRG "Toy experiment for the course" ("Methods": the reference tilt by self-normalised
    importance resampling).
    """
    if rewards.dim() != 1:
        raise ValueError(f"rewards must be (N,), got {tuple(rewards.shape)}")
    return torch.softmax(beta * rewards.double(), dim=0)


def tilt_resample(pool: torch.Tensor, reward: Callable[[torch.Tensor], torch.Tensor], beta: float = 1.0,
                  n_out: int = 1000, generator: "torch.Generator | None" = None) -> TiltSample:
    """Draw ``n_out`` points from ρ̃ ∝ e^{β r} ρ by SNIR of ``pool`` ~ ρ: (N, D) → ``TiltSample``.

    Resampling is multinomial with replacement; the estimate is consistent as N → ∞, and its
    quality is summarised by the ESS (a few percent of N means the pool is too small).

    Lesson 04.3; FMRG "Toy experiment for the course" ("Methods": the reference tilt by self-normalised
    importance resampling).
    """
    if pool.dim() != 2:
        raise ValueError(f"pool must be (N, D) samples from the base, got {tuple(pool.shape)}")
    with torch.no_grad():
        r = reward(pool).reshape(-1)  # (N,)
    w = snis_weights(r, beta)
    idx = torch.multinomial(w.float(), n_out, replacement=True, generator=generator)  # (n_out,)
    return TiltSample(samples=pool[idx], weights=w, ess=float(1.0 / (w**2).sum()))


# --------------------------------------------------------------------- the analytic Gaussian toy
@dataclass(frozen=True)
class GaussianToy:
    """1-D data N(μ_1, σ_1²), noise N(0, 1), reward r = −α(x − a)²/2 (FMRG's analytic model).

    Lesson 04.3; the Gaussian model with quadratic reward of FMRG "Early stopping".
    """

    mu1: float = 0.0
    sigma1: float = 1.0
    a: float = 2.0
    alpha: float = 1.0

    def s(self, t: torch.Tensor) -> torch.Tensor:
        """Marginal std s_t = √((1−t)² + t²σ_1²): (T,) → (T,)."""
        return torch.sqrt((1 - t) ** 2 + t**2 * self.sigma1**2)

    def flow_map_to_1(self, x: torch.Tensor, t: float) -> torch.Tensor:
        """X_{t,1}(x) = μ_1 + (σ_1/s_t)(x − tμ_1): any shape → same shape."""
        st = math.sqrt((1 - t) ** 2 + t**2 * self.sigma1**2)
        return self.mu1 + self.sigma1 / st * (x - t * self.mu1)

    def velocity(self, x: torch.Tensor, t: float) -> torch.Tensor:
        """b_t(x) = ∂_t X_{0,t} at X_{0,t}^{-1}(x) = μ_1 + (ṡ_t/s_t)(x − tμ_1)."""
        st2 = (1 - t) ** 2 + t**2 * self.sigma1**2
        ds_over_s = (-(1 - t) + t * self.sigma1**2) / st2
        return self.mu1 + ds_over_s * (x - t * self.mu1)

    def rate_integral(self, t_stop: float, power: int = 2, n: int = 4096) -> float:
        """G(τ) = ∫_0^τ (σ_1/s_t)^power dt by the midpoint rule (power 2: FMRG-J / exact OC; 1: FMRG-E)."""
        if not 0.0 <= t_stop <= 1.0:
            raise ValueError(f"t_stop must be in [0, 1], got {t_stop}")
        if t_stop == 0:
            return 0.0
        t = (torch.arange(n, dtype=torch.float64) + 0.5) * (t_stop / n)
        return float(((self.sigma1 / self.s(t)) ** power).sum() * (t_stop / n))


def gaussian_terminal(toy: GaussianToy, lam: float, method: str, t_stop: float = 1.0) -> tuple[float, float]:
    """Terminal (mean, variance) of the guided flow in the analytic Gaussian toy (continuous time).

    ``method``: ``"unguided"``, ``"fmrg_j"`` (greedy, exponential contraction), ``"fmrg_e"``,
    ``"exact"`` (optimal control, polynomial) or ``"tilt"`` (ρ̃ ∝ e^{λ r} ρ_1; t_stop ignored).
    See the module docstring for the closed forms.

    Lesson 04.3; FMRG "Early stopping".
    """
    m0, v0, a = toy.mu1, toy.sigma1**2, toy.a
    if method == "unguided" or lam == 0:
        return m0, v0
    if method == "tilt":
        prec = 1 / v0 + lam * toy.alpha
        return (m0 / v0 + lam * toy.alpha * a) / prec, 1 / prec
    if method == "fmrg_j":
        c = math.exp(-lam * toy.alpha * toy.rate_integral(t_stop, power=2))
    elif method == "fmrg_e":
        c = math.exp(-lam * toy.alpha * toy.rate_integral(t_stop, power=1))
    elif method == "exact":
        c = 1.0 / (1.0 + lam * toy.alpha * toy.rate_integral(t_stop, power=2))
    else:
        raise ValueError(f"unknown method {method!r}; choose unguided, fmrg_j, fmrg_e, exact, tilt")
    # x_1 − a = c (y_0 − a) with y_0 = X_{0,1}(x_0) ~ N(μ_1, σ_1²)
    return a + c * (m0 - a), c**2 * v0


def simulate_gaussian_fmrg(toy: GaussianToy, lam: float, t_stop: float = 1.0, steps: int = 400,
                           n: int = 20000, jacobian: bool = True, seed: int = 0) -> torch.Tensor:
    """Simulate the guided ODE ẋ = b_t(x) + u_t(x) of the Gaussian toy with Euler steps: → (n,) samples.

    u_t(x) = λ J_t r'(X_{t,1}(x)) with J_t = σ_1/s_t (``jacobian=True``, FMRG-J) or 1 (FMRG-E), on
    [0, t_stop]. A numerical check of ``gaussian_terminal``.

    Lesson 04.3; FMRG "Early stopping".
    """
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, generator=g, dtype=torch.float64)
    dt = 1.0 / steps
    for k in range(steps):
        t = k * dt
        dx = toy.velocity(x, t)
        if t < t_stop:
            jac = toy.sigma1 / math.sqrt((1 - t) ** 2 + t**2 * toy.sigma1**2) if jacobian else 1.0
            y = toy.flow_map_to_1(x, t)
            dx = dx + lam * jac * (-toy.alpha) * (y - toy.a)
        x = x + dt * dx
    return x
