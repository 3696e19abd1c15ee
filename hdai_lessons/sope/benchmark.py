"""The paper's benchmark protocol, at any scale (lesson 03.4): tasks, prior data, normalised scores, TFLOPs.

``TASKS`` names each task's environment, prior dataset and score bounds. ``run_benchmark`` trains the
requested arms × seeds with ``train.train_population`` and reports, per arm, the paper's normalised score
``100·(R − R_rand)/(R_exp − R_rand)`` and the analytic TFLOPs (with and without the validation passes).

- Full scale: gymnasium MuJoCo ``-v5`` (Hopper, HalfCheetah) with Minari ``mujoco/<env>/expert-v0`` data or,
  offline, a prior made locally from a short SAC run's buffer (``prior_from_sac_run``); the bounds are the
  paper's (``R_rand`` of a uniform policy, ``R_exp`` = mean episode return of Minari ``expert-v0``).
- Toy scale: the identical code on ``Pendulum-v1`` with the course's scripted expert data; ``R_rand`` is
  measured and ``R_exp`` is the expert dataset's mean episode return, computed as the paper does.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from hdai_lessons.core.data import data_path
from hdai_lessons.sope.flops import NetDims, normalized_score, total_flops
from hdai_lessons.sope.parallel import train_sharded
from hdai_lessons.sope.phases import PhaseConfig
from hdai_lessons.sope.prior_data import episode_returns, load_minari, load_npz, random_policy_return
from hdai_lessons.sope.train import RunSpec, TrainConfig, TrainResult, summarise, train_population


@dataclass(frozen=True)
class Task:
    """One benchmark task: environment, prior dataset and normalisation bounds (None = measure them).

    Lesson 03.4; SOPE digest, "Benchmark" and "Evaluation metric" (example bounds); the dropout is the table of
    "Networks"."""

    env_id: str
    dataset: str                       # a Minari id, or "course:<manifest name>" for shipped npz data
    random_return: "float | None" = None
    expert_return: "float | None" = None
    dropout: float = 0.01              # the paper's per-environment critic dropout


TASKS = {
    "hopper-expert": Task("Hopper-v5", "mujoco/hopper/expert-v0", 16.9, 3857.8, 0.001),
    "halfcheetah-expert": Task("HalfCheetah-v5", "mujoco/halfcheetah/expert-v0", -294.7, 16242.9, 0.005),
    "pendulum-expert": Task("Pendulum-v1", "course:sope-pendulum-expert", None, None, 0.0),
}


def _toy_benchmark_train() -> TrainConfig:
    """Lesson 03.4's toy loop: 2000 steps, phases every 500 steps of at most E_max = 1000 updates, checked every
    m = 100 with patience P = 200, so a SOPE phase can stop at any of 200, 300, …, 1000 updates (SOPE digest,
    "Stopping rule"). With P = 500 it could only stop at 500 or run to 1000 (issue 13). The arms of a seed train
    once until the first phase (``share_prefix``: the same numbers, bit for bit)."""
    return replace(TrainConfig.for_scale("toy"), total_steps=2000, eval_episodes=4, share_prefix=True,
                   phases=PhaseConfig(every=500, e_max=1000, check_every=100, patience=200, val_batch=64))


@dataclass
class BenchmarkLessonConfig:
    """Lesson 03.4's sizes: the paper's protocol (SOPE digest, "Evaluation metric" and "Compute accounting") on
    Pendulum-v1 at smoke/toy scale and on Hopper-v5 at full scale, arms SACfD, SPEQ-O2O and SOPE."""

    task: str = "pendulum-expert"
    """The benchmark task, a key of ``TASKS``."""
    bound_episodes: int = 20
    """Episodes of the uniform-random policy that measure ``R_rand`` when the task has no published bound."""
    n_seeds: int = 6
    """Paired seeds per arm: ``ctx.seed, ctx.seed + 1, …``."""
    last_evals: int = 3
    """The score averages the last this many evaluations (the paper: 10)."""
    train: TrainConfig = field(default_factory=_toy_benchmark_train)
    """The online loop (toy: 2000 steps, phases every 500 steps of at most 1000 updates, checked every 100 with
    patience 200, so SOPE can choose any length from 200 to 1000 in steps of 100; SPEQ-O2O always runs 1000); at
    full scale the critic dropout is the task's (the paper's per-environment table). Lesson 03.4; SOPE digest,
    "Stopping rule" and "Training protocol"."""

    @classmethod
    def for_scale(cls, scale) -> "BenchmarkLessonConfig":
        from hdai_lessons.core.scale import by_scale

        full = TrainConfig.for_scale("full")
        full = replace(full, sac=replace(full.sac, dropout=TASKS["hopper-expert"].dropout))
        return by_scale(scale, smoke=cls(bound_episodes=2, n_seeds=2, last_evals=1, train=TrainConfig.for_scale("smoke")),
                        toy=cls(),
                        full=cls(task="hopper-expert", bound_episodes=100, n_seeds=2, last_evals=10, train=full))


def load_prior(task: Task) -> dict[str, np.ndarray]:
    """The task's prior data in the D4RL layout (shipped npz, or a local Minari dataset).

    Lesson 03.4; ``D_off`` (SOPE digest, "Benchmark")."""
    if task.dataset.startswith("course:"):
        return load_npz(data_path(task.dataset.split(":", 1)[1]))
    return load_minari(task.dataset)


def prior_from_sac_run(env_id: str, steps: int, seed: int, cfg: TrainConfig) -> dict[str, np.ndarray]:
    """An offline stand-in for a Minari dataset: the replay buffer of a short SAC run, D4RL layout.

    Uses ``train_population`` with one SAC run for ``steps`` environment steps (``cfg.total_steps`` is
    overridden). ``timeouts`` are not recorded by the replay buffer and are returned as zeros.

    Lesson 03.4; SOPE digest, "Full-scale lesson options", option B, item 1.
    """
    res = train_population([RunSpec("SAC", seed)], replace(cfg, env_id=env_id, total_steps=steps, checkpoint_dir=None))
    on = res.state["online"]
    n = on.size
    d = {k: v[0, :n].numpy() for k, v in on.data.items()}
    return {"observations": d["obs"], "actions": d["act"], "rewards": d["rew"], "next_observations": d["next_obs"],
            "terminals": d["term"], "timeouts": np.zeros(n, dtype=np.float32)}


def score_bounds(task: Task, prior: dict[str, np.ndarray], episodes: int = 20, seed: int = 0) -> tuple[float, float]:
    """``(R_rand, R_exp)``: the task's published bounds, else measured as the paper does.

    Lesson 03.4; SOPE digest, "Evaluation metric"."""
    lo = task.random_return if task.random_return is not None else random_policy_return(task.env_id, episodes, seed)
    hi = task.expert_return if task.expert_return is not None else float(episode_returns(prior).mean())
    return lo, hi


def run_benchmark(task: Task, specs: list[RunSpec], cfg: TrainConfig, prior: dict[str, np.ndarray],
                  bounds: tuple[float, float], last_evals: int = 10, workers: int = 1) -> tuple[TrainResult, dict[str, dict[str, float]]]:
    """Train ``specs`` on ``task``; return the result and per-arm summaries with ``score`` and TFLOPs.

    ``tflops_paper`` counts like the public counter (B = 256 per update, no validation passes);
    ``tflops`` counts the real symmetric batch (2B) and the validation passes. ``score`` averages the last
    ``last_evals`` evaluations (the paper: 10 of 300). ``workers``: processes the runs are split over
    (``parallel.train_sharded``; 1: this process only).

    Lesson 03.4; SOPE digest, "Evaluation metric" and "Compute accounting".
    """
    cfg = replace(cfg, env_id=task.env_id)
    res = train_sharded(specs, cfg, {s.prior: prior for s in specs if s.prior}, workers=workers)
    summary = summarise(res)
    pop = res.state["population"]                      # merged across shards too
    dims = NetDims(pop.actor.net.linears[0].weight.shape[-2], pop.actor.act_dim, tuple(cfg.sac.hidden), cfg.sac.n_critics)
    for name, s in summary.items():
        rows = [i for i, sp in enumerate(res.specs) if sp.name == name]
        final = res.final_return(min(last_evals, len(res.steps)))[rows]
        s["score"] = float(np.mean([normalized_score(r, *bounds) for r in final]))
        s["score_sd"] = float(np.std([normalized_score(r, *bounds) for r in final]))
        s["tflops_paper"] = float(np.mean([total_flops(dims, int(res.online_updates[i, -1]), int(res.critic_updates[i, -1] - res.online_updates[i, -1]),
                                                       batch=256, count_validation=False) for i in rows]) / 1e12)
    return res, summary
