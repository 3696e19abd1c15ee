"""Module 02's exercises (ids "02.L.E"): test-time estimators (02.1), CAT SFT losses (02.2), CAT RL (02.3)."""
from __future__ import annotations

import math

import torch

from ..exercises import Case, Exercise, Mistake, register
from .losses import log1mexp, majority_sft_loss, passn_sft_loss
from .strategies import best_of_n_expected_exact, best_of_n_expected_from_samples, majority_credit


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
        Case((torch.linspace(-3.0, -0.01, 12, dtype=torch.float64),), label="float64 around -ln 2"),
    ]


register(Exercise(
    id="02.2.1",
    title="log(1 - exp(x)) without cancellation (log1mexp)",
    reference=log1mexp,
    cases=_log1mexp_cases,
    grad_wrt=(0,),
    difficulty=2, importance=3, minutes=10,
    mistakes=[
        Mistake("naive formula", lambda x: torch.log(1 - torch.exp(x)),
                "near x = 0, exp(x) rounds to 1 and log(0) = -inf: use log(-expm1(x)) there."),
        Mistake("log1p branch everywhere", lambda x: torch.log1p(-torch.exp(x)),
                "log1p(-exp(x)) still rounds exp(x) to 1 for x close to 0: switch to log(-expm1(x)) for x > -ln 2."),
        Mistake("sign error", lambda x: torch.log1p(torch.exp(x)),
                "that is log(1 + e^x) (softplus); the complement of a probability needs 1 − e^x."),
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

