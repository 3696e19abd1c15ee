"""Lesson 03.2's prior data and study: the MountainCar bang-bang expert, its shipped dataset, the target-network
time constants, and the measured quantities (AUC paired by seed, flag reached)."""
from dataclasses import fields, replace

import numpy as np
import pytest
import torch

from hdai_lessons.core.config import field_docs
from hdai_lessons.core.data import build, data_path
from hdai_lessons.sope.buffers import ReplayBuffer
from hdai_lessons.sope.prior_data import (D4RL_KEYS, collect, episode_returns, load_npz,
                                          mountaincar_bang_bang_action)
from hdai_lessons.sope.prior_study import (FLAG_REWARD, MOUNTAINCAR, PriorDataLessonConfig, auc, flag_reached,
                                           target_time_constants)
from hdai_lessons.sope.sac import polyak_update
from hdai_lessons.sope.train import RunSpec, TrainConfig, TrainResult


def _bang_bang(noise):
    return lambda o, rng: mountaincar_bang_bang_action(o, noise, rng)


@pytest.mark.parametrize("noise", [0.0, 0.1])
def test_bang_bang_expert_solves_mountaincar(noise):
    data = collect(MOUNTAINCAR, _bang_bang(noise), 6, seed=11, n_envs=3)
    ret = episode_returns(data)
    assert len(ret) == 6 and (ret > 80).all(), ret                      # +100 at the flag minus 0.1·a² per step
    assert data["terminals"].sum() == 6 and data["timeouts"].sum() == 0   # every episode ends at the flag
    assert len(data["rewards"]) < 6 * 200                                 # in well under 200 steps each


def test_controller_pushes_along_the_velocity():
    obs = np.array([[-0.5, 0.01], [-0.5, -0.01], [-0.5, 0.0], [0.3, -0.2]])
    a = mountaincar_bang_bang_action(obs, 0.0, np.random.default_rng(0))
    assert a.shape == (4, 1) and a[:, 0].tolist() == [1.0, -1.0, 1.0, -1.0]
    noisy = mountaincar_bang_bang_action(np.zeros((1000, 2)), 0.5, np.random.default_rng(0))
    assert np.abs(noisy).max() <= 1.0 and 0 < (noisy < 1.0).mean() < 1     # clipped to the action space, noise kept


def test_random_actions_do_not_find_the_flag():
    """The premise of the lesson's exploration task: uniform-random actions (a run's warm-up) never reach the flag."""
    data = collect(MOUNTAINCAR, lambda o, rng: rng.uniform(-1, 1, (len(o), 1)), 5, seed=0, n_envs=5)
    assert (data["rewards"] < FLAG_REWARD).all() and data["timeouts"].sum() == 5
    assert (episode_returns(data) < 0).all()


def test_shipped_mountaincar_prior():
    d = load_npz(data_path("sope-mountaincar-expert"))
    n = len(d["rewards"])
    assert set(d) == set(D4RL_KEYS) and all(v.dtype == np.float32 and len(v) == n for v in d.values())
    assert d["observations"].shape == d["next_observations"].shape == (n, 2) and d["actions"].shape == (n, 1)
    assert 1500 < n < 3000 and d["terminals"].sum() == 20 and d["timeouts"].sum() == 0
    ends = np.flatnonzero(d["terminals"] > 0)
    assert ends[-1] == n - 1 and (d["rewards"][ends] > FLAG_REWARD).all()          # each episode ends at the flag
    assert (d["rewards"] > FLAG_REWARD).sum() == 20                                  # ...and only there
    inner = np.setdiff1d(np.arange(n - 1), ends)
    np.testing.assert_array_equal(d["observations"][inner + 1], d["next_observations"][inner])   # contiguous episodes
    assert np.abs(d["actions"]).max() <= 1.0 and (episode_returns(d) > 80).all()


def test_mountaincar_prior_rebuilds_identically(tmp_path):
    """``hdai-lessons data build sope-mountaincar-expert`` (the manifest's generator and seed) regenerates the shipped
    arrays exactly: the controller and MountainCar's physics are scalar numpy, the same on every machine."""
    path, _ = build("sope-mountaincar-expert", out_dir=tmp_path)
    rebuilt, shipped = load_npz(path), load_npz(data_path("sope-mountaincar-expert"))
    for k in D4RL_KEYS:
        np.testing.assert_array_equal(rebuilt[k], shipped[k])


@pytest.mark.parametrize("tau,n", [(0.005, 1500), (0.02, 1500), (0.1, 7)])
def test_target_time_constants_match_polyak_updates(tau, n):
    """After n Polyak updates towards a fixed θ = 1 from θ̄ = 0, θ̄ = 1 − (1−τ)^n = 1 − e^{−k}."""
    k = target_time_constants(tau, n)
    online, target = torch.nn.Linear(1, 1, bias=False), torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        online.weight.fill_(1.0); target.weight.fill_(0.0)
    for _ in range(n):
        polyak_update(target, online, tau)
    assert target.weight.item() == pytest.approx(1 - np.exp(-k), rel=1e-4)
    assert k == pytest.approx(n * tau, rel=0.06)                          # ≈ n·τ for small τ
    assert target_time_constants(0.005, 1500) == pytest.approx(7.52, abs=0.01)


def _fake_result(seed_order, returns, rewards):
    specs = [RunSpec(arm, s, "expert" if arm == "SACfD" else None) for arm, s in seed_order]
    R, n = len(specs), len(returns[0])
    buf = ReplayBuffer(R, rewards.shape[1], 2, 1)
    buf.data["rew"][:] = torch.as_tensor(rewards, dtype=torch.float32)
    buf.size = rewards.shape[1]
    z = np.zeros((R, n))
    return TrainResult(specs, [250 * (i + 1) for i in range(n)], np.array(returns, dtype=float), z, z, z, [],
                       {"online": buf})


def test_auc_pairs_by_seed_and_skips_warmup():
    # runs listed out of seed order: auc must come back seed-ordered so two arms pair seed by seed
    res = _fake_result([("SAC", 1), ("SACfD", 0), ("SAC", 0), ("SACfD", 1)],
                       [[-9, 1, 3], [-9, 10, 20], [-9, 2, 4], [-9, 30, 50]], np.zeros((4, 5)))
    assert res.rows(name="SAC") == [2, 0]
    np.testing.assert_allclose(auc(res, "SAC", warmup=250), [3.0, 2.0])          # seeds 0, 1; the step-250 point dropped
    np.testing.assert_allclose(auc(res, "SACfD", warmup=250), [15.0, 40.0])
    np.testing.assert_allclose(auc(res, "SAC", warmup=0), [-1.0, -5 / 3])


def test_flag_reached_reads_each_runs_own_online_data():
    rew = np.full((4, 6), -0.1)
    rew[3, 4] = 99.9                                           # run 3 (SACfD, seed 1) reached the flag
    res = _fake_result([("SAC", 0), ("SAC", 1), ("SACfD", 0), ("SACfD", 1)], [[0, 0]] * 4, rew)
    assert flag_reached(res, "SAC").tolist() == [False, False]
    assert flag_reached(res, "SACfD").tolist() == [False, True]


def test_lesson_config():
    toy = PriorDataLessonConfig.for_scale("toy")
    assert set(field_docs(PriorDataLessonConfig)) == {f.name for f in fields(PriorDataLessonConfig)}
    assert toy == PriorDataLessonConfig() and PriorDataLessonConfig.for_scale("smoke") != toy
    assert PriorDataLessonConfig.for_scale("full") != toy
    assert toy.n_seeds >= 5 and toy.pendulum.eval_episodes >= 5 and toy.mountaincar.eval_episodes >= 5   # issue 13
    assert (toy.pendulum.env_id, toy.mountaincar.env_id) == ("Pendulum-v1", MOUNTAINCAR)
    assert toy.pendulum.sac.tau == toy.mountaincar.sac.tau == toy.tau_fast == 0.02
    slow = toy.slow()
    assert slow.sac.tau == toy.tau_slow == 0.005 and replace(slow, sac=toy.pendulum.sac) == toy.pendulum
    base = TrainConfig.for_scale("toy")          # the toy networks, batches and lr: the course's SAC toy rung
    for cfg in (toy.pendulum, toy.mountaincar):
        assert (cfg.sac.hidden, cfg.sac.lr, cfg.sac.dropout, cfg.batch_per_source) == (base.sac.hidden, base.sac.lr,
                                                                                       base.sac.dropout, base.batch_per_source)
        assert replace(cfg, env_id="x") == replace(toy.pendulum, env_id="x")       # the two tasks share one schedule
