"""Module 03's exercise bank (SOPE): ids ``03.L.E``, each with deterministic cases and known mistakes."""
from __future__ import annotations

import math

import numpy as np
import torch

from hdai_lessons.course.checkers import Case, Exercise, Mistake, register
from hdai_lessons.sope.flops import mlp_forward_flops, normalized_score
from hdai_lessons.sope.ope import dr_estimate, is_estimate, wis_estimate
from hdai_lessons.sope.phases import code_improved, phase_stop_point, sope_improved, validation_sizes
from hdai_lessons.sope.prior_data import episodes_to_transitions
from hdai_lessons.sope.sac import actor_objective, soft_td_target, tanh_gaussian_log_prob

# ----------------------------------------------------------------------------- 03.1 OPE


def _ope_cases(with_model: bool = False) -> list[Case]:
    rng = np.random.default_rng(0)
    out = []
    for n, h, gamma, label in [(6, 4, 0.9, "6 episodes, H=4"), (3, 7, 0.95, "3 episodes, H=7"), (5, 1, 0.5, "H=1")]:
        rewards = rng.normal(size=(n, h))
        ratios = rng.uniform(0.2, 2.5, size=(n, h))
        args = (rewards, ratios)
        if with_model:
            args = args + (rng.normal(size=(n, h)), rng.normal(size=(n, h)))
        out.append(Case(args + (gamma,), label=label))
    return out


def _disc(h, g):
    return g ** np.arange(h)


register(Exercise(
    id="03.1.1", title="trajectory-wise importance sampling", reference=is_estimate,
    cases=lambda: _ope_cases(), difficulty=1, importance=3, minutes=10,
    mistakes=[
        Mistake("per-step ratios averaged, not multiplied", lambda r, p, g: float((p.mean(1) * (r @ _disc(r.shape[1], g))).mean()),
                "the weight of a trajectory is the product Π_t ρ_t of its per-step ratios."),
        Mistake("no discount", lambda r, p, g: float((p.prod(1) * r.sum(1)).mean()),
                "the return is Σ_t γ^t r_t: weight reward t by γ^t."),
        Mistake("self-normalised (that is WIS)", lambda r, p, g: float((p.prod(1) * (r @ _disc(r.shape[1], g))).sum() / p.prod(1).sum()),
                "ordinary IS divides by N, not by the sum of the weights."),
        Mistake("inverted ratio", lambda r, p, g: float(((1 / p).prod(1) * (r @ _disc(r.shape[1], g))).mean()),
                "ρ_t = π_e(a|s)/π_b(a|s): the target policy is on top."),
    ],
))

register(Exercise(
    id="03.1.2", title="weighted (self-normalised) importance sampling", reference=wis_estimate,
    cases=lambda: _ope_cases(), difficulty=1, importance=3, minutes=8,
    mistakes=[
        Mistake("divided by N (that is IS)", lambda r, p, g: float((p.prod(1) * (r @ _disc(r.shape[1], g))).mean()),
                "WIS divides by Σ_i w_i, the sum of the trajectory weights, not by N."),
        Mistake("normalised per time step", lambda r, p, g: float(((np.cumprod(p, 1) / np.cumprod(p, 1).sum(0)) * r * _disc(r.shape[1], g)).sum()),
                "this exercise is trajectory-wise WIS: one weight Π_t ρ_t per episode."),
        Mistake("no discount", lambda r, p, g: float((p.prod(1) * r.sum(1)).sum() / p.prod(1).sum()),
                "the return is Σ_t γ^t r_t."),
    ],
))

register(Exercise(
    id="03.1.3", title="doubly robust estimator (Jiang & Li 2016, Eq. (10))", reference=dr_estimate,
    cases=lambda: _ope_cases(with_model=True), difficulty=2, importance=3, minutes=15,
    mistakes=[
        Mistake("w_t on the V̂ term", lambda r, p, q, v, g: float(((np.cumprod(p, 1) * (r - q + v)) * _disc(r.shape[1], g)).sum(1).mean()),
                "V̂_t(s_t) is weighted by w_{t−1} (ratios *before* a_t), Q̂_t(s_t,a_t) by w_t."),
        Mistake("control variate with the wrong sign", lambda r, p, q, v, g: float(((np.cumprod(p, 1) * r + (np.cumprod(p, 1) * q - np.concatenate([np.ones((len(p), 1)), np.cumprod(p, 1)[:, :-1]], 1) * v)) * _disc(r.shape[1], g)).sum(1).mean()),
                "DR subtracts (w_t Q̂ − w_{t−1} V̂): a zero-mean correction under π_b."),
        Mistake("no discount", lambda r, p, q, v, g: float((np.cumprod(p, 1) * r - (np.cumprod(p, 1) * q - np.concatenate([np.ones((len(p), 1)), np.cumprod(p, 1)[:, :-1]], 1) * v)).sum(1).mean()),
                "multiply every step's term by γ^t."),
        Mistake("w_{-1} = 0", lambda r, p, q, v, g: float(((np.cumprod(p, 1) * r - (np.cumprod(p, 1) * q - np.concatenate([np.zeros((len(p), 1)), np.cumprod(p, 1)[:, :-1]], 1) * v)) * _disc(r.shape[1], g)).sum(1).mean()),
                "the empty product is 1: the first step's V̂_0(s_0) enters with weight 1 (that is the DM part)."),
    ],
))

# ----------------------------------------------------------------------------- 03.2 SAC


def _logprob_cases() -> list[Case]:
    g = torch.Generator().manual_seed(3)
    return [
        Case((torch.randn(5, 2, generator=g, dtype=torch.float64), torch.randn(5, 2, generator=g, dtype=torch.float64),
              0.3 * torch.randn(5, 2, generator=g, dtype=torch.float64)), label="(5, 2)"),
        Case((torch.randn(2, 3, 1, generator=g, dtype=torch.float64) * 3, torch.zeros(2, 3, 1, dtype=torch.float64),
              torch.full((2, 3, 1), 0.5, dtype=torch.float64)), label="(R=2, B=3, A=1), wide"),
        Case((torch.tensor([[9.0, -0.1]], dtype=torch.float64), torch.tensor([[8.0, 0.0]], dtype=torch.float64),
              torch.tensor([[0.0, -1.0]], dtype=torch.float64)), label="a saturated tanh (u = 9)"),
    ]


def _lp_gauss(u, mu, ls):
    return -0.5 * ((u - mu) / ls.exp()) ** 2 - ls - 0.5 * math.log(2 * math.pi)


register(Exercise(
    id="03.2.1", title="tanh-Gaussian log-probability with the change-of-variables term", reference=tanh_gaussian_log_prob,
    cases=_logprob_cases, grad_wrt=(0, 1, 2), difficulty=2, importance=3, minutes=12,
    mistakes=[
        Mistake("no tanh correction", lambda u, mu, ls: _lp_gauss(u, mu, ls).sum(-1),
                "a = tanh(u) squeezes volume: subtract Σ_j log(1 − tanh²(u_j) + 1e−6)."),
        Mistake("correction added", lambda u, mu, ls: (_lp_gauss(u, mu, ls) + torch.log(1 - torch.tanh(u) ** 2 + 1e-6)).sum(-1),
                "log p(a) = log p(u) − log|da/du|: the Jacobian term is subtracted."),
        Mistake("correction on u, not tanh(u)", lambda u, mu, ls: (_lp_gauss(u, mu, ls) - torch.log((1 - u**2).abs() + 1e-6)).sum(-1),
                "da/du = 1 − tanh²(u): square tanh(u), not u."),
        Mistake("std used as log-std", lambda u, mu, ls: (-0.5 * ((u - mu) / ls) ** 2 - torch.log(ls.abs()) - 0.5 * math.log(2 * math.pi) - torch.log(1 - torch.tanh(u) ** 2 + 1e-6)).sum(-1),
                "the network outputs log σ: σ = exp(log_std)."),
        Mistake("summed over the batch", lambda u, mu, ls: (_lp_gauss(u, mu, ls) - torch.log(1 - torch.tanh(u) ** 2 + 1e-6)).sum(0),
                "sum over the action dimension (last), keep the batch."),
    ],
))


def _td_cases() -> list[Case]:
    g = torch.Generator().manual_seed(4)
    R, N, B = 2, 2, 5
    term = torch.tensor([[0.0, 1.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0, 1.0, 0.0]], dtype=torch.float64)
    return [
        Case((torch.randn(R, B, generator=g, dtype=torch.float64), term, torch.randn(R, N, B, generator=g, dtype=torch.float64) * 5,
              torch.randn(R, B, generator=g, dtype=torch.float64), torch.tensor([[0.2], [0.05]], dtype=torch.float64), 0.99), label="2 runs, twin critics"),
        Case((torch.randn(1, 4, generator=g, dtype=torch.float64), torch.zeros(1, 4, dtype=torch.float64),
              torch.randn(1, 3, 4, generator=g, dtype=torch.float64), torch.randn(1, 4, generator=g, dtype=torch.float64),
              torch.tensor([[1.0]], dtype=torch.float64), 0.9), label="3 critics, no terminals"),
    ]


register(Exercise(
    id="03.2.2", title="soft TD target with clipped double Q", reference=soft_td_target,
    cases=_td_cases, difficulty=1, importance=3, minutes=10,
    mistakes=[
        Mistake("max over critics", lambda r, d, q, lp, a, g: r + g * (1 - d) * (q.max(-2).values - a * lp),
                "clipped double-Q takes the *minimum* of the target critics (pessimism against overestimation)."),
        Mistake("entropy bonus with the wrong sign", lambda r, d, q, lp, a, g: r + g * (1 - d) * (q.min(-2).values + a * lp),
                "the soft value is min Q − α log π (high entropy = −log π large = bonus)."),
        Mistake("terminal flag ignored", lambda r, d, q, lp, a, g: r + g * (q.min(-2).values - a * lp),
                "no bootstrap after a termination: multiply by (1 − d)."),
        Mistake("mean over critics", lambda r, d, q, lp, a, g: r + g * (1 - d) * (q.mean(-2) - a * lp),
                "the target uses min_i, the actor uses the mean; don't swap them."),
    ],
))


def _actor_cases() -> list[Case]:
    g = torch.Generator().manual_seed(5)
    return [
        Case((torch.randn(3, 6, generator=g, dtype=torch.float64), torch.randn(3, 2, 6, generator=g, dtype=torch.float64) * 3,
              torch.tensor([[0.1], [0.5], [1.0]], dtype=torch.float64)), label="3 runs, 2 critics"),
        Case((torch.randn(1, 4, generator=g, dtype=torch.float64), torch.randn(1, 4, 4, generator=g, dtype=torch.float64),
              torch.tensor([[0.2]], dtype=torch.float64)), label="1 run, 4 critics, B = 4"),
    ]


register(Exercise(
    id="03.2.3", title="SAC actor objective (mean of the critics)", reference=actor_objective,
    cases=_actor_cases, grad_wrt=(0, 1), difficulty=1, importance=3, minutes=8,
    mistakes=[
        Mistake("min of the critics", lambda lp, q, a: (a * lp - q.min(-2).values).mean(-1),
                "SOPE's actor (like the official code) uses the *mean* of the critics, (1/N) Σ_i Q_i."),
        Mistake("sign flipped", lambda lp, q, a: (q.mean(-2) - a * lp).mean(-1),
                "the loss to *minimise* is α log π − Q."),
        Mistake("averaged over the runs too", lambda lp, q, a: (a * lp - q.mean(-2)).mean(),
                "the loss is per run, (R,): average over the critic dim (−2), then over the batch (−1) only."),
        Mistake("stop-gradient through Q", lambda lp, q, a: (a * lp - q.detach().mean(-2)).mean(-1),
                "the actor learns through Q(s, ã(φ)): keep the graph (only the critic's *parameters* stay fixed)."),
    ],
))

# ----------------------------------------------------------------------------- 03.3 SOPE


def _improve_cases() -> list[Case]:
    J_star = torch.tensor([-100.0, -100.0, -100.0, 50.0, 50.0, 50.0, -100.0], dtype=torch.float64)
    J = torch.tensor([-100.05, -100.2, -99.95, 49.9, 49.99, 49.0, -100.1], dtype=torch.float64)
    return [Case((J, J_star, 1e-3), label="negative and positive J*"),
            Case((torch.tensor([-3.0, 3.0, 0.0]), torch.tensor([-3.0, 3.0, 0.0]), 0.0), label="ε = 0, equal values")]


register(Exercise(
    id="03.3.1", title="SOPE's sign-safe improvement test", reference=sope_improved,
    cases=_improve_cases, difficulty=1, importance=3, minutes=6,
    mistakes=[
        Mistake("the official code's (1 − ε)·J*", code_improved,
                "for J* < 0, (1 − ε)J* = J* − εJ* is *above* J*: this accepts slightly worse values. Use J* − ε|J*|."),
        Mistake("no tolerance", lambda J, Js, eps=1e-3: J < Js,
                "require a relative improvement of at least ε|J*|, or noise counts as progress."),
        Mistake("≤ instead of <", lambda J, Js, eps=1e-3: J <= Js - eps * Js.abs(),
                "an equal value is not an improvement."),
    ],
))


def _stop_cases() -> list[Case]:
    t = torch.arange(31, dtype=torch.float64)
    plateau = -100 - 10 * (1 - torch.exp(-t / 3))                       # improves, then flat
    u_shape = -100 - 0.05 * t * (20 - t)                                 # falls then rises
    steady = -100 - 2.0 * t                                              # always improving
    drift = torch.tensor([-100.0, -100.09, -100.17, -100.25, -100.33, -100.41, -100.49, -100.57, -100.65, -100.73,
                          -100.81, -100.89], dtype=torch.float64)       # improves by < ε|J*| per check
    noisy = torch.tensor([-50.0, -60, -55, -58, -61, -59, -60, -62, -61, -61, -61, -61, -61, -61], dtype=torch.float64)
    return [Case((plateau, 100, 1000, 3000), label="improving then a plateau"),
            Case((u_shape, 100, 500, 3000), label="U-shaped signal"),
            Case((steady, 100, 500, 2000), label="steadily improving → runs to E_max"),
            Case((drift, 100, 300, 2000), label="tiny improvements below ε"),
            Case((noisy, 100, 400, 1300), label="noisy, best is not the last")]


def _stop_vs_last(values, m, patience, e_max, eps=1e-3):
    last, c = values[0], 0
    for k in range(1, len(values)):
        e = k * m
        if e >= e_max:
            break
        if bool(sope_improved(values[k], last, eps)):
            c = 0
        else:
            c += m
        last = values[k]
        if c >= patience:
            return e
    return e_max


def _stop_no_reset(values, m, patience, e_max, eps=1e-3):
    J_star, c = values[0], 0
    for k in range(1, len(values)):
        e = k * m
        if e >= e_max:
            break
        if bool(sope_improved(values[k], J_star, eps)):
            J_star = values[k]
        else:
            c += m
        if c >= patience:
            return e
    return e_max


def _stop_strict(values, m, patience, e_max, eps=1e-3):
    J_star, c = values[0], 0
    for k in range(1, len(values)):
        e = k * m
        if e >= e_max:
            break
        if bool(sope_improved(values[k], J_star, eps)):
            J_star, c = values[k], 0
        else:
            c += m
        if c > patience:
            return e
    return e_max


def _stop_code_sign(values, m, patience, e_max, eps=1e-3):
    J_star, c = values[0], 0
    for k in range(1, len(values)):
        e = k * m
        if e >= e_max:
            break
        if bool(code_improved(values[k], J_star, eps)):
            J_star, c = values[k], 0
        else:
            c += m
        if c >= patience:
            return e
    return e_max


register(Exercise(
    id="03.3.2", title="where a SOPE phase stops (patience on the validation signal)", reference=phase_stop_point,
    cases=_stop_cases, difficulty=2, importance=3, minutes=15,
    mistakes=[
        Mistake("compared with the last value, not the best", _stop_vs_last,
                "J* is the best value so far; a small bounce after a dip must not reset the counter."),
        Mistake("counter never reset", _stop_no_reset, "an improvement resets the patience counter c to 0."),
        Mistake("stops one check late (c > P)", _stop_strict, "stop as soon as c ≥ P: P updates without improvement."),
        Mistake("the official code's sign-dependent test", _stop_code_sign,
                "(1 − ε)J* with J* < 0 lets a slightly worse J reset the counter: use J < J* − ε|J*|."),
    ],
))


def _split_cases() -> list[Case]:
    return [Case((5000, 1_000_000, 0.1, 256), label="early phase, big prior"),
            Case((40_000, 1_000_000, 0.1, 256), label="later phase"),
            Case((1000, 400, 0.1, 256), label="small prior caps V_off"),
            Case((300, 4000, 0.1, 256), label="tiny online buffer caps V_on"),
            Case((300, 4000, 0.1, 64), label="toy sizes")]


register(Exercise(
    id="03.3.3", title="SOPE's validation split sizes", reference=validation_sizes,
    cases=_split_cases, difficulty=1, importance=2, minutes=8,
    mistakes=[
        Mistake("10 % of the prior data", lambda a, b, f=0.1, B=256: (min(max(B, int(f * a)), a - B), min(max(B, int(f * b)), b - B)),
                "the offline half has the *same* size as the online 10 % (n_k), not 10 % of the dataset."),
        Mistake("no floor of one batch", lambda a, b, f=0.1, B=256: (min(int(f * a), a - B), min(int(f * a), b - B)),
                "n_k = max(batch, ⌊ρ|D_on|⌋): always at least one full batch."),
        Mistake("no cap", lambda a, b, f=0.1, B=256: (max(B, int(f * a)), max(B, int(f * a))),
                "leave at least one batch for training: min(n_k, |D| − batch)."),
    ],
))

# ----------------------------------------------------------------------------- 03.4 full scale


register(Exercise(
    id="03.4.1", title="analytic forward FLOPs of an MLP", reference=mlp_forward_flops,
    cases=lambda: [Case((256, [17, 256, 256, 1]), label="a Hopper critic"), Case((512, (11, 256, 256, 6)), label="a Hopper actor, B=512"),
                   Case((1, [3, 4]), label="one layer")],
    difficulty=1, importance=2, minutes=5,
    mistakes=[
        Mistake("no factor 2 (MACs, not FLOPs)", lambda B, d: sum(B * a * b for a, b in zip(d[:-1], d[1:])),
                "a multiply-accumulate is 2 FLOPs: F = Σ 2·B·d_in·d_out."),
        Mistake("batch ignored", lambda B, d: sum(2 * a * b for a, b in zip(d[:-1], d[1:])), "every row of the batch costs the same."),
        Mistake("skipped the output layer", lambda B, d: sum(2 * B * a * b for a, b in zip(d[:-2], d[1:-1])),
                "count every linear layer, including the head."),
    ],
))

register(Exercise(
    id="03.4.2", title="the paper's normalised score", reference=normalized_score,
    cases=lambda: [Case((1800.0, 16.9, 3857.8), label="Hopper-v5"), Case((-120.0, -294.7, 16242.9), label="HalfCheetah-v5"),
                   Case((-150.0, -1250.0, -140.0), label="Pendulum (negative returns)")],
    difficulty=1, importance=2, minutes=4,
    mistakes=[
        Mistake("not shifted by R_rand", lambda R, lo, hi: 100 * R / (hi - lo), "subtract the random return from R too."),
        Mistake("no ×100", lambda R, lo, hi: (R - lo) / (hi - lo), "scores are in percent of the expert's margin."),
        Mistake("divided by R_exp", lambda R, lo, hi: 100 * (R - lo) / hi, "divide by the expert–random gap, R_exp − R_rand."),
    ],
))


def _episode_cases() -> list[Case]:
    rng = np.random.default_rng(6)
    T = [3, 5]
    obs = [rng.normal(size=(t + 1, 2)).astype(np.float32) for t in T]
    act = [rng.normal(size=(t, 1)).astype(np.float32) for t in T]
    rew = [rng.normal(size=t).astype(np.float32) for t in T]
    term = [np.array([0, 0, 1], dtype=np.float32), np.zeros(5, dtype=np.float32)]
    trunc = [np.zeros(3, dtype=np.float32), np.array([0, 0, 0, 0, 1], dtype=np.float32)]
    return [Case((obs, act, rew, term, trunc), label="a terminated and a truncated episode")]


def _ep_shift(obs, act, rew, term, trunc):
    out = episodes_to_transitions(obs, act, rew, term, trunc)
    out["next_observations"] = np.concatenate([o[:-1] for o in obs]).astype(np.float32)
    out["observations"] = np.concatenate([o[1:] for o in obs]).astype(np.float32)
    return out


def _ep_trunc_as_term(obs, act, rew, term, trunc):
    out = episodes_to_transitions(obs, act, rew, term, trunc)
    out["terminals"] = np.maximum(out["terminals"], out["timeouts"])
    return out


def _ep_same_obs(obs, act, rew, term, trunc):
    out = episodes_to_transitions(obs, act, rew, term, trunc)
    out["next_observations"] = out["observations"].copy()
    return out


register(Exercise(
    id="03.4.3", title="Minari episodes → D4RL transitions", reference=episodes_to_transitions,
    cases=_episode_cases, difficulty=1, importance=2, minutes=10,
    mistakes=[
        Mistake("observations shifted the wrong way", _ep_shift, "transition t is (o_t, a_t, r_t, o_{t+1}): obs[:-1] and obs[1:]."),
        Mistake("truncation treated as termination", _ep_trunc_as_term,
                "a time-limit truncation is not a terminal state: the TD target must still bootstrap there."),
        Mistake("next observation = observation", _ep_same_obs, "next_observations come from obs[1:]."),
    ],
))
