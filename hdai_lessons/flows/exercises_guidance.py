"""Exercises of lessons 04.3–04.5 (guidance); ``hdai_lessons.flows.exercises`` imports this bank.

Each reference is the package function the lessons use; each ``Mistake`` is a wrong version a
learner plausibly writes, with the hint the checker shows.
"""
from __future__ import annotations

from functools import lru_cache

import torch

from hdai_lessons.course.checkers import Case, Exercise, Mistake, register
from hdai_lessons.flows.adjoint import costate_step
from hdai_lessons.flows.guidance import euler_endpoint, fmrg_e_control, fmrg_j_control, guided_steps
from hdai_lessons.flows.models import FlowMapMLP, VelocityMLP, as_time
from hdai_lessons.flows.rewards import QuadraticReward


# ------------------------------------------------------------------ shared deterministic fixtures
@lru_cache(maxsize=None)  # one instance per seed, so two calls of cases() hold equal arguments
def _velocity(seed: int = 0) -> VelocityMLP:
    torch.manual_seed(seed)
    v = VelocityMLP(dim=2, hidden=16, depth=2).double()
    return v.eval().requires_grad_(False)


@lru_cache(maxsize=None)
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


@lru_cache(maxsize=None)
def _quad(a: tuple, sigma_r: float) -> _Quad:
    return _Quad(list(a), sigma_r)


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
    rows = []
    for b in range(x_k.shape[0]):
        J = torch.autograd.functional.jacobian(lambda z: v(z[None], torch.full((1,), t_k, dtype=z.dtype))[0], x_k[b])
        rows.append(p_next[b] + dt * (J @ p_next[b]))  # J p instead of Jᵀ p
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


register(Exercise(
    id="04.3.2",
    title="DPS's endpoint: the Euler/denoiser estimate x̂_1 = x + (1 − t) b_t(x)",
    reference=euler_endpoint,
    cases=_endpoint_cases,
    grad_wrt=(1,),
    difficulty=1, importance=3, minutes=5,
    mistakes=[
        Mistake("t instead of 1 − t", lambda v, x, t: x + t * v(x, as_time(float(t), x)),
                "the remaining time from t to the data end (t = 1) is 1 − t."),
        Mistake("sign error", lambda v, x, t: x - (1 - t) * v(x, as_time(float(t), x)),
                "in the paper's convention t runs noise → data, so move *along* b: x + (1 − t) b."),
        Mistake("detached network output", lambda v, x, t: x + (1 - t) * v(x, as_time(float(t), x)).detach(),
                "DPS differentiates through the endpoint: keep b_t(x) in the graph."),
        Mistake("returned the velocity", lambda v, x, t: v(x, as_time(float(t), x)),
                "return the endpoint estimate, not the velocity."),
    ],
))


# ------------------------------------------------------------------ 04.3.3 the FMRG-E control
def _control_cases() -> list[Case]:
    X = _flow_map(4)
    return [
        Case((X, _quad((1.0, -0.5), 1.0), _x(10), 0.0, 1.0), label="t=0, λ=1"),
        Case((X, _quad((-2.0, 1.0), 0.5), _x(11), 0.5, 2.0), label="t=0.5, λ=2"),
        Case((_flow_map(5), _quad((0.0, 2.0), 2.0), _x(12, 6), 0.25, 0.3), label="t=0.25, λ=0.3"),
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


# ================================================================== lesson 04.5 (full scale)
from hdai_lessons.flows.full import clip_preprocess, diffusers_denoiser, pack_latents  # noqa: E402


def _pack_cases() -> list[Case]:
    g = torch.Generator().manual_seed(20)
    return [Case((torch.randn(2, 4, 4, 6, generator=g),), label="(2, 4, 4, 6)"),
            Case((torch.randn(1, 16, 8, 8, generator=g),), label="FLUX-like 16 channels"),
            Case((torch.arange(2 * 4 * 4, dtype=torch.float32).reshape(1, 2, 4, 4),), label="a ramp: order matters")]


register(Exercise(
    id="04.5.2",
    title="FLUX's 2×2 latent packing (B, C, H, W) → (B, HW/4, 4C)",
    reference=pack_latents,
    cases=_pack_cases,
    difficulty=2, importance=2, minutes=10,
    mistakes=[
        Mistake("plain reshape, no permute", lambda x: x.reshape(x.shape[0], -1, x.shape[1] * 4),
                "first split H and W into 2×2 patches (view (B, C, H/2, 2, W/2, 2)), then bring the patch grid forward with permute(0, 2, 4, 1, 3, 5)."),
        Mistake("channels after the patch pixels", lambda x: x.reshape(x.shape[0], x.shape[1], x.shape[2] // 2, 2, x.shape[3] // 2, 2)
                .permute(0, 2, 4, 3, 5, 1).reshape(x.shape[0], -1, x.shape[1] * 4),
                "each token is ordered (channel, dy, dx): permute(0, 2, 4, 1, 3, 5), channel before the 2×2 offsets."),
        Mistake("swapped the patch grid (W before H)", lambda x: x.reshape(x.shape[0], x.shape[1], x.shape[2] // 2, 2, x.shape[3] // 2, 2)
                .permute(0, 4, 2, 1, 3, 5).reshape(x.shape[0], -1, x.shape[1] * 4),
                "tokens run row-major over the patch grid: (H/2, W/2), matching img_ids [0, row, col]."),
    ],
))


def _denoiser_cases() -> list[Case]:
    g = torch.Generator().manual_seed(21)
    return [Case((torch.randn(3, 4, 2, 2, generator=g), torch.tensor([1.0, 0.5, 0.1]), torch.randn(3, 4, 2, 2, generator=g)), label="latents"),
            Case((torch.randn(5, 7, generator=g), torch.rand(5, generator=g), torch.randn(5, 7, generator=g)), label="flat"),
            Case((torch.randn(2, 3, generator=g), torch.zeros(2), torch.randn(2, 3, generator=g)), label="σ = 0 (data)")]


register(Exercise(
    id="04.5.1",
    title="DPS's endpoint in diffusers' convention: x̂_0 = x − σ v_d",
    reference=diffusers_denoiser,
    cases=_denoiser_cases,
    grad_wrt=(0, 2),
    difficulty=1, importance=3, minutes=5,
    mistakes=[
        Mistake("sign error", lambda x, s, v: x + s.reshape(-1, *([1] * (x.dim() - 1))) * v,
                "diffusers predicts v_d = noise − x_0 = dx/dσ; to reach σ = 0 step *against* it: x − σ v_d."),
        Mistake("1 − σ instead of σ", lambda x, s, v: x - (1 - s).reshape(-1, *([1] * (x.dim() - 1))) * v,
                "the remaining 'time' to the data in σ-units is σ itself (σ runs 1 → 0); 1 − σ is the paper's t."),
        Mistake("forgot σ (a unit step)", lambda x, s, v: x - v,
                "the jump to the data has length σ in σ-units: x − σ v_d, with σ reshaped to (B, 1, …, 1)."),
    ],
))


def _prep_cases() -> list[Case]:
    g = torch.Generator().manual_seed(22)
    return [Case((torch.rand(2, 3, 16, 16, generator=g), 32), label="upsample 16 → 32"),
            Case((torch.rand(1, 3, 40, 24, generator=g), 8), label="downsample, non-square"),
            Case((torch.rand(3, 3, 8, 8, generator=g), 8), label="same size")]


def _prep_nearest(img, size):
    img = torch.nn.functional.interpolate(img, size=(size, size), mode="nearest")
    return clip_preprocess(img, img.shape[-1])


register(Exercise(
    id="04.5.3",
    title="CLIP's preprocessing, differentiable (resize + normalise)",
    reference=clip_preprocess,
    cases=_prep_cases,
    grad_wrt=(0,),
    difficulty=1, importance=2, minutes=8,
    mistakes=[
        Mistake("no normalisation", lambda img, size: torch.nn.functional.interpolate(img, size=(size, size), mode="bilinear", align_corners=False),
                "CLIP expects (img − mean)/std with its own per-channel mean and std."),
        Mistake("mean and std swapped", lambda img, size: (torch.nn.functional.interpolate(img, size=(size, size), mode="bilinear", align_corners=False)
                - torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)) / torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1),
                "subtract the mean (≈0.48, 0.46, 0.41), divide by the std (≈0.27, 0.26, 0.28)."),
        Mistake("nearest-neighbour resize", _prep_nearest,
                "use bilinear resizing: nearest-neighbour is piecewise constant, so its gradient is mostly zero."),
        Mistake("images in [−1, 1] assumed", lambda img, size: clip_preprocess(img * 2 - 1, size),
                "the decoder returns images in [0, 1]; CLIP's mean/std are for that range."),
    ],
))


# ================================================================== lesson 04.4 (images)
from hdai_lessons.flows.guidance import matched_steps  # noqa: E402
from hdai_lessons.flows.images import DigitClassifier, classifier_log_prob  # noqa: E402
from hdai_lessons.flows.metrics import energy_distance  # noqa: E402


@lru_cache(maxsize=None)
def _clf(seed: int = 0) -> DigitClassifier:
    torch.manual_seed(seed)
    return DigitClassifier(width=8).double().eval().requires_grad_(False)


def _clf_cases() -> list[Case]:
    g = torch.Generator().manual_seed(30)
    return [Case((_clf(0), torch.randn(4, 64, generator=g, dtype=torch.float64), 3), label="target 3"),
            Case((_clf(1), torch.randn(6, 64, generator=g, dtype=torch.float64) * 3, 0), label="target 0, large inputs"),
            Case((_clf(2), torch.randn(1, 64, generator=g, dtype=torch.float64), 9), label="one image, target 9")]


register(Exercise(
    id="04.4.1",
    title="the classifier reward r(x) = log p(y = target | x)",
    reference=classifier_log_prob,
    cases=_clf_cases,
    grad_wrt=(1,),
    difficulty=1, importance=3, minutes=5,
    mistakes=[
        Mistake("probability, not log-probability", lambda c, x, t: torch.softmax(c(x.reshape(-1, 1, 8, 8)), -1)[:, t],
                "use log_softmax: the probability's gradient vanishes where p is small, exactly where guidance must push."),
        Mistake("raw logit", lambda c, x, t: c(x.reshape(-1, 1, 8, 8))[:, t],
                "a raw logit ignores the other classes: normalise with log_softmax over the 10 classes."),
        Mistake("normalised over the batch", lambda c, x, t: torch.log_softmax(c(x.reshape(-1, 1, 8, 8)), 0)[:, t],
                "log_softmax over the class axis (dim=-1), not over the images in the batch."),
    ],
))


def _budget_cases() -> list[Case]:
    return [Case(("dps", 12), label="DPS, 12 NFE"), Case(("fmrg_j", 24), label="FMRG-J, 24 NFE"),
            Case(("fmrg_e", 12), label="FMRG-E, 12 NFE"), Case(("best_of_n", 24), label="best-of-N, 24 NFE"),
            Case(("fmrg_j", 12, 2), label="FMRG-J with a 2-NFE teacher map"), Case(("flowchef", 24), label="FlowChef")]


def _budget_no_vjp(method, budget, k=1, base_steps=4):
    per = {"dps": 2, "fmrg_j": 2, "flowchef": 2, "fmrg_e": 2, "best_of_n": base_steps, "unguided": 1}
    kk = 1 if method in ("dps", "flowchef") else k
    return budget // (per[method] * kk)


def _budget_no_k(method, budget, k=1, base_steps=4):
    return matched_steps(method, budget, 1, base_steps)


def _budget_bon_steps(method, budget, k=1, base_steps=4):
    return budget if method == "best_of_n" else matched_steps(method, budget, k, base_steps)


register(Exercise(
    id="04.4.2",
    title="matched NFE: steps (or particles) that spend a budget exactly",
    reference=matched_steps,
    cases=_budget_cases,
    difficulty=1, importance=3, minutes=8,
    mistakes=[
        Mistake("VJPs not counted", _budget_no_vjp,
                "DPS and FMRG-J pay a vector–Jacobian product per step (≈ one more network call): 3 per step, not 2."),
        Mistake("map cost ignored", _budget_no_k,
                "a teacher flow map with k sub-steps costs k NFE per call: divide by k for the map-based methods."),
        Mistake("best-of-N counts samples, not NFE", _budget_bon_steps,
                "each best-of-N particle is a full unguided sample of base_steps NFE: n = budget / base_steps."),
    ],
))


def _ed_cases() -> list[Case]:
    g = torch.Generator().manual_seed(31)
    return [Case((torch.randn(20, 2, generator=g, dtype=torch.float64), torch.randn(30, 2, generator=g, dtype=torch.float64) + 1), label="shifted"),
            Case((torch.randn(15, 64, generator=g, dtype=torch.float64), torch.randn(15, 64, generator=g, dtype=torch.float64) * 2), label="64-D, scaled"),
            Case((torch.randn(10, 3, generator=g, dtype=torch.float64),) * 2, label="identical sets → 0")]


def _ed_sq(x, y):
    d = lambda a, b: torch.cdist(a, b) ** 2  # noqa: E731
    return float(2 * d(x, y).mean() - d(x, x).mean() - d(y, y).mean())


register(Exercise(
    id="04.4.3",
    title="the energy distance between two sample sets",
    reference=energy_distance,
    cases=_ed_cases,
    difficulty=1, importance=2, minutes=8,
    mistakes=[
        Mistake("squared distances", _ed_sq,
                "use plain Euclidean distances ‖x − y‖; with squares the statistic only compares means."),
        Mistake("no factor 2", lambda x, y: float(torch.cdist(x, y).mean() - torch.cdist(x, x).mean() - torch.cdist(y, y).mean()),
                "ED = 2E‖X − Y‖ − E‖X − X'‖ − E‖Y − Y'‖: the cross term counts twice."),
        Mistake("forgot a self term", lambda x, y: float(2 * torch.cdist(x, y).mean() - torch.cdist(x, x).mean()),
                "subtract both within-set terms, E‖X − X'‖ and E‖Y − Y'‖, so ED(P, P) = 0."),
    ],
))
