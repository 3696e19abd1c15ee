"""Pendulum-v1 and MountainCarContinuous-v0 stepped as arrays give gymnasium's numbers bit for bit."""
import gymnasium as gym
import numpy as np
import pytest
import torch

from hdai_lessons.sope import train
from hdai_lessons.sope.batched_envs import batched_dynamics
from hdai_lessons.sope.sac import SACConfig, SACPopulation


def _edge_states(env_id: str, n: int) -> "list[tuple | None]":
    """States on the boundaries the step clips at (None: keep the reset state)."""
    if env_id == "MountainCarContinuous-v0":
        f = np.float32
        rows = [(0.45, 0.0), (float(np.nextafter(f(0.45), f(0))), 0.01), (0.5999, 0.0699), (-1.1999, -0.0699),
                (-1.2, -0.07), (0.44, 0.07), (0.0, 0.06999), (-0.5236, 0.0), (0.45, 0.069999995)]
    else:
        rows = [(np.pi, 8.0), (-np.pi, -8.0), (3 * np.pi, 7.99), (0.0, 0.0), (1e-9, -7.999999)]
    return rows + [None] * (n - len(rows))


@pytest.mark.parametrize("env_id", ["Pendulum-v1", "MountainCarContinuous-v0"])
def test_array_step_is_gymnasiums_step_bit_for_bit(env_id):
    n, steps = 40, 300
    envs = [gym.make(env_id) for _ in range(n)]
    for i, (e, s) in enumerate(zip(envs, _edge_states(env_id, n))):
        e.reset(seed=1000 + i)
        if s is not None:                             # in the dtype a reset leaves (float64 for both tasks)
            e.unwrapped.state = np.array(s, dtype=np.asarray(e.unwrapped.state).dtype)
    batched = batched_dynamics(env_id, envs)
    assert batched is not None
    rng = np.random.default_rng(0)
    high = float(envs[0].action_space.high[0])
    for t in range(steps):
        act = rng.uniform(-1.6 * high, 1.6 * high, size=(n, 1)).astype(np.float32)   # a third outside the bounds
        act[t % n] = high                                                          # exactly on a bound
        act[(t + 1) % n] = -high
        obs, rew, term = batched.step(act)
        for i, e in enumerate(envs):
            o, r, te, tr, _ = e.unwrapped.step(act[i])
            assert o.dtype == obs.dtype and np.array_equal(o, obs[i]), (t, i, o, obs[i])
            assert r == rew[i] and bool(te) == bool(term[i]) and not tr, (t, i, r, rew[i], te, term[i])


def test_only_known_tasks_with_the_default_wrappers_are_batched():
    assert batched_dynamics("CartPole-v1", [gym.make("CartPole-v1")]) is None
    wrapped = gym.wrappers.ClipAction(gym.make("Pendulum-v1"))
    wrapped.reset(seed=0)
    assert batched_dynamics("Pendulum-v1", [wrapped]) is None
    assert batched_dynamics("Pendulum-v1", []) is None


@pytest.mark.parametrize("env_id", ["Pendulum-v1", "MountainCarContinuous-v0"])
def test_evaluation_returns_are_the_same_with_and_without_the_array_step(env_id, monkeypatch):
    env = gym.make(env_id)
    pop = SACPopulation([0, 1, 2], env.observation_space.shape[0], env.action_space.shape[0],
                        float(env.action_space.high[0]), SACConfig(hidden=(16, 16), dropout=0.0))
    with torch.no_grad():                    # a policy that pushes hard, so MountainCar episodes end at the flag
        for p in pop.actor.parameters():
            p.mul_(4.0)
    fast = train.evaluate(pop, env_id, 3, step=0)
    monkeypatch.setattr(train, "batched_dynamics", lambda *a, **k: None)
    slow = train.evaluate(pop, env_id, 3, step=0)
    np.testing.assert_array_equal(fast, slow)
