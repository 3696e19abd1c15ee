"""Stabilisation phases: SACfD (none), SPEQ-O2O (fixed length), SOPE (early-stopped) — lesson 03.3.

Every ``K`` environment steps SPEQ-O2O and SOPE pause acting and run critic-only updates on the
frozen buffers. SPEQ-O2O always runs ``E_max`` of them. SOPE first holds out a validation split
(``validation_sizes``), then every ``m`` updates computes the actor-aligned DM signal
``Ĵ_val`` (``dm_value_estimate``) and stops once it has not improved for ``P`` updates (patience):

1. at ``e = 0``: ``J* ← Ĵ_val``, ``c ← 0``;
2. at ``e = m, 2m, …``: ``J = Ĵ_val``; if ``J < J* − ε|J*|`` (``sope_improved``) then ``J* ← J, c ← 0`` else ``c ← c + m``;
3. stop when ``c ≥ P`` or ``e = E_max``.

The official code tests ``J < (1 − ε)·J*`` (``code_improved``), which for the negative ``J`` of
locomotion tasks accepts values up to ``ε|J*|`` *worse* than the best: we use the sign-safe test.

Every run draws from its own generators (``rng``): its batches from its batch stream (``gen[r]``), its
hold-out split from a generator keyed by (its seed, the phase's environment step) and the DM signal's
action noise from one keyed by (its seed, step, check). Only the runs still in their phase are computed
(``SACPopulation.select``), and a run that has stopped draws nothing more, so a run's phase is the same whether
or not longer phases run beside it.

Inside a phase the policy and α are frozen, so the phase is policy evaluation and ``Ĵ_val`` drifts towards its
fixed point: from below (critic above its fixed point) it rises and the phase stops at ``P``; from above it falls,
and the phase runs until the fall per check drops below ``ε|J*|`` (stopping ``P`` later) or to ``E_max`` (lesson 03.3,
section 5).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from hdai_lessons.sope.rng import run_generators
from hdai_lessons.sope.sac import SACPopulation, actor_objective


def sope_improved(J: torch.Tensor, J_star: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Sign-safe improvement test ``J < J* − ε·|J*|`` (elementwise bool), correct for either sign of ``J*``.

    Lesson 03.3 (exercise 03.3.1); SOPE digest, "Stopping rule", step 3, with the sign-safe test its "Sign quirk in
    the code" recommends."""
    return J < J_star - eps * J_star.abs()


def code_improved(J: torch.Tensor, J_star: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """The official code's test ``J < (1 − ε)·J*``: right for ``J* > 0``, too lenient for ``J* < 0``.

    Lesson 03.3; SOPE digest, "Stopping rule" ("Sign quirk in the code")."""
    return J < (1 - eps) * J_star


def phase_stop_point(values: torch.Tensor, m: int, patience: int, e_max: int, eps: float = 1e-3) -> int:
    """How many critic updates a SOPE phase runs, given its validation signal.

    Args:
        values: ``(K,)`` ``Ĵ_val`` after ``0, m, 2m, …`` updates (``values[k]`` is measured at ``e = k·m``).
        m: check interval; patience: ``P`` (updates without improvement); e_max: maximum phase length.
    Returns: the number of updates ``e`` at which the phase stops (``e_max`` if it never stops early,
    including when ``values`` runs out before ``e_max``).

    Lesson 03.3 (exercise 03.3.2); SOPE digest, "Stopping rule", steps 1–4.
    """
    J_star, c = values[0], 0
    for k in range(1, len(values)):
        e = k * m
        if e >= e_max:
            break
        if bool(sope_improved(values[k], J_star, eps)):
            J_star, c = values[k], 0
        else:
            c += m
        if c >= patience:
            return e
    return e_max


def validation_sizes(n_online: int, n_offline: int, frac: float = 0.1, batch: int = 256) -> tuple[int, int]:
    """SOPE's hold-out sizes ``(|V_on|, |V_off|)`` at a phase.

    ``n_k = max(batch, ⌊frac·|D_on|⌋)``; ``|V_on| = min(n_k, |D_on| − batch)``, ``|V_off| = min(n_k, |D_off| − batch)``
    — the offline half matches the *online* 10 %, it is not 10 % of the prior dataset.

    Lesson 03.3 (exercise 03.3.3); SOPE digest, "Validation split at stabilisation phase k".
    """
    n_k = max(batch, int(math.floor(frac * n_online)))
    return max(0, min(n_k, n_online - batch)), max(0, min(n_k, n_offline - batch))


@torch.no_grad()
def dm_value_estimate(pop: SACPopulation, val_obs: torch.Tensor, gens: "list[torch.Generator] | None" = None) -> torch.Tensor:
    """``Ĵ_val`` per run ``(R,)``: the actor objective on held-out states ``val_obs (R, V, o)`` with fresh
    actions from the frozen policy — ``mean_s[α log π(ã_s|s) − (1/N) Σ_i Q_i(s, ã_s)] = −V̂_DM(π)``.

    ``gens``: one generator per run for the action noise (and dropout); default: fresh ones from the runs'
    seeds (``rng`` stream "validation"), so the estimate never advances a run's training streams.

    Lesson 03.3; SOPE digest, "Actor-aligned OPE signal"."""
    gens = run_generators(pop.seeds, "validation", pop.salt) if gens is None else gens
    a, logp = pop.actor.sample(val_obs, gens=gens)                        # (R, V, A), (R, V)
    return actor_objective(logp, pop.critic(val_obs, a, gens), pop.alpha) # (R,)


@dataclass
class PhaseConfig:
    """Stabilisation-phase settings (lesson 03.3; SOPE digest, "Stopping rule" and "Algorithm (pseudo-code)").

    Paper defaults: K = 10k, E_max = 75k, m = 1k, P = 10k, ρ = 0.1, ε = 1e−3."""

    every: int = 10_000
    """K: environment steps between phases."""
    e_max: int = 75_000
    """E_max: the maximum (SOPE) or fixed (SPEQ-O2O, unless a run sets its own) phase length."""
    check_every: int = 1_000
    """m: critic updates between two evaluations of the validation signal."""
    patience: int = 10_000
    """P: a phase stops after this many updates without improvement."""
    val_frac: float = 0.1
    """ρ: the validation split holds this fraction of the online buffer."""
    eps: float = 1e-3
    """ε of the relative improvement test ``J < J* − ε|J*|``."""
    val_batch: int = 256
    """The "256" in the hold-out sizes (at least one batch held out, at least one batch left)."""


@dataclass
class PhaseLog:
    """What one phase did, per run: its length, how many validation checks it used (``checks``; 0 for runs
    that hold nothing out) and the validation trace ``[(e, Ĵ_val (R,))]`` (traced while any run is active).

    Lesson 03.3; what one pass of the stabilisation block of SOPE digest, "Algorithm (pseudo-code)" logs (the phase
    length e)."""

    env_step: int
    lengths: list[int]
    trace_e: list[int] = field(default_factory=list)
    trace_J: list[list[float]] = field(default_factory=list)
    checks: list[int] = field(default_factory=list)


def run_phase(pop: SACPopulation, online, prior, max_len: torch.Tensor, adaptive: torch.Tensor, cfg: PhaseConfig,
              batch_per_source: int, gen: "list[torch.Generator] | torch.Generator", use_prior: "torch.Tensor | None",
              env_step: int) -> PhaseLog:
    """One stabilisation phase (critic-only, expectile τ = 0.5 loss) for every run with ``max_len[r] > 0``.

    Only the runs still in their phase are computed: the phase trains a ``pop.select``-ed population of them,
    and each time runs leave (SPEQ-O2O's fixed length reached, SOPE's patience exhausted) they are written back
    and the population shrinks. A run's phase is therefore the same arithmetic, and its numbers the same,
    whichever runs are in their phase beside it. ``Ĵ_val`` is traced for the runs in their phase at each check
    (``nan`` for the others); for non-adaptive runs the "validation" rows are their most recent transitions,
    which stay in training (nothing is held out).

    Args:
        max_len: ``(R,)`` longest phase per run (0 = no phase, e.g. SACfD; ``L`` for SPEQ-O2O; ``E_max`` for SOPE).
        adaptive: ``(R,)`` runs that hold out a validation split and early-stop (SOPE).
        gen: the runs' batch generators, one per run (``train_population`` passes them).
    The split is restored before returning, so the buffers hold exactly the transitions they held before.

    Lesson 03.3; SOPE digest, "Algorithm (pseudo-code)", the ``if t % K == 0`` block (SPEQ-O2O: the same block without
    the split and the early stop, "Notes on the loop").
    """
    from hdai_lessons.sope.buffers import symmetric_batch

    R = pop.R
    if int(max_len.max()) <= 0:
        return PhaseLog(env_step, [0] * R, checks=[0] * R)
    n_on, n_off = validation_sizes(online.size, prior.size if prior is not None else 0, cfg.val_frac, cfg.val_batch)
    hold = adaptive & (max_len > 0)
    split_gens = run_generators(pop.seeds, "holdout", pop.salt, env_step)      # each run's own split
    val_on = online.hold_out(torch.where(hold, n_on, 0), split_gens) if n_on > 0 else None
    val_off = None
    if prior is not None and n_off > 0:
        val_off = prior.hold_out(torch.where(hold & (use_prior if use_prior is not None else True), n_off, 0), split_gens)
    parts = [v["obs"] for v in (val_on, val_off) if v is not None]
    val_obs = torch.cat(parts, dim=1) if parts else None                 # (R, |V_on| + |V_off|, o)
    log = PhaseLog(env_step, [0] * R)
    try:
        cur = (max_len > 0).nonzero().flatten().tolist()                   # runs in their phase, in run order
        sub = pop.select(cur)
        nan = float("nan")

        def check(e: int) -> torch.Tensor:                                  # Ĵ_val of the runs in ``cur``
            g = run_generators([pop.seeds[r] for r in cur], "validation", pop.salt, env_step, e)
            J = dm_value_estimate(sub, val_obs[cur], g)                    # (len(cur),)
            row = [nan] * R
            for r, j in zip(cur, J.tolist()):
                row[r] = j
            log.trace_e.append(e)
            log.trace_J.append(row)
            return J

        def leave(stay: "list[int]") -> None:                               # write the population back, shrink it
            nonlocal cur, sub
            pop.absorb(sub, cur)
            cur = stay
            sub = pop.select(cur) if cur else None

        checks = torch.zeros(R, dtype=torch.long)
        length = torch.zeros(R, dtype=torch.long)
        count = torch.zeros(R, dtype=torch.long)
        J_star = torch.zeros(R)
        if val_obs is not None:
            J_star[cur] = check(0)
            checks[cur] = hold[cur].long()
        else:
            log.trace_e.append(0)
            log.trace_J.append([0.0] * R)
        for e in range(int(max_len.max())):
            stay = [r for r in cur if e < int(max_len[r])]                  # fixed lengths reached
            if stay != cur:
                leave(stay)
            if not cur:
                break
            if e > 0 and e % cfg.check_every == 0 and val_obs is not None:
                J = check(e)
                idx = torch.tensor(cur)
                checks[idx] += hold[idx].long()
                better = sope_improved(J, J_star[idx], cfg.eps)
                J_star[idx] = torch.where(better & hold[idx], J, J_star[idx])
                count[idx] = torch.where(better, 0, count[idx] + cfg.check_every)
                stay = [r for r in cur if not (bool(hold[r]) and int(count[r]) >= cfg.patience)]   # patience spent
                if stay != cur:
                    leave(stay)
                if not cur:
                    break
            mask = torch.zeros(R, dtype=torch.bool)
            mask[cur] = True
            batch = symmetric_batch(online, prior, batch_per_source, gen, use_prior, mask=mask)
            if len(cur) < R:
                idx = torch.tensor(cur)
                batch = {k: v.index_select(0, idx) for k, v in batch.items()}
            sub.critic_update(batch, loss="expectile")
            length[cur] += 1
        if cur:
            leave([])
        log.lengths = length.tolist()
        log.checks = checks.tolist()
    finally:
        online.restore()
        if prior is not None:
            prior.restore()
    return log


@torch.no_grad()
def td_validation_error(pop: SACPopulation, val: dict, gens: "list[torch.Generator] | None" = None) -> torch.Tensor:
    """The research repo's ablation signal ``Ĵ_TD = Σ_i mean_V (Q_i(s,a) − y)²`` on held-out transitions, ``(R,)``.

    ``gens``: per-run generators for the target's action noise; default: fresh ones from the runs' seeds.

    Lesson 03.3; SOPE digest, "Ablation signal in [research-repo]"."""
    gens = run_generators(pop.seeds, "validation", pop.salt) if gens is None else gens
    return pop.critic_loss(val, "mse", gens=gens)


def phase_study(pop: SACPopulation, online, prior, n_updates: int, cfg: PhaseConfig, batch_per_source: int,
                gen: "list[torch.Generator] | torch.Generator", use_prior=None) -> dict:
    """Run one long critic-only phase *without* stopping and trace both validation signals.

    Holds out SOPE's split, runs ``n_updates`` stabilisation steps, and every ``cfg.check_every`` records
    ``Ĵ_val`` (DM, actor-aligned) and ``Ĵ_TD`` on the held-out data, and ``Ĵ_TD`` on as many fixed *training*
    rows (drawn once from the rows the phase trains on). Restores the split afterwards.
    Returns ``{"e": (K,), "J_val": (K, R), "J_td": (K, R), "J_td_train": (K, R)}`` as tensors; the stopping rule can then be
    replayed offline with ``phase_stop_point`` for any patience. ``gen``: the runs' batch generators
    (``TrainResult.state["gens"]``); the split and the validation noise come from each run's seed, as in ``run_phase``.

    Lesson 03.3; SOPE digest, "Toy experiment for the course", plot (a) (one phase, in detail).
    """
    from hdai_lessons.sope.buffers import symmetric_batch

    step = online.size
    n_on, n_off = validation_sizes(online.size, prior.size if prior is not None else 0, cfg.val_frac, cfg.val_batch)
    split_gens = run_generators(pop.seeds, "holdout", pop.salt, step)
    v_on = online.hold_out(n_on, split_gens)
    v_off = prior.hold_out(n_off, split_gens) if prior is not None and n_off > 0 else None
    val = v_on if v_off is None else {k: torch.cat([v_on[k], v_off[k]], dim=1) for k in v_on}
    train_gens = run_generators(pop.seeds, "holdout", pop.salt, step, 1)
    t_on = online.sample(v_on["obs"].shape[1], train_gens)                # training rows (the split is held out)
    t_off = prior.sample(v_off["obs"].shape[1], train_gens) if v_off is not None else None
    train = t_on if t_off is None else {k: torch.cat([t_on[k], t_off[k]], dim=1) for k in t_on}
    es, jv, jt, jtt = [], [], [], []
    try:
        for e in range(n_updates + 1):
            if e % cfg.check_every == 0:
                es.append(e)
                g = run_generators(pop.seeds, "validation", pop.salt, step, e)
                jv.append(dm_value_estimate(pop, val["obs"], g))
                jt.append(td_validation_error(pop, val, run_generators(pop.seeds, "validation", pop.salt, step, e, 1)))
                jtt.append(td_validation_error(pop, train, run_generators(pop.seeds, "validation", pop.salt, step, e, 2)))
            if e < n_updates:
                pop.critic_update(symmetric_batch(online, prior, batch_per_source, gen, use_prior), loss="expectile")
    finally:
        online.restore()
        if prior is not None:
            prior.restore()
    return {"e": torch.tensor(es), "J_val": torch.stack(jv), "J_td": torch.stack(jt), "J_td_train": torch.stack(jtt)}
