"""Lesson 01.3's experiment: GRPO vs LPO-fwd vs LPO-rev on the shipped warmed-up tiny LM.

Every arm starts from the same SFT checkpoint (``lm.pretrained.load_warm_lm``), trains with the
same ``RLVRTrainer`` settings and seeds on the arithmetic task with its exact verifier, and is then
evaluated on held-out problems (pass@1 and pass@k with the unbiased estimator).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from hdai_lessons.core.scale import by_scale
from hdai_lessons.core.device import one_thread
from hdai_lessons.rlvr.losses import LossConfig
from hdai_lessons.lm.evaluation import evaluate_pass_at_k
from hdai_lessons.lm.rl_trainer import RLVRConfig
from hdai_lessons.rlvr.trainer import RLVRTrainer

#: The arms of lesson 01.3 (display name → loss), all τ = σ_G, ε = 0.2, token mean.
ARMS = {"GRPO": "grpo", "LPO-fwd": "lpo_fwd", "LPO-rev": "lpo_rev"}


@dataclass(frozen=True)
class TinyRLVRExperiment:
    """Settings of lesson 01.3's comparison and line search (one per scale).

    Lesson 01.3; the arms follow LPO's Algorithm 1 (τ = σ_G, ε = 0.2, Section 4.3).
    """

    rl: RLVRConfig
    """Trainer settings shared by every arm (steps, B, K, E, lr, lengths)."""
    seeds: tuple = (0, 1)
    """Paired seeds: every arm trains once per seed (``for_scale`` derives them from the lesson's seed)."""
    n_eval: int = 128
    """Held-out problems for pass@k."""
    eval_samples: int = 8
    """Samples per held-out problem."""
    ks: tuple = (1, 8)
    """k of the reported pass@k."""
    line_search_prompts: int = 32
    """Training prompts on which the policy-gradient line search estimates g."""
    line_search_K: int = 16
    """Samples per prompt for the line search's gradient estimate."""
    line_search_n_eval: int = 32
    """Fresh samples per prompt to evaluate the expected reward at each step length."""

    @classmethod
    def for_scale(cls, scale=None, seed: int = 0, n_seeds: "int | None" = None) -> "TinyRLVRExperiment":
        """The lesson's settings at ``scale``; the seeds are ``seed, seed + 1, …`` (``n_seeds`` of them,
        default by scale), so a lesson derives every run from its own base seed."""
        base = RLVRConfig(steps=24, prompts_per_step=12, K=8, inner_epochs=2, lr=1e-4, max_new_tokens=5,
                          warmup_updates=5)
        exp = by_scale(scale,
                       smoke=cls(rl=replace(base, steps=2, prompts_per_step=4, K=4), seeds=(0, 1), n_eval=8,
                                 eval_samples=4, ks=(1, 4), line_search_prompts=4, line_search_K=4,
                                 line_search_n_eval=4),
                       toy=cls(rl=base, seeds=tuple(range(6))),
                       full=cls(rl=replace(base, steps=200, prompts_per_step=64), seeds=tuple(range(8)), n_eval=200,
                                eval_samples=32, ks=(1, 8, 32), line_search_prompts=64, line_search_n_eval=64))
        n = len(exp.seeds) if n_seeds is None else int(n_seeds)
        return replace(exp, seeds=tuple(int(seed) + i for i in range(n)))


def run_arm(loss: str, seed: int, exp: TinyRLVRExperiment, held_out, train) -> dict:
    """Train one arm from the warm checkpoint; return ``{"history": [...], "eval": {...}}``.

    The run owns its randomness: a fresh model from the checkpoint, the trainer's prompt sampler
    seeded from ``seed``, and the global torch RNG (which the sampler draws from) re-seeded from
    ``seed`` before training and before evaluation. So a run's numbers do not depend on which arms or
    seeds ran before it, and every arm of a seed sees the same evaluation draws. Runs on one intra-op
    thread (``core.device.one_thread``: the model is tiny).

    Lesson 01.3; Algorithm 1 of LPO on the tiny LM, then held-out pass@k.
    """
    from hdai_lessons.lm.pretrained import load_warm_lm, warm_task

    with one_thread():
        model, tok, _ = load_warm_lm()
        torch.manual_seed(seed)
        trainer = RLVRTrainer(model, tok, warm_task(), train, LossConfig(name=loss), replace(exp.rl, seed=seed))
        history = trainer.train(desc=loss)
        torch.manual_seed(10_000 + seed)                 # same evaluation draws for every arm of a seed
        ev = trainer.evaluate(held_out, n_samples=exp.eval_samples, ks=exp.ks)
    return {"history": history, "eval": ev}


def evaluate_warm_start(exp: TinyRLVRExperiment, held_out, seed: int = 0) -> dict:
    """Held-out pass@k of the SFT checkpoint itself (the starting point of every arm), with the
    evaluation draws of ``seed`` (the same as ``run_arm``'s for that seed, for a paired comparison).

    Lesson 01.3; pass@k as in LPO's results (unbiased estimator, Chen et al. 2021).
    """
    from hdai_lessons.lm.pretrained import load_warm_lm, warm_task

    with one_thread():
        model, tok, _ = load_warm_lm()
        torch.manual_seed(10_000 + seed)
        return evaluate_pass_at_k(model, tok, warm_task(), held_out, n_samples=exp.eval_samples, ks=exp.ks,
                                  max_new_tokens=exp.rl.max_new_tokens, temperature=exp.rl.temperature)


def run_comparison(exp: TinyRLVRExperiment, arms: "dict[str, str] | None" = None) -> dict:
    """Every arm × seed: ``{arm: [result per seed]}`` (see ``run_arm``).

    Lesson 01.3; Algorithm 1 of LPO for each arm and seed.
    """
    from hdai_lessons.lm.pretrained import warm_problem_split

    train, held = warm_problem_split(0)
    held = held[:exp.n_eval]
    arms = arms or ARMS
    return {name: [run_arm(loss, s, exp, held, train) for s in exp.seeds] for name, loss in arms.items()}


def curve(results: list[dict], metric: str) -> np.ndarray:
    """``(n_seeds, steps)`` array of one metric's history.

    Lesson 01.3; a summary helper (no paper equation).
    """
    return np.array([[h[metric] for h in r["history"]] for r in results])


def summary(results: dict, last: int = 10) -> dict[str, dict[str, float]]:
    """Per arm, seed-means of: reward and entropy over the last ``last`` iterations, and held-out pass@k.

    Lesson 01.3; a summary helper (no paper equation).
    """
    out = {}
    for arm, runs in results.items():
        row = {"reward_end": float(curve(runs, "reward")[:, -last:].mean()),
               "entropy_end": float(curve(runs, "entropy")[:, -last:].mean())}
        for key in runs[0]["eval"]:
            row[key] = float(np.mean([r["eval"][key] for r in runs]))
        out[arm] = row
    return out


def per_seed(results: dict, key: str) -> dict[str, list[float]]:
    """Held-out ``key`` (e.g. "pass@8") per arm and seed.

    Lesson 01.3; a summary helper (no paper equation).
    """
    return {arm: [r["eval"][key] for r in runs] for arm, runs in results.items()}


def plot_comparison(results: dict, axes=None, smooth: int = 5):
    """Reward and entropy curves (mean over seeds, moving average of ``smooth``) per arm.

    Lesson 01.3; a plotting helper (no paper equation).
    """
    import matplotlib.pyplot as plt

    from hdai_lessons.core.plotting import color_for

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    for i, (arm, runs) in enumerate(results.items()):
        for ax, metric in zip(axes, ("reward", "entropy")):
            y = curve(runs, metric).mean(0)
            k = min(smooth, len(y))
            y = np.convolve(y, np.ones(k) / k, mode="valid")
            ax.plot(np.arange(len(y)) + k, y, color=color_for(arm, i), label=arm)
    axes[0].set(xlabel="RLVR iteration", ylabel="mean reward of rollouts", title="training reward")
    axes[1].set(xlabel="RLVR iteration", ylabel="token entropy (nats)", title="policy entropy on its samples")
    axes[0].legend()
    return axes


@torch.no_grad()
def _expected_reward(model, tok, task, problems, n: int, max_new_tokens: int, seed: int) -> float:
    from hdai_lessons.lm.sampling import sample_groups

    torch.manual_seed(seed)
    ro = sample_groups(model, tok, [p.prompt for p in problems], n, max_new_tokens)
    return sum(task.reward(p, c) for p, g in zip(problems, ro.texts) for c in g) / (len(problems) * n)


def policy_gradient_line_search(model, tok, task, problems, step_sizes, K: int = 16, n_eval: int = 32,
                                max_new_tokens: int = 5, seed: int = 0) -> dict:
    """How far can one step along the policy gradient go before the reward drops?

    Estimates ``g = ∇_θ E[R]`` on ``problems`` from K samples each (REINFORCE with the group-mean
    baseline, ``−Σ_k (R_k − R̄) log π(y_k|x)``), then for each step size η evaluates the expected
    reward of ``θ + η g/‖g‖`` on the same problems (``n_eval`` fresh samples each, the same draws
    for every η). The model is left unchanged.

    Returns ``{"grad_norm": ‖g‖, "reward": {η: E[R]}}`` with η = 0 included (the start).

    Lesson 01.3; the on-policy PG of Eq. (3) of LPO, probed along its direction.
    """
    with one_thread():
        return _line_search(model, tok, task, problems, step_sizes, K, n_eval, max_new_tokens, seed)


def _line_search(model, tok, task, problems, step_sizes, K, n_eval, max_new_tokens, seed) -> dict:
    import copy

    from hdai_lessons.lm.sampling import sample_groups, sequence_logprobs

    torch.manual_seed(seed)
    with torch.no_grad():
        ro = sample_groups(model, tok, [p.prompt for p in problems], K, max_new_tokens)
    R = torch.tensor([[task.reward(p, c) for c in g] for p, g in zip(problems, ro.texts)])  # (B, K)
    A = R - R.mean(-1, keepdim=True)
    work = copy.deepcopy(model)
    B, _, T = ro.shape
    lp = sequence_logprobs(work, ro.input_ids, ro.attention_mask, ro.prompt_len).view(B, K, T)
    loss = -(A * (lp * ro.mask).sum(-1)).mean()
    grads = torch.autograd.grad(loss, list(work.parameters()))
    norm = torch.sqrt(sum((g ** 2).sum() for g in grads))
    start = [p.detach().clone() for p in work.parameters()]
    out = {}
    for eta in [0.0, *step_sizes]:
        with torch.no_grad():
            for p, p0, g in zip(work.parameters(), start, grads):
                p.copy_(p0 - eta * g / norm)                   # descent on the loss = ascent on E[R]
        out[float(eta)] = _expected_reward(work, tok, task, problems, n_eval, max_new_tokens, seed + 1)
    return {"grad_norm": float(norm), "reward": out}
