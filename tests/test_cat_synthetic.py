"""Lesson 02.2's toy: deterministic, trains (losses fall), arms differ the way their weights say."""
from __future__ import annotations

import torch

from hdai_lessons.cat.synthetic import (ARMS, LowRankPolicy, SyntheticConfig, crossover_k, make_task, run_seed,
                                        sft_weight_of, train_sft)


def test_task_is_deterministic_and_hard_prompts_are_random():
    cfg = SyntheticConfig.for_scale("smoke")
    a, b = make_task(cfg, 3), make_task(cfg, 3)
    assert torch.equal(a.phi, b.phi) and torch.equal(a.y, b.y) and torch.equal(a.hard, b.hard)
    assert a.phi.shape == (cfg.num_prompts, cfg.dim) and a.y_test.shape == (cfg.num_test,)
    assert 0 < a.hard.float().mean() < 0.6


def test_training_lowers_each_loss_and_ce_raises_p():
    cfg = SyntheticConfig.for_scale("smoke")
    task = make_task(cfg, 0)
    pol = LowRankPolicy.init(cfg, 0)
    for name, (strategy, N, k) in ARMS.items():
        new, losses = train_sft(pol, task.phi, task.y, strategy, N, k, steps=60, lr=0.05)
        assert losses[-1] < losses[0], name
    new, _ = train_sft(pol, task.phi, task.y, "ce", steps=60, lr=0.05)
    p0 = pol.probs(task.phi).gather(1, task.y.view(-1, 1)).mean()
    p1 = new.probs(task.phi).gather(1, task.y.view(-1, 1)).mean()
    assert p1 > p0 + 0.05


def test_run_seed_curves_are_monotone_and_reproducible():
    cfg = SyntheticConfig.for_scale("smoke")
    _, r1 = run_seed(cfg, 1)
    _, r2 = run_seed(cfg, 1)
    for name in ARMS:
        assert torch.equal(r1[name].pass_at_k, r2[name].pass_at_k)
        assert (r1[name].pass_at_k.diff() >= -1e-12).all()                  # pass@k never decreases in k
        assert torch.allclose(r1[name].maj_at_k[0], r1[name].pass_at_k[0])  # maj@1 = pass@1
    # CE sharpens more than CAT-Pass@16, whose weight vanishes once p is large
    assert r1["CE"].pass_at_k[0] > r1["CAT-Pass@16"].pass_at_k[0]


def test_crossover_and_weights():
    a = torch.tensor([0.5, 0.6, 0.7, 0.8])
    b = torch.tensor([0.4, 0.55, 0.75, 0.9])
    assert crossover_k(a, b) == 3 and crossover_k(b, a) is None
    p = torch.tensor([0.01, 0.5, 0.99], dtype=torch.float64)
    assert torch.equal(sft_weight_of("ce", p), torch.ones(3, dtype=torch.float64))
    w = sft_weight_of("passn", p, 16)
    assert w[0] > w[1] > w[2]
