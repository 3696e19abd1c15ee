"""Exercise bank of module 04's foundations: lessons 04.1 (flow matching) and 04.2 (flow maps).

Guidance exercises (04.3–04.5) live in ``exercises_guidance.py``, imported at the end.
"""
from __future__ import annotations

import torch

from hdai_lessons.course.checkers import Case, Exercise, Mistake, register
from hdai_lessons.flows.cfm import cfm_loss, cfm_pair, linear_path
from hdai_lessons.flows.flowmap import composition_error, distillation_target, flow_map_sample
from hdai_lessons.flows.models import as_time, bcast
from hdai_lessons.flows.sampling import euler_step, integrate

F64 = torch.float64


class _Field:
    """A fixed, smooth, time-dependent test velocity field ``v(x (B, D), t (B,)) -> (B, D)``."""

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = as_time(t, x)
        return torch.sin(x.flip(-1)) * (1 + bcast(t, x)) - 0.5 * x + bcast(t, x) ** 2


class _AnalyticMap:
    """A state-dependent two-time map with X_{t,t} = id (not a semigroup, so wrong orders show)."""

    def __call__(self, x: torch.Tensor, s, t) -> torch.Tensor:
        s, t = as_time(s, x), as_time(t, x)
        d = bcast(t - s, x)
        return x + d * torch.tanh(x.flip(-1) + bcast(s, x)) + d**2


_FIELD, _MAP = _Field(), _AnalyticMap()  # one instance each, so cases compare equal across builds


# ---------------------------------------------------------------- 04.1: flow matching
def _pair_cases() -> list[Case]:
    g = torch.Generator().manual_seed(0)
    x0, x1 = torch.randn(6, 2, generator=g, dtype=F64), torch.randn(6, 2, generator=g, dtype=F64) * 3
    return [
        Case((x0, x1, torch.rand(6, generator=g, dtype=F64)), label="6 points in 2-D, random t"),
        Case((x0[:3], x1[:3], torch.tensor([0.0, 1.0, 0.25], dtype=F64)), label="t = 0, 1 and 0.25"),
        Case((torch.randn(2, 3, 4, generator=g, dtype=F64), torch.randn(2, 3, 4, generator=g, dtype=F64),
              torch.tensor([0.3, 0.9], dtype=F64)), label="image-shaped (B, C, W) batch"),
    ]


register(Exercise(
    id="04.1.1",
    title="the linear path I_t and the conditional flow-matching target",
    reference=cfm_pair,
    cases=_pair_cases,
    difficulty=1, importance=3, minutes=8,
    mistakes=[
        Mistake("time convention reversed", lambda x0, x1, t: (linear_path(x1, x0, t), x1 - x0),
                "paper convention: t = 0 is noise and t = 1 is data, so I_0 = x_0 and I_1 = x_1."),
        Mistake("target sign flipped", lambda x0, x1, t: (linear_path(x0, x1, t), x0 - x1),
                "the velocity is d/dt[(1 − t) x_0 + t x_1] = x_1 − x_0, pointing from noise to data."),
        Mistake("target is the data point", lambda x0, x1, t: (linear_path(x0, x1, t), x1),
                "flow matching regresses the velocity x_1 − x_0, not the clean sample x_1."),
        Mistake("variance-preserving path", lambda x0, x1, t: (torch.sqrt(1 - bcast(t, x0) ** 2) * x0 + bcast(t, x0) * x1, x1 - x0),
                "this lesson's path is linear: (1 − t) x_0 + t x_1, not √(1 − t²) x_0 + t x_1."),
    ],
))


def _loss_cases() -> list[Case]:
    g = torch.Generator().manual_seed(1)
    v = _FIELD
    return [
        Case((v, torch.randn(8, 2, generator=g, dtype=F64) * 2, torch.randn(8, 2, generator=g, dtype=F64),
              torch.rand(8, generator=g, dtype=F64)), label="8 points in 2-D"),
        Case((v, torch.randn(4, 3, generator=g, dtype=F64), torch.randn(4, 3, generator=g, dtype=F64),
              torch.tensor([0.0, 0.5, 0.99, 0.2], dtype=F64)), label="3-D points"),
    ]


register(Exercise(
    id="04.1.2",
    title="the conditional flow-matching loss",
    reference=cfm_loss,
    cases=_loss_cases,
    grad_wrt=(1,),
    difficulty=1, importance=3, minutes=10,
    mistakes=[
        Mistake("mean over every element", lambda v, x1, x0, t: (v(linear_path(x0, x1, t), t) - (x1 - x0)).pow(2).mean(),
                "sum the squared error over the data dimensions, then average over the batch (this one divides by D too)."),
        Mistake("network evaluated at the noise", lambda v, x1, x0, t: (v(x0, t) - (x1 - x0)).pow(2).sum(-1).mean(),
                "the network sees the interpolant I_t = (1 − t) x_0 + t x_1, not x_0."),
        Mistake("time fed as 1 − t", lambda v, x1, x0, t: (v(linear_path(x0, x1, t), 1 - t) - (x1 - x0)).pow(2).sum(-1).mean(),
                "the network's time input is the same t as the interpolant's."),
        Mistake("no square", lambda v, x1, x0, t: (v(linear_path(x0, x1, t), t) - (x1 - x0)).abs().sum(-1).mean(),
                "the loss is a squared error; its minimiser is the conditional mean E[x_1 − x_0 | I_t]."),
    ],
))


def _euler_cases() -> list[Case]:
    g = torch.Generator().manual_seed(2)
    v = _FIELD
    return [
        Case((v, torch.randn(5, 2, generator=g, dtype=F64), 0.25, 0.125), label="scalar t and h"),
        Case((v, torch.randn(3, 2, generator=g, dtype=F64), torch.tensor([0.0, 0.5, 0.9], dtype=F64),
              torch.tensor([0.1, 0.2, -0.3], dtype=F64)), label="a time and a step per row (one backwards)"),
    ]


register(Exercise(
    id="04.1.3",
    title="one Euler step of the flow ODE",
    reference=euler_step,
    cases=_euler_cases,
    grad_wrt=(1,),
    difficulty=1, importance=3, minutes=6,
    mistakes=[
        Mistake("velocity at the end time", lambda v, x, t, h: x + bcast(as_time(h, x), x) * v(x, as_time(t, x) + as_time(h, x)),
                "explicit Euler evaluates the velocity at the start of the step, v(x, t)."),
        Mistake("forgot the step size", lambda v, x, t, h: x + v(x, as_time(t, x)),
                "multiply the velocity by the step h."),
        Mistake("sign error", lambda v, x, t, h: x - bcast(as_time(h, x), x) * v(x, as_time(t, x)),
                "x_{t+h} = x_t + h v(x_t, t): follow the velocity, not against it."),
    ],
))


def _integrate_cases() -> list[Case]:
    g = torch.Generator().manual_seed(3)
    v = _FIELD
    return [
        Case((v, torch.randn(4, 2, generator=g, dtype=F64), 0.0, 1.0, 5), label="0 → 1 in 5 steps"),
        Case((v, torch.randn(4, 2, generator=g, dtype=F64), 0.3, 0.7, 3), label="0.3 → 0.7 in 3 steps"),
        Case((v, torch.randn(2, 2, generator=g, dtype=F64), 0.5, 0.5, 2), label="an empty interval"),
    ]


def _euler_integrate(v, x, s, t, steps):
    """Euler from s to t in ``steps`` equal steps (= ``integrate(..., method="euler")``)."""
    return integrate(v, x, s, t, steps, "euler")


def _wrong_grid(shift: int, span_one: bool = False):
    def f(v, x, s, t, steps):
        h = (1.0 if span_one else (t - s)) / steps
        for k in range(steps):
            x = euler_step(v, x, s + (k + shift) * h, h)
        return x
    return f


register(Exercise(
    id="04.1.4",
    title="an Euler sampler from time s to time t",
    reference=_euler_integrate,
    cases=_integrate_cases,
    grad_wrt=(1,),
    difficulty=2, importance=3, minutes=10,
    mistakes=[
        Mistake("time grid off by one", _wrong_grid(1),
                "step k starts at t_k = s + k·h (k = 0 … steps − 1), so the first velocity is v(x, s)."),
        Mistake("step ignores the interval", _wrong_grid(0, span_one=True),
                "h = (t − s)/steps, not 1/steps: the sampler must also work on sub-intervals."),
        Mistake("one step too many", lambda v, x, s, t, steps: _wrong_grid(0)(v, x, s, t + (t - s) / steps, steps + 1),
                "`steps` steps take you from s to t; one more overshoots past t."),
    ],
))


# ---------------------------------------------------------------- 04.2: flow maps
def _fm_sample_cases() -> list[Case]:
    g = torch.Generator().manual_seed(4)
    X = _MAP
    return [
        Case((X, torch.randn(5, 2, generator=g, dtype=F64), 1), label="one jump 0 → 1"),
        Case((X, torch.randn(5, 2, generator=g, dtype=F64), 4), label="four jumps"),
    ]


def _fm_from_zero(X, x0, steps):
    ts = torch.linspace(0.0, 1.0, steps + 1)
    x = x0
    for k in range(steps):
        x = X(x, 0.0, float(ts[k + 1]))
    return x


def _fm_end_each(X, x0, steps):
    ts = torch.linspace(0.0, 1.0, steps + 1)
    x = x0
    for k in range(steps):
        x = X(x, float(ts[k]), 1.0)
    return x


register(Exercise(
    id="04.2.1",
    title="few-step sampling with a flow map",
    reference=flow_map_sample,
    cases=_fm_sample_cases,
    grad_wrt=(1,),
    difficulty=1, importance=3, minutes=6,
    mistakes=[
        Mistake("every jump starts at time 0", _fm_from_zero,
                "jump k maps the *current* state from t_k to t_{k+1}: X_{t_k, t_{k+1}}(x)."),
        Mistake("every jump ends at time 1", _fm_end_each,
                "that is the endpoint map X_{t,1}, the look-ahead FMRG uses; sampling chains X_{t_k, t_{k+1}}."),
        Mistake("one jump whatever the steps", lambda X, x0, steps: X(x0, 0.0, 1.0),
                "use `steps` jumps on the uniform grid 0 = t_0 < … < t_steps = 1."),
    ],
))


def _target_cases() -> list[Case]:
    g = torch.Generator().manual_seed(5)
    xs, xt, vs = torch.randn(3, 5, 2, generator=g, dtype=F64).unbind(0)
    s = torch.tensor([0.0, 0.25, 0.5, 0.5, 0.9], dtype=F64)
    t = torch.tensor([1.0, 0.75, 0.5, 1.0, 0.9], dtype=F64)
    return [
        Case((xs, xt, s, t, vs), label="two diagonal pairs (s = t) among five"),
        Case((xs[:2], xt[:2], s[:2], t[:2], vs[:2]), label="no diagonal pair"),
    ]


register(Exercise(
    id="04.2.2",
    title="the flow-map distillation target (average velocity, tangent on the diagonal)",
    reference=distillation_target,
    cases=_target_cases,
    difficulty=2, importance=3, minutes=10,
    mistakes=[
        Mistake("endpoint instead of average velocity", lambda xs, xt, s, t, vs: torch.where(bcast(t - s, xs) == 0, vs, xt - xs),
                "X_{s,t} = x + (t − s) v_φ, so v_φ must match (x_t − x_s)/(t − s), not x_t − x_s."),
        Mistake("no diagonal case", lambda xs, xt, s, t, vs: (xt - xs) / bcast(t - s, xs),
                "at s = t the quotient is 0/0: use the tangent condition, target v(x_s, s)."),
        Mistake("sign error", lambda xs, xt, s, t, vs: torch.where(bcast(t - s, xs) == 0, vs, (xs - xt) / torch.where(bcast(t - s, xs) == 0, torch.ones_like(bcast(t, xs)), bcast(t - s, xs))),
                "the average velocity points from x_s to x_t: (x_t − x_s)/(t − s)."),
        Mistake("zero on the diagonal", lambda xs, xt, s, t, vs: torch.where(bcast(t - s, xs) == 0, torch.zeros_like(vs), (xt - xs) / torch.where(bcast(t - s, xs) == 0, torch.ones_like(bcast(t, xs)), bcast(t - s, xs))),
                "at s = t the map's derivative ∂_t X_{s,t}|_{t=s} equals the velocity b_s(x), not 0."),
    ],
))


def _comp_cases() -> list[Case]:
    g = torch.Generator().manual_seed(6)
    X = _MAP
    return [
        Case((X, torch.randn(6, 2, generator=g, dtype=F64), 0.0, 0.5, 1.0), label="0 → 0.5 → 1"),
        Case((X, torch.randn(6, 2, generator=g, dtype=F64), 0.1, 0.3, 0.8), label="0.1 → 0.3 → 0.8"),
    ]


def _comp(X, x, s, t, u, order="right", reduce="norm"):
    two = X(X(x, s, t), t, u) if order == "right" else X(X(x, t, u), s, t)
    d = (two - X(x, s, u)).flatten(1)
    return float(d.norm(dim=1).mean() if reduce == "norm" else d.pow(2).sum(1).mean() if reduce == "sq" else d.norm())


register(Exercise(
    id="04.2.3",
    title="the semigroup (composition) error of a flow map",
    reference=composition_error,
    cases=_comp_cases,
    difficulty=1, importance=2, minutes=8,
    mistakes=[
        Mistake("composition in the wrong order", lambda X, x, s, t, u: _comp(X, x, s, t, u, order="left"),
                "X_{t,u} ∘ X_{s,t} means: first jump s → t, then t → u."),
        Mistake("squared distance", lambda X, x, s, t, u: _comp(X, x, s, t, u, reduce="sq"),
                "report the mean Euclidean distance ‖·‖ per point, not its square."),
        Mistake("norm of the whole batch", lambda X, x, s, t, u: _comp(X, x, s, t, u, reduce="frob"),
                "take the norm per point (dim=1), then average over the batch."),
    ],
))


try:  # the guidance lessons' bank (04.3–04.5), written separately
    from hdai_lessons.flows import exercises_guidance  # noqa: F401
except ModuleNotFoundError as err:
    if err.name != f"{__package__}.exercises_guidance":
        raise
