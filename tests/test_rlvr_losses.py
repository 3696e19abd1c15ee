"""LPO projections and GRPO surrogates: Proposition 1, Eqs. (10)–(17) against autograd, clipping, aggregation."""
from __future__ import annotations

import math

import pytest
import torch

from hdai_lessons.rlvr.losses import (LOSS_NAMES, LossConfig, aggregate_tokens, clipped_token_log_ratio, grpo_surrogate,
                                      listwise_logits, lpo_forward_coefficients, lpo_forward_kl_loss,
                                      lpo_reverse_coefficients, lpo_reverse_kl_loss, pointwise_coefficients,
                                      pointwise_loss, rlvr_loss)
from hdai_lessons.rlvr.targets import advantages, lpo_target, tau_from_rule

D = torch.float64


class TinyPolicy(torch.nn.Module):
    """A token-level softmax policy: logits = features @ W, so logp depends smoothly on W (d, V)."""

    def __init__(self, B=3, K=6, T=5, d=4, V=7, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.W = torch.nn.Parameter(torch.randn(d, V, generator=g, dtype=D) * 0.5)
        self.X = torch.randn(B, K, T, d, generator=g, dtype=D)
        self.y = torch.randint(0, V, (B, K, T), generator=g)
        lengths = torch.randint(1, T + 1, (B, K), generator=g)
        self.mask = (torch.arange(T) < lengths.unsqueeze(-1)).to(D)  # (B, K, T), right-padded
        self.R = torch.randint(0, 2, (B, K), generator=g).to(D)
        self.R[0, :] = 0.0
        self.R[0, 1] = 1.0  # one correct in group 0

    def logp(self) -> torch.Tensor:
        logits = self.X @ self.W  # (B, K, T, V)
        return torch.log_softmax(logits, -1).gather(-1, self.y.unsqueeze(-1)).squeeze(-1)  # (B, K, T)


def grad_of(policy: TinyPolicy, loss: torch.Tensor) -> torch.Tensor:
    (g,) = torch.autograd.grad(loss, policy.W)
    return g


@pytest.mark.parametrize("agg,grpo_agg", [("mean", "seq_mean"), ("sum", "seq_sum")])
def test_proposition1_on_policy_reverse_kl_equals_grpo(agg, grpo_agg):
    """On-policy, ∇ L_rev = −g_PG = ∇ of GRPO's surrogate (1e-6), for both token aggregations."""
    pol = TinyPolicy()
    lp = pol.logp()
    old = lp.detach()
    g_rev = grad_of(pol, rlvr_loss(lp, old, pol.mask, pol.R, LossConfig("lpo_rev", agg=agg))[0])
    g_grpo = grad_of(pol, rlvr_loss(pol.logp(), old, pol.mask, pol.R, LossConfig("grpo", agg=grpo_agg))[0])
    assert g_grpo.abs().max() > 1e-3  # a real gradient, not two zeros
    assert torch.allclose(g_rev, g_grpo, atol=1e-6, rtol=0)
    # and explicitly the on-policy PG: −(1/K) Σ_k A_k ∇ s_k, averaged over groups
    A = advantages(pol.R, "grpo")
    s = aggregate_tokens(pol.logp(), pol.mask, agg)
    g_pg = grad_of(pol, -(A * s).sum(-1).mean() / pol.R.shape[1])
    assert torch.allclose(g_rev, g_pg, atol=1e-6, rtol=0)


def test_off_policy_reverse_kl_departs_from_grpo_and_forward_differs_on_policy():
    pol = TinyPolicy()
    old = pol.logp().detach()
    with torch.no_grad():
        pol.W.add_(0.05 * torch.randn_like(pol.W))
    g_rev = grad_of(pol, rlvr_loss(pol.logp(), old, pol.mask, pol.R, LossConfig("lpo_rev", eps=None))[0])
    g_grpo = grad_of(pol, rlvr_loss(pol.logp(), old, pol.mask, pol.R, LossConfig("grpo", eps=None))[0])
    assert (g_rev - g_grpo).abs().max() > 1e-4
    pol2 = TinyPolicy()
    lp = pol2.logp()
    g_fwd = grad_of(pol2, rlvr_loss(lp, lp.detach(), pol2.mask, pol2.R, LossConfig("lpo_fwd"))[0])
    g_grpo2 = grad_of(pol2, rlvr_loss(pol2.logp(), lp.detach(), pol2.mask, pol2.R, LossConfig("grpo"))[0])
    assert (g_fwd - g_grpo2).abs().max() > 1e-3  # LPO-fwd ≠ GRPO even on-policy


def test_forward_coefficients_properties_and_autograd():
    g = torch.Generator().manual_seed(3)
    s = torch.randn(50, 8, generator=g, dtype=D) * 2
    R = torch.randint(0, 2, (50, 8), generator=g).to(D)
    w = lpo_target(R, tau_from_rule(R, "std"))
    c = lpo_forward_coefficients(s, w)
    assert torch.allclose(c, torch.softmax(s, -1) - w)
    assert (c.abs() <= 1).all() and (c.abs().sum(-1) <= 2 + 1e-12).all()       # Corollary 1
    assert torch.allclose(c.sum(-1), torch.zeros(50, dtype=D), atol=1e-12)
    assert torch.allclose(lpo_forward_coefficients(torch.log(w), w), torch.zeros_like(w), atol=1e-12)  # vanish at target
    s_req = s.clone().requires_grad_(True)
    (gd,) = torch.autograd.grad(lpo_forward_kl_loss(s_req, w).sum(), s_req)
    assert torch.allclose(gd, c, atol=1e-12)
    (gc,) = torch.autograd.grad(lpo_forward_kl_loss(s_req, w, form="coefficient").sum(), s_req)
    assert torch.allclose(gc, c, atol=1e-12)
    kl = lpo_forward_kl_loss(s, w)
    manual = (w * (torch.log(w) - torch.log_softmax(s, -1))).sum(-1)
    assert torch.allclose(kl, manual, atol=1e-12) and (kl >= 0).all()


def test_reverse_coefficients_properties_and_autograd():
    g = torch.Generator().manual_seed(4)
    s = torch.randn(40, 5, generator=g, dtype=D)
    R = torch.rand(40, 5, generator=g, dtype=D)
    w = lpo_target(R, 0.3)
    c = lpo_reverse_coefficients(s, w)
    P = torch.softmax(s, -1)
    d = s - torch.log(w)
    assert torch.allclose(c, P * (d - (P * d).sum(-1, keepdim=True)), atol=1e-12)
    phi = R / 0.3  # φ differs from log w* by a constant per group: same coefficients
    assert torch.allclose(c, P * ((s - phi) - (P * (s - phi)).sum(-1, keepdim=True)), atol=1e-12)
    assert torch.allclose(c.sum(-1), torch.zeros(40, dtype=D), atol=1e-12)
    assert torch.allclose(lpo_reverse_coefficients(torch.log(w), w), torch.zeros_like(w), atol=1e-12)
    s_req = s.clone().requires_grad_(True)
    for form in ("direct", "coefficient"):
        (gr,) = torch.autograd.grad(lpo_reverse_kl_loss(s_req, w, form=form).sum(), s_req)
        assert torch.allclose(gr, c, atol=1e-12), form
    kl = lpo_reverse_kl_loss(s, w)
    assert torch.allclose(kl, (P * (torch.log(P) - torch.log(w))).sum(-1), atol=1e-12)


def test_pointwise_is_one_sided():
    s = torch.zeros(2, 4, dtype=D, requires_grad=True)
    w = torch.tensor([[0.7, 0.1, 0.1, 0.1], [0.25, 0.25, 0.25, 0.25]], dtype=D)
    (gp,) = torch.autograd.grad(pointwise_loss(s, w).sum(), s)
    assert torch.allclose(gp, pointwise_coefficients(s, w)) and torch.allclose(gp, -w)
    assert torch.allclose(gp.sum(-1), -torch.ones(2, dtype=D))


@pytest.mark.parametrize("name", ["lpo_fwd", "lpo_rev"])
@pytest.mark.parametrize("agg", ["mean", "sum"])
def test_token_level_direct_and_coefficient_forms_agree(name, agg):
    pol = TinyPolicy(seed=5)
    old = pol.logp().detach()
    with torch.no_grad():
        pol.W.add_(0.02 * torch.randn_like(pol.W))
    grads = [grad_of(pol, rlvr_loss(pol.logp(), old, pol.mask, pol.R, LossConfig(name, agg=agg, form=f))[0])
             for f in ("direct", "coefficient")]
    assert grads[0].abs().max() > 1e-4
    assert torch.allclose(grads[0], grads[1], atol=1e-10)


def test_token_log_ratio_clip():
    logp = torch.log(torch.tensor([[[0.5, 0.9, 0.1, 0.3]]], dtype=D)).requires_grad_(True)
    old = torch.log(torch.tensor([[[0.5, 0.5, 0.5, 0.3]]], dtype=D))
    mask = torch.tensor([[[1.0, 1.0, 1.0, 0.0]]], dtype=D)
    delta = clipped_token_log_ratio(logp, old, mask, eps=0.2)
    assert torch.allclose(delta, torch.tensor([[[0.0, math.log(1.2), math.log(0.8), 0.0]]], dtype=D))
    (g,) = torch.autograd.grad(delta.sum(), logp)
    assert torch.equal(g, torch.tensor([[[1.0, 0.0, 0.0, 0.0]]], dtype=D))  # no grad outside the clip or at padding
    s_mean = listwise_logits(logp, old, mask, 0.2, "mean")
    s_sum = listwise_logits(logp, old, mask, 0.2, "sum")
    assert torch.allclose(s_mean * 3, s_sum)


def test_grpo_aggregation_variants():
    pol = TinyPolicy(seed=6)
    lp = pol.logp()
    old = lp.detach() - 0.05
    A = advantages(pol.R, "grpo")
    m = pol.mask
    ratio = torch.exp(lp - old)
    tok = torch.minimum(ratio * A[..., None], ratio.clamp(0.8, 1.2) * A[..., None]) * m
    K, T = lp.shape[1], lp.shape[2]
    assert torch.allclose(grpo_surrogate(lp, old, m, A, agg="seq_mean"), -(tok.sum(-1) / m.sum(-1)).mean(-1))
    assert torch.allclose(grpo_surrogate(lp, old, m, A, agg="seq_sum"), -tok.sum(-1).mean(-1))
    assert torch.allclose(grpo_surrogate(lp, old, m, A, agg="constant"), -tok.sum((-1, -2)) / (T * K))
    assert torch.allclose(grpo_surrogate(lp, old, m, A, agg="token").mean(), -tok.sum() / m.sum())
    # the min/clip: a token with ratio beyond 1+ε and positive advantage passes no gradient
    lp1 = torch.log(torch.tensor([[[0.9]], [[0.9]]], dtype=D)).requires_grad_(True)
    old1 = torch.log(torch.tensor([[[0.5]], [[0.5]]], dtype=D))
    adv = torch.tensor([[1.0], [-1.0]], dtype=D)
    (g,) = torch.autograd.grad(grpo_surrogate(lp1, old1, torch.ones_like(lp1), adv).sum(), lp1)
    assert g[0].item() == 0.0 and g[1].item() != 0.0
    with pytest.raises(ValueError):
        grpo_surrogate(lp, old, m, A, agg="median")


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_rlvr_loss_runs_for_every_name_and_reports_stats(name):
    pol = TinyPolicy(seed=7)
    lp = pol.logp()
    agg = "mean"
    loss, stats = rlvr_loss(lp, lp.detach(), pol.mask, pol.R, LossConfig(name, agg=agg))
    assert loss.dim() == 0 and torch.isfinite(loss)
    assert {"loss", "sum_abs_c", "clip_frac", "ratio_mean"} <= set(stats)
    assert stats["clip_frac"] == 0.0 and stats["ratio_mean"] == pytest.approx(1.0)
    loss.backward()
    assert pol.W.grad is not None and torch.isfinite(pol.W.grad).all()


def test_rlvr_loss_sum_abs_c_matches_worked_numbers_and_errors():
    R = torch.zeros(1, 8, dtype=D)
    R[0, 0] = 1.0
    lp = torch.full((1, 8, 3), -1.0, dtype=D, requires_grad=True)
    mask = torch.ones(1, 8, 3, dtype=D)
    _, st_fwd = rlvr_loss(lp, lp.detach(), mask, R, LossConfig("lpo_fwd"))
    _, st_grpo = rlvr_loss(lp, lp.detach(), mask, R, LossConfig("grpo"))
    assert st_fwd["sum_abs_c"] == pytest.approx(1.24, abs=5e-3)
    assert st_grpo["sum_abs_c"] == pytest.approx(0.66, abs=5e-3)
    with pytest.raises(ValueError):
        rlvr_loss(lp, lp.detach(), mask, R[:, :4], LossConfig("lpo_fwd"))
    with pytest.raises(ValueError):
        rlvr_loss(lp, lp.detach(), mask, R, LossConfig("ppo"))
    with pytest.raises(ValueError):
        rlvr_loss(lp, lp.detach(), mask, R, LossConfig("lpo_fwd", agg="token"))
