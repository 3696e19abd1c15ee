"""The reasoning bandit: task, exact metrics, learning, Proposition 1 in training, seed-batching and arm independence."""
from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from hdai_lessons.rlvr.bandit import (BanditConfig, BanditPolicy, make_task, policy_metrics, policy_tv, run_arms,
                                      run_bandit, sample_answers)
from hdai_lessons.rlvr.losses import LossConfig

SMALL = BanditConfig(n_prompts=12, n_answers=10, n_correct=2, feat_dim=4, iters=12, lr=0.1)


def test_task_has_exact_correct_sets_and_is_seeded():
    cfg = BanditConfig()
    t1, t2 = make_task(cfg, [0, 3]), make_task(cfg, [3])
    assert t1.correct.shape == (2, 50, 30) and t1.features.shape == (2, 50, 8)
    assert (t1.correct.sum(-1) == 3).all()
    assert torch.equal(t1.correct[1], t2.correct[0]) and torch.equal(t1.W0[1], t2.W0[0])
    assert not torch.equal(t1.correct[0], t1.correct[1])
    with torch.no_grad():
        m = policy_metrics(BanditPolicy(t1, shared=True)(), t1.correct, 0.05, (1, 32))
    assert 0.05 < float(m["reward"].mean()) < 0.2  # initial pass@1 ≈ 0.1, as the lesson promises


def test_policy_metrics_by_hand():
    logits = torch.log(torch.tensor([[[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]]], dtype=torch.float64))  # (S=1, P=2, M=3)
    correct = torch.tensor([[[True, True, False], [False, False, True]]])
    m = policy_metrics(logits, correct, keep_threshold=0.25, ks=(1, 2))
    assert float(m["reward"]) == pytest.approx((0.8 + 0.8) / 2)
    assert float(m["kept"]) == pytest.approx((2 + 1) / 2)  # 0.5, 0.3 > 0.25; 0.8 > 0.25
    assert float(m["pass@2"]) == pytest.approx(1 - 0.2 ** 2)
    H = -(0.5 * math.log(0.5) + 0.3 * math.log(0.3) + 0.2 * math.log(0.2) + 2 * 0.1 * math.log(0.1) + 0.8 * math.log(0.8)) / 2
    assert float(m["entropy"]) == pytest.approx(H)


def test_sampler_matches_the_policy():
    probs = torch.tensor([[[0.7, 0.2, 0.1]]], dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    draws = torch.cat([sample_answers(probs, 1000, [g]) for _ in range(20)], -1).flatten()
    freq = torch.bincount(draws, minlength=3).double() / draws.numel()
    assert torch.allclose(freq, probs.flatten(), atol=0.01)


@pytest.mark.parametrize("shared", [True, False])
def test_grpo_and_lpo_fwd_learn(shared):
    cfg = replace(SMALL, shared=shared, iters=25)
    task = make_task(cfg, [0, 1])
    for name in ("grpo", "lpo_fwd"):
        run = run_bandit(replace(cfg, loss=LossConfig(name)), task)
        r = run.history["reward"]
        assert r.shape == (26, 2)
        assert (r[-1] > r[0] + 0.2).all(), (name, r[0], r[-1])


def test_e1_reverse_kl_tracks_grpo_and_e4_departs():
    """Proposition 1 in training: with one on-policy step per batch the two runs coincide."""
    task = make_task(SMALL, [0, 1])
    runs = run_arms(SMALL, task, arms=("GRPO", "LPO-rev"), epochs=(1, 4))
    gap1 = (runs[("GRPO", 1)].history["reward"] - runs[("LPO-rev", 1)].history["reward"]).abs().max()
    assert float(gap1) < 1e-10
    assert float(policy_tv(runs[("GRPO", 1)], runs[("LPO-rev", 1)]).max()) < 1e-10
    assert float(policy_tv(runs[("GRPO", 4)], runs[("LPO-rev", 4)]).min()) > 1e-3


def test_seed_batching_equals_separate_runs():
    """Seeds are a batch dimension: a seed's run does not depend on the other seeds (fast = slow)."""
    cfg = replace(SMALL, iters=8, epochs=2)
    both = run_bandit(cfg, make_task(cfg, [0, 5]))
    alone = run_bandit(cfg, make_task(cfg, [5]))
    for key in ("reward", "entropy", "kept", "pass@32"):
        assert torch.allclose(both.history[key][:, 1], alone.history[key][:, 0], atol=1e-9), key


def test_an_arm_does_not_depend_on_the_arms_beside_it():
    """Every arm builds its own policy, optimizer and per-seed generators: training it alone or after
    other arms gives the same run (bitwise: the same ops on the same float path)."""
    cfg = replace(SMALL, iters=6)
    task = make_task(cfg, [2, 3])
    alone = run_arms(cfg, task, arms=("LPO-fwd",), epochs=(4,))[("LPO-fwd", 4)]
    torch.manual_seed(123)                               # the global RNG is not used by the runs
    beside = run_arms(cfg, task, arms=("GRPO", "pointwise", "LPO-fwd"), epochs=(1, 4))[("LPO-fwd", 4)]
    for key in ("reward", "entropy", "kept", "pass@32", "final_probs"):
        assert torch.equal(alone.history[key], beside.history[key]), key


def test_config_for_scale():
    assert BanditConfig.for_scale("smoke").iters < BanditConfig.for_scale("toy").iters
    assert BanditConfig.for_scale("toy", K=4).K == 4


def test_runs_use_one_thread_and_restore_the_setting():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        run_bandit(replace(SMALL, iters=2), make_task(SMALL, [0]))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
