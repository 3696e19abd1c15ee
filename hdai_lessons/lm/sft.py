"""Supervised warm-up (SFT) of a causal LM on a task's targets, before RL (lessons 01.3, 02.2, 02.4).

The SFT loss is −mean log π(target + EOS | prompt), computed with the same ``sequence_logprobs`` the
RL update uses, so the warm-up and the RL phase score tokens identically.
"""
from __future__ import annotations

import math
import random
from typing import Sequence

import torch

from hdai_lessons.core.progress import progress
from hdai_lessons.lm.sampling import encode_prompts, format_prompts, sequence_logprobs
from hdai_lessons.tasks.base import Problem


def sft_batch(tokenizer, problems: Sequence[Problem], chat_template: bool = False, device="cpu"):
    """Prompt + target + EOS in the rollout layout: ``(input_ids (N, P+T), attention_mask, P, mask (N, T))``.

    The prompt is left-padded to P, the target (then EOS) right-padded to T, so ``sequence_logprobs``
    scores exactly the target tokens — the same function the RL update uses.

    Lessons 01.3, 02.2, 02.4; the SFT warm-up before RL (no paper equation).
    """
    prompts = format_prompts(tokenizer, [p.prompt for p in problems], chat_template)
    ids, attn = encode_prompts(tokenizer, prompts, device)                    # (N, P)
    targets = [tokenizer(p.target, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id] for p in problems]
    T = max(len(t) for t in targets)
    tgt = torch.full((len(problems), T), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros(len(problems), T)
    for j, t in enumerate(targets):
        tgt[j, :len(t)] = torch.tensor(t)
        mask[j, :len(t)] = 1.0
    tgt, mask = tgt.to(device), mask.to(device)
    return torch.cat([ids, tgt], 1), torch.cat([attn, mask.long()], 1), ids.shape[1], mask


def sft(model, tokenizer, problems: Sequence[Problem], steps: int = 300, batch_size: int = 32, lr: float = 3e-3,
        seed: int = 0, chat_template: bool = False, weight_decay: float = 0.0, desc: str = "SFT") -> list[float]:
    """Supervised warm-up: minimise −mean log π(target + EOS | prompt) over random batches.

    Returns the loss per step (token-mean negative log-likelihood of the targets).

    Lessons 01.3, 02.4; the SFT warm-up before RL (no paper equation).
    """
    rng = random.Random(seed)
    device = next(model.parameters()).device
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 20) * 0.5 * (1 + math.cos(math.pi * s / max(1, steps))))
    model.train()
    losses = []
    for _ in progress(range(steps), desc=desc, total=steps):
        batch = [problems[rng.randrange(len(problems))] for _ in range(batch_size)]
        ids, attn, P, mask = sft_batch(tokenizer, batch, chat_template, device)
        lp = sequence_logprobs(model, ids, attn, P)                              # (N, T)
        loss = -(lp * mask).sum() / mask.sum()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
    return losses
