"""CAT-weighted GRPO: the gradient is w_b × GRPO's per prompt; the trainer hook routes every chunk."""
from __future__ import annotations


import pytest
import torch

from hdai_lessons.cat.rl import (CATConfig, CATTrainer, answer_ids, cat_grpo_loss, cat_prompt_weights,
                                 evaluate_strategies, passn_weighted_advantages)
from hdai_lessons.cat.weights import majority_rl_weight, passn_rl_weight
from hdai_lessons.rlvr.losses import LossConfig, rlvr_loss


def _batch(seed=0, B=4, K=6, T=5):
    g = torch.Generator().manual_seed(seed)
    logp = (torch.randn(B, K, T, generator=g, dtype=torch.float64) * 0.3 - 1.0)
    mask = (torch.rand(B, K, T, generator=g) < 0.8).double()
    mask[..., 0] = 1.0
    rewards = torch.tensor([[1.0, 0, 0, 0, 0, 0], [1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 0], [0, 1, 0, 1, 0, 1]], dtype=torch.float64)
    return logp, mask, rewards


@pytest.mark.parametrize("cat", [CATConfig("passn", 8, clip=None, normalise=False),
                                 CATConfig("majority", 8, k=3, dynamic_k=False, clip=None, normalise=False),
                                 CATConfig("passn", 16, clip=5.0, normalise=True)])
def test_cat_gradient_is_weight_times_grpo_gradient_per_prompt(cat):
    logp, mask, rewards = _batch()
    cfg = LossConfig(name="grpo", agg="seq_mean")
    x = logp.clone().requires_grad_(True)
    loss, _ = cat_grpo_loss(x, logp, mask, rewards, cfg, cat)
    g_cat, = torch.autograd.grad(loss, x)
    y = logp.clone().requires_grad_(True)
    base, _ = rlvr_loss(y, logp, mask, rewards, cfg)
    g_grpo, = torch.autograd.grad(base, y)
    w = cat_prompt_weights(rewards, cat)
    assert torch.allclose(g_cat, w.view(-1, 1, 1) * g_grpo, atol=1e-12)
    p_hat = (rewards.sum(-1) + 1) / (rewards.shape[-1] + 2)
    raw = passn_rl_weight(p_hat, cat.N) if cat.strategy == "passn" else majority_rl_weight(p_hat, cat.N, cat.k)
    if cat.clip is None and not cat.normalise:
        assert torch.allclose(w, raw)


def test_strategy_none_is_plain_grpo_and_pass_n_upweights_hard_prompts():
    logp, mask, rewards = _batch()
    cfg = LossConfig(name="grpo")
    a, _ = cat_grpo_loss(logp, logp, mask, rewards, cfg, CATConfig("none"))
    b, _ = rlvr_loss(logp, logp, mask, rewards, cfg)
    assert torch.equal(a, b)
    w = cat_prompt_weights(rewards, CATConfig("passn", 8, clip=None, normalise=False))
    assert w[0] > w[1] > w[2]                                   # fewer successes → more weight
    wm = cat_prompt_weights(rewards, CATConfig("majority", 8, dynamic_k=False, k=3, clip=None, normalise=False))
    assert int(wm.argmax()) == 0 and wm[2] < 0.1 * wm[0]         # p̂ = 0.25 is nearest the pivotal 2/7
    with pytest.raises(ValueError, match="c_max"):
        cat_prompt_weights(rewards, CATConfig("majority", 8))


def test_weighted_advantages_and_answer_ids():
    r = torch.tensor([[1.0, 0, 0, 0], [1, 1, 1, 0]])
    adv = passn_weighted_advantages(r, 4, clip=None)
    assert torch.allclose(adv.sum(-1), torch.zeros(2), atol=1e-6)
    assert adv[0].abs().max() > adv[1].abs().max()
    assert answer_ids([["12", " 12", "7", "x"], ["a", "b", "a", "a"]]).tolist() == [[0, 0, 1, 2], [0, 1, 0, 0]]


def test_cat_trainer_routes_every_chunk_through_the_cat_loss():
    from hdai_lessons.lm.pretrained import load_warm_lm
    from hdai_lessons.lm.rl_trainer import RLVRConfig
    from hdai_lessons.tasks import ArithmeticTask, split_problems

    torch.manual_seed(0)
    model, tok, _ = load_warm_lm()                              # the shipped SFT-warmed tiny Qwen2
    task = ArithmeticTask(1, 2, "+-")
    train, held = split_problems(task, 40, 6, 0)
    before = [p.detach().clone() for p in model.parameters()]
    seen = []
    tr = CATTrainer(model, tok, task, train, LossConfig(name="grpo"),
                    RLVRConfig(steps=2, prompts_per_step=4, K=4, minibatches=2, lr=1e-2, max_new_tokens=3),
                    cat=CATConfig("majority", 4))
    import hdai_lessons.cat.rl as rl_mod
    real = rl_mod.cat_grpo_loss
    rl_mod.cat_grpo_loss = lambda *a, **k: (seen.append(a[3].shape), real(*a, **k))[1]
    try:
        tr.train(2)
    finally:
        rl_mod.cat_grpo_loss = real
    assert seen == [(2, 4)] * 4                                 # 2 steps × 2 minibatches of 2 prompts
    assert any(not torch.equal(a, b.detach()) for a, b in zip(before, model.parameters()))
    ev = evaluate_strategies(tr.model, tok, task, held, n_samples=4, ks=(1, 4), max_new_tokens=3,
                             generator=torch.Generator().manual_seed(0))
    assert set(ev) >= {"pass@1", "pass@4", "maj@1", "maj@4"} and 0 <= ev["maj@4"] <= 1
    assert abs(ev["pass@1"] - sum(ev["p_hat"]) / len(ev["p_hat"])) < 1e-9


def test_majority_k_from_rollouts_and_standard_error():
    from hdai_lessons.cat.rl import heldout_standard_error, majority_k_from_rollouts

    ids = torch.tensor([[0, 1, 1, 2, 1, 0, 3, 1], [0, 0, 0, 0, 0, 0, 0, 0], [2, 2, 2, 2, 2, 2, 0, 1]])
    correct = torch.tensor([[1, 0, 0, 0, 0, 1, 0, 0], [1] * 8, [0, 0, 0, 0, 0, 0, 1, 0]]).bool()
    # rival "1" has 4 votes → ⌊8·4/8⌋+1 = 5 (cap 5); all correct → c_max 0 → floor 2; rival "2" has 6 → cap 5
    assert majority_k_from_rollouts(ids, correct, 8).tolist() == [5, 2, 5]
    assert majority_k_from_rollouts(ids, correct, 16).tolist() == [9, 2, 9]
    p = torch.tensor([0.0, 1.0, 0.0, 1.0], dtype=torch.float64)
    assert abs(heldout_standard_error(p).item() - (1 / 3) ** 0.5 / 2) < 1e-12


def test_a_run_does_not_depend_on_what_trains_or_samples_beside_it():
    """An arm's training and held-out numbers depend on its own seed only (its own random streams)."""
    from hdai_lessons.lm.pretrained import load_warm_lm
    from hdai_lessons.rlvr.trainer import RLVRConfig
    from hdai_lessons.tasks import ArithmeticTask, split_problems

    task = ArithmeticTask(1, 2, "+-")
    train, held = split_problems(task, 40, 6, 0)

    def arm(cat, seed, steps=2):
        model, tok, _ = load_warm_lm()
        tr = CATTrainer(model, tok, task, train, LossConfig(name="grpo"),
                        RLVRConfig(steps=steps, prompts_per_step=4, K=4, lr=1e-2, max_new_tokens=3, seed=seed), cat=cat)
        state = torch.random.get_rng_state()
        tr.train(steps)
        ev = evaluate_strategies(tr.model, tok, task, held, n_samples=4, ks=(1, 4), max_new_tokens=3,
                                 generator=torch.Generator().manual_seed(seed))
        assert torch.equal(state, torch.random.get_rng_state())  # the global generator is left as it was
        return [p.detach().clone() for p in tr.model.parameters()], ev

    alone_params, alone_eval = arm(CATConfig("passn", 8), seed=3)
    torch.manual_seed(1234)
    arm(CATConfig("none"), seed=7, steps=1)                     # another arm trains first …
    torch.rand(1000)                                            # … and the global generator moves on
    beside_params, beside_eval = arm(CATConfig("passn", 8), seed=3)
    assert all(torch.equal(a, b) for a, b in zip(alone_params, beside_params))
    assert alone_eval == beside_eval


@pytest.mark.parametrize("scale, sizes", [("smoke", (8, 8, 2, (1, 4, 8))), ("toy", (200, 16, 4, (1, 4, 8, 16))),
                                          ("full", (500, 64, 5, (1, 4, 8, 16, 64)))])
def test_lesson_02_3_sizes_and_trainable_sets(scale, sizes):
    """Lesson 02.3 trains the final norm (lr 0.1, chosen on a selection seed); the contrast every weight (1e-4)."""
    from hdai_lessons.cat.rl import CATRLLessonConfig

    c = CATRLLessonConfig.for_scale(scale)
    assert (c.n_heldout, c.n_samples, c.n_seeds, c.eval_ks) == sizes
    assert (c.trainable, c.lr) == ("final_norm", 0.1)
    f = CATRLLessonConfig.for_scale(scale, trainable="all")
    assert (f.trainable, f.lr) == ("all", 1e-4)
    assert (f.n_heldout, f.n_samples, f.n_seeds, f.steps) == (c.n_heldout, c.n_samples, c.n_seeds, c.steps)
    with pytest.raises(ValueError):
        CATRLLessonConfig.for_scale(scale, trainable="embeddings")


def test_run_rl_arm_moves_only_the_trainable_set_and_pairs_with_the_warm_start():
    from dataclasses import replace

    from hdai_lessons.cat.rl import CATRLLessonConfig, RL_ARMS, evaluate_warm_start, run_rl_arm
    from hdai_lessons.lm.pretrained import load_warm_lm

    cfg = CATRLLessonConfig.for_scale("smoke")
    kept = {}

    def loader():
        model, tok, _ = load_warm_lm()
        kept["model"] = model
        return model, tok

    warm = {n: p.detach().clone() for n, p in load_warm_lm()[0].named_parameters()}
    out = run_rl_arm(cfg, RL_ARMS["CAT-Pass@8"], seed=3, model_loader=loader)
    moved = {n for n, p in kept["model"].named_parameters() if not torch.equal(p.detach(), warm[n])}
    assert moved == {"model.norm.weight"}
    assert set(out["eval"]) >= {"pass@1", "pass@4", "maj@4"}
    # lr 0: the run's evaluation is the warm start's with the same draws (the paired "RL vs warm" baseline)
    still = run_rl_arm(replace(cfg, lr=0.0), RL_ARMS["GRPO"], seed=3)["eval"]
    assert still == evaluate_warm_start(cfg, seed=3)
    full = run_rl_arm(replace(cfg, trainable="all"), RL_ARMS["GRPO"], seed=3, model_loader=loader)
    assert len({n for n, p in kept["model"].named_parameters() if not torch.equal(p.detach(), warm[n])}) > 1
    assert set(full["eval"]) == set(out["eval"])


def test_select_lr_picks_the_largest_worst_gain():
    from hdai_lessons.cat.rl import CATRLLessonConfig, RL_ARMS, select_lr

    r = select_lr(CATRLLessonConfig.for_scale("smoke"), lrs=(0.0, 0.1), arms={"GRPO": RL_ARMS["GRPO"]})
    assert set(r["worst_gain"]) == {0.0, 0.1} and r["worst_gain"][0.0] == 0.0
    assert r["chosen"] == max(r["worst_gain"], key=r["worst_gain"].get)
