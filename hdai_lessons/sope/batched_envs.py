"""Gymnasium's Pendulum-v1 and MountainCarContinuous-v0 stepped as arrays, for evaluation.

Evaluation runs ``R·E`` deterministic episodes in lockstep (``train.evaluate``); gymnasium steps one environment
per Python call, and for these two classic-control tasks that call, not the policy, is most of an evaluation's
cost. ``batched_dynamics`` reads the state of every freshly reset environment and steps them all at once with
gymnasium's own equations, written operation for operation in the dtypes gymnasium's scalar code ends up in
(NumPy ≥ 2 promotion: a Python float meets a float32 as a float32), so observations, rewards and termination flags
are bit-identical to stepping the environments (``tests/test_sope_batched_envs.py`` checks this against gymnasium
on random and saturated actions). Any other task, wrapper stack or NumPy falls back to stepping the environments.

Lessons 03.2–03.4 (course machinery: the paper evaluates with gymnasium's environments, one at a time).
"""
from __future__ import annotations

import math

import numpy as np

MAKE_WRAPPERS = ("TimeLimit", "OrderEnforcing", "PassiveEnvChecker")
"""The wrappers ``gymnasium.make`` puts around an environment, outermost first."""
f32 = np.float32


def has_make_wrappers(env) -> bool:
    """Whether ``env`` is wrapped in exactly ``gymnasium.make``'s defaults (``MAKE_WRAPPERS``), which pass
    observations, rewards and flags through unchanged once reset."""
    chain = []
    while hasattr(env, "env"):
        chain.append(type(env).__name__)
        env = env.env
    return tuple(chain) == MAKE_WRAPPERS


class _Pendulum:
    """``gymnasium.envs.classic_control.PendulumEnv.step`` on ``N`` states ``(θ, θ̇)`` (float64)."""

    def __init__(self, bare: list):
        e = bare[0]
        self.g, self.m, self.l, self.dt = e.g, e.m, e.l, e.dt
        self.max_speed, self.max_torque = e.max_speed, e.max_torque
        state = np.stack([np.asarray(b.state, dtype=np.float64) for b in bare])     # (N, 2)
        self.th, self.thdot = state[:, 0].copy(), state[:, 1].copy()

    def step(self, action: np.ndarray) -> "tuple[np.ndarray, np.ndarray, np.ndarray]":
        th, thdot = self.th, self.thdot
        g, m, l, dt = self.g, self.m, self.l, self.dt
        u = np.clip(action[:, 0], -self.max_torque, self.max_torque)                 # (N,) action dtype
        # gymnasium squares NumPy scalars, which calls C pow/powf: an array's ** 2 (x·x) differs in the last bit
        sq64 = lambda x: np.array([math.pow(v, 2) for v in x.tolist()])             # float64 x ** 2
        u2 = np.array([v**2 for v in u], dtype=u.dtype)                             # float32 x ** 2 (powf)
        costs = sq64(((th + np.pi) % (2 * np.pi)) - np.pi) + 0.1 * sq64(thdot) + 0.001 * u2
        newthdot = thdot + (3 * g / (2 * l) * np.sin(th) + 3.0 / (m * l**2) * u) * dt
        newthdot = np.clip(newthdot, -self.max_speed, self.max_speed)
        self.th, self.thdot = th + newthdot * dt, newthdot
        obs = np.stack([np.cos(self.th), np.sin(self.th), self.thdot], axis=1).astype(np.float32)
        return obs, -costs, np.zeros(len(th), dtype=bool)


class _MountainCarContinuous:
    """``gymnasium.envs.classic_control.Continuous_MountainCarEnv.step`` on ``N`` states (position, velocity).

    The state dtype matters: a reset leaves float64 values, a step stores float32, and gymnasium's scalar code
    computes in that dtype, except where a Python float meets a float32 (a float32) or a clipped force is a
    Python float. The arrays take the same dtype and rounding, element by element."""

    def __init__(self, bare: list):
        e = bare[0]
        self.power, self.max_speed = e.power, e.max_speed
        self.min_action, self.max_action = e.min_action, e.max_action
        self.min_position, self.max_position = e.min_position, e.max_position
        self.goal_position, self.goal_velocity = e.goal_position, e.goal_velocity
        state = np.stack([np.asarray(b.state) for b in bare])                       # (N, 2), one dtype
        self.pos, self.vel = state[:, 0].copy(), state[:, 1].copy()

    def step(self, action: np.ndarray) -> "tuple[np.ndarray, np.ndarray, np.ndarray]":
        a = action[:, 0].astype(np.float32)
        pos, vel = self.pos, self.vel
        D = pos.dtype.type                                                           # float64 after a reset
        # the hill term, 0.0025·cos(3x), in double precision with math.cos as gymnasium computes it
        hill = 0.0025 * np.array([math.cos(x) for x in (D(3) * pos).tolist()])
        # force = min(max(a, min_action), max_action): the action itself (float32) or a Python-float bound
        lo, hi = a < f32(self.min_action), a > f32(self.max_action)
        bound = np.where(hi, self.max_action, self.min_action)
        dv = np.where(lo | hi, (bound * self.power - hill).astype(D),                # Python floats throughout
                      (a * f32(self.power) - hill.astype(np.float32)).astype(D))     # float32 − Python float
        vel = vel + dv
        vel = np.where(vel > D(self.max_speed), D(self.max_speed), vel)
        vel = np.where(vel < D(-self.max_speed), D(-self.max_speed), vel)
        pos = pos + vel
        pos = np.where(pos > D(self.max_position), D(self.max_position), pos)
        pos = np.where(pos < D(self.min_position), D(self.min_position), pos)
        vel = np.where((pos == D(self.min_position)) & (vel < 0), D(0), vel)
        term = (pos >= D(self.goal_position)) & (vel >= D(self.goal_velocity))
        cost = np.array([math.pow(x, 2) * 0.1 for x in a.tolist()])
        reward = np.where(term, 100.0, 0.0) - cost
        self.pos, self.vel = pos.astype(np.float32), vel.astype(np.float32)             # stored as float32
        return np.stack([self.pos, self.vel], axis=1), reward, term


_DYNAMICS = {"Pendulum-v1": _Pendulum, "MountainCarContinuous-v0": _MountainCarContinuous}


def batched_dynamics(env_id: str, envs: list):
    """An object whose ``step(actions (N, a)) → (obs (N, o) float32, reward (N,) float64, terminated (N,) bool)``
    continues the ``N`` freshly reset ``envs`` exactly as their own ``step`` would (no time limit: the caller
    truncates), or ``None`` when ``env_id`` is not one of ``_DYNAMICS``, the wrappers are not ``gymnasium.make``'s
    defaults, or NumPy predates NEP 50 promotion (then step the environments themselves).

    Lessons 03.2–03.4 (``train.evaluate``)."""
    if env_id not in _DYNAMICS or int(np.__version__.split(".")[0]) < 2 or not envs:
        return None
    if not all(has_make_wrappers(e) for e in envs):
        return None
    if len({np.asarray(e.unwrapped.state).dtype for e in envs}) != 1:         # reset and stepped states mixed
        return None
    return _DYNAMICS[env_id]([e.unwrapped for e in envs])
