"""Lesson 01.3's experiment: GRPO vs LPO-fwd vs LPO-rev on the shipped warmed-up tiny LM.

Every arm starts from the same SFT checkpoint (``lm.pretrained.load_warm_lm``), trains with the
same ``RLVRTrainer`` settings and seeds on the arithmetic task with its exact verifier, and is then
evaluated on held-out problems (pass@1 and pass@k with the unbiased estimator).

Which parameters train is a setting (``TinyRLVRExperiment.trainable``): ``"all"`` (full-parameter RL,
which at the SFT optimum of this small model memorises the sampled prompts and lowers held-out
pass@1) or ``"final_norm"`` (only the final RMSNorm gain, in effect a per-channel output temperature:
RL can then only sharpen the policy, and that transfers to held-out problems).
``gradient_transfer`` measures why: the cosine of two independent policy-gradient estimates, per
parameter group.
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

#: The trainable sets of ``TinyRLVRExperiment.trainable``.
TRAINABLE = ("all", "final_norm")


def set_trainable(model, trainable: str):
    """Freeze every parameter outside ``trainable`` (``"all"``: none; ``"final_norm"``: all but the final
    RMSNorm gain ``model.model.norm`` of the Qwen2 model, the logits' per-channel scale). Returns the model.

    The RLVR trainer's optimiser only moves parameters that receive a gradient, so a frozen parameter
    stays exactly at its SFT value.

    Lesson 01.3; a restricted trainable set (what RL can transfer on a small model: sharpening).
    """
    if trainable not in TRAINABLE:
        raise ValueError(f"unknown trainable set {trainable!r}; choose one of {TRAINABLE}")
    if trainable == "final_norm":
        for p in model.parameters():
            p.requires_grad_(False)
        for p in model.model.norm.parameters():
            p.requires_grad_(True)
    return model


@dataclass(frozen=True)
class TinyRLVRExperiment:
    """Settings of lesson 01.3's comparison (one per scale and trainable set).

    Lesson 01.3; the arms follow LPO's Algorithm 1 (τ = σ_G, ε = 0.2, Section 4.3).
    """

    rl: RLVRConfig
    """Trainer settings shared by every arm (steps, B, K, E, lr, lengths)."""
    trainable: str = "all"
    """Which parameters RL trains: "all" (full-parameter) or "final_norm" (only the final RMSNorm gain,
    the output temperature; see ``set_trainable``)."""
    seeds: tuple = (0, 1)
    """Paired seeds: every arm trains once per seed (``for_scale`` derives them from the lesson's seed)."""
    n_eval: int = 128
    """Held-out problems for pass@k."""
    eval_samples: int = 8
    """Samples per held-out problem."""
    ks: tuple = (1, 8)
    """k of the reported pass@k."""
    grad_prompts: int = 64
    """Training prompts per policy-gradient estimate in ``gradient_transfer``."""
    grad_K: int = 16
    """Samples per prompt of each policy-gradient estimate in ``gradient_transfer``."""

    @classmethod
    def for_scale(cls, scale=None, seed: int = 0, n_seeds: "int | None" = None,
                  trainable: str = "final_norm") -> "TinyRLVRExperiment":
        """The lesson's settings at ``scale`` for a trainable set; the seeds are ``seed, seed + 1, …``
        (``n_seeds`` of them, default by scale), so a lesson derives every run from its own base seed.

        ``"final_norm"`` (the lesson's main run) trains the output temperature at lr 3e-2;
        ``"all"`` (the instructive failure) trains every weight at lr 1e-4. Both evaluate on the same
        held-out problems and samples per problem, so their SFT start is the same.
        """
        if trainable not in TRAINABLE:
            raise ValueError(f"unknown trainable set {trainable!r}; choose one of {TRAINABLE}")
        lr = 3e-2 if trainable == "final_norm" else 1e-4
        base = RLVRConfig(steps=24, prompts_per_step=12, K=8, inner_epochs=2, lr=lr, max_new_tokens=5,
                          warmup_updates=5)
        exp = by_scale(scale,
                       smoke=cls(rl=replace(base, steps=2, prompts_per_step=4, K=4), seeds=(0, 1), n_eval=8,
                                 eval_samples=4, ks=(1, 4), grad_prompts=4, grad_K=4),
                       toy=cls(rl=base, seeds=tuple(range(4)), n_eval=200, eval_samples=16, ks=(1, 16)),
                       full=cls(rl=replace(base, steps=200, prompts_per_step=64), seeds=tuple(range(8)), n_eval=200,
                                eval_samples=32, ks=(1, 8, 32), grad_prompts=256, grad_K=32))
        n = len(exp.seeds) if n_seeds is None else int(n_seeds)
        return replace(exp, trainable=trainable, seeds=tuple(int(seed) + i for i in range(n)))


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
        set_trainable(model, exp.trainable)
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


def _policy_gradient(model, tok, task, problems, K: int, max_new_tokens: int, temperature: float) -> list:
    """One REINFORCE estimate of ``∇_θ E[R]`` (group-mean baseline) on ``problems``, K samples each."""
    from hdai_lessons.lm.sampling import sample_groups, sequence_logprobs

    with torch.no_grad():
        ro = sample_groups(model, tok, [p.prompt for p in problems], K, max_new_tokens, temperature)
    R = torch.tensor([[task.reward(p, c) for c in g] for p, g in zip(problems, ro.texts)])    # (B, K)
    A = R - R.mean(-1, keepdim=True)
    B, _, T = ro.shape
    lp = sequence_logprobs(model, ro.input_ids, ro.attention_mask, ro.prompt_len,
                           temperature=temperature).view(B, K, T)
    objective = (A * (lp * ro.mask).sum(-1)).mean()                  # its gradient estimates ∇ E[R] (up to 1/K)
    return [g.detach() for g in torch.autograd.grad(objective, list(model.parameters()))]


def gradient_transfer(model, tok, task, problems, n_prompts: int = 64, K: int = 16, max_new_tokens: int = 5,
                      temperature: float = 1.0, seed: int = 0) -> dict[str, float]:
    """Does a policy gradient estimated on some prompts point the same way on others?

    Draws two disjoint sets of ``n_prompts`` prompts from ``problems`` and estimates the policy gradient
    ``g = ∇_θ E[R]`` on each from K samples per prompt (REINFORCE with the group-mean baseline). Returns
    the cosine of the two estimates, per parameter group: ``"final_norm"`` (the final RMSNorm gain),
    ``"rest"`` (every other weight) and ``"all"``. A cosine near 1 means the direction is shared by
    the prompts (an update along it transfers); near 0, each estimate mostly fits its own prompts and
    samples. The model is left unchanged (its gradients are not touched).

    Lesson 01.3; the on-policy policy gradient of Eq. (3) of LPO, measured for transfer.
    """
    import random

    with one_thread():
        idx = random.Random(seed).sample(range(len(problems)), 2 * n_prompts)
        torch.manual_seed(seed)
        was_training, flags = model.training, [p.requires_grad for p in model.parameters()]
        model.eval()
        for p in model.parameters():
            p.requires_grad_(True)
        g1 = _policy_gradient(model, tok, task, [problems[i] for i in idx[:n_prompts]], K, max_new_tokens, temperature)
        g2 = _policy_gradient(model, tok, task, [problems[i] for i in idx[n_prompts:]], K, max_new_tokens, temperature)
        for p, f in zip(model.parameters(), flags):
            p.requires_grad_(f)
        model.train(was_training)
    norm_ids = {id(p) for p in model.model.norm.parameters()}
    is_norm = [id(p) in norm_ids for p in model.parameters()]

    def cos(sel):
        a = torch.cat([g.flatten() for g, s in zip(g1, is_norm) if sel(s)])
        b = torch.cat([g.flatten() for g, s in zip(g2, is_norm) if sel(s)])
        return float(torch.nn.functional.cosine_similarity(a, b, dim=0))

    return {"final_norm": cos(lambda s: s), "rest": cos(lambda s: not s), "all": cos(lambda s: True)}


def greedy_pass_at_1(model, tok, task, problems, max_new_tokens: int = 5, temperature: float = 1e-3,
                     seed: int = 0) -> float:
    """Held-out accuracy of (near-)greedy decoding: one answer per problem at temperature ``1e-3``.

    Its gap to pass@1 at T = 1 is what sharpening alone (lowering the output temperature) could gain.

    Lesson 01.3; the headroom of a restricted (final-norm) RL run.
    """
    with one_thread():
        torch.manual_seed(seed)
        return evaluate_pass_at_k(model, tok, task, problems, n_samples=1, ks=(1,), max_new_tokens=max_new_tokens,
                                  temperature=temperature)["pass@1"]
