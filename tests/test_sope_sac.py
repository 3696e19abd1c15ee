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


def _ref_mlp(x, lins, norms):
    """A plain MLP: Linear → LayerNorm (affine) → ReLU blocks, then the head; ``lins``: [(W (i, o), b (1, o)), …]."""
    for (w, b), (g, beta) in zip(lins[:-1], norms):
        x = torch.relu(torch.nn.functional.layer_norm(x @ w + b, (w.shape[-1],)) * g + beta)
    return x @ lins[-1][0] + lins[-1][1]


def test_population_update_matches_a_single_run_reference():
    """The vectorised population step (fused per-run Adam, foreach Polyak, actor step with frozen critics, α's
    gradient written directly) is the textbook single-run SAC step, run by run: run 1 of a 2-run population
    follows a plain implementation (``torch.optim.Adam``, autograd through every loss) fed with run 1's noise."""
    cfg = SACConfig(hidden=(16, 16), dropout=0.0, lr=1e-2, tau=0.05)
    pop = SACPopulation([5, 7], 3, 1, 2.0, cfg)
    r, N = 1, cfg.n_critics

    def leaf(t):
        return t.detach()[r].clone().requires_grad_(True)

    a_lins = [(leaf(l.weight), leaf(l.bias)) for l in [*pop.actor.net.linears, pop.actor.net.head]]
    a_norms = [(leaf(n.weight), leaf(n.bias)) for n in pop.actor.net.norms]
    c_lins = [(leaf(l.weight), leaf(l.bias)) for l in [*pop.critic.net.linears, pop.critic.net.head]]   # (N, i, o)
    c_norms = [(leaf(n.weight), leaf(n.bias)) for n in pop.critic.net.norms]
    t_lins = [(w.detach().clone(), b.detach().clone()) for w, b in c_lins]
    t_norms = [(g.detach().clone(), b.detach().clone()) for g, b in c_norms]
    log_alpha = leaf(pop.log_alpha)
    c_params = [t for pair in c_lins + c_norms for t in pair]
    a_params = [t for pair in a_lins + a_norms for t in pair]
    opt_c, opt_a, opt_al = (torch.optim.Adam(ps, lr=cfg.lr) for ps in (c_params, a_params, [log_alpha]))
    g = torch.Generator()
    g.set_state(pop.gens[r].get_state())

    def actor(obs, eps):
        mu, log_std = _ref_mlp(obs, a_lins, a_norms).chunk(2, -1)
        log_std = log_std.clamp(-20, 2)
        u = mu + log_std.exp() * eps
        return 2.0 * torch.tanh(u), tanh_gaussian_log_prob(u, mu, log_std)

    def critic(obs, act, lins, norms):                      # (B, o), (B, a) → (N, B)
        x = torch.cat([obs, act], -1).expand(N, *obs.shape[:-1], 4)
        return _ref_mlp(x, lins, norms).squeeze(-1)

    data = torch.Generator().manual_seed(3)
    for _ in range(4):
        batch = dict(obs=torch.randn(2, 32, 3, generator=data), act=torch.rand(2, 32, 1, generator=data) * 4 - 2,
                     rew=torch.randn(2, 32, generator=data), next_obs=torch.randn(2, 32, 3, generator=data),
                     term=(torch.rand(2, 32, generator=data) < 0.1).float())
        pop.update(batch)
        b = {k: v[r] for k, v in batch.items()}
        alpha = log_alpha.detach().exp()
        with torch.no_grad():                               # clipped double-Q soft target from the target critics
            a2, logp2 = actor(b["next_obs"], torch.randn(32, 1, generator=g))
            y = b["rew"] + cfg.gamma * (1 - b["term"]) * (critic(b["next_obs"], a2, t_lins, t_norms).min(0).values - alpha * logp2)
        opt_c.zero_grad()
        ((critic(b["obs"], b["act"], c_lins, c_norms) - y) ** 2).mean(-1).sum().backward()
        opt_c.step()
        a, logp = actor(b["obs"], torch.randn(32, 1, generator=g))
        opt_a.zero_grad()
        (alpha * logp - critic(b["obs"], a, c_lins, c_norms).mean(0)).mean().backward()
        opt_a.step()
        opt_al.zero_grad()
        (-(log_alpha * (logp.detach() - 1.0)).mean()).backward()      # H̄ = −act_dim = −1
        opt_al.step()
        with torch.no_grad():
            for t, p in zip([t for pair in t_lins + t_norms for t in pair], c_params):
                t.mul_(1 - cfg.tau).add_(cfg.tau * p)
    ours = [*[t for l in [*pop.actor.net.linears, pop.actor.net.head] for t in (l.weight, l.bias)],
            *[t for n in pop.actor.net.norms for t in (n.weight, n.bias)]]
    for o, ref in zip(ours, a_params):
        torch.testing.assert_close(o.detach()[r], ref.detach(), rtol=1e-4, atol=1e-5)
    ours_c = [*[t for l in [*pop.critic.net.linears, pop.critic.net.head] for t in (l.weight, l.bias)],
              *[t for n in pop.critic.net.norms for t in (n.weight, n.bias)]]
    ours_t = [*[t for l in [*pop.critic_target.net.linears, pop.critic_target.net.head] for t in (l.weight, l.bias)],
              *[t for n in pop.critic_target.net.norms for t in (n.weight, n.bias)]]
    for o, ref in zip(ours_c, c_params):
        torch.testing.assert_close(o.detach()[r], ref.detach(), rtol=1e-4, atol=1e-5)
    for o, ref in zip(ours_t, [t for pair in t_lins + t_norms for t in pair]):
        torch.testing.assert_close(o.detach()[r], ref, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(pop.log_alpha.detach()[r], log_alpha.detach(), rtol=1e-4, atol=1e-6)
    assert not torch.equal(pop.log_alpha.detach()[0], pop.log_alpha.detach()[1])     # run 0 is another run


def test_select_and_absorb_round_trip_and_train_only_the_selected_runs():
    """A ``select``-ed sub-population trains exactly like those runs inside the whole population (bitwise on one
    float path), and ``absorb`` writes it back without touching the other runs."""
    cfg = SACConfig(hidden=(16, 16), dropout=0.0, lr=1e-2)
    whole = SACPopulation([0, 1, 2], 3, 1, 2.0, cfg)
    parted = SACPopulation([0, 1, 2], 3, 1, 2.0, cfg)
    g = torch.Generator().manual_seed(0)
    batches = [dict(obs=torch.randn(3, 8, 3, generator=g), act=torch.rand(3, 8, 1, generator=g), rew=torch.randn(3, 8, generator=g),
                    next_obs=torch.randn(3, 8, 3, generator=g), term=torch.zeros(3, 8)) for _ in range(3)]
    for b in batches:                                          # both have optimiser state first
        whole.update(b), parted.update(b)
    mask = torch.tensor([True, False, True])
    for b in batches:
        whole.critic_update(b, mask=mask, loss="expectile")
    sub = parted.select([0, 2])
    for b in batches:
        sub.critic_update({k: v[[0, 2]] for k, v in b.items()}, loss="expectile")
    before_1 = [p.detach()[1].clone() for p in parted.critic.parameters()]
    parted.absorb(sub, [0, 2])
    for p, q in zip([*whole.critic.parameters(), *whole.critic_target.parameters()],
                    [*parted.critic.parameters(), *parted.critic_target.parameters()]):
        assert torch.equal(p, q)
    for p, b1 in zip(parted.critic.parameters(), before_1):
        assert torch.equal(p.detach()[1], b1)
    w, q = whole.opt.state[whole.critic.net.head.weight], parted.opt.state[parted.critic.net.head.weight]
    assert w["step"].tolist() == q["step"].tolist() == [6.0, 3.0, 6.0]
    assert torch.equal(w["exp_avg_sq"], q["exp_avg_sq"])


def test_the_deterministic_action_is_the_samplers_without_its_log_probability():
    pop = SACPopulation([0, 1], 3, 1, 2.0, SACConfig(hidden=(16, 16), dropout=0.0))
    obs = torch.randn(2, 7, 3)
    a = pop.act(obs, deterministic=True)
    assert torch.equal(a, pop.actor.sample(obs, deterministic=True)[0])
    assert a.shape == (2, 7, 1) and bool((a.abs() <= 2.0).all())
    assert not torch.equal(a, pop.act(obs))                         # the stochastic action draws noise
