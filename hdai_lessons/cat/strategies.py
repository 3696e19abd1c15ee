"""Test-time strategies and their estimators: pass@k, majority vote (maj@k) and best-of-N.

A model is used by drawing k samples and applying a strategy. This module computes how well a
policy does under each strategy, exactly when the answer distribution is known (a categorical
toy) and by estimation from n ≥ k samples when it is not (a real model):

- pass@k: any of k samples correct. Exact ``1 - (1-p)^k``; from samples the unbiased estimator of
  Chen et al. (2021, arXiv 2107.03374 §2.1) — ``hdai_lessons.core.metrics.pass_at_k`` — versus the biased
  plug-in ``1 - (1 - c/n)^k``.
- maj@k: the most frequent answer among k samples is correct (ties broken uniformly at random).
  Exact by a generating-function sum over the multinomial; Monte Carlo by resampling k of n
  samples (the paper's evaluation uses 500 resampling trials).
- best-of-N: the expected reward of the best of k samples. Exact ``Σ_a r_(a) [F_a^k - F_{a-1}^k]``;
  from n samples the unbiased order-statistic estimator ``Σ_i r_(i) C(i-1,k-1)/C(n,k)``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from hdai_lessons.core.metrics import pass_at_k_from_probs, pass_at_k_tensor
from hdai_lessons.core.scale import by_scale


# ----------------------------------------------------------------------------------------- pass@k
def pass_at_k_unbiased(n: "int | torch.Tensor", c: "int | torch.Tensor", k: int) -> torch.Tensor:
    """Unbiased pass@k of Chen et al. (2021, §2.1), elementwise: ``1 - C(n-c, k)/C(n, k)``.

    A thin alias of ``hdai_lessons.core.metrics.pass_at_k_tensor`` (module 01), so the course has one
    implementation of the estimator.

    Args: n ``(...)`` or int samples drawn; c ``(...)`` correct among them; k ≤ n. Returns ``(...)`` float64.

    Lesson 02.1; CAT's Pass@N evaluation.
    """
    return pass_at_k_tensor(n, c, k)


def pass_at_k_plugin(n: "int | torch.Tensor", c: "int | torch.Tensor", k: int) -> torch.Tensor:
    """The biased plug-in ``1 - (1 - c/n)^k``: p̂ = c/n treated as the truth (sampling *with* replacement).

    Over-estimates nothing on average for k = 1 but under-estimates pass@k for k > 1 (Jensen:
    ``E[1-(1-p̂)^k] ≤ 1-(1-p)^k``), and gives 0 whenever c = 0.

    Args: n, c ``(...)``; k. Returns ``(...)`` float64.

    Lesson 02.1; the biased alternative to Chen et al. (2021, §2.1).
    """
    n_t = torch.as_tensor(n, dtype=torch.float64)
    c_t = torch.as_tensor(c, dtype=torch.float64)
    return 1 - (1 - c_t / n_t) ** k


def pass_at_k_exact(p: torch.Tensor, k_max: int) -> torch.Tensor:
    """Exact pass@k ``1 - (1 - p)^k`` for k = 1..k_max, from the true single-sample success p.

    Uses ``hdai_lessons.core.metrics.pass_at_k_from_probs`` for each k.

    Args: p ``(P,)`` per-prompt success probability; k_max. Returns ``(P, k_max)``.

    Lessons 02.1 and 02.2; S(p) = 1 − (1 − p)^N of CAT Table 1.
    """
    return torch.stack([pass_at_k_from_probs(p, k) for k in range(1, k_max + 1)], dim=-1)   # (P, k_max)


# ------------------------------------------------------------------------------------------ maj@k
def _gauss_legendre_01(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    x, w = np.polynomial.legendre.leggauss(n)
    return torch.tensor((x + 1) / 2, dtype=torch.float64), torch.tensor(w / 2, dtype=torch.float64)


def majority_at_k_exact(probs: torch.Tensor, correct: torch.Tensor, k_max: int) -> torch.Tensor:
    """Exact maj@k for k = 1..k_max under a categorical answer distribution (ties split uniformly).

    With k i.i.d. samples, let c be the votes of the correct answer y and M the number of other
    answers that tie with it at c. The vote is won with probability ``1/(M+1)`` (uniform
    tie-break) if no answer has more than c votes. Conditioning on c and Poissonising the
    multinomial (``P(n) = k! Π_a p_a^{n_a}/n_a!``)::

        maj@k = Σ_{c=1}^{k} k! · p_y^c/c! · ∫_0^1 [x^{k-c}] Π_{a≠y} ( Σ_{j<c} (p_a x)^j/j! + u (p_a x)^c/c! ) du

    because ``1/(M+1) = ∫_0^1 u^M du`` and the integrand is a polynomial in u of degree ≤ A-1,
    integrated exactly by Gauss–Legendre. One pass gives every k ≤ k_max.

    Args:
        probs: ``(P, A)`` answer distribution per prompt (rows sum to 1).
        correct: ``(P,)`` long, index of the correct answer.
        k_max: largest budget.
    Returns:
        ``(P, k_max)`` float64; column k-1 is maj@k. maj@1 = maj@2 = p_y.

    Example: ``majority_at_k_exact(torch.tensor([[.5, .3, .2]]), torch.tensor([0]), 3)`` →
    ``[[0.5, 0.5, 0.56]]``.

    Lessons 02.1 and 02.2; the majority-vote strategy of CAT §2 (the operated policy T(π)).
    """
    if probs.dim() != 2:
        raise ValueError(f"probs must be (P, A), got shape {tuple(probs.shape)}")
    P, A = probs.shape
    if correct.shape != (P,):
        raise ValueError(f"correct must be (P,) = ({P},), got {tuple(correct.shape)}")
    probs = probs.detach().double()
    py = probs.gather(1, correct.long().view(-1, 1)).squeeze(1)                # (P,)
    keep = torch.ones(P, A, dtype=torch.bool)
    keep[torch.arange(P), correct.long()] = False
    q = probs[keep].view(P, A - 1)                                             # (P, A-1) rival answers
    u, wu = _gauss_legendre_01(max(1, (A + 1) // 2))                          # exact for degree ≤ A-1
    Q = u.numel()
    lfact = torch.lgamma(torch.arange(k_max + 2, dtype=torch.float64) + 1)    # log j!
    out = torch.zeros(P, k_max, dtype=torch.float64)
    for c in range(1, k_max + 1):
        D = k_max - c                                                          # max degree needed: k - c
        if c > D:   # rivals can never reach c votes: the product is exp((1-p_y) x), untruncated
            n = torch.arange(D + 1, dtype=torch.float64)
            coef = q.sum(-1, keepdim=True) ** n * torch.exp(-lfact[: D + 1])        # (P, D+1): (1-p_y)^n / n!
        else:
            j = torch.arange(c + 1, dtype=torch.float64)
            base = torch.exp(-lfact[: c + 1])                                  # (c+1,) 1/j!
            tie = torch.ones(Q, c + 1, dtype=torch.float64)
            tie[:, c] = u                                                      # (Q, c+1) last term × u
            G = torch.zeros(P, Q, D + 1, dtype=torch.float64)
            G[..., 0] = 1.0
            for a in range(A - 1):                                             # G ← G · rival a's factor, mod x^(D+1)
                kern = (q[:, a:a + 1] ** j) * base                             # (P, c+1)
                kern = kern.unsqueeze(1) * tie                                 # (P, Q, c+1)
                prod = G * kern[..., :1]
                for s in range(1, c + 1):                                      # shift-and-add: prod[n] += kern[s] G[n-s]
                    prod[..., s:].addcmul_(kern[..., s:s + 1], G[..., :D + 1 - s])
                G = prod                                                       # (P, Q, D+1)
            coef = (G * wu.view(1, Q, 1)).sum(1)                               # (P, D+1), ∫ du
        # contribution to every k ≥ c: k! p_y^c / c! · coef[k - c]
        kk = torch.arange(c, k_max + 1)                                        # budgets that can use c votes
        logpref = lfact[kk] - lfact[c]                                         # log k!/c!
        pyc = py.unsqueeze(-1) ** c                                            # (P, 1)
        out[:, c - 1:] += pyc * torch.exp(logpref).unsqueeze(0) * coef[:, kk - c]
    return out.clamp(0.0, 1.0)


def majority_vote(answers: torch.Tensor, num_answers: int, generator: "torch.Generator | None" = None) -> torch.Tensor:
    """The majority-vote answer of each row, ties broken uniformly at random.

    Args: answers ``(..., k)`` long answer ids in [0, num_answers). Returns ``(...)`` long.

    Lesson 02.1; the majority-vote strategy of CAT §2.
    """
    counts = torch.nn.functional.one_hot(answers.long(), num_answers).sum(-2).double()   # (..., A)
    noise = torch.rand(counts.shape, generator=generator, dtype=torch.float64) * 0.5     # < 1: breaks ties only
    return (counts + noise).argmax(-1)


def majority_credit(answers: torch.Tensor, correct: torch.Tensor, num_answers: int) -> torch.Tensor:
    """Expected success of one majority vote over each row's k answers, ties split uniformly.

    ``1/|T|`` if the correct answer is in the set T of most-voted answers, else 0 — the
    expectation of a uniform random tie-break, without drawing it.

    Args:
        answers: ``(P, k)`` long answer ids in [0, num_answers).
        correct: ``(P,)`` long correct answer id.
    Returns:
        ``(P,)`` float64 credits in [0, 1].

    Example: answers ``[[1, 1, 2, 2, 0]]``, correct ``[1]`` → ``[0.5]``.

    Lesson 02.1; the majority-vote strategy of CAT §2.
    """
    counts = torch.nn.functional.one_hot(answers.long(), num_answers).sum(-2)            # (P, A) votes
    winners = counts == counts.max(-1, keepdim=True).values                              # (P, A) most voted
    hit = winners.gather(-1, correct.long().unsqueeze(-1)).squeeze(-1)                   # (P,)
    return hit.double() / winners.sum(-1).double()


def majority_at_k_mc(answers: torch.Tensor, correct: torch.Tensor, k: int, num_answers: int,
                     trials: int = 500, generator: "torch.Generator | None" = None) -> torch.Tensor:
    """Monte Carlo maj@k from n ≥ k samples per prompt: resample k of n without replacement, vote.

    This is how the paper evaluates maj@N (500 resampling trials on 64 samples per problem).
    Ties are credited ``1/(#tied)`` (the expectation of a uniform tie-break), which lowers the
    variance without bias.

    Args:
        answers: ``(P, n)`` long sampled answer ids.
        correct: ``(P,)`` long correct answer id.
        k: budget (≤ n); num_answers: A; trials: resamples per prompt.
    Returns:
        ``(P,)`` float64 estimates.

    Lesson 02.1; CAT's maj@k evaluation (resampled votes, 500 trials in the paper).
    """
    P, n = answers.shape
    if not 1 <= k <= n:
        raise ValueError(f"need 1 ≤ k ≤ n = {n}, got k = {k}")
    idx = torch.rand(P, trials, n, generator=generator).argsort(-1)[..., :k]        # (P, T, k) k-subsets
    picked = answers.unsqueeze(1).expand(P, trials, n).gather(-1, idx)              # (P, T, k)
    credit = majority_credit(picked.reshape(P * trials, k),                          # (P*T, k)
                             correct.long().repeat_interleave(trials), num_answers)
    return credit.view(P, trials).mean(-1)


# ------------------------------------------------------------------------------------- best-of-N
def best_of_n_expected_exact(probs: torch.Tensor, rewards: torch.Tensor, k_max: int) -> torch.Tensor:
    """Exact expected reward of the best of k i.i.d. samples, k = 1..k_max (categorical answers).

    Sort answers by reward; with CDF ``F_a`` the max of k draws is answer a with probability
    ``F_a^k - F_{a-1}^k``, so ``E[max] = Σ_a r_(a) (F_a^k - F_{a-1}^k)``.

    Args:
        probs: ``(P, A)``; rewards: ``(P, A)`` or ``(A,)`` reward of each answer.
    Returns:
        ``(P, k_max)`` float64.

    Lesson 02.1; the Best-of-N strategy of CAT Table 1.
    """
    probs = probs.detach().double()
    rewards = torch.as_tensor(rewards, dtype=torch.float64).expand_as(probs)
    r_sorted, order = rewards.sort(-1)                                          # (P, A) ascending
    F = probs.gather(-1, order).cumsum(-1).clamp(max=1.0)                       # (P, A)
    F_prev = torch.nn.functional.pad(F[:, :-1], (1, 0))                         # (P, A), F_0 = 0
    k = torch.arange(1, k_max + 1, dtype=torch.float64).view(1, 1, -1)          # (1, 1, k_max)
    mass = F.unsqueeze(-1) ** k - F_prev.unsqueeze(-1) ** k                     # (P, A, k_max)
    return (r_sorted.unsqueeze(-1) * mass).sum(1)                               # (P, k_max)


def best_of_n_expected_from_samples(rewards: torch.Tensor, k: int) -> torch.Tensor:
    """Unbiased estimate of E[max reward of k samples] from n ≥ k samples per prompt.

    The average over all k-subsets of the n samples of their maximum: with rewards sorted
    ascending, the i-th smallest is the max of ``C(i-1, k-1)`` subsets, so
    ``Σ_i r_(i) C(i-1, k-1) / C(n, k)``.

    Args: rewards ``(P, n)``; k ≤ n. Returns ``(P,)`` float64.

    Lesson 02.1; the Best-of-N strategy of CAT Table 1.
    """
    P, n = rewards.shape
    if not 1 <= k <= n:
        raise ValueError(f"need 1 ≤ k ≤ n = {n}, got k = {k}")
    r = rewards.detach().double().sort(-1).values                               # (P, n) ascending
    i = torch.arange(1, n + 1, dtype=torch.float64)
    valid = i >= k
    log_w = torch.where(valid, torch.lgamma(i) - torch.lgamma(i - k + 1) - math.lgamma(k), torch.tensor(-math.inf, dtype=torch.float64))
    log_w = log_w - (math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1))   # / C(n, k)
    return (r * torch.exp(log_w)).sum(-1)


# ------------------------------------------------------------------------------- lesson helpers
@dataclass
class StrategiesLessonConfig:
    """Lesson 02.1's sizes: toy prompt populations, estimator repeats, seeds and the largest budget.

    Lesson 02.1; the strategies of CAT §2 (Pass@N, majority vote, best-of-N) measured on categorical toys.
    """

    num_prompts: int = 200
    """Toy prompts per population (per seed)."""
    repeats: int = 300
    """Repeats of the sampling experiment comparing the unbiased and plug-in pass@k estimators."""
    n_seeds: int = 5
    """Populations of toy prompts: ``ctx.seed, ctx.seed + 1, …``."""
    k_max: int = 64
    """Largest budget k of the exact pass@k / maj@k / best-of-N curves."""

    @classmethod
    def for_scale(cls, scale=None) -> "StrategiesLessonConfig":
        """smoke: a few prompts and repeats; toy: the lesson; full: more prompts, repeats and seeds."""
        return by_scale(scale, smoke=cls(num_prompts=40, repeats=20, n_seeds=2, k_max=16), toy=cls(),
                        full=cls(num_prompts=1000, repeats=1000, n_seeds=8, k_max=64))


def compare_pass_at_k_estimators(p: torch.Tensor, n: int, ks: "list[int]", repeats: int,
                                 generator: "torch.Generator | None" = None) -> dict[str, torch.Tensor]:
    """Mean unbiased and plug-in pass@k estimates vs the truth, averaged over prompts and repeats.

    Each repeat draws ``c ~ Binomial(n, p)`` correct samples per prompt (as sampling n answers
    would) and applies both estimators.

    Args:
        p: ``(P,)`` true per-prompt success; n samples per prompt; ks budgets (≤ n); repeats.
    Returns:
        ``{"truth", "unbiased", "plugin"}`` each ``(len(ks),)`` float64, plus ``"unbiased_sd"``, the
        spread of the per-repeat mean.

    Lesson 02.1; Chen et al. (2021, §2.1) vs the plug-in estimate.
    """
    c = torch.distributions.Binomial(n, p.double().expand(repeats, -1)).sample() if generator is None else \
        (torch.rand(repeats, p.shape[0], n, generator=generator, dtype=torch.float64) < p.double().view(1, -1, 1)).sum(-1)
    out = {"truth": [], "unbiased": [], "plugin": [], "unbiased_sd": []}
    for k in ks:
        ub = pass_at_k_unbiased(n, c, k).mean(-1)                            # (repeats,)
        out["truth"].append((1 - (1 - p.double()) ** k).mean())
        out["unbiased"].append(ub.mean())
        out["unbiased_sd"].append(ub.std())
        out["plugin"].append(pass_at_k_plugin(n, c, k).mean())
    return {key: torch.stack(v) for key, v in out.items()}


def toy_policies(num_prompts: int, num_answers: int, seed: int, temperatures: "list[float]") -> tuple[dict[float, torch.Tensor], torch.Tensor, torch.Tensor]:
    """The same base logits at several temperatures: a "sharp" and a "diverse" version of one policy.

    Base logits are standard normal; the correct answer (index 0 of a random permutation) gets a
    per-prompt margin over the best rival from -4 (hard: far from the mode) to +3 (easy). Rewards for best-of-N
    are ``1`` for the correct answer and uniform(0, 0.8) partial credit for the others.

    Returns:
        ``({T: probs (P, A)}, correct (P,), rewards (P, A))``.

    Lesson 02.1; the lesson's toy (no paper equation).
    """
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(num_prompts, num_answers, generator=g, dtype=torch.float64)
    correct = torch.randint(0, num_answers, (num_prompts,), generator=g)
    margin = torch.rand(num_prompts, generator=g, dtype=torch.float64) * 7 - 4
    logits[torch.arange(num_prompts), correct] = logits.max(-1).values + margin
    rewards = torch.rand(num_prompts, num_answers, generator=g, dtype=torch.float64) * 0.8
    rewards[torch.arange(num_prompts), correct] = 1.0
    return {T: torch.softmax(logits / T, -1) for T in temperatures}, correct, rewards
