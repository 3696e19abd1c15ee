"""The online loop shared by SAC, SACfD, SPEQ-O2O and SOPE (lessons 03.2–03.4), with checkpoint/resume.

A *population* of runs (``RunSpec``: arm × seed × prior dataset) trains in lockstep: one environment per
run, one ``SACPopulation`` with a run dimension, one replay buffer with a slice per run. Arms differ only
in their prior data and their stabilisation phases, exactly as in the paper's framework:

- ``SAC``: online data only (both halves of the batch online), no phases;
- ``SACfD``: 50/50 symmetric batches with the prior, no phases;
- ``SPEQ-O2O``: SACfD + a fixed-length critic-only phase every ``K`` steps;
- ``SOPE``: SACfD + a phase every ``K`` steps, early-stopped on the validation DM signal.

Per step: act (uniform-random during warm-up), store, maybe run a phase, one SAC update (UTD = 1).
Every ``eval_every`` steps: deterministic episodes (``a = a_max·tanh(μ)``) and, if asked, an atomic
checkpoint (``hdai_lessons.core.checkpoint``: weights, optimiser, replay data, RNG, history). Resuming
restarts the in-progress training episodes (their simulator state is not saved).

Runs are independent: each owns its generators, derived from its ``RunSpec.seed`` (``rng``): warm-up
actions, environment resets, replay batches, policy noise and dropout, phase hold-out splits, the DM
signal's noise and the evaluation episodes' initial states. A run's curve is therefore the same whether it
trains alone or beside other arms (a test checks this), and runs of different arms with the same seed share
their initial weights, warm-up data and evaluation states (paired comparisons).
"""
from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch
import torch.nn as nn

from hdai_lessons.core.checkpoint import checkpoint_extra, load_checkpoint, save_checkpoint
from hdai_lessons.core.progress import progress
from hdai_lessons.sope.batched_envs import batched_dynamics, has_make_wrappers
from hdai_lessons.sope.buffers import ReplayBuffer, symmetric_batch
from hdai_lessons.sope.flops import NetDims, total_flops
from hdai_lessons.sope.phases import PhaseConfig, PhaseLog, run_phase, validation_sizes
from hdai_lessons.sope.prior_data import make_env, to_buffer_arrays
from hdai_lessons.sope.rng import STREAMS, derive_seed, get_states, run_generators, set_states
from hdai_lessons.sope.sac import SACConfig, SACPopulation


@dataclass(frozen=True)
class RunSpec:
    """One run of the population: ``arm`` ∈ {"SAC", "SACfD", "SPEQ-O2O", "SOPE"}; ``phase_len`` for SPEQ-O2O.

    Lessons 03.2–03.4; the methods of SOPE digest, "Baselines" (SAC, SACfD, SPEQ-O2O) and SOPE."""

    arm: str
    seed: int
    prior: "str | None" = None
    phase_len: int = 0
    label: str = ""
    tau: "float | None" = None
    """This run's Polyak rate τ of the target critics; None: the config's ``sac.tau``. Runs that differ only in τ
    train in one population (lesson 03.2's τ comparison)."""

    @property
    def name(self) -> str:
        return self.label or self.arm


ARMS = ("SAC", "SACfD", "SPEQ-O2O", "SOPE")


@dataclass
class TrainConfig:
    """The online loop's settings (lessons 03.2–03.4; the loop of the digest's "Algorithm (pseudo-code)").

    ``TrainConfig.for_scale(scale)`` gives the lessons' Pendulum-v1 ladder; the defaults are the paper's
    protocol (300k steps, 5000 warm-up steps, 256 + 256 batches, evaluation every 1000 steps)."""

    env_id: str = "Pendulum-v1"
    """The gymnasium environment (full scale: a MuJoCo ``-v5`` task, set by ``benchmark.run_benchmark``)."""
    total_steps: int = 300_000
    """T, environment steps per run (one SAC update per step after warm-up: UTD = 1)."""
    warmup: int = 5_000
    """Uniform-random actions and no updates for the first this many steps."""
    batch_per_source: int = 256
    """B: every update draws B online + B prior transitions (the symmetric batch)."""
    eval_every: int = 1_000
    """Environment steps between evaluations (and checkpoints)."""
    eval_episodes: int = 10
    """Deterministic episodes (``a = a_max·tanh(μ)``) per evaluation."""
    sac: SACConfig = field(default_factory=SACConfig)
    """The SAC learner's hyper-parameters."""
    phases: PhaseConfig = field(default_factory=PhaseConfig)
    """The stabilisation phases' settings (used by SPEQ-O2O and SOPE runs)."""
    sample_seed: int = 0
    """Salt of every run's batch/noise/split/eval streams (each also keyed by the run's seed)."""
    reward_shift: float = 0.0
    """Added to every reward the learner trains on (online and prior); evaluation returns stay in the environment's
    units. Lesson 03.3 shifts Pendulum's rewards (in [−16.3, 0]) to be positive, so Q > 0 as on MuJoCo."""
    share_prefix: bool = False
    """Train runs that are identical until the first phase (same seed and prior data; the arms differ only in
    their phases) once, and copy them there (environments by ``copy.deepcopy``): the same numbers, bit for bit,
    for less compute. Off when checkpointing; lessons 03.3 and 03.4 turn it on at toy scale (Pendulum-v1, checked
    by a test)."""
    checkpoint_dir: "str | None" = None
    """Atomic checkpoints at eval points go here; training resumes from the latest (None: no checkpoints)."""
    show_progress: bool = True
    """Show a progress bar over environment steps."""

    @classmethod
    def for_scale(cls, scale) -> "TrainConfig":
        """The lessons' Pendulum-v1 settings on the scale ladder (toy: 2×64 nets, 64+64 batches, lr 1e−3, no dropout).

        Deviations from the paper, for a one-minute CPU budget: widths 64 (paper 256), batches 64+64 (256+256),
        lr 1e−3 (3e−4), critic dropout 0 (Pendulum has no table entry; Hopper's is 0.001), 500 warm-up steps (5000),
        3000 steps evaluated every 250 on 2 episodes, phases every 500 steps of at most 2000 updates.
        ``full`` keeps the paper's networks and batches and runs 20k steps. A lesson changes what it needs
        with ``dataclasses.replace`` in its own ``for_scale`` (``prior_study.PriorDataLessonConfig``, ``StabilisationLessonConfig``,
        ``benchmark.BenchmarkLessonConfig``).
        """
        from hdai_lessons.core.scale import by_scale

        return by_scale(
            scale,
            smoke=cls(total_steps=300, warmup=100, batch_per_source=16, eval_every=100, eval_episodes=1,
                      sac=SACConfig(hidden=(16, 16), dropout=0.0, lr=1e-3),
                      phases=PhaseConfig(every=100, e_max=40, check_every=10, patience=20, val_batch=16), show_progress=False),
            toy=cls(total_steps=3000, warmup=500, batch_per_source=64, eval_every=250, eval_episodes=2,
                    sac=SACConfig(hidden=(64, 64), dropout=0.0, lr=1e-3),
                    phases=PhaseConfig(every=500, e_max=2000, check_every=100, patience=500, val_batch=64)),
            full=cls(total_steps=20_000, warmup=2000, batch_per_source=256, eval_every=1000, eval_episodes=10,
                     sac=SACConfig(hidden=(256, 256), dropout=0.01, lr=3e-4),
                     phases=PhaseConfig(every=2000, e_max=20_000, check_every=500, patience=5000)),
        )


@dataclass
class TrainResult:
    """Per-run learning curves: every array is ``(R, n_evals)``; ``phases`` holds one ``PhaseLog`` per phase.

    Lessons 03.2–03.4; the curves of SOPE digest, "Toy experiment for the course", plots (b)–(d)."""

    specs: list[RunSpec]
    steps: list[int]
    returns: np.ndarray
    online_updates: np.ndarray
    critic_updates: np.ndarray          # online + stabilisation critic steps
    flops: np.ndarray
    phases: list[PhaseLog]
    state: "dict | None" = None         # {"population", "online", "prior", "use_prior", "gens"} after training

    def rows(self, **match) -> list[int]:
        """Indices of runs whose spec fields equal ``match`` (e.g. ``arm="SOPE"`` or ``name="SPEQ-long"``), in
        seed order, so the rows of two arms pair by seed."""
        rows = [i for i, s in enumerate(self.specs) if all(getattr(s, k) == v for k, v in match.items())]
        return sorted(rows, key=lambda i: self.specs[i].seed)

    def final_return(self, last: int = 3) -> np.ndarray:
        """``(R,)`` mean of the last ``last`` evaluations (the paper averages the last 10)."""
        return self.returns[:, -last:].mean(1)

    def phase_lengths(self) -> np.ndarray:
        """``(R, n_phases)``."""
        return np.array([p.lengths for p in self.phases]).T if self.phases else np.zeros((len(self.specs), 0))


class _State(nn.Module):
    """Everything a checkpoint stores as tensors: the population and the online replay data."""

    def __init__(self, pop: SACPopulation, online: "dict[str, torch.Tensor]"):
        super().__init__()
        self.pop = pop
        for k, v in online.items():                 # the filled rows ``(R, size, ·)`` of each field
            self.register_buffer(f"online_{k}", v, persistent=True)


def _phase_plan(specs: list[RunSpec], cfg: PhaseConfig) -> tuple[torch.Tensor, torch.Tensor]:
    max_len, adaptive = [], []
    for s in specs:
        if s.arm not in ARMS:
            raise ValueError(f"unknown arm {s.arm!r}; choose one of {ARMS}")
        # SAC/SACfD: no phases; SPEQ-O2O: exactly phase_len (default E_max); SOPE: at most phase_len
        max_len.append(0 if s.arm in ("SAC", "SACfD") else (s.phase_len or cfg.e_max))
        adaptive.append(s.arm == "SOPE")
    return torch.tensor(max_len), torch.tensor(adaptive)


def _prior_buffer(specs: list[RunSpec], priors: "dict[str, dict[str, np.ndarray]]") -> tuple["ReplayBuffer | None", torch.Tensor]:
    use = torch.tensor([s.prior is not None and s.arm != "SAC" for s in specs])
    names = [s.prior for s in specs if s.prior is not None and s.arm != "SAC"]
    if not names:
        return None, use
    for n in names:
        if n not in priors:
            raise KeyError(f"prior dataset {n!r} not given; known: {sorted(priors)}")
    n_min = min(len(priors[n]["observations"]) for n in names)
    if any(len(priors[n]["observations"]) != n_min for n in names):
        import warnings
        warnings.warn(f"prior datasets of different sizes in one population are cut to the shortest ({n_min} rows): "
                      "a run's prior then depends on its neighbours; train such arms in separate populations", stacklevel=3)
    per_run = []
    for s, u in zip(specs, use.tolist()):
        arr = to_buffer_arrays(priors[s.prior if u else names[0]])
        per_run.append({k: v[:n_min] for k, v in arr.items()})
    stacked = {k: np.stack([p[k] for p in per_run]) for k in per_run[0]}    # (R, N, ·)
    return ReplayBuffer.from_arrays(stacked, len(specs)), use


def eval_seed(run_seed: int, step: int, episode: int, salt: int = 0) -> int:
    """The initial-state seed of evaluation ``episode`` at ``step`` for a run with seed ``run_seed``.

    Lessons 03.2–03.4; course machinery for paired evaluation states (no paper counterpart)."""
    return derive_seed(run_seed, salt, STREAMS["eval"], step, episode) % (1 << 31)


def _steppers(envs: "list[list]") -> "tuple[list[list], float]":
    """Each env's ``step`` and the episodes' step limit. Episodes that all start together need no per-env
    ``TimeLimit``: when the wrappers are exactly ``gymnasium.make``'s defaults (which pass observations, rewards and
    flags through unchanged once reset), step the bare env and truncate at ``spec.max_episode_steps`` here, the
    same results with less Python per step; otherwise step through the wrappers (limit ∞)."""
    e0 = envs[0][0]
    limit = getattr(e0.spec, "max_episode_steps", None)
    if has_make_wrappers(e0) and limit:
        return [[e.unwrapped.step for e in row] for row in envs], float(limit)
    return [[e.step for e in row] for row in envs], float("inf")


def evaluate(pop: SACPopulation, env_id: str, episodes: int, step: int) -> np.ndarray:
    """``(R,)`` mean return of ``episodes`` deterministic episodes per run (all ``R·E`` envs step together).

    Run ``r``'s episodes start from states seeded by ``eval_seed(pop.seeds[r], step, j)``: its own, shared
    only with the runs of the same seed (other arms), so arms are compared on the same start states. Pendulum-v1
    and MountainCarContinuous-v0 step all ``R·E`` episodes as arrays (``batched_envs``: the same numbers).

    Lessons 03.2–03.4; SOPE digest, "Evaluation metric" (deterministic episodes, action = tanh(μ)) and the pseudo-code
    line "every 1000 steps: evaluate 10 deterministic episodes"."""
    R = pop.R
    envs = [[make_env(env_id) for _ in range(episodes)] for _ in range(R)]
    obs = np.stack([np.stack([e.reset(seed=eval_seed(pop.seeds[r], step, j, pop.salt))[0] for j, e in enumerate(row)])
                    for r, row in enumerate(envs)])
    steppers, limit = _steppers(envs)
    ret = np.zeros((R, episodes))
    alive = np.ones((R, episodes), dtype=bool)
    t = 0
    batched = batched_dynamics(env_id, [e for row in envs for e in row]) if limit < float("inf") else None
    while alive.any():
        act = pop.act(torch.as_tensor(obs, dtype=torch.float32), deterministic=True).numpy()   # (R, E, a)
        t += 1
        if batched is not None:                      # every env in one array step: the same numbers
            o2, rew, term = batched.step(act.reshape(R * episodes, -1))
            obs = np.where(alive[..., None], o2.reshape(obs.shape), obs)
            ret += np.where(alive, rew.reshape(R, episodes), 0.0)
            alive &= ~(term.reshape(R, episodes) | (t >= limit))
            continue
        for r in range(R):
            for j in range(episodes):
                if alive[r, j]:
                    o2, rew, term, trunc, _ = steppers[r][j](act[r, j])
                    obs[r, j] = o2
                    ret[r, j] += rew
                    alive[r, j] = not (term or trunc or t >= limit)
    for row in envs:
        for e in row:
            e.close()
    return ret.mean(1)


def prefix_key(spec: RunSpec) -> tuple:
    """What decides a run's numbers until its first phase: its seed, the prior data it uses (SAC uses none) and its τ.
    Runs with the same key are identical until then, whatever their arm (``share_prefix``)."""
    return spec.seed, spec.prior if (spec.prior is not None and spec.arm != "SAC") else None, spec.tau


def _fork_plan(specs: list[RunSpec], cfg: TrainConfig) -> "tuple[list[int], list[int], int] | None":
    """``(lead, src, t_fork)`` when some runs are identical until the first phase, else None.

    Runs with the same seed and the same prior data (or none) share initial weights, generators, warm-up data
    and every update until the first phase, whatever their arm; ``lead`` holds the first run of each such group,
    ``src[r]`` the position in ``lead`` of run ``r``'s group and ``t_fork`` the step of the first phase."""
    if not cfg.share_prefix or cfg.checkpoint_dir:
        return None
    max_len, _ = _phase_plan(specs, cfg.phases)
    every = cfg.phases.every
    t_fork = (cfg.warmup // every + 1) * every                  # the first t > warmup with t % every == 0
    if int(max_len.max()) <= 0 or t_fork > cfg.total_steps:
        return None
    lead, pos, src = [], {}, []
    for i, s in enumerate(specs):
        key = prefix_key(s)
        if key not in pos:
            pos[key] = len(lead)
            lead.append(i)
        src.append(pos[key])
    return (lead, src, t_fork) if len(lead) < len(specs) else None


def _clone_generator(g: torch.Generator) -> torch.Generator:
    out = torch.Generator()
    out.set_state(g.get_state())
    return out


def train_population(specs: list[RunSpec], cfg: TrainConfig, priors: "dict[str, dict[str, np.ndarray]] | None" = None) -> TrainResult:
    """Train every run in ``specs`` for ``cfg.total_steps`` environment steps; return their curves.

    ``parallel.train_sharded`` gives the same result, bit for bit, with the runs split over several processes.

    Lessons 03.2–03.4; SOPE digest, "Algorithm (pseudo-code)" (the whole loop; "Notes on the loop" for SPEQ-O2O and
    SACfD)."""
    priors = priors or {}
    all_specs, fork = specs, _fork_plan(specs, cfg)
    if fork is not None:                      # train one run per group until the first phase, then copy it
        lead, src, t_fork = fork
        specs = [all_specs[i] for i in lead]
    R = len(specs)
    envs = [make_env(cfg.env_id) for _ in specs]
    obs_dim = envs[0].observation_space.shape[0]
    act_dim = envs[0].action_space.shape[0]
    act_max = float(envs[0].action_space.high[0])
    pop = SACPopulation([s.seed for s in specs], obs_dim, act_dim, act_max, cfg.sac, salt=cfg.sample_seed,
                        taus=[cfg.sac.tau if s.tau is None else s.tau for s in specs])
    online = ReplayBuffer(R, cfg.total_steps, obs_dim, act_dim)
    prior, use_prior = _prior_buffer(specs, priors)
    if prior is not None and cfg.reward_shift:
        prior.data["rew"] += cfg.reward_shift
    max_len, adaptive = _phase_plan(specs, cfg.phases)
    gens = run_generators([s.seed for s in specs], "batch", cfg.sample_seed)   # each run's replay sampler
    rngs = [np.random.default_rng(s.seed) for s in specs]
    dims = NetDims(obs_dim, act_dim, tuple(cfg.sac.hidden), cfg.sac.n_critics)
    hist = {"steps": [], "returns": [], "online": [], "critic": [], "flops": []}
    n_online = np.zeros(R, dtype=np.int64)
    n_stab = np.zeros(R, dtype=np.int64)
    n_val_states = np.zeros(R, dtype=np.int64)
    phase_logs: list[PhaseLog] = []
    start = 1
    saved_extra = checkpoint_extra(cfg.checkpoint_dir) if cfg.checkpoint_dir else None   # verified, or None
    if saved_extra is not None:
        n_saved = saved_extra["online_size"]
        if n_saved > cfg.total_steps:
            raise ValueError(f"checkpoint in {cfg.checkpoint_dir} holds {n_saved} steps, more than total_steps={cfg.total_steps}")
        holder = {k: torch.zeros(R, n_saved, *v.shape[2:]) for k, v in online.data.items()}
        meta = load_checkpoint(cfg.checkpoint_dir, _State(pop, holder), pop.opt)
        if meta is not None:
            ex = meta["extra"]
            for k, v in holder.items():
                online.data[k][:, :n_saved] = v
            online.size = n_saved
            online.restore()
            start = meta["step"] + 1
            hist = ex["hist"]
            n_online, n_stab, n_val_states = (np.array(ex[k], dtype=np.int64) for k in ("n_online", "n_stab", "n_val"))
            phase_logs = [PhaseLog(**p) for p in ex["phases"]]
            if "gens" not in ex:
                raise ValueError(f"the checkpoint in {cfg.checkpoint_dir} predates per-run generators (one shared "
                                 "sampler); it cannot be resumed exactly: start a new checkpoint_dir")
            set_states(gens, ex["gens"])
            set_states(pop.gens, ex["noise_gens"])
            for r, st in zip(rngs, ex["rngs"]):
                r.bit_generator.state = st
    obs = np.stack([e.reset(seed=s.seed * 1_000_003 + start)[0] for e, s in zip(envs, specs)])
    steps = range(start, cfg.total_steps + 1)
    for t in progress(steps, desc="env steps", total=len(steps)) if cfg.show_progress else steps:
        if fork is not None and t == t_fork:  # copy every run's state (weights, optimiser, buffers, generators, env)
            specs, R = all_specs, len(all_specs)
            old_envs, envs = envs, [copy.deepcopy(envs[j]) for j in src]
            for e in old_envs:
                e.close()
            obs, rngs, gens = obs[src], [copy.deepcopy(rngs[j]) for j in src], [_clone_generator(gens[j]) for j in src]
            pop = pop.select(src)
            pop.gens = [_clone_generator(g) for g in pop.gens]
            online = online.select(src)
            if prior is not None:
                prior = prior.select(src)
            use_prior = use_prior[src]                                  # the same within a group
            max_len, adaptive = _phase_plan(specs, cfg.phases)          # the arms' own phases from here on
            n_online, n_stab, n_val_states = n_online[src], n_stab[src], n_val_states[src]
            hist = {k: v if k == "steps" else [[row[j] for j in src] for row in v] for k, v in hist.items()}
        if t <= cfg.warmup:
            act = np.stack([rng.uniform(-act_max, act_max, size=act_dim) for rng in rngs])
        else:
            act = pop.act(torch.as_tensor(obs, dtype=torch.float32).unsqueeze(1))[:, 0].numpy()     # (R, a)
        nxt, rew, term = np.empty_like(obs), np.zeros(R), np.zeros(R)
        done = np.zeros(R, dtype=bool)
        for r, e in enumerate(envs):
            o2, rew[r], te, tr, _ = e.step(act[r])
            nxt[r], term[r], done[r] = o2, float(te), te or tr      # store termination, never truncation
        online.add(obs, act, rew + cfg.reward_shift, nxt, term)
        for r, e in enumerate(envs):
            obs[r] = e.reset(seed=specs[r].seed * 1_000_003 + t)[0] if done[r] else nxt[r]
        if t > cfg.warmup and t % cfg.phases.every == 0 and int(max_len.max()) > 0:
            log = run_phase(pop, online, prior, max_len, adaptive, cfg.phases, cfg.batch_per_source, gens, use_prior, t)
            phase_logs.append(log)
            n_stab += np.array(log.lengths)
            v_on, v_off = validation_sizes(online.size, prior.size if prior is not None else 0, cfg.phases.val_frac, cfg.phases.val_batch)
            n_val_states += adaptive.numpy() * (v_on + v_off) * np.array(log.checks)     # the checks each run used
        if t > cfg.warmup:
            pop.update(symmetric_batch(online, prior, cfg.batch_per_source, gens, use_prior))
            n_online += 1
        if t % cfg.eval_every == 0:
            hist["steps"].append(t)
            hist["returns"].append(evaluate(pop, cfg.env_id, cfg.eval_episodes, t).tolist())
            hist["online"].append(n_online.tolist())
            hist["critic"].append((n_online + n_stab).tolist())
            hist["flops"].append([float(total_flops(dims, int(a), int(b), int(c), batch=2 * cfg.batch_per_source))
                                  for a, b, c in zip(n_online, n_stab, n_val_states)])
            if cfg.checkpoint_dir:
                extra = {"online_size": online.size, "hist": hist, "n_online": n_online.tolist(), "n_stab": n_stab.tolist(),
                         "n_val": n_val_states.tolist(), "phases": [asdict(p) for p in phase_logs],
                         "gens": get_states(gens), "noise_gens": get_states(pop.gens),
                         "rngs": [r.bit_generator.state for r in rngs],
                         "specs": [asdict(s) for s in specs]}
                json.dumps(extra)   # fail here, not half-way through a write, if something is not JSON
                filled = {k: v[:, : online.size] for k, v in online.data.items()}
                save_checkpoint(cfg.checkpoint_dir, t, _State(pop, filled), pop.opt, extra=extra)
    for e in envs:
        e.close()
    T = lambda k: np.array(hist[k], dtype=np.float64).T.reshape(R, -1)   # (R, n_evals)
    state_out = {"population": pop, "online": online, "prior": prior, "use_prior": use_prior, "gens": gens}
    return TrainResult(specs, list(hist["steps"]), T("returns"), T("online"), T("critic"), T("flops"), phase_logs, state_out)


def summarise(result: TrainResult, last: int = 2) -> dict[str, dict[str, float]]:
    """Per run name (``RunSpec.name``), across seeds: final return (mean of the last ``last`` evaluations),
    its across-seed sd, the mean return after warm-up (AUC), critic updates, online updates and TFLOPs.

    Lessons 03.2–03.3; final return as in SOPE digest, "Evaluation metric" (the paper averages the last 10
    evaluations), updates and TFLOPs as in "Compute accounting"."""
    out: dict[str, dict[str, float]] = {}
    final = result.final_return(last)
    for name in dict.fromkeys(s.name for s in result.specs):
        rows = [i for i, s in enumerate(result.specs) if s.name == name]
        out[name] = {
            "final": float(final[rows].mean()), "final_sd": float(final[rows].std()),
            "auc": float(result.returns[rows].mean()), "critic_updates": float(result.critic_updates[rows, -1].mean()),
            "online_updates": float(result.online_updates[rows, -1].mean()), "tflops": float(result.flops[rows, -1].mean() / 1e12),
            "n_seeds": len(rows),
        }
    return out


@dataclass
class StabilisationLessonConfig:
    """Lesson 03.3's sizes: one long phase traced in detail (raw Pendulum rewards), then SACfD vs SPEQ-O2O (fixed
    phases of SOPE's maximum length) vs SOPE in the regime where SOPE can adapt (the SOPE digest's "Toy experiment for the
    course", plots (a), (b) and (d))."""

    train: TrainConfig = field(default_factory=lambda: _adaptive_regime(_lesson_toy()))
    """The arms' online loop: rewards shifted by +16.3 (Q > 0, below its fixed point at a phase's start), γ = 0.95
    and τ = 0.04, so policy evaluation takes about 1/((1−γ)τ) = 500 critic updates, half of E_max = 1000; phases
    every 500 steps, m = 50, P = 250 (its ``phases`` also set the traced phase's check interval, patience and ε)."""
    study_train: TrainConfig = field(default_factory=lambda: replace(TrainConfig.for_scale("toy"), total_steps=1500,
                                                                     eval_every=1500))
    """The SACfD warm-up run whose buffers and critics the traced phase starts from (toy: 1500 steps, raw rewards,
    γ = 0.99, τ = 0.005)."""
    n_study: int = 2000
    """Critic-only updates of the traced phase (never stopped, so any patience can be replayed; toy: 2·E_max)."""
    n_seeds: int = 4
    """Paired seeds per arm: ``ctx.seed, ctx.seed + 1, …``."""
    long_phase: int = 1000
    """SPEQ-long's fixed phase length, and SOPE's maximum E_max."""

    @classmethod
    def for_scale(cls, scale) -> "StabilisationLessonConfig":
        from hdai_lessons.core.scale import by_scale

        smoke, full = TrainConfig.for_scale("smoke"), TrainConfig.for_scale("full")
        shared = lambda c: replace(_adaptive_regime(c), share_prefix=True)
        return by_scale(scale, smoke=cls(train=shared(smoke), study_train=smoke, n_study=60, n_seeds=2, long_phase=40),
                        toy=cls(),
                        full=cls(train=shared(full), study_train=full, n_study=40_000, n_seeds=5,
                                 long_phase=20_000))


def _lesson_toy() -> TrainConfig:
    """The toy loop with lesson 03.3's phases: every 500 steps, E_max = 1000, m = 50, P = 250, 2500 steps, 4 episodes."""
    toy = TrainConfig.for_scale("toy")
    return replace(toy, total_steps=2500, eval_episodes=4, share_prefix=True,
                   phases=replace(toy.phases, e_max=1000, check_every=50, patience=250))


def _adaptive_regime(cfg: TrainConfig) -> TrainConfig:
    """``cfg`` in the regime where SOPE can adapt (lesson 03.3, section 5): Pendulum's rewards shifted to be positive
    (+16.3, so Q > 0 and a critic starts a phase below its fixed point), γ = 0.95, and τ chosen so that policy
    evaluation, about ``1/((1−γ)τ)`` critic updates, fits in half of E_max: ``τ = 2/((1−γ)·E_max)``, at most 0.04
    and at least the paper's 0.005 (toy: E_max = 1000 → τ = 0.04; full: E_max = 20,000 → 0.005)."""
    gamma = 0.95
    tau = round(min(0.04, max(0.005, 2.0 / ((1.0 - gamma) * cfg.phases.e_max))), 6)
    return replace(cfg, reward_shift=16.3, sac=replace(cfg.sac, gamma=gamma, tau=tau))
