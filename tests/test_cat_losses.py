"""CAT SFT losses and RL weights: gradients, paper identities, float32 stability, worked numbers."""
from __future__ import annotations

import math

import pytest
import torch

from hdai_lessons.cat.losses import (log1mexp, log_binomial_tail, majority_sft_loss, majority_sft_weight,
                                     passn_sft_loss, passn_sft_weight)
from hdai_lessons.cat.weights import (bon_quantile, bon_rl_weight, cat_weights, clip_and_normalise, dynamic_majority_k,
                                      empirical_p, majority_rl_weight, most_frequent_wrong_count, passn_rl_weight)

LOGPS = torch.tensor([-50.0, -20.0, -5.0, -2.3, -1.0, -0.3, -0.05, -1e-4, -1e-7], dtype=torch.float64)


def _grad(fn, logp):
    x = logp.clone().requires_grad_(True)
    fn(x).sum().backward()
    return x.grad


def test_log1mexp_matches_float64_reference_in_float32():
    x = torch.tensor([-60.0, -30.0, -5.0, -0.7, -0.69, -0.1, -1e-4, -1e-8])
    exact = torch.tensor([math.log(-math.expm1(v)) if v > -math.log(2) else math.log1p(-math.exp(v)) for v in x.double().tolist()],
                         dtype=torch.float64)
    naive = torch.log(1 - torch.exp(x))                      # float32 naive: -inf near 0, 0 far away
    assert not torch.isfinite(naive[-1]) and naive[0] == 0
    assert torch.allclose(log1mexp(x).double(), exact, rtol=1e-5, atol=0)
    assert log1mexp(torch.tensor([0.0])).item() == -math.inf
    with pytest.raises(ValueError):
        log1mexp(torch.tensor([0.1]))


@pytest.mark.parametrize("N", [1, 4, 16, 64])
def test_passn_gradient_is_weight_times_ce_gradient(N):
    # d(-logp)/d logp = -1, so the CAT gradient must be -w(p): the CE gradient scaled by w.
    g = _grad(lambda x: passn_sft_loss(x, N), LOGPS)
    assert torch.allclose(g, -passn_sft_weight(LOGPS, N), rtol=1e-8, atol=1e-12)
    p = LOGPS.exp()
    w = N * p * (1 - p) ** (N - 1) / (1 - (1 - p) ** N)
    mask = p > 1e-12  # direct formula is 0/0 below
    assert torch.allclose(passn_sft_weight(LOGPS, N)[mask], w[mask], rtol=1e-6)


def test_passn_with_n_1_is_cross_entropy():
    assert torch.allclose(passn_sft_loss(LOGPS, 1), -LOGPS.clamp(max=-1e-12), rtol=1e-9)
    assert torch.allclose(passn_sft_weight(LOGPS, 1), torch.ones_like(LOGPS), rtol=1e-6)


@pytest.mark.parametrize("N,k", [(8, 1), (8, 3), (16, 4), (64, 26), (5, 5)])
def test_majority_gradient_is_weight_times_ce_gradient(N, k):
    g = _grad(lambda x: majority_sft_loss(x, N, k), LOGPS)
    assert torch.allclose(g, -majority_sft_weight(LOGPS, N, k), rtol=1e-7, atol=1e-12)


def test_binomial_tail_and_its_derivative_identity():
    p = torch.tensor([0.05, 0.2, 0.5, 0.8], dtype=torch.float64)
    for N, k in [(8, 3), (16, 4), (10, 10)]:
        tail = sum(math.comb(N, i) * p ** i * (1 - p) ** (N - i) for i in range(k, N + 1))
        assert torch.allclose(log_binomial_tail(p.log(), N, k).exp(), tail, rtol=1e-10)
        x = p.clone().requires_grad_(True)   # B'(p) by autograd through the direct sum
        sum(math.comb(N, i) * x ** i * (1 - x) ** (N - i) for i in range(k, N + 1)).sum().backward()
        assert torch.allclose(x.grad, majority_rl_weight(p, N, k), rtol=1e-10)   # B'(p) = N C(N-1,k-1) p^{k-1}(1-p)^{N-k}
        assert N * math.comb(N - 1, k - 1) == k * math.comb(N, k)


def test_majority_with_k_1_is_passn_and_k_n_is_n_times_ce():
    assert torch.allclose(majority_sft_loss(LOGPS, 8, 1), passn_sft_loss(LOGPS, 8), rtol=1e-9, atol=1e-12)
    p = torch.tensor([0.01, 0.3, 0.9], dtype=torch.float64)
    assert torch.allclose(majority_rl_weight(p, 8, 1), passn_rl_weight(p, 8), rtol=1e-12)
    assert torch.allclose(majority_sft_loss(LOGPS, 6, 6), -6 * LOGPS.clamp(max=-1e-12), rtol=1e-9)


@pytest.mark.parametrize("loss", [lambda x: passn_sft_loss(x, 16), lambda x: majority_sft_loss(x, 8, 3),
                                  lambda x: majority_sft_loss(x, 64, 26)])
def test_float32_no_nan_or_inf_at_the_extremes(loss):
    x = torch.tensor([-50.0, -30.0, -1e-3, -1e-6, -1e-9, 0.0], dtype=torch.float32, requires_grad=True)
    out = loss(x)
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(x.grad).all()
    assert out.dtype == torch.float32


def test_example_rl_weights_from_the_digest():
    w = passn_rl_weight(torch.tensor([0.01, 0.1, 0.3]), 16)
    assert torch.allclose(w, torch.tensor([13.8, 3.3, 0.08]), rtol=0.06)
    assert passn_rl_weight(torch.tensor([0.5]), 16).item() < 1e-3
    m = majority_rl_weight(torch.tensor([0.1, 0.3, 0.5]), 8, 3)
    assert torch.allclose(m, torch.tensor([0.99, 2.54, 1.31]), rtol=0.01)
    # the majority weight peaks at the pivotal p = (k-1)/(N-1)
    grid = torch.linspace(0.001, 0.999, 999, dtype=torch.float64)
    assert abs(grid[majority_rl_weight(grid, 8, 3).argmax()].item() - 2 / 7) < 2e-3


def test_sft_weights_limits():
    tiny, sure = torch.tensor([-40.0], dtype=torch.float64), torch.tensor([-1e-9], dtype=torch.float64)
    assert abs(passn_sft_weight(tiny, 16).item() - 1) < 1e-6 and passn_sft_weight(sure, 16).item() < 1e-6
    assert abs(majority_sft_weight(tiny, 8, 3).item() - 3) < 1e-6 and majority_sft_weight(sure, 8, 3).item() < 1e-6


def test_empirical_p_dynamic_k_and_rival_counts():
    correct = torch.tensor([[0, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 1]])
    assert torch.allclose(empirical_p(correct), torch.tensor([1 / 6, 0.5, 5 / 6]))
    assert dynamic_majority_k(8, torch.tensor([0, 2, 3, 8]), 8).tolist() == [2, 3, 4, 5]
    answers = torch.tensor([[3, 3, 5, 1, 3, 5], [0, 0, 0, 2, 2, 9]])
    corr = torch.tensor([[0, 0, 0, 1, 0, 0], [1, 1, 1, 0, 0, 0]]).bool()
    assert most_frequent_wrong_count(answers, corr).tolist() == [3, 2]


def test_cat_weights_forms_clip_and_normalise():
    p = torch.tensor([0.05, 0.2, 0.6, 0.95], dtype=torch.float64)
    assert torch.allclose(cat_weights(p, "passn", 8, form="raw"), passn_rl_weight(p, 8))
    assert torch.allclose(cat_weights(p, "passn", 8, form="log"), passn_sft_weight(p.log(), 8))
    assert torch.allclose(cat_weights(p, "majority", 8, k=torch.tensor([2, 3, 3, 5]), form="raw"),
                          torch.stack([majority_rl_weight(p[i:i + 1], 8, kk)[0] for i, kk in enumerate([2, 3, 3, 5])]))
    w = cat_weights(p, "passn", 16, clip=5.0, normalise=True)
    assert abs(w.mean().item() - 1) < 1e-6 and w.max() / w.min() <= 5.0 / passn_rl_weight(p, 16).min() + 1e-9
    assert torch.equal(cat_weights(p, "none", 8), torch.ones_like(p))
    assert torch.allclose(clip_and_normalise(torch.tensor([1.0, 100.0]), clip=10.0, normalise=False), torch.tensor([1.0, 10.0]))


def test_bon_quantile_and_weight():
    r = torch.tensor([[0.1, 0.5, 0.5, 0.9]])
    assert torch.allclose(bon_quantile(r), torch.tensor([[1 / 5, 2 / 5, 2 / 5, 4 / 5]]))
    q = torch.tensor([0.5, 1.0])
    assert torch.allclose(bon_rl_weight(q, 4), torch.tensor([4 * 0.125, 4.0]))


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="log-probability"):
        passn_sft_loss(torch.tensor([0.5]), 4)
    with pytest.raises(ValueError, match="threshold k"):
        majority_sft_loss(torch.tensor([-1.0]), 4, 5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        passn_rl_weight(torch.tensor([1.5]), 4)


def test_docstring_worked_examples_are_the_computed_values():
    """The numbers quoted in the losses' docstrings are what the functions (and the formulas) give."""
    p16 = passn_sft_loss(torch.log(torch.tensor([0.1])), 16)
    assert abs(p16.item() - 0.2049) < 5e-5 and abs(p16.item() + math.log(1 - 0.9 ** 16)) < 1e-5
    tail = sum(math.comb(8, i) * 0.3 ** i * 0.7 ** (8 - i) for i in range(3, 9))
    m83 = majority_sft_loss(torch.log(torch.tensor([0.3])), 8, 3)
    assert abs(m83.item() - 0.8025) < 5e-5 and abs(m83.item() + math.log(tail)) < 1e-5
