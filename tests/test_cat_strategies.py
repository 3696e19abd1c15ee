"""Test-time strategy estimators against brute force; Pass@k-Training and PKPO against subset counting."""
from __future__ import annotations

import itertools
import math

import pytest
import torch

from hdai_lessons.cat.baselines import passk_training_advantages, pkpo_weights
from hdai_lessons.cat.strategies import (best_of_n_expected_exact, best_of_n_expected_from_samples, majority_at_k_exact,
                                         majority_at_k_mc, majority_vote, pass_at_k_exact, pass_at_k_plugin,
                                         pass_at_k_unbiased)


def _brute_majority(p, y, k):
    total = 0.0
    for seq in itertools.product(range(len(p)), repeat=k):
        prob = math.prod(p[s] for s in seq)
        counts = [seq.count(a) for a in range(len(p))]
        winners = [a for a, c in enumerate(counts) if c == max(counts)]
        total += prob / len(winners) if y in winners else 0.0
    return total


@pytest.mark.parametrize("p,y", [([0.5, 0.3, 0.2], 0), ([0.2, 0.45, 0.35], 0), ([0.25, 0.25, 0.25, 0.25], 2),
                                 ([0.6, 0.1, 0.1, 0.2], 3), ([1.0, 0.0, 0.0], 0)])
def test_majority_exact_matches_brute_force(p, y):
    K = 6 if len(p) == 3 else 5
    exact = majority_at_k_exact(torch.tensor([p], dtype=torch.float64), torch.tensor([y]), K)[0]
    brute = torch.tensor([_brute_majority(p, y, k) for k in range(1, K + 1)], dtype=torch.float64)
    assert torch.allclose(exact, brute, atol=1e-10)


def test_majority_exact_batched_large_k_and_properties():
    g = torch.Generator().manual_seed(0)
    probs = torch.softmax(torch.randn(20, 10, generator=g) * 2, -1).double()
    y = torch.randint(0, 10, (20,), generator=g)
    m = majority_at_k_exact(probs, y, 64)
    py = probs.gather(1, y.view(-1, 1)).squeeze(1)
    assert torch.allclose(m[:, 0], py) and torch.allclose(m[:, 1], py)     # maj@1 = maj@2 = p_y
    is_mode = probs.argmax(-1) == y                                         # maj@k → 1 for the mode, → 0 otherwise
    assert (m[is_mode, -1] > m[is_mode, 0]).all() and (m[~is_mode, -1] < 0.5).all()
    assert ((m >= 0) & (m <= 1)).all()


def test_majority_monte_carlo_agrees_with_exact():
    g = torch.Generator().manual_seed(1)
    probs = torch.softmax(torch.randn(6, 5, generator=g), -1).double()
    y = torch.randint(0, 5, (6,), generator=g)
    answers = torch.multinomial(probs, 1500, replacement=True, generator=g)   # (6, 1500)
    mc = majority_at_k_mc(answers, y, k=9, num_answers=5, trials=1500, generator=g)
    exact = majority_at_k_exact(probs, y, 9)[:, 8]
    assert (mc - exact).abs().max() < 0.05


def test_majority_vote_breaks_ties_among_the_top_only():
    g = torch.Generator().manual_seed(2)
    answers = torch.tensor([[1, 1, 2, 2, 0]]).expand(2000, 5)
    winners = majority_vote(answers, 3, generator=g)
    assert set(winners.tolist()) == {1, 2} and abs((winners == 1).double().mean().item() - 0.5) < 0.05


def test_unbiased_vs_plugin_pass_at_k():
    # brute force over subsets: n = 8 samples, c correct
    for c in range(9):
        flags = [1] * c + [0] * (8 - c)
        for k in (1, 3, 5):
            subsets = list(itertools.combinations(range(8), k))
            brute = sum(max(flags[i] for i in s) for s in subsets) / len(subsets)
            assert abs(pass_at_k_unbiased(8, c, k).item() - brute) < 1e-12
    # the plug-in is biased low for k > 1: E_c[plug-in] < truth under Binomial(n, p) sampling
    n, p, k = 10, 0.2, 5
    pmf = torch.tensor([math.comb(n, c) * p ** c * (1 - p) ** (n - c) for c in range(n + 1)], dtype=torch.float64)
    cs = torch.arange(n + 1)
    truth = 1 - (1 - p) ** k
    assert abs((pmf * pass_at_k_unbiased(n, cs, k)).sum().item() - truth) < 1e-12
    assert (pmf * pass_at_k_plugin(n, cs, k)).sum().item() < truth - 0.02
    assert torch.allclose(pass_at_k_exact(torch.tensor([0.2]), 3), torch.tensor([[0.2, 0.36, 0.488]]))


def test_best_of_n_exact_and_from_samples_match_brute_force():
    p = torch.tensor([[0.5, 0.3, 0.2]], dtype=torch.float64)
    r = torch.tensor([[0.0, 2.0, 1.0]], dtype=torch.float64)
    exact = best_of_n_expected_exact(p, r, 3)[0]
    for k in (1, 2, 3):
        brute = sum(math.prod(p[0, s].item() for s in seq) * max(r[0, s].item() for s in seq)
                    for seq in itertools.product(range(3), repeat=k))
        assert abs(exact[k - 1].item() - brute) < 1e-12
    samples = torch.tensor([[0.3, 1.2, -0.5, 0.9, 0.9, 2.0]], dtype=torch.float64)
    for k in (1, 2, 4, 6):
        subsets = list(itertools.combinations(range(6), k))
        brute = sum(max(samples[0, list(s)].tolist()) for s in subsets) / len(subsets)
        assert abs(best_of_n_expected_from_samples(samples, k).item() - brute) < 1e-12


@pytest.mark.parametrize("N,k", [(8, 1), (8, 4), (6, 3)])
def test_passk_training_advantages_match_subset_enumeration(N, k):
    for n_pos in range(1, N):
        correct = torch.tensor([[1.0] * n_pos + [0.0] * (N - n_pos)])
        adv = passk_training_advantages(correct, k)[0]
        subsets = list(itertools.combinations(range(N), k))
        rho = sum(max(correct[0, list(s)].tolist()) for s in subsets) / len(subsets)
        sigma = math.sqrt(rho * (1 - rho))
        if sigma < 1e-12:   # every k-subset passes: no signal
            assert torch.equal(adv, torch.zeros(N))
            continue
        for i in range(N):
            with_i = [s for s in subsets if i in s]
            mean_i = sum(max(correct[0, list(s)].tolist()) for s in with_i) / len(with_i)
            assert abs(adv[i].item() - (mean_i - rho) / sigma) < 1e-6
    assert torch.equal(passk_training_advantages(torch.ones(1, N), k), torch.zeros(1, N))


@pytest.mark.parametrize("n,k", [(6, 2), (8, 3), (5, 5)])
def test_pkpo_weights_match_subset_counting(n, k):
    for c in range(n + 1):
        correct = torch.tensor([[1.0] * c + [0.0] * (n - c)])
        w = pkpo_weights(correct, k)[0]
        subsets = list(itertools.combinations(range(n), k))
        for i in range(n):
            brute = sum(max(correct[0, list(s)].tolist()) for s in subsets if i in s) / len(subsets)
            assert abs(w[i].item() - brute) < 1e-6


def test_estimator_comparison_and_toy_policies():
    from hdai_lessons.cat.strategies import compare_pass_at_k_estimators, toy_policies

    g = torch.Generator().manual_seed(5)
    p = torch.full((50,), 0.2, dtype=torch.float64)
    est = compare_pass_at_k_estimators(p, n=8, ks=[1, 4, 8], repeats=400, generator=g)
    assert torch.allclose(est["truth"], torch.tensor([0.2, 1 - 0.8 ** 4, 1 - 0.8 ** 8], dtype=torch.float64))
    assert ((est["unbiased"] - est["truth"]).abs() < 4 * est["unbiased_sd"] + 1e-9).all()
    assert est["plugin"][-1] < est["truth"][-1] - 0.05                     # biased low at k = n
    pols, y, r = toy_policies(30, 6, 0, [0.5, 2.0])
    ent = {T: -(p_ * p_.log()).sum(-1).mean() for T, p_ in pols.items()}
    assert ent[2.0] > ent[0.5] and torch.allclose(pols[0.5].sum(-1), torch.ones(30, dtype=torch.float64))
    assert (r.gather(1, y.view(-1, 1)) == 1).all()
