"""Exact optimal control of a flow by the iterative adjoint method (Pontryagin), the top of FMRG's hierarchy.

Discretise the control problem of FMRG ("Control problem") with N Euler steps, Δt = 1/N:

    x_{k+1} = x_k + Δt (b(x_k, t_k) + u_k),      J(u) = Σ_k Δt ‖u_k‖²/(2λ) − r(x_N).

The discrete adjoint (the costate of the Pontryagin derivation in the FMRG digest, discretised):

    p_N = −∇r(x_N),      p_k = p_{k+1} + Δt (∂b/∂x)(x_k, t_k)ᵀ p_{k+1}      (one VJP per step)
    ∂J/∂u_k = Δt (u_k/λ + p_{k+1}).

Stationarity gives u_k = −λ p_{k+1}, the discrete form of u*_t = λ ∇X^{u*}_{t,1}ᵀ ∇r(x_1). The
solver iterates "forward solve → backward adjoint → u ← (1−α) u + α(−λ p)" (a gradient step of
size αλ on J/Δt), in the spirit of OC-Flow / FlowGrad. Each iteration costs 2N forwards + N VJPs.
"""
from __future__ import annotations

from typing import Callable

import torch

from hdai_lessons.flows.models import as_time
from hdai_lessons.flows.sampling import GuidanceResult, NFECounter


def controlled_rollout(v: Callable, x0: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Euler rollout of ẋ = b(x, t) + u_k: x0 (B, D), u (N, B, D) → path (N+1, B, D). Differentiable.

    Lesson 04.3; the controlled ODE ẋ = b_t(x) + u_t of FMRG "Control problem", Euler-discretised.
    """
    n = u.shape[0]
    dt = 1.0 / n
    xs = [x0]
    for k in range(n):
        xs.append(xs[-1] + dt * (v(xs[-1], as_time(k * dt, x0)) + u[k]))
    return torch.stack(xs)


def objective(v: Callable, reward: Callable, x0: torch.Tensor, u: torch.Tensor, lam: float) -> torch.Tensor:
    """The discretised cost J(u) per trajectory: Σ_k Δt‖u_k‖²/(2λ) − r(x_N). → (B,).

    Lesson 04.3; the cost ∫‖u_t‖²/(2λ) dt − r(x_1) of FMRG "Control problem", discretised.
    """
    n = u.shape[0]
    x_n = controlled_rollout(v, x0, u)[-1]
    return (u**2).sum(-1).sum(0) * (1.0 / n) / (2 * lam) - reward(x_n)


def costate_step(v: Callable, x_k: torch.Tensor, t_k: float, dt: float, p_next: torch.Tensor) -> torch.Tensor:
    """One backward step of the discrete adjoint: p_k = p_{k+1} + Δt (∂b/∂x)(x_k, t_k)ᵀ p_{k+1}.

    x_k, p_next: (B, D) → p_k (B, D). One VJP through the velocity network.

    Lesson 04.3 (exercise 04.3.1); the costate equation ṗ = −(∇_x b_t)ᵀ p of FMRG "Pontryagin derivation",
    discretised.
    """
    with torch.enable_grad():
        xg = x_k.detach().requires_grad_(True)
        (vjp,) = torch.autograd.grad(v(xg, as_time(t_k, xg)), xg, grad_outputs=p_next)
    return p_next + dt * vjp


def adjoint_gradient(v: Callable, reward: Callable, x0: torch.Tensor, u: torch.Tensor, lam: float
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """∂(Σ_b J_b)/∂u by the discrete adjoint: x0 (B, D), u (N, B, D) → (grad (N, B, D), p (N+1, B, D), path (N+1, B, D)).

    Equal to autograd through ``objective`` (the test checks it); the costates ``p`` are returned
    for the control update u ← −λ p_{k+1}.

    Lesson 04.3; ∂J/∂u_t = u_t/λ + p_t of FMRG "Pontryagin derivation".
    """
    n = u.shape[0]
    dt = 1.0 / n
    with torch.no_grad():
        path = controlled_rollout(v, x0, u)  # (N+1, B, D)
    with torch.enable_grad():
        xn = path[-1].detach().requires_grad_(True)
        (gr,) = torch.autograd.grad(reward(xn).sum(), xn)
    p = [None] * (n + 1)
    p[n] = -gr
    for k in range(n - 1, -1, -1):
        p[k] = costate_step(v, path[k], k * dt, dt, p[k + 1])
    p_t = torch.stack(p)  # (N+1, B, D)
    grad = dt * (u / lam + p_t[1:])
    return grad, p_t, path


def solve_optimal_control(v: Callable, reward: Callable, x0: torch.Tensor, lam: float = 1.0, steps: int = 16,
                          iters: int = 20, damping: float = 0.5, return_history: bool = False):
    """Iterative adjoint solver of the discretised control problem, from u = 0.

    Each iteration: roll out with u, run the adjoint (``adjoint_gradient``), then step
    u ← (1−α)u + α(−λ p_{k+1}) — a gradient step of size αλ on J/Δt. The step α is kept *per
    trajectory* and halved whenever J went up (the step is then undone), so J decreases
    monotonically even where the flow map's Jacobian is large.

    Args:
        v: velocity field ``(B, D), (B,) -> (B, D)``.
        reward: ``(B, D) -> (B,)``.
        x0: ``(B, D)`` noise; each row is optimised independently (the batch is parallel).
        lam: λ; steps: N Euler steps; iters: adjoint iterations; damping: the initial α.
        return_history: also return the mean objective J per iteration (a list of floats).

    Returns a ``sampling.GuidanceResult`` (method "exact"); cost per iteration 2N forwards
    (rollout + recomputation in the adjoint) + N VJPs, plus the final rollout.

    Lesson 04.3; the iterative adjoint solver of FMRG "Pontryagin derivation" (the "exact OC" row of "Hierarchy
    of approximations").
    """

    if x0.dim() != 2:
        raise ValueError(f"x0 must be (B, D), got {tuple(x0.shape)}")
    net = NFECounter(v)
    dt = 1.0 / steps
    B = x0.shape[0]
    u = torch.zeros(steps, *x0.shape, dtype=x0.dtype)  # (N, B, D)
    alpha = torch.full((B,), float(damping), dtype=x0.dtype)  # per-trajectory step
    best_u, best_p, best_J = u, None, torch.full((B,), float("inf"), dtype=torch.float64)
    history = []
    for _ in range(iters):
        _, p, path = adjoint_gradient(net, reward, x0, u, lam)
        with torch.no_grad():
            J = ((u**2).sum(-1).sum(0) * dt / (2 * lam) - reward(path[-1])).double()  # (B,)
        worse = ~(J <= best_J)                      # (B,) includes NaN
        keep = (~worse)[None, :, None]              # (1, B, 1)
        best_u = torch.where(keep, u, best_u)
        best_p = p if best_p is None else torch.where(keep, p, best_p)
        best_J = torch.where(worse, best_J, J)
        alpha = torch.where(worse, alpha / 2, alpha)
        history.append(float(best_J.mean()))
        a = alpha[None, :, None]                    # (1, B, 1)
        u = (1 - a) * best_u + a * (-lam * best_p[1:])
    u = best_u
    with torch.no_grad():
        x1 = controlled_rollout(net, x0, u)[-1]
    energy = float(((u.double() ** 2).sum(-1).sum(0) * dt).mean())
    res = GuidanceResult("exact", x1, net.forward_calls, net.vjp_calls, energy)
    return (res, history) if return_history else res
