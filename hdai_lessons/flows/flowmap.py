"""Flow maps X_{s,t}: a teacher by ODE sub-stepping, and distillation into a ``FlowMapMLP``.

The flow map is the ODE's solution operator (FMRG digest, "Base flow and flow map"):
X_{s,t}(x_s) = x_t, with X_{t,t} = id, the semigroup property X_{t,u}∘X_{s,t} = X_{s,u}, and
∂_t X_{s,t}(x) = b_t(X_{s,t}(x)). A flow map is any callable ``X(x: (B, D), s, t) -> (B, D)`` with
``s, t`` floats or ``(B,)`` tensors.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from hdai_lessons.core.scale import by_scale
from hdai_lessons.flows.cfm import adam_cosine_fit
from hdai_lessons.flows.models import FlowMapMLP, as_time, bcast
from hdai_lessons.flows.sampling import EVALS_PER_STEP, VelocityField, integrate


class TeacherFlowMap(nn.Module):
    """The reference flow map: X_{s,t}(x) by ``substeps`` equal ODE steps of ``v`` from s to t.

    Costs ``substeps`` NFE per call (``2·substeps`` with ``method="midpoint"``), whatever t − s:
    this is the expensive map a distilled ``FlowMapMLP`` replaces by one network call.
    ``x (B, D)``, ``s, t`` float or ``(B,)`` → ``(B, D)``; differentiable in ``x``.

    Lesson 04.2 (used again in 04.3–04.5); the flow map X_{s,t} of FMRG "Base flow and flow map", as the teacher
    of FMRG "Toy experiment for the course" ("Flow map" (a)).
    """

    def __init__(self, v: VelocityField, substeps: int = 64, method: str = "euler"):
        super().__init__()
        if substeps < 1:
            raise ValueError(f"substeps must be ≥ 1, got {substeps}")
        self.v, self.substeps, self.method = v, int(substeps), method

    @property
    def nfe_per_call(self) -> int:
        """Velocity evaluations per call of the map."""
        return self.substeps * EVALS_PER_STEP[self.method]

    def forward(self, x: torch.Tensor, s: "float | torch.Tensor", t: "float | torch.Tensor") -> torch.Tensor:
        return integrate(self.v, x, s, t, self.substeps, self.method)


def composition_error(X, x: torch.Tensor, s: float, t: float, u: float) -> float:
    """Mean ‖X_{t,u}(X_{s,t}(x)) − X_{s,u}(x)‖ over the batch (0 for an exact flow map). ``x (B, D)``.

    Lesson 04.2 (exercise 04.2.3); the semigroup property X_{t,u}∘X_{s,t} = X_{s,u} of FMRG "Base flow and flow
    map".
    """
    with torch.no_grad():
        two = X(X(x, s, t), t, u)
        one = X(x, s, u)
    return float((two - one).flatten(1).norm(dim=1).mean())


def flow_map_sample(X, x0: torch.Tensor, steps: int) -> torch.Tensor:
    """Few-step sampling with a flow map: ``steps`` jumps on the uniform grid 0 → 1 (``steps`` NFE). ``(B, D)``.

    Lesson 04.2 (exercise 04.2.1; used again in 04.4); few-step sampling x_1 = X_{0,1}(x_0) by jumps, FMRG "Base
    flow and flow map".
    """
    ts = torch.linspace(0.0, 1.0, steps + 1)
    x = x0
    for k in range(steps):
        x = X(x, float(ts[k]), float(ts[k + 1]))
    return x


@torch.no_grad()
def teacher_trajectories(v: VelocityField, x0: torch.Tensor, grid_steps: int = 64, method: str = "euler") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Teacher paths on a uniform grid, the training bank for distillation.

    Returns ``ts (N+1,)``, ``path (N+1, B, D)`` with ``path[k] ≈ X_{0,t_k}(x0)`` and
    ``vel (N+1, B, D)`` = ``v(path[k], t_k)`` (the tangent targets). N = ``grid_steps``.
    Cost: N·(1 or 2) + (N + 1) velocity evaluations, once.

    Lesson 04.2; FMRG "Toy experiment for the course" ("Flow map" (b): the teacher endpoints the student
    regresses onto).
    """
    path = integrate(v, x0, 0.0, 1.0, grid_steps, method, return_path=True)  # (N+1, B, D)
    ts = torch.linspace(0.0, 1.0, grid_steps + 1, dtype=x0.dtype, device=x0.device)
    vel = torch.stack([v(path[k], as_time(float(ts[k]), x0)) for k in range(grid_steps + 1)])  # (N+1, B, D)
    return ts, path, vel


def sample_grid_pairs(n: int, grid_steps: int, generator: "torch.Generator | None" = None, p_diag: float = 0.1, p_end: float = 0.25) -> tuple[torch.Tensor, torch.Tensor]:
    """Random grid-index pairs ``(i, j)``, each ``(n,)`` long, with ``0 ≤ i ≤ j ≤ N``.

    A fraction ``p_diag`` has i = j (tangent condition), ``p_end`` has j = N (the endpoint map
    X_{t,1} that FMRG evaluates), the rest is uniform over i < j.

    Lesson 04.2; FMRG "Toy experiment for the course" ("Flow map" (b): random s < t).
    """
    N = grid_steps
    a = torch.randint(0, N + 1, (n,), generator=generator)
    b = torch.randint(0, N + 1, (n,), generator=generator)
    i, j = torch.minimum(a, b), torch.maximum(a, b)
    u = torch.rand(n, generator=generator)
    end = (u >= p_diag) & (u < p_diag + p_end)
    j = torch.where(end, torch.full_like(j, N), j)
    i = torch.where(u < p_diag, j, i)
    return i, j


def distillation_target(xs: torch.Tensor, xt: torch.Tensor, s: torch.Tensor, t: torch.Tensor, v_s: torch.Tensor) -> torch.Tensor:
    """Regression target for the average velocity ``v_φ(x_s, s, t)`` (``(B, D)``).

    With X_{s,t}(x) = x + (t − s) v_φ, matching the teacher endpoint x_t means
    v_φ = (x_t − x_s)/(t − s); on the diagonal s = t the target is the velocity v(x_s, s)
    (the tangent condition ∂_t X_{s,t}|_{t=s} = b_s). ``s, t (B,)``.

    Lesson 04.2 (exercise 04.2.2); the average velocity of X_{s,t}(x) = x + (t − s) v_φ and the tangent
    condition of FMRG "Base flow and flow map".
    """
    dt = bcast(t - s, xs)
    diag = dt.abs() < 1e-8
    avg = (xt - xs) / torch.where(diag, torch.ones_like(dt), dt)
    return torch.where(diag, v_s, avg)


@dataclass
class DistillConfig:
    """Flow-map distillation settings (``distill_flow_map``).

    Lesson 04.2; FMRG "Toy experiment for the course" ("Flow map" (b)).
    """

    n_traj: int = 4096
    """Teacher trajectories in the bank."""
    grid_steps: int = 64
    """Teacher grid (Euler sub-steps from 0 to 1)."""
    steps: int = 1500
    """Optimiser steps."""
    batch: int = 512
    """Pairs per step."""
    lr: float = 2e-3
    """Adam learning rate (cosine-decayed to 0)."""



@dataclass
class FlowMapLessonConfig:
    """Lesson 04.2's sizes: the distillation run, the evaluation, the budgets and the claim's seeds.

    Lesson 04.2; FMRG "Toy experiment for the course" ("Flow map" (b)).
    """

    distill: DistillConfig = field(default_factory=lambda: DistillConfig(n_traj=2048, grid_steps=32, steps=600,
                                                                         batch=512, lr=3e-3))
    """The distillation run (``distill_flow_map``)."""
    n_eval: int = 2000
    """Samples per evaluation (shared noise and reference data)."""
    n_seeds: int = 4
    """Independently distilled maps for the claim (§6)."""
    n_claim: int = 4000
    """Samples per seed for the claim's measurements."""
    budgets: tuple = (1, 2, 4, 8)
    """NFE budgets of the few-step comparison (map jumps vs Euler vs midpoint)."""
    jacobian_grid: int = 60
    """Points per side of the grid on which ‖∂X_{t,1}/∂x‖ is mapped (``endpoint_jacobian_norm``)."""

    @classmethod
    def for_scale(cls, scale) -> FlowMapLessonConfig:
        """The rung's sizes: smoke (seconds), toy (a laptop CPU, the default), full (a GPU)."""
        return by_scale(scale,
                        smoke=cls(distill=DistillConfig(n_traj=256, grid_steps=8, steps=20, batch=128), n_eval=300,
                                  n_seeds=2, n_claim=300, budgets=(1, 2), jacobian_grid=20),
                        toy=cls(),
                        full=cls(distill=DistillConfig(n_traj=32_768, grid_steps=64, steps=10_000, batch=4096, lr=1e-3),
                                 n_eval=8000, n_seeds=8, n_claim=8000, budgets=(1, 2, 4, 8, 16), jacobian_grid=120))


def distill_flow_map(student: FlowMapMLP, v: VelocityField, cfg: DistillConfig = DistillConfig(), generator: "torch.Generator | None" = None, desc: str = "distil") -> list[float]:
    """Distil the teacher flow of ``v`` into ``student`` by regressing average velocities.

    1. Bank: ``cfg.n_traj`` teacher paths from x_0 ~ N(0, I) on a uniform ``grid_steps`` grid.
    2. Each step: grid pairs (i ≤ j) from ``sample_grid_pairs``, target ``distillation_target``,
       loss = mean ‖v_φ(x_{t_i}, t_i, t_j) − target‖² (summed over D, averaged over the batch).

    Returns the loss per step. The student is trained in place, on its own device; the bank is
    computed on the teacher's device and moved (teacher and student may live on different devices).

    Lesson 04.2; FMRG "Toy experiment for the course" ("Flow map" (b)).
    """
    dim = student.dim
    dev = next(student.parameters()).device
    v_params = list(v.parameters()) if isinstance(v, nn.Module) else []
    v_dev = v_params[0].device if v_params else torch.device("cpu")
    x0 = torch.randn(cfg.n_traj, dim, generator=generator)
    ts, path, vel = (a.to(dev) for a in teacher_trajectories(v, x0.to(v_dev), cfg.grid_steps))  # bank on the teacher's device

    def batch_loss() -> torch.Tensor:
        idx = torch.randint(0, cfg.n_traj, (cfg.batch,), generator=generator).to(dev)
        i, j = (a.to(dev) for a in sample_grid_pairs(cfg.batch, cfg.grid_steps, generator))
        xs, xt, v_s = path[i, idx], path[j, idx], vel[i, idx]  # (batch, D)
        s, t = ts[i], ts[j]
        target = distillation_target(xs, xt, s, t, v_s)
        return (student.average_velocity(xs, s, t) - target).pow(2).sum(-1).mean()

    return adam_cosine_fit(student.parameters(), batch_loss, cfg.steps, cfg.lr, desc)


def endpoint_jacobian_norm(X, x: torch.Tensor, t: float, end: float = 1.0) -> torch.Tensor:
    """Spectral norm of the endpoint map's Jacobian, ‖∂X_{t,1}(x)/∂x‖₂, per point: ``(B, D) -> (B,)``.

    FMRG-J's control is λ (∂X_{t,1}/∂x)ᵀ ∇r(X_{t,1}(x)); this norm bounds how much the Jacobian can
    amplify the reward gradient. Between modes, where the flow splits, it is large.
    Uses ``torch.func.jacrev`` per point (``vmap``): D backward passes' worth per point.

    Lesson 04.2; FMRG "Jacobian (J) vs Euclidean (E)".
    """
    def single(z: torch.Tensor) -> torch.Tensor:  # (D,) -> (D,)
        return X(z[None], t, end)[0]

    with torch.enable_grad():
        J = torch.func.vmap(torch.func.jacrev(single))(x)  # (B, D, D)
    return torch.linalg.matrix_norm(J.detach(), ord=2)
