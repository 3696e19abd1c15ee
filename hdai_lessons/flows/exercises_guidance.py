"""Exercises of lessons 04.3–04.5 (guidance); ``hdai_lessons.flows.exercises`` imports this bank.

Each reference is the package function the lessons use; each ``Mistake`` is a wrong version a
learner plausibly writes, with the hint the checker shows.
"""
from __future__ import annotations

import torch

from ..exercises import Case, Exercise, Mistake, register
from .adjoint import costate_step
from .guidance import euler_endpoint, fmrg_e_control, fmrg_j_control, guided_steps
from .models import FlowMapMLP, VelocityMLP
from .rewards import QuadraticReward


# ------------------------------------------------------------------ shared deterministic fixtures
def _velocity(seed: int = 0) -> VelocityMLP:
    torch.manual_seed(seed)
    v = VelocityMLP(dim=2, hidden=16, depth=2).double()
    return v.eval().requires_grad_(False)


def _flow_map(seed: int = 0) -> FlowMapMLP:
    torch.manual_seed(seed)
    X = FlowMapMLP(dim=2, hidden=16, depth=2).double()
    # make the map non-trivial and non-symmetric in its Jacobian
    with torch.no_grad():
        X.net[-1].weight.mul_(5.0)
    return X.eval().requires_grad_(False)


class _Quad(QuadraticReward):
    """A float64 quadratic reward (the fixtures run in float64)."""

    def __call__(self, x):
        a = self.a.to(x)
        return -((x - a) ** 2).sum(-1) / (2 * self.sigma_r**2)


def _x(seed: int, n: int = 5) -> torch.Tensor:
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# ------------------------------------------------------------------ 04.3.1 the costate step
def _costate_cases() -> list[Case]:
    v = _velocity(1)
    return [
        Case((v, _x(1), 0.0, 0.25, _x(2)), label="t=0, Δt=1/4"),
        Case((v, _x(3, 7), 0.5, 0.125, _x(4, 7)), label="t=0.5, Δt=1/8"),
        Case((_velocity(2), _x(5), 0.875, 0.125, 3.0 * _x(6)), label="another network, large costate"),
    ]


def _costate_no_transpose(v, x_k, t_k, dt, p_next):
    jac = torch.autograd.functional.jacobian(lambda z: v(z[None], torch.full((1,), t_k, dtype=z.dtype))[0], x_k[0])
    rows = []
    for b in range(x_k.shape[0]):
        J = torch.autograd.functional.jacobian(lambda z: v(z[None], torch.full((1,), t_k, dtype=z.dtype))[0], x_k[b])
        rows.append(p_next[b] + dt * (J @ p_next[b]))  # J p instead of Jᵀ p
    del jac
    return torch.stack(rows)


def _costate_minus(v, x_k, t_k, dt, p_next):
    return 2 * p_next - costate_step(v, x_k, t_k, dt, p_next)  # p − Δt Jᵀp


register(Exercise(
    id="04.3.1",
    title="one backward step of the discrete adjoint (costate)",
    reference=costate_step,
    cases=_costate_cases,
    difficulty=2, importance=3, minutes=15,
    mistakes=[
        Mistake("Jacobian not transposed", _costate_no_transpose,
                "the costate needs a vector–Jacobian product (∂b/∂x)ᵀp: use torch.autograd.grad(v(x, t), x, grad_outputs=p)."),
        Mistake("sign error", _costate_minus,
                "x_{k+1} = x_k + Δt b(x_k), so ∂x_{k+1}/∂x_k = I + Δt ∂b/∂x: the Δt term is added, not subtracted."),
        Mistake("forgot the identity", lambda v, x, t, dt, p: costate_step(v, x, t, dt, p) - p,
                "the step map is x + Δt b(x): its Jacobian has an identity part, so p_k = p_{k+1} + Δt Jᵀp_{k+1}."),
        Mistake("forgot Δt", lambda v, x, t, dt, p: p + (costate_step(v, x, t, dt, p) - p) / dt,
                "the Jacobian of one Euler step is I + Δt ∂b/∂x: multiply the VJP by Δt."),
    ],
))


# ------------------------------------------------------------------ 04.3.2 the DPS endpoint
def _endpoint_cases() -> list[Case]:
    v = _velocity(3)
    return [
        Case((v, _x(7), 0.0), label="t=0 (pure noise)"),
        Case((v, _x(8), 0.25), label="t=0.25"),
        Case((v, _x(9, 4), 0.9), label="t=0.9"),
    ]


def _tt(x, t):
    return torch.full((x.shape[0],), float(t), dtype=x.dtype)


register(Exercise(
    id="04.3.2",
    title="DPS's endpoint: the Euler/denoiser estimate x̂_1 = x + (1 − t) b_t(x)",
    reference=euler_endpoint,
    cases=_endpoint_cases,
    grad_wrt=(1,),
    difficulty=1, importance=3, minutes=5,
    mistakes=[
        Mistake("t instead of 1 − t", lambda v, x, t: x + t * v(x, _tt(x, t)),
                "the remaining time from t to the data end (t = 1) is 1 − t."),
        Mistake("sign error", lambda v, x, t: x - (1 - t) * v(x, _tt(x, t)),
                "in the paper's convention t runs noise → data, so move *along* b: x + (1 − t) b."),
        Mistake("detached network output", lambda v, x, t: x + (1 - t) * v(x, _tt(x, t)).detach(),
                "DPS differentiates through the endpoint: keep b_t(x) in the graph."),
        Mistake("returned the velocity", lambda v, x, t: v(x, _tt(x, t)),
                "return the endpoint estimate, not the velocity."),
    ],
))


# ------------------------------------------------------------------ 04.3.3 the FMRG-E control
def _control_cases() -> list[Case]:
    X = _flow_map(4)
    return [
        Case((X, _Quad([1.0, -0.5], 1.0), _x(10), 0.0, 1.0), label="t=0, λ=1"),
        Case((X, _Quad([-2.0, 1.0], 0.5), _x(11), 0.5, 2.0), label="t=0.5, λ=2"),
        Case((_flow_map(5), _Quad([0.0, 2.0], 2.0), _x(12, 6), 0.25, 0.3), label="t=0.25, λ=0.3"),
    ]


def _grad_at(reward, e):
    e = e.detach().requires_grad_(True)
    with torch.enable_grad():
        return torch.autograd.grad(reward(e).sum(), e)[0]


register(Exercise(
    id="04.3.3",
    title="the FMRG-E control u = λ ∇r(X_{t,1}(x)) at the detached endpoint",
    reference=fmrg_e_control,
    cases=_control_cases,
    difficulty=1, importance=3, minutes=10,
    mistakes=[
        Mistake("gradient through the map (that is FMRG-J)", fmrg_j_control,
                "FMRG-E does not backpropagate through the network: detach X_{t,1}(x) and take ∇r there."),
        Mistake("reward at x, not at the endpoint", lambda X, r, x, t, lam: lam * _grad_at(r, x),
                "evaluate the reward gradient at the predicted endpoint X_{t,1}(x), not at the current state."),
        Mistake("sign error", lambda X, r, x, t, lam: -fmrg_e_control(X, r, x, t, lam),
                "the control *ascends* the reward: u = +λ∇r."),
        Mistake("forgot λ", lambda X, r, x, t, lam: fmrg_e_control(X, r, x, t, 1.0),
                "scale the direction by the guidance strength λ."),
    ],
))


# ------------------------------------------------------------------ 04.3.4 the FMRG-J control
def _jt_no_transpose(X, r, x, t, lam):
    with torch.enable_grad():
        jac = torch.stack([torch.autograd.functional.jacobian(lambda z: X(z[None], t, 1.0)[0], x[b]) for b in range(x.shape[0])])
    e = X(x, t, 1.0)
    return lam * torch.einsum("bij,bj->bi", jac, _grad_at(r, e))  # J ∇r instead of Jᵀ ∇r


def _j_euler(X, r, x, t, lam):
    # DPS-style: the endpoint from the map's instantaneous velocity (one Euler step), not the map
    def ep(z):
        return z + (1 - t) * X.velocity(z, t)
    xg = x.detach().requires_grad_(True)
    with torch.enable_grad():
        return lam * torch.autograd.grad(r(ep(xg)).sum(), xg)[0]


register(Exercise(
    id="04.3.4",
    title="the FMRG-J control u = λ ∇_x r(X_{t,1}(x)) (a VJP through the flow map)",
    reference=fmrg_j_control,
    cases=_control_cases,
    difficulty=2, importance=3, minutes=10,
    mistakes=[
        Mistake("detached endpoint (that is FMRG-E)", fmrg_e_control,
                "FMRG-J keeps X_{t,1}(x) in the graph so the gradient picks up the Jacobian ∇X_{t,1}ᵀ."),
        Mistake("Jacobian not transposed", _jt_no_transpose,
                "the chain rule gives (∂X/∂x)ᵀ∇r — a vector–Jacobian product, which autograd computes for you."),
        Mistake("Euler endpoint (that is DPS)", _j_euler,
                "use the flow map's jump X(x, t, 1), not one Euler step of the velocity."),
        Mistake("sign error", lambda X, r, x, t, lam: -fmrg_j_control(X, r, x, t, lam),
                "the control ascends the reward: u = +λ∇_x r(X_{t,1}(x))."),
    ],
))


# ------------------------------------------------------------------ 04.3.5 the early-stopping schedule
def _sched_cases() -> list[Case]:
    return [Case((4, 1.0), label="N=4, no early stop"), Case((4, 0.5), label="N=4, t_stop=0.5"),
            Case((8, 0.25), label="N=8, t_stop=0.25"), Case((5, 0.3), label="N=5, t_stop between grid points"),
            Case((4, 0.0), label="t_stop=0: never guide")]


register(Exercise(
    id="04.3.5",
    title="the early-stopping schedule: which grid steps are guided",
    reference=guided_steps,
    cases=_sched_cases,
    difficulty=1, importance=2, minutes=5,
    mistakes=[
        Mistake("≤ instead of <", lambda n, ts: [k / n <= ts + 1e-9 for k in range(n)],
                "step k is guided on [t_k, t_{k+1}) only if it *starts* before t_stop: t_k < t_stop."),
        Mistake("tested t_{k+1}", lambda n, ts: [(k + 1) / n < ts - 1e-9 for k in range(n)],
                "guidance at step k is evaluated at t_k (control, then transport), so test t_k."),
        Mistake("off by one (N+1 grid points)", lambda n, ts: [k / n < ts - 1e-9 for k in range(n + 1)],
                "there are N steps, k = 0..N−1, not N+1 grid points."),
    ],
))
