"""Speed of our population SAC update against a plain single-run reference (issue 16, item 3).

    python scripts/bench_sac_population.py                 # the lessons' toy configuration
    python scripts/bench_sac_population.py --pairs 30 --iters 200

What is timed, per update (lessons 03.2–03.4's toy configuration: Pendulum-sized inputs, 2×64 LayerNorm MLPs,
2 critics, a symmetric batch of 64 + 64 = 128 rows, no dropout, Adam, Polyak τ = 0.005):

- **ours**: ``SACPopulation`` with one run (R = 1): ``update(batch)`` (critic, actor, α, Polyak) and
  ``critic_update(batch, loss="expectile")`` (one stabilisation-phase step);
- **reference**: a plain CleanRL-style SAC written below for this benchmark (our own code, not CleanRL's):
  ``nn.Sequential`` actor, both critics batched into one module (one ``baddbmm`` per layer for the two
  critics), one ``torch.optim.Adam`` per group with its defaults, and the CleanRL Polyak loop
  ``θ̄.copy_(τθ + (1−τ)θ̄)``. It computes the same losses as ours (mean of the critics in the actor loss,
  clipped double-Q target, learned α).

Protocol: one torch thread, the same fixed batches for both, A and B interleaved (one block of ``--iters``
updates of A, then one of B, ``--pairs`` times, the order alternating), process CPU time
(``time.process_time``), the median over pairs of each side's updates/s and the median of the per-pair ratios.
The last line is ``ratio ours / batched reference: full X.XXx, critic-only Y.YYx`` (> 1: ours is faster).
"""
from __future__ import annotations

import argparse
import copy
import math
import os
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from hdai_lessons.sope.sac import SACConfig, SACPopulation

OBS, ACT, ACT_MAX = 3, 1, 2.0           # Pendulum-v1


# ----------------------------------------------------------------------------- the reference (our own code)
class _RefActor(nn.Module):
    def __init__(self, hidden):
        super().__init__()
        layers, d = [], OBS
        for h in hidden:
            layers += [nn.Linear(d, h), nn.LayerNorm(h), nn.ReLU()]
            d = h
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(d, 2 * ACT)

    def sample(self, obs):
        mu, log_std = self.head(self.body(obs)).chunk(2, dim=-1)
        log_std = log_std.clamp(-20.0, 2.0)
        std = log_std.exp()
        u = mu + std * torch.randn_like(mu)
        logp = (-0.5 * ((u - mu) / std) ** 2 - log_std - 0.5 * math.log(2 * math.pi)
                - torch.log(1 - torch.tanh(u) ** 2 + 1e-6)).sum(-1)
        return ACT_MAX * torch.tanh(u), logp


class _RefTwinCritic(nn.Module):
    """Both critics in one module: weights ``(2, d_in, d_out)``, one ``baddbmm`` per layer."""

    def __init__(self, hidden, n=2):
        super().__init__()
        dims = [OBS + ACT, *hidden, 1]
        self.w = nn.ParameterList()
        self.b = nn.ParameterList()
        self.ln = nn.ModuleList(nn.LayerNorm(h) for h in hidden)   # shared shape; per-critic affine below
        self.g = nn.ParameterList()
        self.beta = nn.ParameterList()
        for a, c in zip(dims[:-1], dims[1:]):
            bound = math.sqrt(6.0 / (a + c))
            self.w.append(nn.Parameter(torch.empty(n, a, c).uniform_(-bound, bound)))
            self.b.append(nn.Parameter(torch.zeros(n, 1, c)))
        for h in hidden:
            self.g.append(nn.Parameter(torch.ones(n, 1, h)))
            self.beta.append(nn.Parameter(torch.zeros(n, 1, h)))
        self.n = n

    def forward(self, obs, act):                                    # (B, o), (B, a) → (2, B)
        x = torch.cat([obs, act], -1).unsqueeze(0).expand(self.n, -1, -1)
        for k in range(len(self.g)):
            x = torch.baddbmm(self.b[k], x, self.w[k])
            x = F.relu(F.layer_norm(x, x.shape[-1:]) * self.g[k] + self.beta[k])
        return torch.baddbmm(self.b[-1], x, self.w[-1]).squeeze(-1)


class ReferenceSAC:
    """A plain CleanRL-style SAC learner (one run), written for this benchmark."""

    def __init__(self, hidden=(64, 64), lr=1e-3, gamma=0.99, tau=0.005):
        self.actor = _RefActor(hidden)
        self.qf = _RefTwinCritic(hidden)
        self.qf_target = copy.deepcopy(self.qf)
        self.log_alpha = torch.zeros(1, requires_grad=True)
        self.q_opt = torch.optim.Adam(self.qf.parameters(), lr=lr)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=lr)
        self.a_opt = torch.optim.Adam([self.log_alpha], lr=lr)
        self.gamma, self.tau, self.target_entropy = gamma, tau, -float(ACT)

    def _critic_step(self, b, expectile: bool):
        alpha = self.log_alpha.exp().item()
        with torch.no_grad():
            a2, logp2 = self.actor.sample(b["next_obs"])
            q2 = self.qf_target(b["next_obs"], a2).min(0).values - alpha * logp2
            y = b["rew"] + (1 - b["term"]) * self.gamma * q2
        diff = self.qf(b["obs"], b["act"]) - y
        loss = (torch.where(diff > 0, 0.5, 0.5) * diff ** 2 if expectile else diff ** 2).mean(-1).sum()
        self.q_opt.zero_grad()
        loss.backward()
        self.q_opt.step()
        return alpha

    def _polyak(self):
        for p, tp in zip(self.qf.parameters(), self.qf_target.parameters()):
            tp.data.copy_(self.tau * p.data + (1 - self.tau) * tp.data)

    def critic_update(self, b):
        self._critic_step(b, expectile=True)
        self._polyak()

    def update(self, b):
        alpha = self._critic_step(b, expectile=False)
        pi, logp = self.actor.sample(b["obs"])
        actor_loss = (alpha * logp - self.qf(b["obs"], pi).mean(0)).mean()
        self.actor_opt.zero_grad()
        actor_loss.backward()
        self.actor_opt.step()
        alpha_loss = -(self.log_alpha * (logp.detach() + self.target_entropy)).mean()   # as ours (no resample)
        self.a_opt.zero_grad()
        alpha_loss.backward()
        self.a_opt.step()
        self._polyak()


# ----------------------------------------------------------------------------- timing
def _batches(n, rows, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        out.append(dict(obs=torch.randn(rows, OBS, generator=g), act=torch.rand(rows, ACT, generator=g) * 4 - 2,
                        rew=-torch.rand(rows, generator=g) * 16, next_obs=torch.randn(rows, OBS, generator=g),
                        term=torch.zeros(rows)))
    return out


def _rate(fn, batches, iters):
    t0 = time.process_time()
    for i in range(iters):
        fn(batches[i % len(batches)])
    return iters / max(time.process_time() - t0, 1e-9)


def measure(pairs: int, iters: int, hidden=(64, 64), rows=128, lr=1e-3) -> dict:
    torch.manual_seed(0)
    ref = ReferenceSAC(hidden, lr)
    ours = SACPopulation([0], OBS, ACT, ACT_MAX, SACConfig(hidden=hidden, dropout=0.0, lr=lr))
    flat = _batches(16, rows)
    pop = [{k: v.unsqueeze(0) for k, v in b.items()} for b in flat]     # (R = 1, B, ·)
    jobs = {
        "full": (lambda b: ours.update(b), lambda b: ref.update(b)),
        "critic-only": (lambda b: ours.critic_update(b, loss="expectile"), lambda b: ref.critic_update(b)),
    }
    out = {}
    for name, (f_ours, f_ref) in jobs.items():
        _rate(f_ours, pop, iters // 4), _rate(f_ref, flat, iters // 4)              # warm-up
        a, b, r = [], [], []
        for k in range(pairs):
            if k % 2 == 0:
                ra, rb = _rate(f_ours, pop, iters), _rate(f_ref, flat, iters)
            else:
                rb, ra = _rate(f_ref, flat, iters), _rate(f_ours, pop, iters)
            a.append(ra), b.append(rb), r.append(ra / rb)
        out[name] = dict(ours=statistics.median(a), ref=statistics.median(b), ratio=statistics.median(r),
                         ratio_min=min(r), ratio_max=max(r))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", type=int, default=15, help="interleaved A/B pairs per kind of update")
    p.add_argument("--iters", type=int, default=100, help="updates per timed block")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    res = measure(args.pairs, args.iters)
    print(f"torch {torch.__version__}, 1 thread, {args.pairs} interleaved pairs × {args.iters} updates, process CPU time")
    for name, r in res.items():
        print(f"{name:11s}  ours {r['ours']:7.1f} updates/s   batched reference {r['ref']:7.1f} updates/s   "
              f"ratio (median of pairs) {r['ratio']:.2f}x  [min {r['ratio_min']:.2f}, max {r['ratio_max']:.2f}]")
    print(f"ratio ours / batched reference: full {res['full']['ratio']:.2f}x, critic-only {res['critic-only']['ratio']:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
