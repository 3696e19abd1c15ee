"""Exercises of lessons 01.3 (RLVR on a tiny transformer) and 01.4 (full scale).

01.3: the causal shift that scores a response, the masked policy entropy, pass@k from sample rewards.
01.4: the response mask at the first EOS, position ids for left-padded batches, GSM8K answer extraction.
"""
from __future__ import annotations

import re

import torch

from hdai_lessons.course.checkers import Case, Exercise, Mistake, register
from hdai_lessons.tasks.gsm8k import extract_gsm8k_answer
from hdai_lessons.lm.sampling import masked_token_entropy, position_ids_from_mask, response_logprobs, response_mask
from hdai_lessons.lm.evaluation import pass_at_k_from_rewards

# ------------------------------------------------------------------ 01.3.1 response log-probs


def _logprob_cases() -> list[Case]:
    g = torch.Generator().manual_seed(31)
    return [
        Case((torch.randn(2, 7, 11, generator=g), torch.randint(0, 11, (2, 7), generator=g), 4), label="prompt 4, response 3"),
        Case((torch.randn(3, 5, 6, generator=g) * 3, torch.randint(0, 6, (3, 5), generator=g), 1), label="prompt of one token"),
        Case((torch.randn(1, 9, 13, generator=g), torch.randint(0, 13, (1, 9), generator=g), 8), label="one response token"),
    ]


def _lp_no_shift(logits, ids, P):
    return torch.log_softmax(logits[:, P:], -1).gather(-1, ids[:, P:, None])[..., 0]


def _lp_raw_logits(logits, ids, P):
    return logits[:, P - 1:-1].gather(-1, ids[:, P:, None])[..., 0]


def _lp_probs(logits, ids, P):
    return torch.softmax(logits[:, P - 1:-1], -1).gather(-1, ids[:, P:, None])[..., 0]


def _lp_shift_two(logits, ids, P):
    lp = torch.log_softmax(logits, -1)
    return lp[:, max(P - 2, 0):max(P - 2, 0) + ids.shape[1] - P].gather(-1, ids[:, P:, None])[..., 0]


register(Exercise(
    id="01.3.1",
    title="log-probs of the response tokens (the causal shift)",
    reference=response_logprobs,
    cases=_logprob_cases,
    grad_wrt=(0,),
    difficulty=1, importance=3, minutes=10,
    mistakes=[
        Mistake("no shift", _lp_no_shift,
                "the logit at position j predicts token j+1: score response tokens with logits[:, P-1:-1]."),
        Mistake("raw logits", _lp_raw_logits,
                "gather from log_softmax(logits), not from the logits themselves."),
        Mistake("probabilities", _lp_probs, "return log-probabilities (log_softmax), not probabilities."),
        Mistake("shifted by two", _lp_shift_two, "shift by exactly one position: logits[:, P-1:-1]."),
    ],
))

# ------------------------------------------------------------------ 01.3.2 masked entropy


def _entropy_cases() -> list[Case]:
    g = torch.Generator().manual_seed(32)
    mask = torch.tensor([[1., 1., 1., 0.], [1., 0., 0., 0.], [1., 1., 1., 1.]])
    return [
        Case((torch.randn(3, 4, 7, generator=g) * 2, mask), label="padded responses"),
        Case((torch.zeros(2, 3, 5), torch.ones(2, 3)), label="uniform policy: log 5"),
        Case((torch.randn(2, 2, 4, generator=g), torch.tensor([[1., 1.], [0., 0.]])), label="an empty response"),
    ]


def _ent_tokens(logits):
    lp = torch.log_softmax(logits, -1)
    return -(lp.exp() * lp).sum(-1)


register(Exercise(
    id="01.3.2",
    title="mean policy entropy over real response tokens",
    reference=masked_token_entropy,
    cases=_entropy_cases,
    grad_wrt=(0,),
    difficulty=1, importance=2, minutes=8,
    mistakes=[
        Mistake("padding counted", lambda logits, m: _ent_tokens(logits).mean(),
                "average over real tokens only: Σ m·H / Σ m."),
        Mistake("mean over the vocabulary", lambda logits, m: (-(torch.softmax(logits, -1) * torch.log_softmax(logits, -1)).mean(-1) * m).sum() / m.sum(),
                "entropy sums over the vocabulary: H = −Σ_v p_v log p_v."),
        Mistake("sign error", lambda logits, m: -(_ent_tokens(logits) * m).sum() / m.sum(),
                "H = −Σ p log p is ≥ 0; check the sign."),
        Mistake("log2 (bits)", lambda logits, m: (_ent_tokens(logits) / torch.log(torch.tensor(2.0)) * m).sum() / m.sum(),
                "use natural logs (nats), as log_softmax does."),
    ],
))

# ------------------------------------------------------------------ 01.3.3 pass@k from rewards


def _passk_cases() -> list[Case]:
    g = torch.Generator().manual_seed(33)
    binary = (torch.rand(6, 8, generator=g) < 0.3).float()
    graded = torch.tensor([[1.0, 0.1, 0.1, 0.0], [0.1, 0.1, 0.0, 0.0], [1.0, 1.0, 0.0, 0.1]])
    return [
        Case((binary, 4), label="6 problems × 8 samples, k = 4"),
        Case((graded, 2), label="Countdown-style partial credit 0.1, k = 2"),
        Case((binary, 1), label="k = 1 is the success rate"),
        Case((torch.tensor([[1., 0., 0., 0., 0., 0., 0., 0.]]), 8), label="k = n"),
    ]


def _pk_plugin(r, k, threshold=1.0):
    p = (r >= threshold).double().mean(-1)
    return (1 - (1 - p) ** k).mean()


def _pk_any_reward(r, k, threshold=1.0):
    return pass_at_k_from_rewards((r > 0).double(), k)


def _pk_pooled(r, k, threshold=1.0):
    from hdai_lessons.core.metrics import pass_at_k
    c = int((r >= threshold).sum())
    return torch.tensor(pass_at_k(r.numel(), c, k), dtype=torch.float64)


def _pk_pass1(r, k, threshold=1.0):
    return (r >= threshold).double().mean()


register(Exercise(
    id="01.3.3",
    title="held-out pass@k from a (problems × samples) reward table",
    reference=pass_at_k_from_rewards,
    cases=_passk_cases,
    difficulty=2, importance=3, minutes=12,
    mistakes=[
        Mistake("plug-in estimator", _pk_plugin,
                "1 − (1 − c/n)^k samples with replacement and is biased; use 1 − C(n−c, k)/C(n, k)."),
        Mistake("partial credit counted as correct", _pk_any_reward,
                "a sample is correct only when its reward reaches the threshold (1.0), not when it is > 0."),
        Mistake("pooled over problems", _pk_pooled,
                "count c per problem (per row), estimate pass@k per problem, then average over problems."),
        Mistake("ignored k", _pk_pass1, "that is pass@1; pass@k needs the estimator with k."),
    ],
))

# ------------------------------------------------------------------ 01.4.1 response mask


def _mask_cases() -> list[Case]:
    return [
        Case((torch.tensor([[5, 2, 7, 2], [5, 6, 7, 8], [2, 0, 0, 0]]), 2), label="EOS id 2"),
        Case((torch.tensor([[[9, 9, 1, 4, 1], [1, 1, 1, 1, 1]]]), 1), label="(B, K, T) with repeated EOS"),
        Case((torch.tensor([[4, 4, 4]]), 3), label="no EOS: truncated response"),
    ]


def _mask_no_eos(ids, eos):
    is_eos = (ids == eos).long()
    return (torch.cumsum(is_eos, -1) == 0).float()


def _mask_last_eos(ids, eos):
    rev = torch.flip(ids, [-1])
    after_last = torch.cumsum((rev == eos).long(), -1) == 0
    return (~torch.flip(after_last, [-1]) | (ids == eos) | ~(ids == eos).any(-1, keepdim=True)).float()


def _mask_not_eos(ids, eos):
    return (ids != eos).float()


register(Exercise(
    id="01.4.1",
    title="response mask: real tokens up to and including the first EOS",
    reference=response_mask,
    cases=_mask_cases,
    difficulty=1, importance=3, minutes=8,
    mistakes=[
        Mistake("EOS excluded", _mask_no_eos,
                "keep the EOS token itself: the model must learn *when to stop*, so EOS gets a log-prob and a gradient."),
        Mistake("stopped at the last EOS", _mask_last_eos,
                "everything after the *first* EOS is padding the sampler wrote; use a cumulative count of EOS before t."),
        Mistake("only EOS removed", _mask_not_eos,
                "tokens after the first EOS are not part of the response either."),
    ],
))

# ------------------------------------------------------------------ 01.4.2 position ids


def _pos_cases() -> list[Case]:
    return [
        Case((torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]]),), label="left padding"),
        Case((torch.tensor([[0, 0, 0, 1, 1, 1, 1, 0, 0]]),), label="response padded after EOS"),
        Case((torch.tensor([[1, 1, 1]]),), label="no padding"),
    ]


register(Exercise(
    id="01.4.2",
    title="position ids for a left-padded batch",
    reference=position_ids_from_mask,
    cases=_pos_cases,
    difficulty=1, importance=3, minutes=8,
    mistakes=[
        Mistake("arange ignores the padding", lambda m: torch.arange(m.shape[-1]).expand_as(m).clone(),
                "with left padding the first real token must get position 0: count real tokens (cumsum of the mask)."),
        Mistake("starts at 1", lambda m: m.long().cumsum(-1),
                "positions start at 0: subtract 1 from the cumulative count."),
        Mistake("negative positions on padding", lambda m: m.long().cumsum(-1) - 1,
                "padding gets −1 that way; clamp to 0 (the value is unused, but −1 indexes out of range)."),
    ],
))

# ------------------------------------------------------------------ 01.4.3 GSM8K extraction


def _gsm_cases() -> list[Case]:
    texts = [
        "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nShe sold 48+24 = <<48+24=72>>72 clips.\n#### 72",
        "The total is 1,250 dollars.\n#### 1,250",
        "First 3 apples, then 5 more, so 8 apples in total.",
        "I think the answer is $18.50.",
        "No number at all.",
        "#### -4",
        "Step 1: 12 eggs. #### 12 eggs, but wait 13",
        "#### 3\nWait, I missed one basket: 4 in total.\n#### 4",
    ]
    return [Case((t,), label=t[:30].replace("\n", " ")) for t in texts]


def _gsm_first(text):
    m = re.findall(r"-?\d[\d,]*(?:\.\d+)?", text)
    return m[0].replace(",", "") if m else None


def _gsm_no_comma(text):
    if "####" in text:
        m = re.search(r"-?\d+(?:\.\d+)?", text.rsplit("####", 1)[1])
        return m.group(0) if m else None
    m = re.findall(r"-?\d+(?:\.\d+)?", text)
    return m[-1] if m else None


def _gsm_first_marker(text):
    if "####" in text:
        m = re.search(r"-?\d[\d,]*(?:\.\d+)?", text.split("####", 1)[1])
        return m.group(0).replace(",", "") if m else None
    return extract_gsm8k_answer(text)


def _gsm_last_only(text):
    return extract_gsm8k_answer(text.replace("####", " "))


register(Exercise(
    id="01.4.3",
    title="GSM8K answer extraction (after '####', else the last number)",
    reference=extract_gsm8k_answer,
    cases=_gsm_cases,
    difficulty=2, importance=2, minutes=12,
    mistakes=[
        Mistake("first number", _gsm_first, "the final answer comes last: take the last number (or the one after ####)."),
        Mistake("thousands separators kept apart", _gsm_no_comma,
                "'1,250' is one number: allow commas inside the digits and remove them."),
        Mistake("after the first '####'", _gsm_first_marker,
                "a solution may revise itself: the answer follows the *last* '####' (use rsplit)."),
        Mistake("ignored '####'", _gsm_last_only,
                "when the text has '####', the answer is the first number after the last '####', even if more text follows."),
    ],
))
