"""Prior data: the scripted controller, the D4RL-layout npz files, the Minari conversion, the MuJoCo extra."""
import importlib.util

import numpy as np
import pytest

from hdai_lessons.core.data import data_path
from hdai_lessons.sope.prior_data import (D4RL_KEYS, collect, episode_returns, episodes_to_transitions, load_minari, load_npz,
                                          make_env, pendulum_swingup_action, save_npz)

HAS_MUJOCO = importlib.util.find_spec("mujoco") is not None
HAS_MINARI = importlib.util.find_spec("minari") is not None


def test_shipped_pendulum_datasets():
    good, poor = load_npz(data_path("sope-pendulum-expert")), load_npz(data_path("sope-pendulum-poor"))
    for d in (good, poor):
        assert d["observations"].shape == (4000, 3) and d["actions"].shape == (4000, 1)
        assert d["timeouts"].sum() == 20 and d["terminals"].sum() == 0
        np.testing.assert_allclose(d["observations"][1:200], d["next_observations"][:199])   # contiguous episodes
    assert episode_returns(good).mean() > -300 > -800 > episode_returns(poor).mean()


def test_controller_beats_random_and_npz_roundtrip(tmp_path):
    data = collect("Pendulum-v1", lambda o, rng: pendulum_swingup_action(o, 0.0, rng), 4, seed=3, n_envs=2)
    rand = collect("Pendulum-v1", lambda o, rng: rng.uniform(-2, 2, (len(o), 1)), 4, seed=3, n_envs=2)
    assert episode_returns(data).mean() > episode_returns(rand).mean() + 500
    save_npz(tmp_path / "x.npz", data)
    back = load_npz(tmp_path / "x.npz")
    for k in D4RL_KEYS:
        np.testing.assert_array_equal(back[k], data[k])
    np.savez(tmp_path / "bad.npz", observations=np.zeros(3))
    with pytest.raises(ValueError, match="lacks"):
        load_npz(tmp_path / "bad.npz")


def test_episodes_to_transitions():
    obs = [np.arange(8, dtype=np.float32).reshape(4, 2)]
    out = episodes_to_transitions(obs, [np.zeros((3, 1))], [np.ones(3)], [np.array([0, 0, 1])], [np.zeros(3)])
    np.testing.assert_array_equal(out["next_observations"][0], obs[0][1])
    assert out["terminals"].tolist() == [0, 0, 1]
    with pytest.raises(ValueError, match="observations"):
        episodes_to_transitions([obs[0][:3]], [np.zeros((3, 1))], [np.ones(3)], [np.zeros(3)], [np.zeros(3)])


@pytest.mark.skipif(HAS_MUJOCO, reason="MuJoCo is installed; this checks the message shown without it")
def test_mujoco_missing_names_the_extra():
    with pytest.raises(ImportError, match=r"pip install -e \.\[mujoco\]"):
        make_env("Hopper-v5")


def test_minari_missing_names_the_extra(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "minari", None)          # as if it were not installed
    with pytest.raises(ImportError, match=r"pip install -e \.\[mujoco\]"):
        load_minari("mujoco/hopper/expert-v0")


@pytest.mark.skipif(not HAS_MUJOCO, reason="gymnasium[mujoco] not installed (pip install -e .[mujoco])")
def test_hopper_steps_with_mujoco():
    data = collect("Hopper-v5", lambda o, rng: rng.uniform(-1, 1, (len(o), 3)), 2, seed=0, n_envs=2)
    assert data["observations"].shape[1] == 11
