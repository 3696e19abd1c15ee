"""Lesson 03.2's study: when does prior data speed up online RL? Value propagation vs exploration.

SACfD (SAC with 50/50 symmetric batches of online and prior transitions; the SOPE digest's "Baselines") can
only help where the learner is limited by what it has *seen*. Two bottlenecks decide what a toy shows:

- **value propagation**: the critic regresses on targets from Polyak-averaged critics,
  ``θ̄ ← (1−τ)θ̄ + τθ``, so after ``n`` updates the target has forgotten its start by a factor
  ``(1−τ)^n = e^{−n/n_τ}`` with time constant ``n_τ = −1/ln(1−τ) ≈ 1/τ`` updates. A reward must travel
  back through the bootstrapped targets over the task's horizon (``1/(1−γ) = 100`` steps for γ = 0.99),
  which takes many time constants. If the run holds only a few, neither arm learns much and prior data
  cannot show (``target_time_constants``). The levers: τ, or more updates per environment step (UTD).
- **exploration**: on ``MountainCarContinuous-v0`` the reward (+100 at the flag) is almost never found by
  random actions, and an agent that has not found it learns to stand still (every step costs ``0.1·a²``).
  Prior data holding the flag transitions (``prior_data.mountaincar_bang_bang_action``) are then the only
  source of that reward: here prior data should help clearly.

``PriorDataLessonConfig`` holds the lesson's sizes; ``auc`` and ``flag_reached`` are the measured quantities;
``plot_curves`` draws mean ± sd learning curves per arm.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from hdai_lessons.sope.train import TrainConfig, TrainResult

MOUNTAINCAR = "MountainCarContinuous-v0"
FLAG_REWARD = 50.0
"""A transition with reward above this reached the flag (the goal pays +100, minus ``0.1·a² ≤ 0.1``)."""


def _toy(env_id: str, total_steps: int, tau: float, base: "TrainConfig | None" = None) -> TrainConfig:
    """The toy online loop (``TrainConfig.for_scale("toy")``'s networks, batches and lr) with this lesson's
    schedule spelled out: 500 warm-up steps, evaluations of 5 episodes every 250 steps, no phases needed."""
    base = base or TrainConfig.for_scale("toy")
    return replace(base, env_id=env_id, total_steps=total_steps, warmup=500, eval_every=250, eval_episodes=5,
                   sac=replace(base.sac, tau=tau))


@dataclass
class PriorDataLessonConfig:
    """Lesson 03.2's sizes: SAC vs SACfD on ``Pendulum-v1`` (two target-network rates) and on
    ``MountainCarContinuous-v0`` (the SOPE digest's "Toy experiment for the course", plot (b), and its optional
    MountainCar demo).

    Toy deviations from the paper (on top of ``TrainConfig.for_scale``'s): τ = 0.02 instead of 0.005 in the main
    comparison, because at 0.005 the 1,500 updates of a 2,000-step run are only 7.5 target time constants and
    SAC only starts to learn in the last evaluations (the lesson shows this); 5 evaluation episodes every 250 steps."""

    n_seeds: int = 5
    """Paired seeds per arm: ``ctx.seed, ctx.seed + 1, …``."""
    tau_slow: float = 0.005
    """The paper's Polyak rate (SOPE/SPEQ code), run for SAC on Pendulum to show the value-propagation bottleneck."""
    tau_fast: float = 0.02
    """The toy's Polyak rate for the prior-data comparisons (4× fewer updates per target time constant)."""
    pendulum: TrainConfig = field(default_factory=lambda: _toy("Pendulum-v1", 2000, 0.02))
    """The Pendulum-v1 loop at ``tau_fast`` (the ``tau_slow`` run replaces only ``sac.tau``)."""
    mountaincar: TrainConfig = field(default_factory=lambda: _toy(MOUNTAINCAR, 2000, 0.02))
    """The MountainCarContinuous-v0 loop at ``tau_fast``: the same networks, batches and schedule as Pendulum's."""

    def slow(self) -> TrainConfig:
        """``pendulum`` with ``sac.tau = tau_slow``."""
        return replace(self.pendulum, sac=replace(self.pendulum.sac, tau=self.tau_slow))

    @classmethod
    def for_scale(cls, scale) -> "PriorDataLessonConfig":
        """smoke: 300 steps, 2 seeds; toy: the defaults; full: ``TrainConfig.for_scale("full")``'s 2×256 networks
        and 256 + 256 batches, 20k steps, evaluations of 10 episodes every 1000 steps."""
        from hdai_lessons.core.scale import by_scale

        def smoke_cfg(env_id: str) -> TrainConfig:
            base = TrainConfig.for_scale("smoke")
            return replace(base, env_id=env_id, sac=replace(base.sac, tau=0.02))

        def full_cfg(env_id: str) -> TrainConfig:
            base = TrainConfig.for_scale("full")
            return replace(base, env_id=env_id, sac=replace(base.sac, tau=0.02))

        return by_scale(scale,
                        smoke=cls(n_seeds=2, pendulum=smoke_cfg("Pendulum-v1"), mountaincar=smoke_cfg(MOUNTAINCAR)),
                        toy=cls(),
                        full=cls(pendulum=full_cfg("Pendulum-v1"), mountaincar=full_cfg(MOUNTAINCAR)))


def target_time_constants(tau: float, n_updates: int) -> float:
    """How many time constants a Polyak target has moved in ``n_updates``: ``−n·ln(1−τ)`` (≈ ``n·τ``).

    After ``n`` updates the target keeps a fraction ``(1−τ)^n = e^{−k}`` of where it started, ``k`` the returned
    number. Example: ``target_time_constants(0.005, 1500) ≈ 7.5``; ``target_time_constants(0.02, 1500) ≈ 30.3``.

    Lesson 03.2; SOPE digest, "Losses" (Targets: ``θ̄ ← 0.995·θ̄ + 0.005·θ`` after every critic step)."""
    return -n_updates * math.log1p(-tau)


def auc(result: TrainResult, name: str, warmup: int) -> np.ndarray:
    """``(n_seeds,)`` each run's mean evaluation return over the evaluations after ``warmup`` steps (the area
    under its learning curve from the first update on), seed-ordered.

    Lesson 03.2; the paper's curves of return against environment steps (SOPE digest, "Evaluation metric")
    summarised as one number per run."""
    after = [i for i, t in enumerate(result.steps) if t > warmup]
    return result.returns[result.rows(name=name)][:, after].mean(1)


def flag_reached(result: TrainResult, name: str) -> np.ndarray:
    """``(n_seeds,)`` bool: did run ``name``'s *own* online data ever reach MountainCar's flag (a reward above
    ``FLAG_REWARD``)? Needs ``result.state`` (kept by ``train_population``).

    Lesson 03.2; the exploration bottleneck of the SOPE digest's MountainCar demo."""
    online = result.state["online"]
    rew = online.data["rew"][:, : online.size]                     # (R, T)
    return (rew[result.rows(name=name)] > FLAG_REWARD).any(1).numpy()


def plot_curves(ax, result: TrainResult, names: "list[str]", warmup: int, labels: "dict | None" = None, **style) -> None:
    """Mean ± sd (over seeds) evaluation return against environment steps, one line per run name.

    Lesson 03.2; SOPE digest, "Toy experiment for the course", plot (b)."""
    labels = labels or {}
    for name in names:
        R = result.returns[result.rows(name=name)]                  # (seeds, n_evals)
        m, s = R.mean(0), R.std(0)
        line, = ax.plot(result.steps, m, label=labels.get(name, name), **style)
        ax.fill_between(result.steps, m - s, m + s, alpha=0.15, color=line.get_color())
    ax.axvline(warmup, color="grey", ls=":", lw=1)
    ax.set(xlabel="environment steps", ylabel="evaluation return")
