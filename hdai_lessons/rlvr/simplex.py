"""Policy gradient on the response simplex (lesson 01.1): K = 3 fixed responses, exact dynamics.

A policy ``π_θ = softmax(θ)`` over three responses (the whole group, so no sampling noise).
One LPO *iteration* freezes the behaviour policy π_b and takes E gradient steps (inner epochs)
on θ; the listwise distribution ``P_θ = softmax(log π_θ − log π_b)`` (Eq. (4) of LPO) then moves
on the 2-simplex from ``P_t`` toward the target ``w* = softmax(R/τ + s_t)`` (Theorem 1):

- ``"PG"``: importance-sampled policy gradient ``−(1/K) Σ_k r_k A_k`` with ``r_k = π_θ/π_b``
  (unclipped), ``A = (R − μ)/τ``; on-policy its step is the reverse-KL step (Proposition 1), but
  the surrogate is linear in ``r`` and never stops: off-policy it overshoots ``w*``.
- ``"GRPO"``: the same with the ratio clip of Eq. (2) (stops once ratios leave [1−ε, 1+ε]).
- ``"LPO-fwd"``: ``KL(w* ‖ P_θ)`` (Eq. (10)); coefficients ``P_θ − w*`` shrink to 0 on arrival.
- ``"LPO-rev"``: ``KL(P_θ ‖ w*)`` (Eq. (11)).

Everything is batched: ``N`` runs (methods × learning rates) advance together as a ``(N, 3)`` θ.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from hdai_lessons.core.plotting import color_for
from hdai_lessons.core.scale import by_scale
from hdai_lessons.rlvr.losses import lpo_forward_kl_loss, lpo_reverse_kl_loss
from hdai_lessons.rlvr.targets import lpo_target

METHODS = ("PG", "GRPO", "LPO-fwd", "LPO-rev")
SQRT3_2 = math.sqrt(3.0) / 2.0
VERTICES = np.array([[0.0, 0.0], [1.0, 0.0], [0.5, SQRT3_2]])  # (3, 2): y1, y2, y3


@dataclass
class SimplexLessonConfig:
    """Lesson 01.1's sizes: inner steps of one LPO iteration, iterations, seeds of the overshoot study.

    Lesson 01.1; the inner steps are Algorithm 1's E epochs of LPO, the iterations its outer loop.
    """

    epochs: int = 30
    """E, inner gradient steps of one LPO iteration (π_b frozen)."""
    iterations: int = 6
    """LPO iterations (π_b ← π_θ between them) of the multi-iteration paths (Proposition 2)."""
    n_seeds: int = 8
    """Random reward vectors R ~ U(0,1)^3 of the overshoot study: ``ctx.seed, ctx.seed + 1, …``."""

    @classmethod
    def for_scale(cls, scale=None) -> "SimplexLessonConfig":
        """smoke: fewer steps and two seeds; toy and full: the lesson (the simplex is exact and cheap)."""
        return by_scale(scale, smoke=cls(epochs=10, iterations=3, n_seeds=2), toy=cls(), full=cls())


def to_xy(p: "np.ndarray | torch.Tensor") -> np.ndarray:
    """Barycentric → Cartesian: ``(..., 3)`` probabilities → ``(..., 2)`` points in the triangle.

    Lesson 01.1; a plotting helper (no paper equation).
    """
    p = p.detach().cpu().numpy() if torch.is_tensor(p) else np.asarray(p)
    return p @ VERTICES


def draw_simplex(ax, labels=("$y_1$", "$y_2$", "$y_3$"), rewards=None) -> None:
    """Draw the 2-simplex (triangle) with vertex labels (and rewards, if given) on ``ax``.

    Lesson 01.1; a plotting helper (no paper equation).
    """
    tri = np.vstack([VERTICES, VERTICES[:1]])
    ax.plot(tri[:, 0], tri[:, 1], color="#999999", lw=1.0)
    offsets = [(-0.06, -0.05), (0.02, -0.05), (-0.03, 0.03)]
    for i, (v, lab) in enumerate(zip(VERTICES, labels)):
        text = lab if rewards is None else f"{lab} (R={float(rewards[i]):.2g})"
        ax.text(v[0] + offsets[i][0], v[1] + offsets[i][1], text, fontsize=8, clip_on=True)
    ax.set_aspect("equal")
    ax.set_xlim(-0.1, 1.1)
    ax.set_ylim(-0.1, SQRT3_2 + 0.08)
    ax.axis("off")


def gibbs_path(rewards: torch.Tensor, taus: torch.Tensor, s_t: "torch.Tensor | None" = None) -> torch.Tensor:
    """The curve of targets ``softmax(R/τ + s_t)`` for a sweep of τ: ``(3,)``, ``(n,)`` → ``(n, 3)``.

    Lesson 01.1; Theorem 1, Eq. (8) of LPO (and Proposition 2's path softmax(tR/τ)).
    """
    R = rewards.expand(len(taus), -1)  # (n, 3)
    st = None if s_t is None else s_t.expand(len(taus), -1)
    return lpo_target(R, taus.unsqueeze(-1).to(R.dtype), st)


def _loss(method: str, theta: torch.Tensor, theta_b: torch.Tensor, rewards: torch.Tensor, w_star: torch.Tensor,
          tau: torch.Tensor, eps: float) -> torch.Tensor:
    """Per-run loss ``(N,)`` for one method; θ, θ_b: ``(N, 3)``; rewards, w_star: ``(N, 3)``; tau ``(N, 1)``."""
    logpi = torch.log_softmax(theta, -1)  # (N, 3), log π_θ(y_k)
    logpi_b = torch.log_softmax(theta_b, -1)
    s = logpi - logpi_b  # (N, 3), listwise logits s_θ,k of Eq. (4)
    K = theta.shape[-1]
    if method in ("PG", "GRPO"):
        A = (rewards - rewards.mean(-1, keepdim=True)) / tau  # (N, 3), Table 1 with temperature τ
        r = torch.exp(s)  # importance ratios π_θ/π_b
        surr = r * A
        if method == "GRPO":
            surr = torch.minimum(surr, r.clamp(1 - eps, 1 + eps) * A)  # Eq. (2)
        return -surr.sum(-1) / K
    if method == "LPO-fwd":
        return lpo_forward_kl_loss(s, w_star)
    if method == "LPO-rev":
        return lpo_reverse_kl_loss(s, w_star)
    raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")


def coefficients(method: str, theta: torch.Tensor, theta_b: torch.Tensor, rewards: torch.Tensor, w_star: torch.Tensor,
                 tau: torch.Tensor, eps: float = 0.2) -> torch.Tensor:
    """Effective per-response coefficient of a method (descent convention): ``(N, 3)``.

    The gradient of the loss w.r.t. θ is ``Σ_k c_k ∇_θ log π_θ(y_k)``. Here the group is the whole
    response space, so ``c = ∂L/∂s`` taken through the renormalised ``log π_θ``; for zero-sum
    coefficients (LPO, on-policy PG) this is exactly Eq. (13)/(17), while the part of off-policy
    PG's ``−r_k A_k/K`` that is not zero-sum is absorbed by the softmax (it moves no probability).

    Lesson 01.1; Eqs. (2), (13) and (17) of LPO; on-policy PG = reverse KL (Proposition 1, Eq. (5)).
    """
    s = (torch.log_softmax(theta, -1) - torch.log_softmax(theta_b, -1)).detach().requires_grad_(True)
    # rebuild θ from s (θ_b + s is a valid θ: softmax is shift invariant)
    loss = _loss(method, theta_b + s, theta_b, rewards, w_star, tau, eps).sum()
    (c,) = torch.autograd.grad(loss, s)
    return c


@dataclass
class SimplexResult:
    """Trajectories of one batch of runs. ``P``: ``(N, E+1, 3)`` listwise distributions (one
    iteration) or policies (several); ``c``: ``(N, E, 3)`` coefficients per inner step;
    ``w_star``: ``(N, 3)`` (first iteration's target); ``labels``: ``N`` names.

    Lesson 01.1; one iteration of Algorithm 1 of LPO, recorded on the simplex.
    """

    P: torch.Tensor
    c: torch.Tensor
    w_star: torch.Tensor
    labels: list


def project(methods, rewards, tau: float, lrs, epochs: int = 30, eps: float = 0.2, theta_b=None) -> SimplexResult:
    """One LPO iteration: E = ``epochs`` SGD steps of every (method, lr) pair from θ = θ_b.

    Args:
        methods: names from ``METHODS``; rewards: ``(3,)``; tau: temperature; lrs: learning rates;
        epochs: inner steps E; eps: GRPO clip; theta_b: ``(3,)`` behaviour logits (default uniform).
    Returns:
        ``SimplexResult`` with ``N = len(methods) · len(lrs)`` runs (method-major), ``P`` the listwise
        distribution ``softmax(log π_θ − log π_b)`` after each step (``P[:, 0]`` uniform).

    Lesson 01.1; one iteration of Algorithm 1 of LPO (the projection step of Eq. (6)).
    """
    R = torch.as_tensor(rewards, dtype=torch.float64)
    if R.shape != (3,):
        raise ValueError(f"rewards must have shape (3,), got {tuple(R.shape)}")
    pairs = [(m, lr) for m in methods for lr in lrs]
    N = len(pairs)
    tb = torch.zeros(3, dtype=torch.float64) if theta_b is None else torch.as_tensor(theta_b, dtype=torch.float64)
    theta_b = tb.expand(N, 3).clone()  # (N, 3)
    Rn = R.expand(N, 3)
    tau_t = torch.full((N, 1), float(tau), dtype=torch.float64)
    w_star = lpo_target(Rn, tau_t)  # (N, 3), s_t = 0 (π_t = π_b)
    lr_t = torch.tensor([lr for _, lr in pairs], dtype=torch.float64).unsqueeze(-1)  # (N, 1)
    theta = theta_b.clone().requires_grad_(True)
    Ps, cs = [torch.softmax(theta - theta_b, -1).detach()], []
    for _ in range(epochs):
        loss = torch.zeros((), dtype=torch.float64)
        c_rows = []
        for i, (m, _) in enumerate(pairs):
            loss = loss + _loss(m, theta[i:i + 1], theta_b[i:i + 1], Rn[i:i + 1], w_star[i:i + 1], tau_t[i:i + 1], eps).sum()
            c_rows.append(coefficients(m, theta[i:i + 1].detach(), theta_b[i:i + 1], Rn[i:i + 1], w_star[i:i + 1], tau_t[i:i + 1], eps))
        (g,) = torch.autograd.grad(loss, theta)
        with torch.no_grad():
            theta -= lr_t * g  # plain SGD, one lr per run
        cs.append(torch.cat(c_rows))
        Ps.append(torch.softmax(theta - theta_b, -1).detach())
    return SimplexResult(P=torch.stack(Ps, 1), c=torch.stack(cs, 1), w_star=w_star, labels=[f"{m}, lr={lr:g}" for m, lr in pairs])


def iterate(method: str, rewards, tau: float, lr: float, epochs: int, iterations: int, eps: float = 0.2) -> torch.Tensor:
    """Several LPO iterations (Algorithm 1): π_b ← π_θ, then E inner steps. Returns π after each: ``(iterations+1, 3)``.

    With an exact projection the policy follows ``π_t ∝ π_0 exp(tR/τ)`` (Proposition 2).

    Lesson 01.1; Algorithm 1 of LPO and Proposition 2 (π_t ∝ π_0 exp(tR/τ)).
    """
    theta = torch.zeros(3, dtype=torch.float64)
    path = [torch.softmax(theta, -1)]
    for _ in range(iterations):
        run = project([method], rewards, tau, [lr], epochs, eps, theta_b=theta)
        P = run.P[0, -1]  # listwise distribution after the inner steps
        theta = torch.log_softmax(theta, -1) + torch.log(P)  # π_θ ∝ π_b · P (K = the whole space)
        path.append(torch.softmax(theta, -1))
    return torch.stack(path)


def zoom_limits(run: SimplexResult, pad: float = 0.06) -> tuple:
    """``(xlim, ylim)`` of a box around every trajectory of ``run`` and its target, for equal zooms.

    Lesson 01.1; a plotting helper (no paper equation).
    """
    pts = np.concatenate([to_xy(run.P).reshape(-1, 2), to_xy(run.w_star)])
    lo, hi = pts.min(0) - pad, pts.max(0) + pad
    return (lo[0], hi[0]), (lo[1], hi[1])


def plot_projection(ax, run: SimplexResult, rewards=None, title: str = "", limits: "tuple | None" = None) -> None:
    """Trajectories of ``P_θ`` on the triangle, the target ``w*`` as a star (``limits``: ``zoom_limits``).

    Lesson 01.1; a plotting helper (no paper equation).
    """
    draw_simplex(ax, rewards=rewards)
    xy = to_xy(run.P)  # (N, E+1, 2)
    for i, lab in enumerate(run.labels):
        method = lab.split(",")[0]
        alpha = 0.45 + 0.55 * (i % 3) / 2
        ax.plot(xy[i, :, 0], xy[i, :, 1], ".-", ms=3, lw=1.2, color=color_for(method), alpha=alpha, label=lab)
    ws = to_xy(run.w_star[0])
    ax.plot(*ws, "*", ms=14, color="black", label="$w^*$")
    ax.set_title(title)
    if limits is not None:
        ax.set_xlim(*limits[0])
        ax.set_ylim(*limits[1])


def plot_targets(ax, rewards, tau_grid, schemes: dict, tau_marker: "float | None" = None) -> None:
    """The Gibbs curve ``softmax(R/τ)`` and each scheme's implicit target on it (``schemes``: name → τ).

    Lesson 01.1; Table 1 of LPO (implicit targets on the Gibbs curve of Eq. (8)).
    """
    R = torch.as_tensor(rewards, dtype=torch.float64)
    draw_simplex(ax, rewards=R)
    path = to_xy(gibbs_path(R, torch.as_tensor(tau_grid, dtype=torch.float64)))
    ax.plot(path[:, 0], path[:, 1], "-", color="#666666", lw=1, label=r"softmax$(R/\tau)$, $\tau$ from 0 to ∞")
    markers = "os^Dvp"
    for j, (name, tau) in enumerate(schemes.items()):
        p = to_xy(gibbs_path(R, torch.tensor([float(tau)], dtype=torch.float64))[0])
        ax.plot(*p, markers[j % len(markers)], ms=8, color=color_for(name, j), label=f"{name} (τ={float(tau):.3g})")
    if tau_marker is not None:
        p = to_xy(gibbs_path(R, torch.tensor([float(tau_marker)], dtype=torch.float64))[0])
        ax.plot(*p, "*", ms=15, color="black", label=f"τ = {tau_marker:.3g}")


def overshoot_study(seeds, lr: float = 2.0, epochs: int = 40, eps: float = 0.2) -> dict:
    """For random rewards ``R ~ U(0,1)^3`` per seed (τ = σ_G): one iteration of every method.

    Returns a dict of float64 tensors, one row per seed:
        ``rewards`` ``(S, 3)``, ``w_star`` ``(S, 3)``, ``final_P`` ``(S, M, 3)`` (M = ``METHODS``),
        ``kl_to_target`` ``(S, M)`` = KL(w* ‖ P_final), ``best_mass_excess`` ``(S, M)`` =
        P_final − w* at the best response (> 0: overshoot past w*), ``final_sum_abs_c`` ``(S, M)``,
        ``first_step_gap`` ``(S,)`` = max |c^PG − c^rev| at the on-policy point (Proposition 1),
        ``last_step_gap`` ``(S,)`` the same after the last inner step of PG's run.

    Lesson 01.1; Corollary 1 of LPO (c^fwd → 0 at w*) vs unclipped PG; Proposition 1 (Eq. (5)).
    """
    from hdai_lessons.rlvr.targets import tau_from_rule

    rows = {k: [] for k in ("rewards", "w_star", "final_P", "kl_to_target", "best_mass_excess", "final_sum_abs_c",
                            "first_step_gap", "last_step_gap")}
    for seed in seeds:
        g = torch.Generator().manual_seed(int(seed))
        R = torch.rand(3, generator=g, dtype=torch.float64)
        tau = float(tau_from_rule(R, "std"))
        run = project(METHODS, R, tau, [lr], epochs, eps)
        w = run.w_star[0]
        P = run.P[:, -1]  # (M, 3)
        best = int(R.argmax())
        rows["rewards"].append(R)
        rows["w_star"].append(w)
        rows["final_P"].append(P)
        rows["kl_to_target"].append((w * (torch.log(w) - torch.log(P))).sum(-1))
        rows["best_mass_excess"].append(P[:, best] - w[best])
        rows["final_sum_abs_c"].append(run.c[:, -1].abs().sum(-1))
        i_pg, i_rev = METHODS.index("PG"), METHODS.index("LPO-rev")
        rows["first_step_gap"].append((run.c[i_pg, 0] - run.c[i_rev, 0]).abs().max())
        # off-policy: evaluate both coefficients at the point PG reached after its inner steps
        theta = torch.log(run.P[i_pg, -2]).unsqueeze(0)  # θ − θ_b up to a constant (θ_b uniform)
        tb = torch.zeros(1, 3, dtype=torch.float64)
        tau_t = torch.full((1, 1), tau, dtype=torch.float64)
        c_pg = coefficients("PG", theta, tb, R.unsqueeze(0), w.unsqueeze(0), tau_t, eps)
        c_rev = coefficients("LPO-rev", theta, tb, R.unsqueeze(0), w.unsqueeze(0), tau_t, eps)
        rows["last_step_gap"].append((c_pg - c_rev).abs().max())
    return {k: torch.stack(v) for k, v in rows.items()}
