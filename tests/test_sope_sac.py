"""SAC pieces: the tanh-Gaussian log-prob, the batched networks, masked Adam, Polyak, the losses."""
import math

import numpy as np
import pytest
import torch

from hdai_lessons.sope.sac import (MaskedAdam, SACConfig, SACPopulation, actor_objective, expectile_loss, polyak_update,
                                   soft_td_target, tanh_gaussian_log_prob)


def test_tanh_log_prob_matches_numerical_change_of_variables():
    """p_a(a) = p_u(atanh a)·|d atanh(a)/da|, derivative by central differences (1-D, several points)."""
    mu, log_std = torch.tensor([0.3], dtype=torch.float64), torch.tensor([-0.4], dtype=torch.float64)
    normal = torch.distributions.Normal(mu, log_std.exp())
    for u0 in [-1.5, -0.2, 0.0, 0.7, 1.3]:
        u = torch.tensor([u0], dtype=torch.float64)
        a, h = math.tanh(u0), 1e-6
        dinv = (math.atanh(a + h) - math.atanh(a - h)) / (2 * h)
        numeric = normal.log_prob(u).item() + math.log(dinv)
        ours = tanh_gaussian_log_prob(u, mu, log_std).item()
        assert ours == pytest.approx(numeric, abs=1e-4)   # the 1e-6 inside the log is the only difference


def test_tanh_log_prob_integrates_to_one():
    mu, log_std = torch.tensor([[0.5]], dtype=torch.float64), torch.tensor([[0.2]], dtype=torch.float64)
    a = torch.linspace(-1 + 1e-7, 1 - 1e-7, 200_001, dtype=torch.float64)
    u = torch.atanh(a).unsqueeze(-1)
    dens = tanh_gaussian_log_prob(u, mu.expand_as(u), log_std.expand_as(u)).exp()
    assert torch.trapezoid(dens, a).item() == pytest.approx(1.0, abs=2e-3)


def test_population_runs_are_independent():
    """Run 1's outputs and gradients do not depend on run 0's parameters."""
    torch.manual_seed(0)
    pop = SACPopulation([0, 1], 3, 1, 2.0, SACConfig(hidden=(16, 16), dropout=0.0))
    obs, act = torch.randn(2, 5, 3), torch.randn(2, 5, 1)
    q1 = pop.critic(obs, act)[1].clone()
    with torch.no_grad():
        for p in pop.critic.parameters():
            p[0].add_(1.0)
    assert torch.equal(pop.critic(obs, act)[1], q1)
    assert pop.critic(obs, act).shape == (2, 2, 5)


def test_same_seed_same_init_and_masked_adam_freezes_masked_runs():
    pop = SACPopulation([3, 3, 4], 3, 1, 2.0, SACConfig(hidden=(16, 16), dropout=0.0))
    w = pop.actor.net.linears[0].weight
    assert torch.equal(w[0], w[1]) and not torch.equal(w[0], w[2])
    before = {n: p.detach().clone() for n, p in pop.critic.named_parameters()}
    batch = dict(obs=torch.randn(3, 8, 3), act=torch.randn(3, 8, 1), rew=torch.randn(3, 8), next_obs=torch.randn(3, 8, 3),
                 term=torch.zeros(3, 8))
    tgt_before = [p.clone() for p in pop.critic_target.parameters()]
    pop.critic_update(batch, mask=torch.tensor([True, False, True]))
    for n, p in pop.critic.named_parameters():
        assert torch.equal(p[1], before[n][1]), n
        assert not torch.equal(p[0], before[n][0]) or "norms" in n or "bias" in n
    for pb, pa in zip(tgt_before, pop.critic_target.parameters()):
        assert torch.equal(pb[1], pa[1])
    st = pop.opt.state[pop.critic.net.head.weight]
    assert st["step"].tolist() == [1.0, 0.0, 1.0]


def test_masked_adam_equals_torch_adam_for_one_run():
    torch.manual_seed(1)
    p1 = torch.nn.Parameter(torch.randn(1, 4, 3))
    p2 = torch.nn.Parameter(p1.detach().clone())
    ours = MaskedAdam([{"params": [p1], "name": "x"}], n_runs=1, lr=1e-2)
    ref = torch.optim.Adam([p2], lr=1e-2)
    for k in range(5):
        g = torch.randn(1, 4, 3)
        p1.grad, p2.grad = g.clone(), g.clone()
        ours.step("x")
        ref.step()
    torch.testing.assert_close(p1, p2)


def test_polyak_and_losses():
    a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    wa = a.weight.detach().clone()
    polyak_update(a, b, 0.25)
    torch.testing.assert_close(a.weight, 0.75 * wa + 0.25 * b.weight)
    d = torch.tensor([-2.0, 1.0])
    torch.testing.assert_close(expectile_loss(d, 0.5), 0.5 * d**2)
    torch.testing.assert_close(expectile_loss(d, 0.9), torch.tensor([0.4, 0.9]))
    y = soft_td_target(torch.tensor([[1.0]]), torch.tensor([[1.0]]), torch.tensor([[[5.0], [3.0]]]), torch.tensor([[0.0]]),
                       torch.tensor([[1.0]]), 0.9)
    assert y.item() == 1.0     # terminal: no bootstrap
    lo = actor_objective(torch.zeros(1, 2), torch.tensor([[[1.0, 2.0], [3.0, 4.0]]]), torch.ones(1, 1))
    assert lo.item() == pytest.approx(-2.5)


def test_update_reduces_critic_loss_on_a_fixed_batch():
    pop = SACPopulation([0], 3, 1, 2.0, SACConfig(hidden=(32, 32), dropout=0.0, lr=3e-3))
    g = torch.Generator().manual_seed(0)
    batch = dict(obs=torch.randn(1, 64, 3, generator=g), act=torch.rand(1, 64, 1, generator=g) * 4 - 2,
                 rew=torch.randn(1, 64, generator=g), next_obs=torch.randn(1, 64, 3, generator=g), term=torch.zeros(1, 64))
    first = pop.critic_loss(batch).item()
    for _ in range(150):
        pop.update(batch)
    assert pop.critic_loss(batch).item() < 0.5 * first
    assert np.isfinite(pop.alpha.item())
