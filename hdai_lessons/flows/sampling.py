"""ODE samplers for flows and an NFE counter that separates forward calls from VJPs.

A *velocity field* is any callable ``v(x: (B, ...), t: (B,)) -> (B, ...)`` (paper convention:
t = 0 noise → t = 1 data). The base flow ODE is ẋ_t = b_t(x_t) (FMRG digest, "Base flow and flow
map"); ``integrate`` solves it from s to t with Euler or explicit-midpoint steps and stays
differentiable (gradients flow through every step, as DPS / D-Flow / the adjoint check need).

Everything is dimension-agnostic: ``x`` is ``(B, ...)``, times are floats or ``(B,)`` tensors
(one time per row, so a batch may hold different jumps).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from hdai_lessons.flows.models import as_time, bcast


@dataclass
class GuidanceResult:
    """Samples and costs of one guided run (B trajectories in parallel).

    Lessons 04.3–04.5; FMRG "Cost (NFE), from the code".
    """

    method: str
    samples: torch.Tensor              # (B, D) final states x_1
    nfe_forward: int                   # network calls per trajectory
    nfe_vjp: int                       # VJPs through the network per trajectory
    control_energy: float              # mean over samples of Σ ‖u‖² Δt
    path: list = field(default_factory=list)       # [(t, (B, D))] if cfg.record
    controls: list = field(default_factory=list)   # [(t, (B, D))] if cfg.record

    @property
    def nfe(self) -> int:
        """Compute-fair cost: forward calls + VJPs (a VJP costs about one forward)."""
        return self.nfe_forward + self.nfe_vjp

VelocityField = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
METHODS = ("euler", "midpoint")
EVALS_PER_STEP = {"euler": 1, "midpoint": 2}


class _CountVJP(torch.autograd.Function):
    """Identity in the forward pass; its backward adds one to ``counter.vjp_calls``."""

    generate_vmap_rule = True

    @staticmethod
    def forward(out, counter):
        return out.view_as(out)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.counter = inputs[1]

    @staticmethod
    def backward(ctx, grad):
        ctx.counter.vjp_calls += 1
        return grad, None


class NFECounter(nn.Module):
    """Wrap a network (velocity field or flow map) and count its evaluations.

    - ``forward_calls``: how many times it was called (one batched call = 1 NFE for every row,
      the usual convention: NFE is per trajectory, the batch is parallel).
    - ``vjp_calls``: how many vector–Jacobian products were taken *through* it. Each output is
      passed through an identity ``autograd.Function`` whose backward increments the count, so
      one ``torch.autograd.grad`` / ``.backward()`` that reaches an output adds exactly one, no
      matter how many cotangents the graph merges there. Outputs that do not require grad
      (no grad mode, or nothing upstream requires it) are not wrapped and cannot add VJPs.
    - ``forward_rows``: total rows evaluated (``Σ batch size``), for compute accounting.

    The wrapped callable keeps its signature: ``NFECounter(v)(x, t)`` or ``NFECounter(X)(x, s, t)``.

    >>> c = NFECounter(lambda x, t: -x); x = torch.ones(3, 2, requires_grad=True)
    >>> y = c(x, 0.0); y.sum().backward(); (c.forward_calls, c.vjp_calls)
    (1, 1)

    Lesson 04.1 (used again in 04.2–04.5); FMRG "Cost (NFE), from the code" (forward calls and VJPs reported
    separately, FMRG "Open points").
    """

    def __init__(self, fn: Callable[..., torch.Tensor]):
        super().__init__()
        self.fn = fn
        self.forward_calls = 0
        self.vjp_calls = 0
        self.forward_rows = 0

    def reset(self) -> "NFECounter":
        """Zero every count (returns ``self`` so ``counter.reset()`` can be chained)."""
        self.forward_calls = self.vjp_calls = self.forward_rows = 0
        return self

    def counts(self) -> dict:
        """``{"forward": forward_calls, "vjp": vjp_calls}``."""
        return {"forward": self.forward_calls, "vjp": self.vjp_calls}

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        self.forward_calls += 1
        self.forward_rows += int(x.shape[0])
        out = self.fn(x, *args, **kwargs)
        if torch.is_grad_enabled() and torch.is_tensor(out) and out.requires_grad:
            out = _CountVJP.apply(out, self)
        return out

    def __repr__(self) -> str:
        return f"NFECounter(forward_calls={self.forward_calls}, vjp_calls={self.vjp_calls})"


def euler_step(v: VelocityField, x: torch.Tensor, t: "float | torch.Tensor", h: "float | torch.Tensor") -> torch.Tensor:
    """One explicit Euler step of ẋ = v(x, t): ``x + h · v(x, t)``. ``x (B, ...)``, ``t, h`` float or ``(B,)``.

    Lesson 04.1 (exercise 04.1.3); the base flow ODE ẋ_t = b_t(x_t) of FMRG "Base flow and flow map".
    """
    t, h = as_time(t, x), as_time(h, x)
    return x + bcast(h, x) * v(x, t)


def midpoint_step(v: VelocityField, x: torch.Tensor, t: "float | torch.Tensor", h: "float | torch.Tensor") -> torch.Tensor:
    """One explicit midpoint step (2 NFE): ``x_mid = x + h/2 · v(x, t)``, ``x + h · v(x_mid, t + h/2)``.

    Lesson 04.1; the base flow ODE of FMRG "Base flow and flow map".
    """
    t, h = as_time(t, x), as_time(h, x)
    hb = bcast(h, x)
    x_mid = x + 0.5 * hb * v(x, t)
    return x + hb * v(x_mid, t + 0.5 * h)


_STEPS = {"euler": euler_step, "midpoint": midpoint_step}


def integrate(
    v: VelocityField,
    x: torch.Tensor,
    s: "float | torch.Tensor",
    t: "float | torch.Tensor",
    steps: int,
    method: str = "euler",
    return_path: bool = False,
) -> torch.Tensor:
    """Solve ẋ_u = v(x_u, u) from u = s to u = t in ``steps`` equal steps (differentiable).

    Args:
        v: velocity field ``(B, ...), (B,) -> (B, ...)``.
        x: the state at time s, ``(B, ...)``.
        s, t: start and end times, floats or ``(B,)`` (t < s integrates backwards).
        steps: number of steps (≥ 0; 0 returns ``x``). Cost: ``steps`` NFE for Euler,
            ``2·steps`` for midpoint.
        method: ``"euler"`` or ``"midpoint"``.
        return_path: also return every intermediate state.

    Returns:
        ``(B, ...)``, the state at time t; with ``return_path`` the path ``(steps + 1, B, ...)``.

    Lesson 04.1 (exercise 04.1.4); the base flow ODE of FMRG "Base flow and flow map".
    """
    if method not in _STEPS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if int(steps) != steps or steps < 0:
        raise ValueError(f"steps must be a non-negative integer, got {steps!r}")
    s_, t_ = as_time(s, x), as_time(t, x)
    h = (t_ - s_) / max(int(steps), 1)  # (B,)
    step = _STEPS[method]
    path = [x]
    for k in range(int(steps)):
        x = step(v, x, s_ + k * h, h)
        if return_path:
            path.append(x)
    return torch.stack(path) if return_path else x


def sample(
    v: VelocityField,
    n: int,
    dim: "int | tuple[int, ...]",
    steps: int,
    method: str = "euler",
    generator: "torch.Generator | None" = None,
    x0: "torch.Tensor | None" = None,
) -> torch.Tensor:
    """Draw ``n`` samples: x_0 ~ N(0, I) of shape ``(n, *dim)``, then ``integrate`` from 0 to 1 → ``(n, *dim)``.

    Lesson 04.1; x_1 = X_{0,1}(x_0) of FMRG "Base flow and flow map".
    """
    shape = (n, dim) if isinstance(dim, int) else (n, *dim)
    if x0 is None:
        x0 = torch.randn(shape, generator=generator)
    return integrate(v, x0, 0.0, 1.0, steps, method)


def nfe_quality_sweep(v: VelocityField, x0: torch.Tensor, reference: torch.Tensor, nfes: "list[int]", log_prob=None, methods: "tuple[str, ...]" = METHODS) -> dict:
    """Sample quality against the NFE budget, for each ODE method.

    For every method and budget ``nfe`` (skipped when not a multiple of the method's evaluations per
    step) integrate 0 → 1 from the shared noise ``x0 (B, D)`` and measure the energy distance to
    ``reference (M, D)`` data and, if ``log_prob`` is given, the mean data log-density of the samples.
    The NFE is counted by an ``NFECounter``, not assumed. Returns
    ``{method: {"nfe": [...], "energy": [...], "logp": [...]}}``.

    Lesson 04.1; FMRG "Cost (NFE), from the code".
    """
    from hdai_lessons.flows.metrics import energy_distance

    out: dict = {}
    for m in methods:
        rows = {"nfe": [], "energy": [], "logp": []}
        for nfe in nfes:
            if nfe % EVALS_PER_STEP[m]:
                continue
            counter = NFECounter(v)
            with torch.no_grad():
                x = integrate(counter, x0, 0.0, 1.0, nfe // EVALS_PER_STEP[m], m)
                rows["logp"].append(float(log_prob(x).mean()) if log_prob is not None else float("nan"))
            rows["nfe"].append(counter.forward_calls)
            rows["energy"].append(energy_distance(x, reference))
        out[m] = rows
    return out
