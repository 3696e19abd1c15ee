"""Reward guidance for flows, every method behind one interface (FMRG, arXiv 2604.27147).

Paper convention: t = 0 noise → t = 1 data. Guidance is the deterministic control problem

    min_u ∫_0^1 ‖u_t‖²/(2λ) dt − r(x_1^u)   s.t.   ẋ_t = b_t(x_t) + u_t            (FMRG, "Control problem")

whose optimum u*_t = λ ∇X^{u*}_{t,1}(x)ᵀ ∇r(X^{u*}_{t,1}(x)) needs the *controlled* flow map. The
methods here are the approximations of the paper's hierarchy ("Existing methods as special cases"):

| method      | endpoint used for r              | base dynamics       | Jacobian |
|-------------|----------------------------------|---------------------|----------|
| ``fmrg_j``  | flow map X_{t,1}(x)              | flow-map jumps      | yes      |
| ``fmrg_e``  | flow map X_{t,1}(x), detached    | flow-map jumps      | no       |
| ``dps``     | Euler/denoiser x + (1−t) b_t(x)  | Euler               | yes      |
| ``flowchef``| Euler/denoiser, detached         | Euler               | no       |
| ``dflow``   | X_{0,1}(x_0), optimise the noise | flow-map jumps      | yes (t=0 only) |
| ``best_of_n``| — (rerank N unguided samples)   | flow-map jumps      | —        |
| ``exact``   | controlled flow (``adjoint.py``) | Euler               | yes      |

Discretisation by operator splitting (FMRG, "Discretisation by operator splitting"): on the grid
t_k = k/N, if t_k < t_stop, ``n_opt`` control steps x ← x + (Δt/n_opt) u(x, t_k), then the base
step x ← X_{t_k,t_{k+1}}(x) (or an Euler step). The site's algorithm takes the jump first and
evaluates u at t_{k+1}; with that order the last step is a plain Euclidean step λΔt∇r(x) at t = 1
(X_{1,1} = id), which would dominate a few-step toy, so we use the "control, then transport" order
(a Lie splitting too; the authors' code also fuses endpoint and jump at t_k).

The authors' protocol (``authors_protocol``, ``AuthorsProtocolConfig``): guide only t_k < t_stop of a
fine grid with the normalised law, one fused network call per guided step (``flow_map1``), then
unguided flow-map jumps to t = 1 for every method; ``select_lambda`` picks λ per method by the
on-manifold rule on seeds kept apart from the claim's (FMRG digest § Early stopping, § Cost (NFE)).

Cost accounting: each method's network is wrapped in ``sampling.NFECounter``; ``nfe_forward``
counts network calls *per trajectory* and ``nfe_vjp`` the vector–Jacobian products through the
network (reward gradients are not network calls). ``best_of_n`` multiplies by the particles.
A call of a ``TeacherFlowMap`` counts its ``nfe_per_call`` velocity evaluations.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import torch

from hdai_lessons.core.scale import by_scale
from hdai_lessons.flows.models import as_time
from hdai_lessons.flows.sampling import GuidanceResult, NFECounter

Reward = Callable[[torch.Tensor], torch.Tensor]
METHODS = ("unguided", "best_of_n", "dps", "flowchef", "fmrg_e", "fmrg_j", "dflow", "exact")
CONTROLS = ("raw", "normalized", "adam")


@dataclass
class GuidanceConfig:
    """Settings shared by every method (unused fields are ignored by a method).

    Lessons 04.3–04.5; FMRG "Discretisation by operator splitting" and "Early stopping".
    """

    steps: int = 4
    """Grid steps N of the sampler (flow-map jumps or Euler steps)."""
    lam: float = 1.0
    """Guidance strength λ (the control cost weight 1/(2λ))."""
    n_opt: int = 1
    """Inner control steps per grid step (FMRG's n_opt)."""
    t_stop: float = 1.0
    """Guide only the grid steps with t_k < t_stop (early stopping, FMRG "Early stopping"; ``guided_steps``)."""
    control: str = "raw"
    """"raw" u = λg; "normalized" ‖u‖ = λ‖b‖; "adam" Adam-stepped (authors' code)."""
    n_particles: int = 8
    """Best-of-N: the number N of unguided samples reranked."""
    dflow_iters: int = 5
    """D-Flow: gradient steps on the noise."""
    dflow_lr: float = 0.5
    """D-Flow: step size."""
    dflow_prior: float = 1.0
    """D-Flow: weight of the Gaussian prior ½‖x_0‖² on the noise."""
    adjoint_iters: int = 20
    """Exact OC: adjoint iterations (``adjoint.solve_optimal_control``)."""
    adjoint_damping: float = 0.5
    """Exact OC: u ← (1−α)u + α(−λp)."""
    record: bool = False
    """Keep the path and the controls (for plots)."""


@dataclass
class GuidanceLessonConfig:
    """Lesson 04.3's sizes: samples per run, the claim's seeds, the exact solver's iterations, the tilt pool,
    and the authors' protocol (grid, t_stop, jumps) with its λ grid and separate λ-selection seeds.

    Lesson 04.3; FMRG "Toy experiment for the course" ("Methods": exact adjoint OC, the reference tilt);
    FMRG digest § Early stopping and § Cost (NFE), from the code (the protocol).
    """

    n: int = 256
    """Samples (trajectories) per method and seed."""
    n_seeds: int = 8
    """Seeds of the paired claims (seed i = the lesson's base seed + i)."""
    exact_iters: int = 15
    """Adjoint iterations of the exact optimal-control baseline (``GuidanceConfig.adjoint_iters``)."""
    pool: int = 20000
    """Unguided samples resampled into the reward tilt (``tilt.tilt_resample``)."""
    protocol_grid: int = 16
    """The authors' protocol: the fine grid N of the guided phase (``AuthorsProtocolConfig.grid_steps``)."""
    protocol_t_stop: float = 0.25
    """The authors' protocol: guidance stops at t_stop (``AuthorsProtocolConfig.t_stop``)."""
    protocol_jumps: int = 2
    """The authors' protocol: unguided flow-map jumps from t_stop to t = 1 (``AuthorsProtocolConfig.jumps``)."""
    protocol_lams: tuple = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
    """The λ grid searched per method and reward by the on-manifold rule (``select_lambda``)."""
    selection_seeds: int = 2
    """Seeds on which λ is selected; they are disjoint from the claim's seeds (``selection_seed_offset``)."""
    selection_seed_offset: int = 1000
    """Selection seed i = the lesson's base seed + this offset + i (evaluation seeds are base + 0 … n_seeds − 1)."""

    @classmethod
    def for_scale(cls, scale) -> GuidanceLessonConfig:
        """The rung's sizes: smoke (seconds), toy (a laptop CPU, the default), full (a GPU)."""
        return by_scale(scale, smoke=cls(n=64, n_seeds=2, exact_iters=3, pool=4000, protocol_lams=(1.0, 4.0, 16.0),
                                         selection_seeds=1),
                        toy=cls(), full=cls(n=2048, n_seeds=10, exact_iters=40, pool=200000))

    def protocol(self) -> "AuthorsProtocolConfig":
        """The authors' protocol at this rung's grid, stopping time and jumps."""
        return AuthorsProtocolConfig(grid_steps=self.protocol_grid, t_stop=self.protocol_t_stop, jumps=self.protocol_jumps)


# ----------------------------------------------------------------------------- endpoints
def euler_endpoint(v: Callable, x: torch.Tensor, t: float) -> torch.Tensor:
    """DPS's endpoint, the denoiser x̂_1 = E[x_1 | x_t = x] = x + (1 − t) b_t(x) (FMRG "Base flow and flow map"): (B, D) → (B, D).

    Lesson 04.3; the DPS row of FMRG "Hierarchy of approximations".
    """
    if t >= 1.0:
        return x
    return x + (1.0 - t) * v(x, as_time(float(t), x))


def flow_map_endpoint(X: Callable, x: torch.Tensor, t: float) -> torch.Tensor:
    """FMRG's endpoint X_{t,1}(x) (X_{1,1} = id costs nothing): (B, D) → (B, D).

    Lesson 04.3; the endpoint X_{t,1}(x) of FMRG "FMRG control law".
    """
    if t >= 1.0:
        return x
    return X(x, float(t), 1.0)


# ----------------------------------------------------------------------------- controls
def reward_through(endpoint_fn: Callable[[torch.Tensor], torch.Tensor], reward: Reward, x: torch.Tensor,
                   jacobian: bool, return_endpoint: bool = False):
    """The guidance direction g(x) at a point: (B, D) → (B, D), no graph kept.

    ``jacobian=True``: g = ∇_x r(E(x)) = (∂E/∂x)ᵀ ∇r(E(x)) (one VJP through the network).
    ``jacobian=False``: g = ∇r(E(x)) with E(x) detached (no backprop through the network).
    With ``return_endpoint`` also the (detached) endpoint E(x): (B, D).

    Lesson 04.3; FMRG "Jacobian (J) vs Euclidean (E)".
    """
    with torch.enable_grad():
        if jacobian:
            xg = x.detach().requires_grad_(True)
            e = endpoint_fn(xg)
            (g,) = torch.autograd.grad(reward(e).sum(), xg)
        else:
            with torch.no_grad():
                e = endpoint_fn(x.detach())
            e = e.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(reward(e).sum(), e)
    return (g, e.detach()) if return_endpoint else g


def fmrg_j_control(X: Callable, reward: Reward, x: torch.Tensor, t: float, lam: float) -> torch.Tensor:
    """FMRG-J: u_t(x) = λ ∇X_{t,1}(x)ᵀ ∇r(X_{t,1}(x)) = λ ∇_x[r(X_{t,1}(x))] (FMRG control law): (B, D) → (B, D).

    Lesson 04.3; FMRG "FMRG control law" (the FMRG-J row of "Hierarchy of approximations").
    """
    return lam * reward_through(lambda z: flow_map_endpoint(X, z, t), reward, x, jacobian=True)


def fmrg_e_control(X: Callable, reward: Reward, x: torch.Tensor, t: float, lam: float) -> torch.Tensor:
    """FMRG-E: u_t(x) = λ ∇r(X_{t,1}(x)) at the detached endpoint (no Jacobian): (B, D) → (B, D).

    Lesson 04.3; FMRG "Jacobian (J) vs Euclidean (E)" (the FMRG-E row of "Hierarchy of approximations").
    """
    return lam * reward_through(lambda z: flow_map_endpoint(X, z, t), reward, x, jacobian=False)


def dps_control(v: Callable, reward: Reward, x: torch.Tensor, t: float, lam: float) -> torch.Tensor:
    """DPS: u_t(x) = λ ∇_x r(x̂_1(x)), x̂_1 = x + (1−t) b_t(x) (hierarchy table, DPS row): (B, D) → (B, D).

    Lesson 04.3; the DPS row of FMRG "Hierarchy of approximations".
    """
    return lam * reward_through(lambda z: euler_endpoint(v, z, t), reward, x, jacobian=True)


def flowchef_control(v: Callable, reward: Reward, x: torch.Tensor, t: float, lam: float) -> torch.Tensor:
    """FlowChef-style: u_t(x) = λ ∇r(x̂_1) at the detached Euler endpoint (no Jacobian): (B, D) → (B, D).

    Lesson 04.3; the FlowChef row of FMRG "Hierarchy of approximations".
    """
    return lam * reward_through(lambda z: euler_endpoint(v, z, t), reward, x, jacobian=False)


def flow_map_jacobian(X: Callable, x: torch.Tensor, t: float) -> torch.Tensor:
    """The explicit Jacobian ∂X_{t,1}/∂x at each row: (B, D) → (B, D, D), row i = ∇_x X_{t,1}(x)_i (D VJPs).

    Lesson 04.3; FMRG "Jacobian (J) vs Euclidean (E)".
    """
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        out = flow_map_endpoint(X, xg, t)  # (B, D)
        rows = [torch.autograd.grad(out[:, i].sum(), xg, retain_graph=True)[0] for i in range(out.shape[1])]
    return torch.stack(rows, dim=1)  # (B, D_out, D_in)


# ----------------------------------------------------------------------------- helpers
def _counted(fn: Callable):
    """Wrap ``fn`` in an ``NFECounter`` and return (counter, per-call multiplier)."""
    if fn is None:
        return None, 1
    return NFECounter(fn), int(getattr(fn, "nfe_per_call", 1))


def _grid(steps: int) -> list[float]:
    if steps < 1:
        raise ValueError(f"steps must be ≥ 1, got {steps}")
    return [k / steps for k in range(steps + 1)]


def _apply_control(g: torch.Tensor, cfg: GuidanceConfig, base_velocity: torch.Tensor, adam_state: dict,
                   lr: float) -> torch.Tensor:
    """Turn a direction g (B, D) into the displacement added to x for one inner step of length ``lr`` = Δt/n_opt.

    raw: lr·λg (the control law as written). normalized: lr·λ·‖b‖·g/‖g‖ per row, with b the
    velocity towards the predicted endpoint (the authors' ``--normalize_grad``). adam: an Adam
    step of size lr·λ ascending r (per-coordinate normalised, bias-corrected, fresh state per
    grid step, as the authors' FMRG-J inner loop).
    """
    if cfg.control == "raw":
        return lr * cfg.lam * g
    if cfg.control == "normalized":
        gn = g.norm(dim=-1, keepdim=True).clamp_min(1e-12)   # (B, 1)
        bn = base_velocity.norm(dim=-1, keepdim=True)       # (B, 1)
        return lr * cfg.lam * bn * g / gn
    if cfg.control == "adam":
        b1, b2, eps = 0.9, 0.999, 1e-8
        st = adam_state
        st["i"] = st.get("i", 0) + 1
        st["m"] = b1 * st.get("m", torch.zeros_like(g)) + (1 - b1) * g
        st["v"] = b2 * st.get("v", torch.zeros_like(g)) + (1 - b2) * g * g
        mh, vh = st["m"] / (1 - b1 ** st["i"]), st["v"] / (1 - b2 ** st["i"])
        return lr * cfg.lam * mh / (vh.sqrt() + eps)
    raise ValueError(f"control must be one of {CONTROLS}, got {cfg.control!r}")


# ----------------------------------------------------------------------------- samplers
def guided_steps(steps: int, t_stop: float) -> list[bool]:
    """Which grid steps k = 0..N−1 are guided under early stopping: t_k = k/N < t_stop. → N bools.

    Lesson 04.3; FMRG "Early stopping".
    """
    return [k / steps < t_stop - 1e-9 for k in range(steps)]


def _single_trajectory(method: str, v, X, reward: Reward, x0: torch.Tensor, cfg: GuidanceConfig) -> GuidanceResult:
    """Operator-splitting sampler shared by unguided, DPS, FlowChef, FMRG-E and FMRG-J.

    Step k (t_k → t_{k+1}): if guided, ``n_opt`` control steps x ← x + (Δt/n_opt)·u(x, t_k); then
    the base step (flow-map jump X_{t_k,t_{k+1}} or Euler). Applying the control *before* the jump
    lets the flow transport it, and no un-transported Euclidean step is taken at t = 1.
    """
    use_map = method in ("fmrg_e", "fmrg_j") or (method == "unguided" and X is not None)
    net, mult = _counted(X if use_map else v)
    if net is None:
        raise ValueError(f"{method} needs a {'flow map X' if use_map else 'velocity field v'}")
    jac = method in ("fmrg_j", "dps")
    ts = _grid(cfg.steps)
    guided = guided_steps(cfg.steps, cfg.t_stop)
    x = x0.detach().clone()
    energy = torch.zeros(x.shape[0], dtype=torch.float64)
    path, controls = ([(0.0, x.clone())] if cfg.record else []), []
    for k in range(cfg.steps):
        t, t_next = ts[k], ts[k + 1]
        dt = t_next - t
        if method != "unguided" and guided[k]:
            adam_state: dict = {}
            if use_map:
                endpoint = lambda z: flow_map_endpoint(net, z, t)  # noqa: E731
            else:
                endpoint = lambda z: euler_endpoint(net, z, t)  # noqa: E731
            for _ in range(cfg.n_opt):
                g, e = reward_through(endpoint, reward, x, jacobian=jac, return_endpoint=True)  # (B, D) each
                base_vel = (e - x) / (1.0 - t)                            # velocity towards the endpoint
                disp = _apply_control(g, cfg, base_vel, adam_state, dt / cfg.n_opt)
                x = x + disp
                u = disp / (dt / cfg.n_opt)                               # the control u (B, D)
                energy += (u.double() ** 2).sum(-1) * (dt / cfg.n_opt)
                if cfg.record:
                    controls.append((t, u.clone()))
        with torch.no_grad():  # base dynamics: a flow-map jump, or an Euler step of the velocity
            x = net(x, t, t_next) if use_map else x + dt * net(x, as_time(t, x))
        if cfg.record:
            path.append((t_next, x.clone()))
    return GuidanceResult(method, x.detach(), net.forward_calls * mult, net.vjp_calls * mult,
                          float(energy.mean()), path, controls)


def _best_of_n(v, X, reward: Reward, x0: torch.Tensor, cfg: GuidanceConfig, generator) -> GuidanceResult:
    """Best-of-N: N unguided flow-map samples per output, keep the highest reward (x0 is particle 0)."""
    B, D = x0.shape
    n = cfg.n_particles
    extra = torch.randn(B * (n - 1), D, generator=generator, dtype=x0.dtype)
    xs = torch.cat([x0, extra]).reshape(n, B, D).reshape(n * B, D)  # particle-major (n·B, D)
    res = _single_trajectory("unguided", v, X, reward, xs, replace(cfg, record=False))
    with torch.no_grad():
        r = reward(res.samples).reshape(n, B)           # (n, B)
    best = r.argmax(0)                                  # (B,)
    out = res.samples.reshape(n, B, D)[best, torch.arange(B)]  # (B, D)
    return GuidanceResult("best_of_n", out, res.nfe_forward * n, 0, 0.0)


def _dflow(X, reward: Reward, x0: torch.Tensor, cfg: GuidanceConfig) -> GuidanceResult:
    """D-Flow-style noise optimisation: ascend r(X_{0,1}(x_0)) − (β/2)‖x_0‖² in x_0, then sample.

    The sampler is ``cfg.steps`` flow-map jumps, differentiated end to end (D-Flow / ReNO row of
    the hierarchy: guidance only at t = 0). Each iteration costs ``steps`` forwards + ``steps`` VJPs.
    """
    net, mult = _counted(X)
    ts = _grid(cfg.steps)

    def sample(z: torch.Tensor) -> torch.Tensor:
        for k in range(cfg.steps):
            z = net(z, ts[k], ts[k + 1])
        return z

    z = x0.detach().clone()
    for _ in range(cfg.dflow_iters):
        with torch.enable_grad():
            zg = z.requires_grad_(True)
            obj = reward(sample(zg)) - 0.5 * cfg.dflow_prior * (zg**2).sum(-1)  # (B,)
            (g,) = torch.autograd.grad(obj.sum(), zg)
        z = (z + cfg.dflow_lr * g).detach()
    with torch.no_grad():
        x = sample(z)
    return GuidanceResult("dflow", x, net.forward_calls * mult, net.vjp_calls * mult, 0.0)


def guide(method: str, reward: Reward, x0: torch.Tensor, cfg: "GuidanceConfig | None" = None, *,
          velocity: "Callable | None" = None, flow_map: "Callable | None" = None,
          generator: "torch.Generator | None" = None) -> GuidanceResult:
    """Run one guidance ``method`` from the noise ``x0`` (B, D); return samples and NFE counts.

    Args:
        method: one of ``METHODS``.
        reward: ``r(x: (B, D)) -> (B,)``.
        x0: ``(B, D)`` initial noise (one trajectory per row).
        cfg: ``GuidanceConfig``.
        velocity: ``v(x, t)`` — needed by ``dps``, ``flowchef`` and ``exact``.
        flow_map: ``X(x, s, t)`` — needed by ``fmrg_e``, ``fmrg_j``, ``dflow``, ``best_of_n`` and
            ``unguided`` (with no flow map, ``unguided`` takes Euler steps of ``velocity``).
        generator: for ``best_of_n``'s extra particles.

    Lesson 04.3 (used again in 04.4–04.5); FMRG "Discretisation by operator splitting" and "Algorithm
    (pseudo-code)"; the methods of "Hierarchy of approximations".
    """
    cfg = cfg or GuidanceConfig()
    if x0.dim() != 2:
        raise ValueError(f"x0 must be (B, D) noise, got {tuple(x0.shape)}")
    if not 0.0 <= cfg.t_stop <= 1.0:
        raise ValueError(f"t_stop must be in [0, 1], got {cfg.t_stop}")
    if method in ("unguided", "dps", "flowchef", "fmrg_e", "fmrg_j"):
        if method in ("dps", "flowchef") and velocity is None:
            raise ValueError(f"{method} needs velocity=v (it uses the Euler endpoint x + (1−t) v(x, t))")
        if method in ("fmrg_e", "fmrg_j") and flow_map is None:
            raise ValueError(f"{method} needs flow_map=X (it uses the endpoint X_{{t,1}}(x))")
        return _single_trajectory(method, velocity, flow_map, reward, x0, cfg)
    if method == "best_of_n":
        if flow_map is None:
            raise ValueError("best_of_n needs flow_map=X (it reranks flow-map samples)")
        return _best_of_n(velocity, flow_map, reward, x0, cfg, generator)
    if method == "dflow":
        if flow_map is None:
            raise ValueError("dflow needs flow_map=X")
        return _dflow(flow_map, reward, x0, cfg)
    if method == "exact":
        if velocity is None:
            raise ValueError("exact needs velocity=v")
        from hdai_lessons.flows.adjoint import solve_optimal_control

        return solve_optimal_control(velocity, reward, x0, lam=cfg.lam, steps=cfg.steps,
                                     iters=cfg.adjoint_iters, damping=cfg.adjoint_damping)
    raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")


# ----------------------------------------------------------------------------- experiments
def evaluate(res: GuidanceResult, reward: Reward, log_prob: Callable, tilt_samples: "torch.Tensor | None" = None,
             on_manifold_threshold: float = -6.0) -> dict:
    """Metrics of one run: mean reward, data log-density (floored at −20), on-manifold fraction,
    control energy, total variance, energy distance to ``tilt_samples`` (if given), and NFE counts.

    Lesson 04.3; FMRG "Toy experiment for the course" ("Plots").
    """
    from hdai_lessons.flows.metrics import data_log_density, energy_distance, mean_reward, on_manifold_fraction, sample_variance

    x = res.samples
    out = {"reward": mean_reward(x, reward), "log_density": data_log_density(x, log_prob, floor=-20.0),
           "on_manifold": on_manifold_fraction(x, log_prob, on_manifold_threshold),
           "energy": res.control_energy, "variance": sample_variance(x),
           "nfe_forward": res.nfe_forward, "nfe_vjp": res.nfe_vjp, "nfe": res.nfe}
    if tilt_samples is not None:
        out["energy_distance"] = energy_distance(x, tilt_samples)
    return out


def run_suite(specs: "list[tuple[str, str, GuidanceConfig]]", reward: Reward, velocity, flow_map, log_prob: Callable,
              seeds: "list[int]", n: int = 256, tilt_samples: "torch.Tensor | None" = None) -> list[dict]:
    """Run every ``(label, method, cfg)`` for every seed on the same noise per seed; one dict per run.

    Each row: ``{"label", "method", "seed", "steps", "lam", "t_stop", "control", **evaluate(...)}``.
    The noise x_0 ~ N(0, I) of shape (n, D) is drawn from ``seed``, so methods are compared on
    identical starting points (a paired comparison).

    Lesson 04.3; FMRG "Toy experiment for the course" ("Methods", paired over seeds).
    """
    dim = getattr(flow_map, "dim", 2)
    rows = []
    for seed in seeds:
        g = torch.Generator().manual_seed(seed)
        x0 = torch.randn(n, dim, generator=g)
        for label, method, cfg in specs:
            res = guide(method, reward, x0, cfg, velocity=velocity, flow_map=flow_map,
                        generator=torch.Generator().manual_seed(10_000 + seed))
            rows.append({"label": label, "method": method, "seed": seed, "steps": cfg.steps, "lam": cfg.lam,
                         "t_stop": cfg.t_stop, "control": cfg.control,
                         **evaluate(res, reward, log_prob, tilt_samples)})
    return rows


def summarize(rows: list[dict], keys: "tuple[str, ...]" = ("reward", "log_density", "nfe")) -> dict:
    """Mean and std over seeds per label: ``{label: {key: (mean, std)}}`` (population std).

    Lessons 04.3–04.5; a helper with no paper counterpart (reporting).
    """
    out: dict = {}
    for label in dict.fromkeys(r["label"] for r in rows):
        sel = [r for r in rows if r["label"] == label]
        out[label] = {}
        for k in keys:
            vals = torch.tensor([float(r[k]) for r in sel], dtype=torch.float64)
            out[label][k] = (float(vals.mean()), float(vals.std(unbiased=False)))
    return out


def jacobian_norms(X: Callable, x: torch.Tensor, t: float) -> torch.Tensor:
    """Spectral norm of ∂X_{t,1}/∂x at each row: (B, D) → (B,) (how much FMRG-J's Jacobian amplifies).

    Lesson 04.3; FMRG "Jacobian (J) vs Euclidean (E)".
    """
    jac = flow_map_jacobian(X, x, t)  # (B, D, D)
    return torch.linalg.matrix_norm(jac, ord=2)


def format_table(summary: dict, keys: "tuple[str, ...]" = ("reward", "log_density", "nfe"), digits: int = 3) -> str:
    """A fixed-width text table of ``summarize`` output: one row per label, ``mean ± std`` per key.

    Lessons 04.3–04.5; a helper with no paper counterpart (reporting).
    """
    head = f"{'method':22s}" + "".join(f"{k:>20s}" for k in keys)
    lines = [head]
    for label, d in summary.items():
        cells = []
        for k in keys:
            m, s = d[k]
            cells.append(f"{m:>11.{digits}g} ± {s:<6.2g}" if s > 0 else f"{m:>11.{digits}g}         ")
        lines.append(f"{label:22s}" + "".join(f"{c:>20s}" for c in cells))
    return "\n".join(lines)


def run_specs(specs: list, reward: Reward, velocity, seeds: "list[int]", n: int, dim: int,
              metrics: "dict[str, Callable[[torch.Tensor], float]] | None" = None) -> tuple[list, dict]:
    """Run each ``(label, method, cfg, flow_map)`` on the same noise ``(n, dim)`` per seed.

    Returns (rows, samples): rows ``{"label", "method", "seed", "reward", "nfe", "nfe_forward",
    "nfe_vjp", **metrics}``; ``samples[label]`` = the first seed's ``(n, dim)`` samples (for grids).

    Lesson 04.4; matched-NFE comparisons, costs as FMRG "Cost (NFE), from the code".
    """
    rows, samples = [], {}
    for seed in seeds:
        x0 = torch.randn(n, dim, generator=torch.Generator().manual_seed(seed))
        for label, method, cfg, X in specs:
            res = guide(method, reward, x0, cfg, velocity=velocity, flow_map=X,
                        generator=torch.Generator().manual_seed(10_000 + seed))
            with torch.no_grad():
                row = {"label": label, "method": method, "seed": seed, "reward": float(reward(res.samples).mean()),
                       "nfe": res.nfe, "nfe_forward": res.nfe_forward, "nfe_vjp": res.nfe_vjp}
                row.update({k: float(fn(res.samples)) for k, fn in (metrics or {}).items()})
            rows.append(row)
            samples.setdefault(label, res.samples)
    return rows, samples


def matched_steps(method: str, budget: int, nfe_per_map_call: int = 1, base_steps: int = 4) -> int:
    """Grid steps N (or particles, for best-of-N) that spend exactly ``budget`` NFE (forward + VJP) per sample.

    DPS and FMRG-J: 2 forwards (endpoint + step) + 1 VJP per step, times the map's cost → budget/(3k).
    FlowChef and FMRG-E: 2 forwards per step → budget/(2k). Best-of-N: budget/(base_steps·k) particles.
    Raises if the budget is not divisible (so comparisons stay exactly matched).

    Lesson 04.4 (exercise 04.4.2); FMRG "Cost (NFE), from the code".
    """
    per = {"dps": 3, "fmrg_j": 3, "flowchef": 2, "fmrg_e": 2, "best_of_n": base_steps, "unguided": 1}
    if method not in per:
        raise ValueError(f"no NFE rule for {method!r}")
    k = 1 if method in ("dps", "flowchef") else nfe_per_map_call
    if budget % (per[method] * k):
        raise ValueError(f"budget {budget} is not a multiple of {per[method] * k} for {method}")
    return budget // (per[method] * k)


# ----------------------------------------------------------------------------- the authors' protocol
PROTOCOL_METHODS = ("unguided", "dps", "flowchef", "fmrg_e", "fmrg_j")


@dataclass
class AuthorsProtocolConfig:
    """The sampling protocol of the authors' scripts, on the toy's uniform grid (paper time, t = 0 noise).

    Guide only the first steps of a fine grid (t_k < ``t_stop``) with the normalised law, one
    network call per guided step, then make ``jumps`` unguided flow-map jumps from t_stop to t = 1.
    The scripts' aesthetic run: grid 16, ``early_stop`` 4, ``unguided_steps`` 2 (NFE 5 = 3 guided
    steps + 2 jumps); their grid is FLUX's shifted σ-schedule, ours is uniform.

    Lesson 04.3; FMRG digest § Early stopping ("t_stop = 0.25 improves GenEval at all NFEs"),
    § Cost (NFE), from the code (``flow_map1``, the aesthetic NFE 5), § Code-level details.
    """

    grid_steps: int = 16
    """Fine grid N: guided step k goes from t_k = k/N to t_{k+1} (the scripts' ``num_steps``)."""
    t_stop: float = 0.25
    """Guide the grid steps with t_k < t_stop (the scripts' ``early_stop`` = N·t_stop steps)."""
    jumps: int = 2
    """Unguided flow-map jumps of equal length from the first unguided grid time to t = 1 (``unguided_steps``)."""
    control: str = "normalized"
    """Step rule of the guided phase (``GuidanceConfig.control``); "normalized" = ‖step‖ = Δt·λ·‖b‖."""

    def __post_init__(self):
        if self.grid_steps < 1 or self.jumps < 1:
            raise ValueError(f"grid_steps and jumps must be ≥ 1, got {self.grid_steps}, {self.jumps}")
        if not 0.0 <= self.t_stop <= 1.0:
            raise ValueError(f"t_stop must be in [0, 1], got {self.t_stop}")
        if self.control not in CONTROLS:
            raise ValueError(f"control must be one of {CONTROLS}, got {self.control!r}")

    @property
    def n_guided(self) -> int:
        """How many grid steps are guided (t_k < t_stop)."""
        return sum(guided_steps(self.grid_steps, self.t_stop))

    def nfe(self, method: str) -> int:
        """NFE per sample, counted the same way for every method: one forward per guided step (the call
        that gives the endpoint also makes the step), one VJP per guided step for the Jacobian methods
        (FMRG-J, DPS), one forward per jump. Unguided: the same grid and jumps, no VJP.

        Lesson 04.3; FMRG digest § Cost (NFE), from the code.
        """
        if method not in PROTOCOL_METHODS:
            raise ValueError(f"no protocol for {method!r}; choose one of {PROTOCOL_METHODS}")
        g = self.n_guided
        return g + (g if method in ("dps", "fmrg_j") else 0) + (self.jumps if g < self.grid_steps else 0)


def authors_protocol(method: str, reward: Reward, x0: torch.Tensor, lam: float,
                     pcfg: "AuthorsProtocolConfig | None" = None, *, velocity: "Callable | None" = None,
                     flow_map: "Callable | None" = None) -> GuidanceResult:
    """Sample under the authors' protocol: early guidance on a fine grid, then unguided flow-map jumps.

    Guided step k (t_k < t_stop, Δt = 1/N), one network call E(x) giving the endpoint:
    b = (E(x) − x)/(1 − t_k) (FMRG: the flow map's *average* velocity to X_{t,1}; DPS / FlowChef: the
    instantaneous velocity b_t(x), since x̂_1 = x + (1 − t) b_t(x)), g = ∇_x r(E(x)) (J, DPS) or ∇r at
    the detached endpoint (E, FlowChef), and the fused update x ← x + Δt·b + Δt·λ·‖b‖·g/‖g‖ (the code's
    ``z_next = z − Δt·(u_step − Δ)`` with ``flow_map1``; FMRG's ``--normalize_grad``). Then ``jumps``
    unguided jumps X_{s,s'} of the flow map to t = 1, for every method (the tail is shared, so methods
    differ only in how they guide). x0: (B, D) → ``GuidanceResult`` with samples (B, D) and NFE counts.

    Lesson 04.3; FMRG digest § Discretisation by operator splitting, § Early stopping, § Cost (NFE), from
    the code, § Code-level details ("FMRG-J step"), and the DPS row of § Hierarchy of approximations.
    """
    pcfg = pcfg or AuthorsProtocolConfig()
    if method not in PROTOCOL_METHODS:
        raise ValueError(f"no protocol for {method!r}; choose one of {PROTOCOL_METHODS}")
    if x0.dim() != 2:
        raise ValueError(f"x0 must be (B, D) noise, got {tuple(x0.shape)}")
    if flow_map is None:
        raise ValueError("the authors' protocol needs flow_map=X (FMRG's endpoint and every method's unguided jumps)")
    euler = method in ("dps", "flowchef")
    if euler and velocity is None:
        raise ValueError(f"{method} needs velocity=v (its endpoint is x + (1−t) v(x, t))")
    Xc, mult_x = _counted(flow_map)
    vc, mult_v = _counted(velocity if euler else None)
    jac = method in ("fmrg_j", "dps")
    ccfg = GuidanceConfig(lam=float(lam), control=pcfg.control)
    N, G = pcfg.grid_steps, pcfg.n_guided
    dt = 1.0 / N
    x = x0.detach().clone()
    energy = torch.zeros(x.shape[0], dtype=torch.float64)
    for k in range(G):
        t = k / N
        if euler:
            endpoint = lambda z: euler_endpoint(vc, z, t)  # noqa: E731
        else:
            endpoint = lambda z: flow_map_endpoint(Xc, z, t)  # noqa: E731
        if method == "unguided" or lam == 0:
            with torch.no_grad():
                e = endpoint(x)
            disp = torch.zeros_like(x)
        else:
            g, e = reward_through(endpoint, reward, x, jacobian=jac, return_endpoint=True)  # (B, D) each
        b = (e - x) / (1.0 - t)                                     # (B, D) velocity towards the endpoint
        if method != "unguided" and lam != 0:
            disp = _apply_control(g, ccfg, b, {}, dt)                # Δt·u
        x = (x + dt * b + disp).detach()
        energy += ((disp / dt).double() ** 2).sum(-1) * dt
    t0 = G / N
    if t0 < 1.0:
        ts = [t0 + (1.0 - t0) * i / pcfg.jumps for i in range(pcfg.jumps + 1)]
        with torch.no_grad():
            for s, s_next in zip(ts[:-1], ts[1:]):
                x = Xc(x, s, s_next)
    fwd = Xc.forward_calls * mult_x + (vc.forward_calls * mult_v if vc is not None else 0)
    vjp = Xc.vjp_calls * mult_x + (vc.vjp_calls * mult_v if vc is not None else 0)
    return GuidanceResult(method, x.detach(), fwd, vjp, float(energy.mean()))


def run_protocol(specs: "list[tuple[str, str, float]]", reward: Reward, velocity, flow_map, log_prob: Callable,
                 seeds: "list[int]", n: int, pcfg: "AuthorsProtocolConfig | None" = None, dim: int = 2) -> list[dict]:
    """Run every ``(label, method, λ)`` under ``authors_protocol`` on the same noise (n, dim) per seed.

    One row per run: ``{"label", "method", "lam", "seed", "reward", "log_density", "nfe", "nfe_forward",
    "nfe_vjp", "energy"}`` (mean reward, mean data log-density floored at −20 as in ``evaluate``).

    Lesson 04.3; FMRG digest § Toy experiment for the course ("Plots": reward and on-manifold-ness).
    """
    from hdai_lessons.flows.metrics import data_log_density

    rows = []
    for seed in seeds:
        x0 = torch.randn(n, dim, generator=torch.Generator().manual_seed(seed))
        for label, method, lam in specs:
            res = authors_protocol(method, reward, x0, lam, pcfg, velocity=velocity, flow_map=flow_map)
            with torch.no_grad():
                rows.append({"label": label, "method": method, "lam": float(lam), "seed": seed,
                             "reward": float(reward(res.samples).mean()),
                             "log_density": data_log_density(res.samples, log_prob, floor=-20.0),
                             "nfe": res.nfe, "nfe_forward": res.nfe_forward, "nfe_vjp": res.nfe_vjp,
                             "energy": res.control_energy})
    return rows


@dataclass
class LambdaChoice:
    """What ``select_lambda`` chose and why (means over the selection seeds).

    Lesson 04.3; the on-manifold rule of the lesson's best-of-N claim (FMRG digest § Toy experiment for
    the course, "Plots": data log-density as on-manifold-ness).
    """

    method: str
    lam: float                # the chosen λ
    on_manifold: bool         # False: no λ of the grid met the rule, ``lam`` is the grid's smallest
    threshold: float          # unguided mean log-density − margin
    table: list               # [{"lam", "reward", "log_density"}] per λ of the grid


def select_lambda(method: str, reward: Reward, lams: "tuple[float, ...]", seeds: "list[int]", n: int,
                  log_prob: Callable, pcfg: "AuthorsProtocolConfig | None" = None, *, velocity=None, flow_map=None,
                  margin: float = 1.0, dim: int = 2) -> LambdaChoice:
    """Choose λ for one method by the on-manifold rule: among the λ whose mean data log-density (over
    ``seeds``) is at least the unguided samples' minus ``margin`` nats, the one with the highest mean
    reward; if none qualifies, the smallest λ (flagged ``on_manifold=False``).

    Use seeds disjoint from the seeds a claim is decided on, so the claim is not tuned on its own data.

    Lesson 04.3; λ is the control-cost weight of FMRG digest § Control problem, tuned "per method" as in the
    digest's § Latent-space inverse problems ("best hyperparameters per method").
    """
    if not lams:
        raise ValueError("lams must name at least one λ")
    specs = [("unguided", "unguided", 0.0)] + [(f"λ={lam:g}", method, lam) for lam in lams]
    rows = run_protocol(specs, reward, velocity, flow_map, log_prob, seeds, n, pcfg, dim)

    def mean(label: str, key: str) -> float:
        vals = [r[key] for r in rows if r["label"] == label]
        return sum(vals) / len(vals)

    threshold = mean("unguided", "log_density") - margin
    table = [{"lam": float(lam), "reward": mean(f"λ={lam:g}", "reward"), "log_density": mean(f"λ={lam:g}", "log_density")}
             for lam in lams]
    ok = [row for row in table if row["log_density"] >= threshold]
    if ok:
        return LambdaChoice(method, max(ok, key=lambda r: r["reward"])["lam"], True, threshold, table)
    return LambdaChoice(method, float(min(lams)), False, threshold, table)
