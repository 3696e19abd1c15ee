"""Differentiable rewards ``r(x)`` for guiding a flow (the terminal cost −r(x_1) of FMRG's control problem).

Every reward is a callable ``r(x: (B, D)) -> (B,)``, differentiable in ``x`` with plain torch ops,
so guidance can take ``∇_x r`` by autograd. In the paper's control problem (FMRG, §"Control
problem")

    min_u ∫_0^1 ‖u_t‖²/(2λ) dt − r(x_1^u)

``r`` is the terminal reward; the guidance strength λ multiplies it inside the control law, so
rewards here carry no λ of their own.

- ``QuadraticReward``: r(x) = −‖x − a‖² / (2 σ_r²) (the paper's analytic Gaussian toy, and the
  reward whose tilt of a Gaussian has a closed form, see ``tilt.gaussian_tilt``).
- ``SoftModeIndicator``: r(x) = exp(−‖x − c‖² / (2 w²)), a smooth "is x in this mode" in [0, 1].
- ``ClassifierLogProb``: r(x) = log p(y | x) of a classifier (``GMMClassifier`` is the exact Bayes
  classifier of a Gaussian mixture; lesson 04.4 uses a trained CNN on digits).
- ``LinearReward``: r(x) = ⟨w, x⟩ + b, a direction that points off the data manifold (rings, moons).
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn


def _as_2d(x: torch.Tensor, dim: "int | None", name: str) -> torch.Tensor:
    if x.dim() != 2:
        raise ValueError(f"{name}: expected x of shape (B, D), got {tuple(x.shape)}")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(f"{name}: expected x of shape (B, {dim}), got {tuple(x.shape)}")
    return x


class QuadraticReward:
    """r(x) = −‖x − a‖² / (2 σ_r²).  x: (B, D) → (B,).

    Args:
        a: ``(D,)`` the target point.
        sigma_r: length scale (the reward is −½ at distance σ_r).

    Its gradient ∇r(x) = −(x − a)/σ_r² points straight at ``a``; with a Gaussian base the reward
    tilt is Gaussian again (``tilt.gaussian_tilt``), which the tests use as ground truth.

    Lesson 04.3; FMRG "Toy experiment for the course" ("Reward"); the quadratic reward of FMRG "Early stopping".
    """

    def __init__(self, a: Sequence[float] | torch.Tensor, sigma_r: float = 1.0):
        self.a = torch.as_tensor(a, dtype=torch.float32).reshape(-1)
        if sigma_r <= 0:
            raise ValueError(f"sigma_r must be positive, got {sigma_r}")
        self.sigma_r = float(sigma_r)

    @property
    def precision(self) -> torch.Tensor:
        """The reward's Hessian is −Q with Q = I/σ_r²: (D, D)."""
        d = self.a.numel()
        return torch.eye(d) / self.sigma_r**2

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = _as_2d(x, self.a.numel(), "QuadraticReward")
        a = self.a.to(x)
        return -((x - a) ** 2).sum(-1) / (2 * self.sigma_r**2)

    def __repr__(self) -> str:
        return f"QuadraticReward(a={self.a.tolist()}, sigma_r={self.sigma_r})"


class SoftModeIndicator:
    """r(x) = exp(−‖x − c‖² / (2 w²)) ∈ (0, 1]: a smooth indicator of "x is in the mode at c".

    x: (B, D) → (B,). Its gradient vanishes far from ``c`` (a guidance method only feels it
    once its endpoint prediction lands near the mode), which is what makes it harder than
    ``QuadraticReward``.

    Lesson 04.3 (an alternative toy reward); FMRG "Toy experiment for the course" ("Reward": a soft indicator of
    one mode).
    """

    def __init__(self, center: Sequence[float] | torch.Tensor, width: float = 1.0):
        self.center = torch.as_tensor(center, dtype=torch.float32).reshape(-1)
        if width <= 0:
            raise ValueError(f"width must be positive, got {width}")
        self.width = float(width)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = _as_2d(x, self.center.numel(), "SoftModeIndicator")
        c = self.center.to(x)
        return torch.exp(-((x - c) ** 2).sum(-1) / (2 * self.width**2))

    def __repr__(self) -> str:
        return f"SoftModeIndicator(center={self.center.tolist()}, width={self.width})"


class GMMClassifier(nn.Module):
    """The exact Bayes classifier of an isotropic Gaussian mixture: logits_k(x) = log w_k + log N(x; μ_k, s²I).

    x: (B, D) → logits (B, K) (unnormalised; ``log_softmax`` gives log p(k | x)).

    Lesson 04.3 (a toy classifier reward; tests); classifier guidance, FMRG "Related guidance methods".
    """

    def __init__(self, means: torch.Tensor, std: float, weights: "torch.Tensor | None" = None):
        super().__init__()
        means = torch.as_tensor(means, dtype=torch.float32)
        if means.dim() != 2:
            raise ValueError(f"means must be (K, D), got {tuple(means.shape)}")
        k = means.shape[0]
        w = torch.full((k,), 1.0 / k) if weights is None else torch.as_tensor(weights, dtype=torch.float32)
        self.register_buffer("means", means)
        self.register_buffer("log_w", w.log())
        self.std = float(std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _as_2d(x, self.means.shape[1], "GMMClassifier")
        d2 = ((x[:, None, :] - self.means[None].to(x)) ** 2).sum(-1)  # (B, K)
        return self.log_w.to(x)[None] - d2 / (2 * self.std**2)


class ClassifierLogProb:
    """r(x) = log p(y = target | x) = log_softmax(classifier(x))[:, target].

    Args:
        classifier: ``(B, ...) -> (B, K)`` logits (an ``nn.Module`` is put in eval mode).
        target: the class whose log-probability is the reward.
        flat_shape: if given (e.g. ``(1, 8, 8)``), ``x`` of shape ``(B, D)`` is reshaped to
            ``(B, *flat_shape)`` before the classifier (guidance works on flat vectors).
    x: (B, D) → (B,). Bounded above by 0; its gradient is the classifier-guidance direction.

    Lesson 04.4; FMRG "Full-scale lesson options", Option B (self-contained, sklearn's 8×8 digits and a small
    classifier reward); classifier guidance, FMRG "Related guidance methods".
    """

    def __init__(self, classifier: Callable[[torch.Tensor], torch.Tensor], target: int,
                 flat_shape: "tuple[int, ...] | None" = None):
        self.classifier = classifier
        if isinstance(classifier, nn.Module):
            classifier.eval()
            for p in classifier.parameters():
                p.requires_grad_(False)
        self.target = int(target)
        self.flat_shape = flat_shape

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2:
            raise ValueError(f"ClassifierLogProb: expected x of shape (B, D), got {tuple(x.shape)}")
        inp = x if self.flat_shape is None else x.reshape(x.shape[0], *self.flat_shape)  # (B, *shape)
        logits = self.classifier(inp)  # (B, K)
        if not (0 <= self.target < logits.shape[-1]):
            raise ValueError(f"target {self.target} out of range for {logits.shape[-1]} classes")
        return torch.log_softmax(logits, dim=-1)[:, self.target]


class LinearReward:
    """r(x) = ⟨w, x⟩ + b.  x: (B, D) → (B,).

    A constant gradient ``w``: with ``w`` pointing away from a ring or the moons, FMRG-E keeps
    pushing samples off the data manifold while FMRG-J's Jacobian projects the push onto it.

    Lesson 04.3; FMRG "Toy experiment for the course" ("Manifold variant": a linear reward pointing off the
    manifold).
    """

    def __init__(self, w: Sequence[float] | torch.Tensor, b: float = 0.0):
        self.w = torch.as_tensor(w, dtype=torch.float32).reshape(-1)
        self.b = float(b)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = _as_2d(x, self.w.numel(), "LinearReward")
        return x @ self.w.to(x) + self.b

    def __repr__(self) -> str:
        return f"LinearReward(w={self.w.tolist()}, b={self.b})"


def reward_grad(reward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """∇_x r(x) at a *detached* point (no graph kept): (B, D) → (B, D).

    Lesson 04.3; the ∇r of FMRG "FMRG control law".
    """
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(reward(x).sum(), x)
    return g
