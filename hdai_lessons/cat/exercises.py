"""Module 02's exercises (ids "02.L.E"): test-time estimators (02.1), CAT SFT losses (02.2), CAT RL (02.3)."""
from __future__ import annotations

import math

import torch

from hdai_lessons.course.checkers import Case, Exercise, Mistake, register
from hdai_lessons.cat.losses import log1mexp, majority_sft_loss, passn_sft_loss
from hdai_lessons.cat.strategies import best_of_n_expected_exact, best_of_n_expected_from_samples, majority_credit


# ---------------------------------------------------------------------------------------- 02.1.1
def _credit_cases() -> list[Case]:
    g = torch.Generator().manual_seed(21)
    return [
        Case((torch.tensor([[1, 1, 2, 2, 0], [0, 0, 0, 1, 2], [3, 1, 2, 0, 4]]), torch.tensor([1, 0, 4]), 5),
             label="a 2-way tie, a clear win, a 5-way tie"),
        Case((torch.randint(0, 4, (64, 6), generator=g), torch.randint(0, 4, (64,), generator=g), 4),
             label="64 random prompts, k = 6"),
        Case((torch.randint(0, 3, (32, 2), generator=g), torch.randint(0, 3, (32,), generator=g), 3), label="k = 2"),
    ]


def _strict(answers, correct, A):
    counts = torch.nn.functional.one_hot(answers.long(), A).sum(-2)
    winners = counts == counts.max(-1, keepdim=True).values
    hit = winners.gather(-1, correct.long().unsqueeze(-1)).squeeze(-1)
    return (hit & (winners.sum(-1) == 1)).double()


def _ties_win(answers, correct, A):
    counts = torch.nn.functional.one_hot(answers.long(), A).sum(-2)
    winners = counts == counts.max(-1, keepdim=True).values
    return winners.gather(-1, correct.long().unsqueeze(-1)).squeeze(-1).double()


def _argmax_vote(answers, correct, A):
    counts = torch.nn.functional.one_hot(answers.long(), A).sum(-2)
    return (counts.argmax(-1) == correct).double()


register(Exercise(
    id="02.1.1",
    title="the expected credit of one majority vote (ties split uniformly)",
    reference=majority_credit,
    cases=_credit_cases,
    difficulty=1, importance=3, minutes=10,
    mistakes=[
        Mistake("ties count as losses", _strict,
                "a tie is broken at random: a tie between m answers that includes the correct one is worth 1/m, not 0."),
        Mistake("ties count as wins", _ties_win,
                "being among the most-voted answers is not enough when there are several: divide by how many tie."),
        Mistake("argmax picks the first of the tied", _argmax_vote,
                "argmax returns the lowest index among ties, which favours answer 0; credit 1/m to each of the m tied."),
    ],
))


# ---------------------------------------------------------------------------------------- 02.1.2
def _bon_sample_cases() -> list[Case]:
    g = torch.Generator().manual_seed(22)
    return [
        Case((torch.tensor([[0.3, 1.2, -0.5, 0.9, 0.9, 2.0]], dtype=torch.float64), 2), label="6 samples, k = 2"),
        Case((torch.randn(5, 16, generator=g, dtype=torch.float64), 4), label="16 samples, k = 4"),
        Case((torch.rand(3, 8, generator=g, dtype=torch.float64), 8), label="k = n"),
        Case((torch.randn(4, 10, generator=g, dtype=torch.float64), 1), label="k = 1 is the mean"),
    ]


def _bon_with_replacement(rewards, k):
    r = rewards.double().sort(-1).values
    n = r.shape[-1]
    i = torch.arange(1, n + 1, dtype=torch.float64)
    return (r * ((i / n) ** k - ((i - 1) / n) ** k)).sum(-1)


def _bon_unsorted(rewards, k):
    r = rewards.double()
    n = r.shape[-1]
    w = torch.tensor([math.comb(i - 1, k - 1) / math.comb(n, k) for i in range(1, n + 1)], dtype=torch.float64)
    return (r * w).sum(-1)


def _bon_off_by_one(rewards, k):
    r = rewards.double().sort(-1).values
    n = r.shape[-1]
    w = torch.tensor([math.comb(i, k - 1) / math.comb(n, k) for i in range(1, n + 1)], dtype=torch.float64)
    return (r * w).sum(-1)


register(Exercise(
    id="02.1.2",
    title="unbiased best-of-k expected reward from n samples",
    reference=best_of_n_expected_from_samples,
    cases=_bon_sample_cases,
    difficulty=2, importance=2, minutes=15,
    mistakes=[
        Mistake("resampled with replacement", _bon_with_replacement,
                "treating the n samples as the true distribution (F^k - F_prev^k) is the plug-in: it is biased. "
                "Average the max over the C(n, k) subsets *without* replacement."),
        Mistake("forgot to sort", _bon_unsorted,
                "the weight C(i-1, k-1) belongs to the i-th *smallest* reward: sort ascending first."),
        Mistake("off-by-one in the subset count", _bon_off_by_one,
                "the i-th smallest is the max of the subsets that pick the other k-1 among the i-1 below it: C(i-1, k-1)."),
    ],
))


# ---------------------------------------------------------------------------------------- 02.1.3
def _bon_exact_cases() -> list[Case]:
    g = torch.Generator().manual_seed(23)
    probs = torch.softmax(torch.randn(4, 6, generator=g, dtype=torch.float64), -1)
    return [
        Case((torch.tensor([[0.5, 0.3, 0.2]], dtype=torch.float64), torch.tensor([[0.0, 2.0, 1.0]], dtype=torch.float64), 4),
             label="3 answers, rewards not sorted"),
        Case((probs, torch.randn(4, 6, generator=g, dtype=torch.float64), 8), label="4 prompts, 6 answers"),
        Case((probs, torch.tensor([1.0, 0.0, 0.5, 0.2, 0.9, 0.1], dtype=torch.float64), 3), label="rewards shared by prompts"),
    ]


def _bon_exact_unsorted(probs, rewards, k_max):
    rewards = torch.as_tensor(rewards, dtype=torch.float64).expand_as(probs)
    F = probs.double().cumsum(-1)
    F_prev = torch.nn.functional.pad(F[:, :-1], (1, 0))
    k = torch.arange(1, k_max + 1, dtype=torch.float64).view(1, 1, -1)
    return (rewards.unsqueeze(-1) * (F.unsqueeze(-1) ** k - F_prev.unsqueeze(-1) ** k)).sum(1)


def _bon_exact_no_diff(probs, rewards, k_max):
    rewards = torch.as_tensor(rewards, dtype=torch.float64).expand_as(probs)
    r, order = rewards.sort(-1)
    F = probs.double().gather(-1, order).cumsum(-1)
    k = torch.arange(1, k_max + 1, dtype=torch.float64).view(1, 1, -1)
    return (r.unsqueeze(-1) * F.unsqueeze(-1) ** k).sum(1)


def _bon_exact_k_minus_1(probs, rewards, k_max):
    rewards = torch.as_tensor(rewards, dtype=torch.float64).expand_as(probs)
    r, order = rewards.sort(-1)
    F = probs.double().gather(-1, order).cumsum(-1)
    F_prev = torch.nn.functional.pad(F[:, :-1], (1, 0))
    k = torch.arange(0, k_max, dtype=torch.float64).view(1, 1, -1)          # 0..k_max-1: shifted
    return (r.unsqueeze(-1) * (F.unsqueeze(-1) ** k - F_prev.unsqueeze(-1) ** k)).sum(1)


register(Exercise(
    id="02.1.3",
    title="exact best-of-k expected reward of a categorical policy",
    reference=best_of_n_expected_exact,
    cases=_bon_exact_cases,
    difficulty=2, importance=2, minutes=12,
    mistakes=[
        Mistake("CDF in the given order", _bon_exact_unsorted,
                "the max of k draws is answer a only if every draw has reward ≤ r_a: sort answers by reward first."),
        Mistake("no difference of CDFs", _bon_exact_no_diff,
                "P[max = r_(a)] = F_a^k − F_{a−1}^k, not F_a^k (that is P[max ≤ r_(a)])."),
        Mistake("budgets shifted by one", _bon_exact_k_minus_1,
                "column j holds the budget k = j + 1 (k runs 1..k_max): use exponents 1..k_max, not 0..k_max-1."),
    ],
))


# ---------------------------------------------------------------------------------------- 02.2.1
def _log1mexp_cases() -> list[Case]:
    return [
        Case((torch.tensor([-60.0, -30.0, -5.0, -0.9, -0.5, -0.1, -1e-4, -1e-7]),), label="float32 from -60 to -1e-7"),
        # where exp(x) rounds to 1 in float32 (the CAT loss clamps log(1 − p)^N at −1e-12)
        Case((torch.tensor([-1e-9, -1e-12]),), label="float32 at -1e-9 and -1e-12"),
        Case((torch.linspace(-3.0, -0.01, 12, dtype=torch.float64),), label="float64 around -ln 2"),
    ]


register(Exercise(
    id="02.2.1",
    title="log(1 - exp(x)) without cancellation (log1mexp)",
    reference=log1mexp,
    cases=_log1mexp_cases,
    grad_wrt=(0,),
    atol=0.0,               # relative accuracy at both ends is the point (-60 → -8.8e-27, not 0)
    difficulty=2, importance=3, minutes=10,
    mistakes=[
        Mistake("naive formula", lambda x: torch.log(1 - torch.exp(x)),
                "near x = 0, exp(x) rounds to 1 and log(0) = -inf: use log(-expm1(x)) there."),
        Mistake("log1p branch everywhere", lambda x: torch.log1p(-torch.exp(x)),
                "log1p(-exp(x)) still rounds exp(x) to 1 for x close to 0: switch to log(-expm1(x)) for x > -ln 2."),
        Mistake("sign error", lambda x: torch.log1p(torch.exp(x)),
                "that is log(1 + e^x) (softplus); the complement of a probability needs 1 − e^x."),
        Mistake("unsafe torch.where", lambda x: torch.where(x > -0.6931471805599453, torch.log(-torch.expm1(x)),
                                                            torch.log1p(-torch.exp(x))),
                "torch.where evaluates both branches: log1p(-exp(x)) is -inf near 0 and its NaN gradient leaks "
                "through; feed each branch only inputs that are safe for it (clamp x per branch)."),
    ],
))


# ---------------------------------------------------------------------------------------- 02.2.2
def _passn_cases() -> list[Case]:
    lp32 = torch.tensor([-50.0, -12.0, -3.0, -1.2, -0.4, -0.05, -1e-5])
    return [
        Case((lp32, 16), label="float32 log-probs from -50 to -1e-5, N = 16"),
        Case((lp32.double(), 4), label="float64, N = 4"),
        Case((torch.tensor([-2.0, -0.7], dtype=torch.float64), 1), label="N = 1 is cross-entropy"),
    ]


def _naive_passn(logp, N):
    return -torch.log(1 - (1 - torch.exp(logp)) ** N)


register(Exercise(
    id="02.2.2",
    title="the CAT-Pass@N SFT loss -log(1 - (1 - p)^N), stably",
    reference=passn_sft_loss,
    cases=_passn_cases,
    grad_wrt=(0,),
    difficulty=2, importance=3, minutes=12,
    mistakes=[
        Mistake("naive power of (1 - p)", _naive_passn,
                "for p = e^-50, 1 - p rounds to 1 and the loss is -log 0 = inf: stay in log space, "
                "log(1-p) = log1mexp(logp), then log S = log1mexp(N·log(1-p))."),
        Mistake("forgot the minus sign", lambda logp, N: log1mexp(N * log1mexp(logp)),
                "a loss to minimise is the *negative* log-success, -log S(p)."),
        Mistake("exponent N - 1", lambda logp, N: -log1mexp((N - 1) * log1mexp(logp)),
                "all N samples must fail for Pass@N to fail: (1 - p)^N, not (1 - p)^(N-1) (that is the weight's factor)."),
        Mistake("plain cross-entropy", lambda logp, N: -logp,
                "that is N = 1; the budget N must enter the loss."),
    ],
))


# ---------------------------------------------------------------------------------------- 02.2.3
def _majority_cases() -> list[Case]:
    lp = torch.tensor([-50.0, -8.0, -2.3, -1.2, -0.7, -0.2, -1e-4])
    return [
        Case((lp, 8, 3), label="float32, N = 8, k = 3"),
        Case((lp.double(), 16, 4), label="float64, N = 16, k = 4"),
        Case((torch.tensor([-1.0, -0.1], dtype=torch.float64), 5, 5), label="k = N"),
    ]


def _tail_from(logp, N, k, start, lower=False, coef=True):
    lp = logp.clamp(max=-1e-12)
    i = torch.arange(0, k + 1) if lower else torch.arange(start, N + 1)
    logc = (math.lgamma(N + 1) - torch.lgamma(i.double() + 1) - torch.lgamma(N - i.double() + 1)).to(lp.dtype)
    i = i.to(lp.dtype)
    terms = (logc if coef else 0) + lp.unsqueeze(-1) * i + log1mexp(lp).unsqueeze(-1) * (N - i)
    return -torch.logsumexp(terms, -1)


def _naive_majority(logp, N, k):
    p = torch.exp(logp)
    return -torch.log(sum(math.comb(N, i) * p ** i * (1 - p) ** (N - i) for i in range(k, N + 1)))


register(Exercise(
    id="02.2.3",
    title="the CAT-Majority SFT loss -log P[Bin(N, p) ≥ k] in log space",
    reference=majority_sft_loss,
    cases=_majority_cases,
    grad_wrt=(0,),
    difficulty=3, importance=3, minutes=20,
    mistakes=[
        Mistake("tail starts at k + 1", lambda logp, N, k: _tail_from(logp, N, k, k + 1) if k < N else -N * logp,
                "'at least k votes' includes exactly k: sum i = k..N."),
        Mistake("lower tail", lambda logp, N, k: _tail_from(logp, N, k, 0, lower=True),
                "P[Bin ≥ k] is the *upper* tail: the target must get many votes, not few."),
        Mistake("no binomial coefficients", lambda logp, N, k: _tail_from(logp, N, k, k, coef=False),
                "there are C(N, i) ways to place i correct votes among N samples: add log C(N, i) to each term."),
        Mistake("summed probabilities, then log", _naive_majority,
                "p^k underflows for p = e^-50 and the loss becomes inf: add the terms with logsumexp of log-terms."),
    ],
))



# ---------------------------------------------------------------------------------------- 02.3.1
from hdai_lessons.cat.rl import passn_weighted_advantages  # noqa: E402
from hdai_lessons.cat.weights import clip_and_normalise, dynamic_majority_k, empirical_p, passn_rl_weight  # noqa: E402


def _p_hat_cases() -> list[Case]:
    g = torch.Generator().manual_seed(31)
    return [
        Case((torch.tensor([[0.0, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 1]]),), label="none, half, all correct"),
        Case((torch.randint(0, 2, (6, 8), generator=g).float(),), label="6 prompts × 8 rollouts"),
        Case((torch.randint(0, 2, (3, 5), generator=g).float(),), label="5 rollouts"),
    ]


register(Exercise(
    id="02.3.1",
    title="Laplace-smoothed per-prompt success p̂ = (c + 1)/(M + 2)",
    reference=empirical_p,
    cases=_p_hat_cases,
    difficulty=1, importance=2, minutes=5,
    mistakes=[
        Mistake("no smoothing", lambda c: c.float().mean(-1),
                "c/M is 0 for an all-wrong group and 1 for an all-right one; add one success and one failure."),
        Mistake("smoothed only the numerator", lambda c: (c.float().sum(-1) + 1) / (c.shape[-1] + 1),
                "Laplace's rule adds a pseudo-success AND a pseudo-failure: divide by M + 2."),
        Mistake("wrong axis", lambda c: (c.float().sum(0) + 1) / (c.shape[0] + 2),
                "count successes over the M rollouts of each prompt (the last dimension), not over prompts."),
    ],
))


# ---------------------------------------------------------------------------------------- 02.3.2
def _dyn_k_cases() -> list[Case]:
    return [
        Case((8, torch.tensor([0, 1, 2, 3, 4, 5, 8]), 8), label="N = M = 8"),
        Case((4, torch.tensor([0, 3, 7, 16]), 16), label="N = 4, M = 16"),
        Case((16, torch.tensor([0, 2, 5, 9]), 8), label="N = 16, M = 8"),
    ]


register(Exercise(
    id="02.3.2",
    title="the per-prompt majority threshold k from the strongest wrong answer",
    reference=dynamic_majority_k,
    cases=_dyn_k_cases,
    difficulty=1, importance=2, minutes=8,
    mistakes=[
        Mistake("no cap at a strict majority", lambda N, c, M: (torch.div(N * c.long(), M, rounding_mode="floor") + 1).clamp(min=2),
                "more than N//2 + 1 votes is never needed to win: cap k at N//2 + 1."),
        Mistake("no floor at 2", lambda N, c, M: (torch.div(N * c.long(), M, rounding_mode="floor") + 1).clamp(max=N // 2 + 1),
                "k = 1 would be Pass@N; the official code floors k at 2."),
        Mistake("forgot the + 1", lambda N, c, M: torch.div(N * c.long(), M, rounding_mode="floor").clamp(max=N // 2 + 1).clamp(min=2),
                "to *beat* a rival expected to get ⌊N·c_max/M⌋ votes the correct answer needs one more."),
    ],
))


# ---------------------------------------------------------------------------------------- 02.3.3
def _wadv_cases() -> list[Case]:
    g = torch.Generator().manual_seed(33)
    return [
        Case((torch.tensor([[1.0, 0, 0, 0, 0, 0, 0, 0], [1, 1, 1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1, 1, 0]]), 8),
             label="hard, medium, easy prompt"),
        Case((torch.randint(0, 2, (6, 8), generator=g).float(), 16), label="6 prompts, N = 16"),
        Case((torch.tensor([[1.0, 0, 0, 0], [0, 0, 0, 0]]), 4), {"clip": 2.0}, label="clip at 2"),
    ]


def _wadv_no_norm(rewards, N, clip=10.0, eps=1e-6):
    from hdai_lessons.core.ops import group_advantages
    w = clip_and_normalise(passn_rl_weight(empirical_p(rewards), N), clip, normalise=False)
    return group_advantages(rewards, eps) * w.unsqueeze(-1)


def _wadv_unsmoothed(rewards, N, clip=10.0, eps=1e-6):
    from hdai_lessons.core.ops import group_advantages
    w = clip_and_normalise(passn_rl_weight(rewards.float().mean(-1), N), clip)
    return group_advantages(rewards, eps) * w.unsqueeze(-1)


def _wadv_batch_std(rewards, N, clip=10.0, eps=1e-6):
    adv = (rewards - rewards.mean()) / (rewards.std(unbiased=False) + eps)
    w = clip_and_normalise(passn_rl_weight(empirical_p(rewards), N), clip)
    return adv * w.unsqueeze(-1)


def _wadv_on_rewards(rewards, N, clip=10.0, eps=1e-6):
    from hdai_lessons.core.ops import group_advantages
    w = clip_and_normalise(passn_rl_weight(empirical_p(rewards), N), clip)
    return group_advantages(rewards * w.unsqueeze(-1), eps)


register(Exercise(
    id="02.3.3",
    title="CAT-Pass@N weighted GRPO advantages",
    reference=passn_weighted_advantages,
    cases=_wadv_cases,
    difficulty=2, importance=3, minutes=15,
    mistakes=[
        Mistake("weights not normalised", _wadv_no_norm,
                "divide the clipped weights by their batch mean so the step size stays GRPO's."),
        Mistake("unsmoothed p̂", _wadv_unsmoothed,
                "use the Laplace-smoothed p̂ = (c+1)/(K+2) (exercise 02.3.1)."),
        Mistake("advantages normalised over the batch", _wadv_batch_std,
                "GRPO standardises each prompt's K rewards separately (ops.group_advantages)."),
        Mistake("weighted the rewards, not the advantages", _wadv_on_rewards,
                "scaling a group's rewards by w cancels in (R − mean)/std: multiply the advantages."),
    ],
))


# ---------------------------------------------------------------------------------------- 02.4.1
from hdai_lessons.tasks import extract_gsm8k_answer  # noqa: E402
from hdai_lessons.cat.rl import answer_ids, heldout_standard_error, majority_k_from_rollouts  # noqa: E402


def _ids_cases() -> list[Case]:
    return [
        Case(([["x = 3\n#### 12", "so it is 12", "#### 12.0", "no idea"], ["#### 5", "#### 7", "maybe 5", "#### 7"]],),
             {"answer_fn": extract_gsm8k_answer}, label="GSM8K solutions, 2 prompts"),
        Case(([["a", "b", "?", "?"], ["?", "c", "c", "d"]],), {"answer_fn": lambda t: None if t == "?" else t},
             label="unparsable answers"),
    ]


def _ids_raw(texts, answer_fn=None):
    out = []
    for group in texts:
        seen = {}
        out.append([seen.setdefault(t.strip(), len(seen)) for t in group])
    return torch.tensor(out, dtype=torch.long)


def _ids_none_shared(texts, answer_fn=None):
    fn = answer_fn or (lambda t: t.strip())
    out = []
    for group in texts:
        seen = {}
        out.append([seen.setdefault(fn(t), len(seen)) for t in group])
    return torch.tensor(out, dtype=torch.long)


def _ids_global(texts, answer_fn=None):
    fn = answer_fn or (lambda t: t.strip())
    seen, out = {}, []
    for group in texts:
        out.append([seen.setdefault(("none", j, len(out)) if fn(t) is None else fn(t), len(seen)) for j, t in enumerate(group)])
    return torch.tensor(out, dtype=torch.long)


register(Exercise(
    id="02.4.1",
    title="answer classes for majority vote on free-form solutions",
    reference=answer_ids,
    cases=_ids_cases,
    difficulty=1, importance=2, minutes=10,
    mistakes=[
        Mistake("voted on raw text", _ids_raw,
                "two solutions with the same final number are one vote: group by answer_fn(text), not the text."),
        Mistake("unparsable answers vote together", _ids_none_shared,
                "answer_fn returns None for unparsable text; each such completion is its own (losing) class."),
        Mistake("ids shared across prompts", _ids_global,
                "number the classes of each prompt from 0: votes never mix between prompts."),
    ],
))


# ---------------------------------------------------------------------------------------- 02.4.2
def _k_cases() -> list[Case]:
    return [
        Case((torch.tensor([[0, 1, 1, 2, 1, 0, 3, 1], [0, 0, 0, 0, 0, 0, 0, 0], [2, 2, 2, 2, 2, 2, 0, 1]]),
              torch.tensor([[1, 0, 0, 0, 0, 1, 0, 0], [1, 1, 1, 1, 1, 1, 1, 1], [0, 0, 0, 0, 0, 0, 1, 0]]).bool(), 8),
             label="a strong rival, all correct, a dominant wrong answer"),
        Case((torch.tensor([[0, 1, 2, 3], [1, 1, 0, 2]]), torch.tensor([[1, 0, 0, 0], [0, 0, 1, 0]]).bool(), 16), label="N = 16, M = 4"),
    ]


def _k_rivals_include_correct(ids, correct, N):
    counts = (ids.unsqueeze(-1) == ids.unsqueeze(-2)).sum(-1).max(-1).values
    return dynamic_majority_k(N, counts, ids.shape[-1])


def _k_distinct_wrong(ids, correct, N):
    distinct = torch.tensor([len(set(i for i, c in zip(r.tolist(), cc.tolist()) if not c)) for r, cc in zip(ids, correct)])
    return dynamic_majority_k(N, distinct, ids.shape[-1])


def _k_uses_n_for_m(ids, correct, N):
    from hdai_lessons.cat.weights import most_frequent_wrong_count
    return dynamic_majority_k(N, most_frequent_wrong_count(ids, correct), N)


register(Exercise(
    id="02.4.2",
    title="the dynamic majority threshold from a group of rollouts",
    reference=majority_k_from_rollouts,
    cases=_k_cases,
    difficulty=2, importance=2, minutes=12,
    mistakes=[
        Mistake("counted the correct answer as a rival", _k_rivals_include_correct,
                "c_max is the count of the most frequent *wrong* answer; mask out correct rollouts."),
        Mistake("counted distinct wrong answers", _k_distinct_wrong,
                "the threat is the single strongest rival: the number of votes of the most frequent wrong answer."),
        Mistake("divided by N instead of M", _k_uses_n_for_m,
                "c_max comes from M rollouts; its expected share of N votes is N·c_max/M."),
    ],
))


# ---------------------------------------------------------------------------------------- 02.4.3
def _se_cases() -> list[Case]:
    g = torch.Generator().manual_seed(43)
    return [
        Case((torch.tensor([0.0, 0.25, 0.5, 1.0, 0.0, 0.0, 0.75, 0.25], dtype=torch.float64),), label="8 problems"),
        Case((torch.rand(200, generator=g, dtype=torch.float64),), label="200 problems"),
    ]


register(Exercise(
    id="02.4.3",
    title="the standard error of a held-out mean",
    reference=heldout_standard_error,
    cases=_se_cases,
    difficulty=1, importance=3, minutes=5,
    atol=1e-8, rtol=1e-6,
    mistakes=[
        Mistake("population sd", lambda p: p.std(unbiased=False) / p.numel() ** 0.5,
                "an estimate from P problems uses the sample sd (divide by P − 1)."),
        Mistake("no division by sqrt(P)", lambda p: p.std(),
                "that is the spread of single problems; the mean of P of them varies √P times less."),
        Mistake("variance, not sd", lambda p: p.var() / p.numel() ** 0.5,
                "the standard error is sd/√P (or sqrt(var/P)), in the units of the mean."),
    ],
))
