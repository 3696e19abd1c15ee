"""Networks for 2-D flows: a velocity field ``b_θ(x, t)`` and a two-time flow map ``X_φ(x, s, t)``.

Paper convention (FMRG, arXiv 2604.27147): t = 0 is noise, t = 1 is data.

- ``VelocityMLP``: a velocity field, any callable ``v(x: (B, D), t: (B,)) -> (B, D)``; trained by
  conditional flow matching (``cfm.py``).
- ``FlowMapMLP``: the distilled flow map of the FMRG digest's toy, parametrised so that the
  identity ``X_{t,t} = id`` holds by construction::

      X_{s,t}(x) = x + (t − s) · v_φ(x, s, t)

  ``v_φ`` is the *average velocity* over [s, t]; at s = t it is the instantaneous velocity,
  because ∂_t X_{s,t}|_{t=s} = b_s (the tangent condition of the flow map).

Both take times as floats, 0-d tensors or ``(B,)`` tensors, and inputs ``(B, *shape)`` with
``prod(shape) == dim`` (flattened inside, so the same MLP serves any small data shape).
"""
from __future__ import annotations

import math

import torch
from torch import nn


def as_time(t: "float | torch.Tensor", x: torch.Tensor) -> torch.Tensor:
    """A time argument as a ``(B,)`` tensor on ``x``'s device/dtype (``B = x.shape[0]``).

    Accepts a Python float, a 0-d tensor, a ``(1,)`` tensor or a ``(B,)`` tensor.

    Lesson 04.1; a helper with no paper counterpart (time arguments).
    """
    B = x.shape[0]
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    if t.dim() == 0 or (t.dim() == 1 and t.shape[0] == 1):
        return t.reshape(1).expand(B)
    if t.dim() != 1 or t.shape[0] != B:
        raise ValueError(f"time must be a float or a (B,) tensor with B={B}; got shape {tuple(t.shape)}")
    return t


def bcast(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Reshape a ``(B,)`` time to ``(B, 1, …, 1)`` so it broadcasts against ``x`` of shape ``(B, …)``.

    Lesson 04.1; a helper with no paper counterpart (broadcasting).
    """
    return t.reshape(-1, *([1] * (x.dim() - 1)))


class TimeEmbedding(nn.Module):
    """Fourier features of a time in [0, 1]: ``(B,) -> (B, 1 + 2·n_freq)`` = [t, sin(π k t), cos(π k t)].

    Lesson 04.1; a helper with no paper counterpart (a network block).
    """

    def __init__(self, n_freq: int = 4):
        super().__init__()
        self.register_buffer("freqs", math.pi * torch.arange(1, n_freq + 1, dtype=torch.float32), persistent=False)
        self.dim = 1 + 2 * n_freq

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        ang = t[:, None] * self.freqs.to(t.dtype)  # (B, n_freq)
        return torch.cat([t[:, None], torch.sin(ang), torch.cos(ang)], dim=-1)  # (B, 1 + 2 n_freq)


def mlp(d_in: int, d_out: int, hidden: int, depth: int) -> nn.Sequential:
    """``depth`` hidden layers of width ``hidden`` with SiLU, then a linear read-out.

    Lesson 04.1; a helper with no paper counterpart (a network block).
    """
    layers: list[nn.Module] = []
    d = d_in
    for _ in range(depth):
        layers += [nn.Linear(d, hidden), nn.SiLU()]
        d = hidden
    layers.append(nn.Linear(d, d_out))
    return nn.Sequential(*layers)


def _check_x(x: torch.Tensor, dim: int) -> None:
    if x.dim() < 2 or math.prod(x.shape[1:]) != dim:
        raise ValueError(f"expected x of shape (B, ...) with {dim} features per row, got {tuple(x.shape)}")


class VelocityMLP(nn.Module):
    """Velocity field ``b_θ(x, t)``: ``x (B, dim)`` (or ``(B, *shape)``), ``t (B,)`` or float → like ``x``.

    The regression target of conditional flow matching on the linear path is ``x_1 − x_0``
    (``cfm.cfm_target``), so ``b_θ(x, t) ≈ E[x_1 − x_0 | x_t = x]``.

    Lesson 04.1; the velocity b_θ(x, t) of FMRG "Base flow and flow map"; FMRG "Toy experiment for the course"
    ("Velocity model").
    """

    def __init__(self, dim: int = 2, hidden: int = 128, depth: int = 4, n_freq: int = 4):
        super().__init__()
        self.dim, self.hidden, self.depth, self.n_freq = dim, hidden, depth, n_freq
        self.temb = TimeEmbedding(n_freq)
        self.net = mlp(dim + self.temb.dim, dim, hidden, depth)

    def config(self) -> dict:
        """Constructor arguments (stored next to the weights)."""
        return {"dim": self.dim, "hidden": self.hidden, "depth": self.depth, "n_freq": self.n_freq}

    def forward(self, x: torch.Tensor, t: "float | torch.Tensor") -> torch.Tensor:
        _check_x(x, self.dim)
        t = as_time(t, x)
        h = torch.cat([x.reshape(x.shape[0], -1), self.temb(t)], dim=-1)  # (B, dim + temb)
        return self.net(h).reshape(x.shape)  # (B, *shape)


class FlowMapMLP(nn.Module):
    """Distilled two-time flow map ``X_{s,t}(x) = x + (t − s) v_φ(x, s, t)`` (FMRG digest, toy (b)).

    ``forward(x, s, t)``: ``x (B, dim)``, ``s, t`` floats or ``(B,)`` → ``(B, dim)``. One call is one
    network evaluation (1 NFE) whatever the length of the jump. ``X_{t,t}(x) = x`` exactly.

    Lesson 04.2; FMRG "Toy experiment for the course" ("Flow map" (b)); the average-velocity parametrisation of
    FMRG "Base flow and flow map".
    """

    def __init__(self, dim: int = 2, hidden: int = 128, depth: int = 4, n_freq: int = 4):
        super().__init__()
        self.dim, self.hidden, self.depth, self.n_freq = dim, hidden, depth, n_freq
        self.temb = TimeEmbedding(n_freq)
        self.net = mlp(dim + 2 * self.temb.dim, dim, hidden, depth)

    def config(self) -> dict:
        return {"dim": self.dim, "hidden": self.hidden, "depth": self.depth, "n_freq": self.n_freq}

    def average_velocity(self, x: torch.Tensor, s: "float | torch.Tensor", t: "float | torch.Tensor") -> torch.Tensor:
        """``v_φ(x, s, t)``, the average velocity of the jump s → t: ``(B, dim)``."""
        _check_x(x, self.dim)
        s, t = as_time(s, x), as_time(t, x)
        h = torch.cat([x.reshape(x.shape[0], -1), self.temb(s), self.temb(t)], dim=-1)  # (B, dim + 2 temb)
        return self.net(h).reshape(x.shape)

    def velocity(self, x: torch.Tensor, t: "float | torch.Tensor") -> torch.Tensor:
        """The instantaneous velocity the map implies, ``v_φ(x, t, t)`` (tangent condition)."""
        return self.average_velocity(x, t, t)

    def forward(self, x: torch.Tensor, s: "float | torch.Tensor", t: "float | torch.Tensor") -> torch.Tensor:
        s_, t_ = as_time(s, x), as_time(t, x)
        return x + bcast(t_ - s_, x) * self.average_velocity(x, s_, t_)  # (B, dim)
