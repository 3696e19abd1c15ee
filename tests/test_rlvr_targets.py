"""LPO Theorem 1 and Table 1: the Gibbs target, implicit temperatures, the worked numbers."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from hdai_lessons.rlvr.losses import lpo_forward_coefficients, lpo_reverse_coefficients
from hdai_lessons.rlvr.targets import (SCHEMES, advantages, implicit_target, implicit_temperature, lpo_target,
                                       proximal_objective, tau_from_rule)

D = torch.float64


def test_theorem1_target_maximises_proximal_objective():
    """w* = softmax(R/τ + s_t) beats a numerical optimiser of Ĵ(w) = Σ w R − τ KL(w‖P_t) on the simplex."""
    g = torch.Generator().manual_seed(0)
    for trial in range(5):
        K = 3 + trial
        R = torch.rand(K, generator=g, dtype=D)
        s_t = torch.randn(K, generator=g, dtype=D) * 0.5
        tau = 0.2 + trial * 0.3
        P_t = torch.softmax(s_t, -1)
        w_star = lpo_target(R, tau, s_t)

        def neg_j(z):  # optimise over the simplex through a softmax parametrisation
            w = torch.softmax(torch.tensor(z, dtype=D), -1)
            return -float(proximal_objective(w, R, tau, P_t))

        res = minimize(neg_j, np.zeros(K), method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 20000})
        w_num = torch.softmax(torch.tensor(res.x, dtype=D), -1)
        j_star = float(proximal_objective(w_star, R, tau, P_t))
        assert j_star >= -res.fun - 1e-9
        assert torch.allclose(w_star, w_num, atol=2e-3)
        # and it is a strict maximum: any perturbation on the simplex lowers Ĵ
        for _ in range(20):
            w = torch.softmax(torch.log(w_star) + 0.05 * torch.randn(K, generator=g, dtype=D), -1)
            assert float(proximal_objective(w, R, tau, P_t)) < j_star


def test_target_limits():
    R = torch.tensor([1.0, 0.3, 0.0], dtype=D)
    assert torch.allclose(lpo_target(R, 1e-3), torch.tensor([1.0, 0.0, 0.0], dtype=D), atol=1e-9)   # τ → 0: argmax
    assert torch.allclose(lpo_target(R, 1e6), torch.full((3,), 1 / 3, dtype=D), atol=1e-6)           # τ → ∞: P_t
    s_t = torch.tensor([0.5, -0.2, 0.1], dtype=D)
    assert torch.allclose(lpo_target(R, 1e6, s_t), torch.softmax(s_t, -1), atol=1e-6)
    # closed form P_t exp(R/τ) / Z
    w = torch.softmax(s_t, -1) * torch.exp(R / 0.7)
    assert torch.allclose(lpo_target(R, 0.7, s_t), w / w.sum(), atol=1e-12)


def test_equal_rewards_give_uniform_target_not_nan():
    R = torch.tensor([[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]], dtype=D)
    tau = tau_from_rule(R, "std", eps=0.0)  # σ_G = 0 in the first two groups
    w = lpo_target(R, tau)
    assert torch.isfinite(w).all()
    assert torch.allclose(w[:2], torch.full((2, 4), 0.25, dtype=D))
    assert w[2, 0] > 0.5
    with pytest.raises(ValueError):
        lpo_target(R, 0.0)  # τ = 0 where rewards differ


def test_worked_numbers_k8_one_correct():
    """lpo.md worked intuition: K = 8, binary, one correct, τ = σ_G, on-policy."""
    R = torch.zeros(1, 8, dtype=D)
    R[0, 0] = 1.0
    tau = tau_from_rule(R, "std", eps=0.0)
    assert float(tau) == pytest.approx(np.sqrt(1 / 8 * 7 / 8))
    w = lpo_target(R, tau)
    assert float(w[0, 0]) == pytest.approx(0.746, abs=5e-4)
    c = lpo_forward_coefficients(torch.zeros_like(R), w)
    assert float(c[0, 0]) == pytest.approx(-0.621, abs=5e-4)
    assert torch.allclose(c[0, 1:], torch.full((7,), 0.089, dtype=D), atol=5e-4)
    # the rest of the table: c = 4 and c = 7 correct; GRPO's −A/K; Σ|c|
    for n_correct, fwd_c, fwd_w, grpo_c, grpo_w, sabs in [(4, -0.095, 0.095, -0.125, 0.125, 0.76), (7, -0.017, 0.118, -0.047, 0.331, 0.24)]:
        R = torch.zeros(1, 8, dtype=D)
        R[0, :n_correct] = 1.0
        w = lpo_target(R, tau_from_rule(R, "std", eps=0.0))
        c = lpo_forward_coefficients(torch.zeros_like(R), w)
        g = -advantages(R, "grpo", eps=0.0) / 8
        assert float(c[0, 0]) == pytest.approx(fwd_c, abs=5e-4) and float(c[0, -1]) == pytest.approx(fwd_w, abs=5e-4)
        assert float(g[0, 0]) == pytest.approx(grpo_c, abs=5e-4) and float(g[0, -1]) == pytest.approx(grpo_w, abs=5e-4)
        assert float(c.abs().sum()) == pytest.approx(sabs, abs=5e-3)
    # MaxRL and Dr.GRPO temperatures for one correct
    R = torch.zeros(1, 8, dtype=D)
    R[0, 0] = 1.0
    assert float(lpo_target(R, tau_from_rule(R, "mean", eps=0.0))[0, 0]) == pytest.approx(0.998, abs=5e-4)
    assert float(lpo_target(R, 1.0)[0, 0]) == pytest.approx(0.280, abs=5e-4)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_table1_implicit_target_is_gibbs_at_implicit_temperature(scheme):
    """Proposition 1 + Table 1: softmax(A) = softmax(R/τ) for every scheme."""
    g = torch.Generator().manual_seed(1)
    R = torch.randint(0, 2, (16, 8), generator=g).to(D)
    R[3] = 1.0  # a constant group
    R[4] = torch.rand(8, generator=g, dtype=D)  # a real-valued group
    w_adv = implicit_target(R, scheme)
    w_tau = lpo_target(R, implicit_temperature(R, scheme))
    assert torch.allclose(w_adv, w_tau, atol=1e-10)
    A = advantages(R, scheme)
    if scheme != "reinforce":  # every baseline scheme is zero-sum per group (REINFORCE++: up to the batch mean)
        centred_sum = A.sum(-1) if scheme != "reinforce_pp" else (A - A.mean()).sum(-1)
        assert torch.allclose(centred_sum, torch.zeros(16, dtype=D), atol=1e-9)
    else:
        assert not torch.allclose(A.sum(-1), torch.zeros(16, dtype=D))


def test_table1_temperatures():
    R = torch.tensor([[1.0, 0.0, 0.0, 0.0]], dtype=D)
    assert float(implicit_temperature(R, "grpo", eps=0.0)) == pytest.approx(np.sqrt(0.25 * 0.75))
    assert float(implicit_temperature(R, "dr_grpo")) == 1.0
    assert float(implicit_temperature(R, "rloo")) == pytest.approx(3 / 4)
    assert float(implicit_temperature(R, "maxrl", eps=0.0)) == pytest.approx(0.25)
    A = advantages(R, "rloo")
    loo = torch.tensor([1 - 0.0, 0 - 1 / 3, 0 - 1 / 3, 0 - 1 / 3], dtype=D)  # R_k − mean of the others
    assert torch.allclose(A[0], loo)
    with pytest.raises(ValueError):
        advantages(R, "ppo")


def test_reverse_coefficients_on_policy_equal_minus_grpo_over_k():
    R = torch.tensor([[1.0, 0.0, 1.0, 0.0, 0.0, 0.0]], dtype=D)
    w = lpo_target(R, tau_from_rule(R, "std"))
    c = lpo_reverse_coefficients(torch.zeros_like(R), w)
    assert torch.allclose(c, -advantages(R, "grpo") / 6, atol=1e-12)
