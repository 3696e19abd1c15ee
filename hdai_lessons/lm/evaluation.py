"""Held-out evaluation of a causal LM on a verifiable task: unbiased pass@k (Chen et al. 2021, eq. 1).

Used by module 01 (lessons 01.3, 01.4) and module 02 (02.3, 02.4); ``GroupRLTrainer.evaluate`` calls it.
"""
from __future__ import annotations

from typing import Sequence

import torch

from hdai_lessons.core.metrics import pass_at_k, pass_at_k_tensor
from hdai_lessons.lm.sampling import format_prompts, sample_groups
from hdai_lessons.tasks.base import Problem, Task


def pass_at_k_from_rewards(rewards: torch.Tensor, k: int, threshold: float = 1.0) -> torch.Tensor:
    """Mean unbiased pass@k over problems from ``(B, n)`` sample rewards (a sample is correct iff r ≥ threshold).

    ``c_b = #{j : r_bj ≥ threshold}``, then ``mean_b [1 − C(n − c_b, k)/C(n, k)]`` (Chen et al. 2021,
    ``hdai_lessons.core.metrics.pass_at_k``). Partial credit (Countdown's 0.1) is not a success.
    Returns a 0-d float64 tensor.
    """
    if rewards.dim() != 2:
        raise ValueError(f"rewards must be (B, n), got shape {tuple(rewards.shape)}")
    c = (rewards >= threshold).sum(-1)                                   # (B,)
    return pass_at_k_tensor(rewards.shape[1], c, k).mean()


@torch.no_grad()
def evaluate_pass_at_k(model, tokenizer, task: Task, problems: Sequence[Problem], n_samples: int = 8,
                       ks: Sequence[int] = (1, 8), max_new_tokens: int = 8, temperature: float = 1.0,
                       chat_template: bool = False, batch_prompts: int = 32) -> dict[str, float]:
    """Mean unbiased pass@k over ``problems`` from ``n_samples`` samples each (Chen et al. 2021).

    A sample is correct when its reward is ≥ 1 (a partial-credit 0.1 does not count).
    Returns ``{"pass@k": …}`` for each k ≤ n_samples, plus ``"reward"`` (mean reward of all samples).

    Lessons 01.3, 01.4, 02.3; the unbiased pass@k of Chen et al. 2021 (LPO's evaluation metric).
    """
    if any(k > n_samples for k in ks):
        raise ValueError(f"every k in {tuple(ks)} must be ≤ n_samples={n_samples}")
    was_training = model.training
    model.eval()
    correct: list[int] = []
    total_reward = 0.0
    for i in range(0, len(problems), batch_prompts):
        chunk = problems[i:i + batch_prompts]
        prompts = format_prompts(tokenizer, [p.prompt for p in chunk], chat_template)
        ro = sample_groups(model, tokenizer, prompts, n_samples, max_new_tokens, temperature)
        for p, group in zip(chunk, ro.texts):
            r = [task.reward(p, c) for c in group]
            total_reward += sum(r)
            correct.append(sum(1 for x in r if x >= 1.0))
    model.train(was_training)
    out = {f"pass@{k}": sum(pass_at_k(n_samples, c, k) for c in correct) / len(correct) for k in ks}
    out["reward"] = total_reward / (len(correct) * n_samples)
    return out
