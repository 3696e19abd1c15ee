"""Prior data made offline (lessons 03.2–03.4): scripted controllers, npz in the D4RL layout, Minari.

- ``pendulum_swingup_action``: an energy-pumping swing-up with a PD hold at the top for
  ``Pendulum-v1``, plus Gaussian action noise — σ = 0.1 gives "expert-like" data; σ = 1.0 with 80 % of
  actions replaced by random ones gives "poor" data (σ = 1.0 alone barely hurts this controller).
- ``collect``: roll any policy in a gymnasium environment into D4RL-layout arrays
  (``observations, actions, rewards, next_observations, terminals, timeouts``).
- ``save_npz`` / ``load_npz``: plain ``.npz`` files (``allow_pickle=False``), the course's shipped format.
- ``mountaincar_bang_bang_action``: push in the direction of motion ("bang-bang") for ``MountainCarContinuous-v0``,
  a task whose reward a random policy almost never finds (lesson 03.2's exploration task).
- ``build_pendulum_expert`` / ``build_pendulum_poor`` / ``build_mountaincar_expert``: the manifest generators of
  ``data/sope/``.
- ``episodes_to_transitions``: Minari episodes (``T+1`` observations) → D4RL transitions.
- ``load_minari``: the real Minari ``mujoco/<env>/<quality>-v0`` datasets at full scale (lazy import).
- ``make_env``: ``gymnasium.make`` with a clear message when the MuJoCo extra is missing.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

MUJOCO_HINT = "install the MuJoCo extra: pip install -e .[mujoco]   (gymnasium[mujoco] + minari)"
D4RL_KEYS = ("observations", "actions", "rewards", "next_observations", "terminals", "timeouts")

# Pendulum-v1 physics (gymnasium): θ̈ = 3g/(2l)·sin θ + 3/(m l²)·u, θ = 0 upright, |u| ≤ 2.
_K = 3 * 10.0 / 2.0


def pendulum_swingup_action(obs: np.ndarray, noise: float, rng: np.random.Generator, random_frac: float = 0.0) -> np.ndarray:
    """Scripted controller for ``Pendulum-v1``; ``obs (E, 3) = [cos θ, sin θ, θ̇]`` → actions ``(E, 1)`` in [−2, 2].

    Energy ``E = ½θ̇² + K cos θ`` (``K = 3g/2l``) equals ``K`` at rest upright and ``dE/dt = 3 θ̇ u``, so
    pumping ``u = 2·sign(θ̇)`` raises it; within ~0.6 rad of the top a PD law holds the pole.

    Lessons 03.2–03.4; the prior data of the SOPE digest, "Toy experiment for the course" (a scripted energy-pumping
    swing-up with a PD hold).
    """
    cos, sin, thdot = obs[:, 0], obs[:, 1], obs[:, 2]
    th = np.arctan2(sin, cos)
    energy = 0.5 * thdot**2 + _K * cos
    pump = np.where(energy < _K, 2.0 * np.where(thdot >= 0, 1.0, -1.0), -0.5 * thdot)
    hold = -(12.0 * th + 2.5 * thdot)
    u = np.where((np.abs(th) < 0.6) & (np.abs(thdot) < 4.0), hold, pump)
    u = u + noise * rng.standard_normal(u.shape)
    if random_frac > 0:
        u = np.where(rng.random(u.shape) < random_frac, rng.uniform(-2.0, 2.0, u.shape), u)
    return np.clip(u, -2.0, 2.0)[:, None]


def mountaincar_bang_bang_action(obs: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    """Scripted controller for ``MountainCarContinuous-v0``; ``obs (E, 2) = [position, velocity]`` → ``(E, 1)`` in [−1, 1].

    Full force in the direction the car already moves, ``a = sign(velocity)`` (``+1`` at rest), plus Gaussian
    noise of scale ``noise``. The engine is too weak to drive up the right hill directly; pushing along the
    velocity adds energy on every swing (the work ``a·v ≥ 0``), so the car rocks higher each time and reaches
    the flag (position ≥ 0.45) in about 100 steps. Each step costs ``0.1·a²`` and the flag pays ``+100``, so an
    episode returns about 90, while an agent that never finds the flag learns to keep ``a ≈ 0`` (return 0).

    Lesson 03.2; the SOPE digest's optional exploration demo ("Toy experiment for the course": ``MountainCarContinuous-v0``
    with a bang-bang prior ``a = sign(velocity)`` plus noise).
    """
    vel = obs[:, 1]
    u = np.where(vel >= 0, 1.0, -1.0) + noise * rng.standard_normal(vel.shape)
    return np.clip(u, -1.0, 1.0)[:, None]


def make_env(env_id: str, **kwargs):
    """``gymnasium.make(env_id)``; MuJoCo tasks without the extra raise ``ImportError`` naming the fix.

    Lessons 03.2–03.4; course machinery (SOPE digest, "Benchmark": Gymnasium MuJoCo ``-v5`` at full scale)."""
    import gymnasium as gym

    try:
        return gym.make(env_id, **kwargs)
    except Exception as err:  # gymnasium raises DependencyNotInstalled for missing mujoco
        if "mujoco" in f"{type(err).__name__} {err}".lower():
            raise ImportError(f"{env_id} needs MuJoCo, which is not installed; {MUJOCO_HINT}") from None
        raise


def collect(env_id: str, policy: Callable[[np.ndarray, np.random.Generator], np.ndarray], n_episodes: int,
            seed: int, n_envs: int = 10) -> dict[str, np.ndarray]:
    """Roll ``policy(obs (E, o), rng) → (E, a)`` for ``n_episodes`` episodes; D4RL-layout arrays ``(N, ·)``.

    Episodes run ``n_envs`` at a time; ``terminals`` is the termination flag, ``timeouts`` truncation.

    Lessons 03.2–03.4; prior data in the D4RL layout (SOPE digest, "Toy experiment for the course").
    """
    rng = np.random.default_rng(seed)
    out: dict[str, list] = {k: [] for k in D4RL_KEYS}
    done_eps = 0
    while done_eps < n_episodes:
        k = min(n_envs, n_episodes - done_eps)
        envs = [make_env(env_id) for _ in range(k)]
        obs = np.stack([e.reset(seed=seed * 100_000 + done_eps + i)[0] for i, e in enumerate(envs)])
        alive = np.ones(k, dtype=bool)
        per_env: list[dict[str, list]] = [{key: [] for key in D4RL_KEYS} for _ in range(k)]
        while alive.any():
            act = policy(obs, rng)                                  # (k, a)
            for i, e in enumerate(envs):
                if not alive[i]:
                    continue
                o2, r, term, trunc, _ = e.step(act[i])
                for key, v in zip(D4RL_KEYS, (obs[i], act[i], r, o2, term, trunc)):
                    per_env[i][key].append(np.array(v, dtype=np.float32))   # a copy, not a view
                obs[i] = o2
                alive[i] = not (term or trunc)
        for e, ep in zip(envs, per_env):                            # episodes stay contiguous
            e.close()
            for key in D4RL_KEYS:
                out[key].extend(ep[key])
        done_eps += k
    return {key: np.stack(v) for key, v in out.items()}


def episode_returns(data: dict[str, np.ndarray]) -> np.ndarray:
    """``(n_episodes,)`` undiscounted returns, splitting at ``terminals | timeouts``.

    Lessons 03.2 and 03.4; ``R_exp`` is a dataset's mean episode return (SOPE digest, "Evaluation metric")."""
    ends = np.flatnonzero((data["terminals"] > 0) | (data["timeouts"] > 0))
    starts = np.concatenate([[0], ends[:-1] + 1])
    return np.array([data["rewards"][s:e + 1].sum() for s, e in zip(starts, ends)])


def save_npz(path: "str | Path", data: dict[str, np.ndarray]) -> None:
    """D4RL-layout arrays to a compressed ``.npz`` (float32, no pickle): the course's shipped prior format.

    Lessons 03.2–03.4; SOPE digest, "Toy experiment for the course" (plain ``.npz`` files)."""
    missing = [k for k in D4RL_KEYS if k not in data]
    if missing:
        raise ValueError(f"D4RL-layout data needs {missing}")
    np.savez_compressed(path, **{k: np.asarray(data[k], dtype=np.float32) for k in D4RL_KEYS})


def load_npz(path: "str | Path") -> dict[str, np.ndarray]:
    """D4RL-layout arrays from an ``.npz`` (no pickle).

    Lessons 03.2–03.4; the course's shipped prior data (SOPE digest, "Toy experiment for the course")."""
    with np.load(path, allow_pickle=False) as z:
        missing = [k for k in D4RL_KEYS if k not in z.files]
        if missing:
            raise ValueError(f"{path} is not a D4RL-layout npz: it lacks {missing}")
        return {k: z[k] for k in D4RL_KEYS}


def to_buffer_arrays(data: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """D4RL names → the replay buffer's field names (``obs, act, rew, next_obs, term``).

    Lessons 03.2–03.4; ``D_off`` of the SOPE digest ("Symbols")."""
    return {"obs": data["observations"], "act": data["actions"].reshape(len(data["actions"]), -1),
            "rew": data["rewards"].reshape(-1), "next_obs": data["next_observations"],
            "term": data["terminals"].reshape(-1).astype(np.float32)}


def _pendulum_builder(noise: float, random_frac: float, n_episodes: int = 20):
    def build(out_path: Path, seed: int) -> None:
        data = collect("Pendulum-v1", lambda o, rng: pendulum_swingup_action(o, noise, rng, random_frac), n_episodes, seed)
        save_npz(out_path, data)
    return build


build_pendulum_expert = _pendulum_builder(0.1, 0.0)
build_pendulum_expert.__doc__ = "Manifest generator: 20 Pendulum-v1 episodes (4000 transitions) of the scripted swing-up, σ = 0.1."
build_pendulum_poor = _pendulum_builder(1.0, 0.8)
build_pendulum_poor.__doc__ = ("Manifest generator: 20 Pendulum-v1 episodes of the swing-up with σ = 1.0 noise and 80 % "
                               "of actions replaced by uniform-random ones (a poor, near-random prior).")


def build_mountaincar_expert(out_path: Path, seed: int) -> None:
    """Manifest generator: 20 ``MountainCarContinuous-v0`` episodes of the bang-bang controller, noise 0.1.

    Lesson 03.2; SOPE digest, "Toy experiment for the course" (the MountainCarContinuous bang-bang prior)."""
    data = collect("MountainCarContinuous-v0", lambda o, rng: mountaincar_bang_bang_action(o, 0.1, rng), 20, seed)
    save_npz(out_path, data)


def episodes_to_transitions(observations: "list[np.ndarray]", actions: "list[np.ndarray]", rewards: "list[np.ndarray]",
                            terminations: "list[np.ndarray]", truncations: "list[np.ndarray]") -> dict[str, np.ndarray]:
    """Minari episodes → D4RL transitions.

    Each episode ``i`` has ``observations[i]`` of shape ``(T_i + 1, o)`` and ``actions (T_i, a)``,
    ``rewards / terminations / truncations (T_i,)``; transition ``t`` is ``(o_t, a_t, r_t, o_{t+1})``.
    Returns arrays with ``N = Σ T_i`` rows.

    Lesson 03.4 (exercise 03.4.3); the Minari data path of the SOPE digest ("Benchmark").
    """
    out: dict[str, list] = {k: [] for k in D4RL_KEYS}
    for obs, act, rew, term, trunc in zip(observations, actions, rewards, terminations, truncations):
        T = len(act)
        if len(obs) != T + 1:
            raise ValueError(f"an episode with {T} actions needs {T + 1} observations, got {len(obs)}")
        out["observations"].append(obs[:-1])          # (T, o)
        out["next_observations"].append(obs[1:])      # (T, o)
        out["actions"].append(np.asarray(act).reshape(T, -1))
        out["rewards"].append(rew)
        out["terminals"].append(term)
        out["timeouts"].append(trunc)
    return {k: np.concatenate(v).astype(np.float32) for k, v in out.items()}


def load_minari(dataset_id: str, download: bool = False) -> dict[str, np.ndarray]:
    """A Minari dataset (e.g. ``"mujoco/hopper/expert-v0"``) as D4RL-layout arrays (full scale).

    Offline and not downloaded → ``FileNotFoundError`` naming ``hdai-lessons fetch 03.4``.

    Lesson 03.4; SOPE digest, "Benchmark" (Minari ``mujoco/<env>/<quality>-v0``).
    """
    try:
        import minari
    except ImportError:
        raise ImportError(f"loading {dataset_id} needs minari; {MUJOCO_HINT}") from None
    try:
        ds = minari.load_dataset(dataset_id, download=download)
    except Exception as err:
        raise FileNotFoundError(
            f"Minari dataset {dataset_id} is not available locally ({type(err).__name__}). On a machine with "
            f"network run: hdai-lessons fetch 03.4") from None
    eps = list(ds.iterate_episodes())
    return episodes_to_transitions([e.observations for e in eps], [e.actions for e in eps], [e.rewards for e in eps],
                                   [e.terminations for e in eps], [e.truncations for e in eps])


def random_policy_return(env_id: str, n_episodes: int, seed: int) -> float:
    """Mean return of a uniform-random policy (``R_rand`` of the paper's normalised score).

    Lesson 03.4; SOPE digest, "Evaluation metric" (``R_rand``: a uniform-random policy)."""
    env = make_env(env_id)
    space = env.action_space
    env.close()
    low, high = space.low, space.high
    data = collect(env_id, lambda o, rng: rng.uniform(low, high, size=(o.shape[0], len(low))), n_episodes, seed)
    return float(episode_returns(data).mean())
