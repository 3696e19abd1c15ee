"""SAC as SOPE uses it, vectorised over a *population* of ``R`` independent runs (lessons 03.2–03.4).

Every parameter carries a leading run dimension ``R``: run ``r`` has its own actor, twin critics,
targets and temperature, and never sees another run's data or gradients. Batched matmuls make
``R`` runs cost little more than one on a CPU (the networks are tiny, the cost is Python overhead),
which is how lessons 03.2/03.3 compare several arms × seeds within a minute. ``MaskedAdam``
updates only the runs whose mask is on (one fused Adam call over the active runs' slices), and
``SACPopulation.select`` / ``absorb`` carve out the runs still in a stabilisation phase so that only they are
computed. ``scripts/bench_sac_population.py`` times one update against a plain single-run SAC.

Equations follow the official SOPE code (see the digest, "Losses"):

- tanh-squashed Gaussian: ``a = a_max·tanh(u)``, ``u = μ + σ ε`` and
  ``log π(a|s) = Σ_j [log N(u_j; μ_j, σ_j) − log(1 − tanh²(u_j) + 1e−6)]``, ``log σ ∈ [−20, 2]``;
- soft TD target: ``y = r + γ(1−d)[min_i Q̄_i(s', ã') − α log π(ã'|s')]``;
- critic loss ``Σ_i mean_B (Q_i(s,a) − y)²``; in a stabilisation phase the expectile loss with τ = 0.5;
- actor loss ``mean_B[α log π(ã|s) − (1/N) Σ_i Q_i(s, ã)]`` (mean, not min, of the critics);
- temperature loss ``−mean[log α (log π + H̄)]``; Polyak ``θ̄ ← (1−τ)θ̄ + τθ`` with τ = 0.005.

Critics: Linear → Dropout → LayerNorm → ReLU (DroQ order), Xavier-uniform init; dropout stays
active in online and target critics and during validation (the official code never calls ``.eval()``).

Randomness is per run too (``rng``): the policy's sampling noise and the dropout masks of run ``r`` come from
its own generator (``SACPopulation.gens``, seeded from its seed), and runs masked out of an update draw
nothing, so a run's trajectory does not depend on the other runs in the population.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from hdai_lessons.sope.rng import per_run_normal, per_run_uniform, run_generators

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0


# ----------------------------------------------------------------------------- equations
def tanh_gaussian_log_prob(u: torch.Tensor, mu: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """``log π(a|s)`` of ``a = tanh(u)``, ``u ~ N(μ, σ²)``, with the change-of-variables correction.

    ``Σ_j [log N(u_j; μ_j, σ_j) − log(1 − tanh²(u_j) + 1e−6)]`` (digest "Losses", SOPE/SPEQ code).
    The ``a_max`` scale adds a constant ``−A·log a_max`` that the code (and this function) omits.

    Args:
        u, mu, log_std: ``(..., A)`` pre-squash sample, mean and log standard deviation.
    Returns: ``(...)`` summed over the action dimension.

    Lesson 03.2 (exercise 03.2.1).
    """
    gauss = -0.5 * ((u - mu) / log_std.exp()) ** 2 - log_std - 0.5 * math.log(2 * math.pi)   # (..., A)
    correction = torch.log(1 - torch.tanh(u) ** 2 + 1e-6)                                     # (..., A)
    return (gauss - correction).sum(-1)


def soft_td_target(reward: torch.Tensor, terminated: torch.Tensor, q_next: torch.Tensor, logp_next: torch.Tensor,
                   alpha: torch.Tensor, gamma: float) -> torch.Tensor:
    """Clipped double-Q soft TD target ``y = r + γ(1−d)[min_i Q̄_i(s',ã') − α log π(ã'|s')]``.

    Args:
        reward, terminated: ``(..., B)``; ``terminated`` is the environment's *termination* flag (1.0/0.0),
            never the time-limit truncation.
        q_next: ``(..., N, B)`` target critics at ``(s', ã')``.
        logp_next: ``(..., B)`` ``log π(ã'|s')``.
        alpha: broadcastable to ``(..., B)``, e.g. ``(R, 1)``.
    Returns: ``(..., B)``; callers compute it under ``torch.no_grad()``.

    Lesson 03.2 (exercise 03.2.2); SOPE digest, "Losses" (soft TD target, clipped double-Q).
    """
    soft_v = q_next.min(dim=-2).values - alpha * logp_next          # (..., B)
    return reward + gamma * (1.0 - terminated) * soft_v


def expectile_loss(diff: torch.Tensor, tau: float = 0.5) -> torch.Tensor:
    """``ℓ(u) = w(u)·u²`` with ``w = τ`` if ``u > 0`` else ``1 − τ`` (elementwise; τ = 0.5 is ½·MSE).

    Lesson 03.3; SOPE digest, "Losses" (critic loss inside a stabilisation phase)."""
    w = torch.where(diff > 0, torch.full_like(diff, tau), torch.full_like(diff, 1 - tau))
    return w * diff**2


def actor_objective(logp: torch.Tensor, q_pi: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """SAC actor loss per run: ``mean_B[α log π(ã|s) − (1/N) Σ_i Q_i(s, ã)]``.

    Args:
        logp: ``(R, B)``; q_pi: ``(R, N, B)`` critics at the policy's actions; alpha: ``(R, 1)``.
    Returns: ``(R,)``. With frozen ``φ, α`` on held-out states this is SOPE's ``Ĵ_val`` (a DM estimate of
    ``−V^π``).

    Lesson 03.2 (exercise 03.2.3); SOPE digest, "Losses" (actor loss); as ``Ĵ_val`` it is "Actor-aligned OPE signal"
    (lesson 03.3).
    """
    return (alpha * logp - q_pi.mean(dim=-2)).mean(dim=-1)


# ----------------------------------------------------------------------------- layers
class BatchedLinear(nn.Module):
    """``prod(prefix)`` independent linear maps: ``(M, B, d_in) → (M, B, d_out)``, ``M = prod(prefix)``.

    Parameters are stored with shape ``(*prefix, d_in, d_out)`` so their first dim is the run ``R``.

    Lesson 03.2; SOPE digest, "Networks" (Xavier-uniform initialisation).
    """

    def __init__(self, prefix: tuple[int, ...], d_in: int, d_out: int, generators: "list[torch.Generator] | None" = None):
        super().__init__()
        bound = math.sqrt(6.0 / (d_in + d_out))        # Xavier-uniform, as the official code
        w = torch.empty(*prefix, d_in, d_out)
        if generators is None:
            w.uniform_(-bound, bound)
        else:                                          # one generator per run: a run's init ignores the others
            for r, g in enumerate(generators):
                w[r].uniform_(-bound, bound, generator=g)
        self.weight = nn.Parameter(w)
        self.bias = nn.Parameter(torch.zeros(*prefix, 1, d_out))
        self.prefix = prefix

    def forward(self, x: torch.Tensor, runs: "torch.Tensor | None" = None) -> torch.Tensor:
        """``runs``: indices into the first prefix dim (the runs) to compute only those members; ``x`` then
        holds ``len(runs)·prod(prefix[1:])`` members."""
        w, b = (self.weight, self.bias) if runs is None else (self.weight[runs], self.bias[runs])
        w = w.reshape(-1, *w.shape[-2:])                        # (M, d_in, d_out)
        b = b.reshape(-1, 1, b.shape[-1])                       # (M, 1, d_out)
        return torch.baddbmm(b, x, w)


class BatchedLayerNorm(nn.Module):
    """LayerNorm over the last dim with per-member affine parameters ``(*prefix, 1, d)``.

    Lesson 03.2; SOPE digest, "Networks" (LayerNorm)."""

    def __init__(self, prefix: tuple[int, ...], d: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(*prefix, 1, d))
        self.bias = nn.Parameter(torch.zeros(*prefix, 1, d))
        self.prefix = prefix

    def forward(self, x: torch.Tensor, runs: "torch.Tensor | None" = None) -> torch.Tensor:      # x: (M, B, d)
        w, b = (self.weight, self.bias) if runs is None else (self.weight[runs], self.bias[runs])
        d = x.shape[-1]
        return torch.addcmul(b.reshape(-1, 1, d), F.layer_norm(x, (d,)), w.reshape(-1, 1, d))     # LN(x)·w + b, one op


class BatchedMLP(nn.Module):
    """Hidden blocks Linear → Dropout → LayerNorm → ReLU, then a linear head; ``(M, B, d_in) → (M, B, d_out)``.

    Lesson 03.2; SOPE digest, "Networks" (MLPs with LayerNorm and critic dropout)."""

    def __init__(self, prefix, d_in, hidden, d_out, dropout=0.0, layer_norm=True, generators=None):
        super().__init__()
        dims = [d_in, *hidden]
        self.linears = nn.ModuleList(BatchedLinear(prefix, a, b, generators) for a, b in zip(dims[:-1], dims[1:]))
        self.norms = nn.ModuleList(BatchedLayerNorm(prefix, b) if layer_norm else nn.Identity() for b in dims[1:])
        self.head = BatchedLinear(prefix, dims[-1], d_out, generators)
        self.dropout = dropout

    def forward(self, x, gens: "list[torch.Generator] | None" = None, mask: "torch.Tensor | None" = None,
                runs: "torch.Tensor | None" = None):
        """``gens``: one generator per run (``M`` must be a multiple of ``len(gens)``) for the dropout masks;
        runs with ``mask[r]`` False draw nothing. Without ``gens`` the global torch RNG is used.
        ``runs``: compute only these runs (``x`` and ``gens`` then cover just them)."""
        for lin, norm in zip(self.linears, self.norms):
            x = lin(x, runs)
            if self.dropout > 0:                                # always on, as in the official code
                if gens is None:
                    u = torch.rand_like(x)
                else:                                           # (R, M/R, B, d) drawn run by run
                    u = per_run_uniform(gens, (x.shape[0] // len(gens), *x.shape[1:]), mask).view_as(x)
                keep = u >= self.dropout                        # (M, B, d); cheaper than F.dropout on CPU
                x = x * keep / (1.0 - self.dropout)
            x = torch.relu_(norm(x) if isinstance(norm, nn.Identity) else norm(x, runs))   # in place: a fresh tensor
        return self.head(x, runs)


def _member_generators(seeds: "list[int]", salt: int) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(int(s) * 1000 + salt) for s in seeds]


class TwinCritic(nn.Module):
    """``N`` critics per run: ``(R, B, obs) × (R, B, act) → (R, N, B)``.

    Lesson 03.2; SOPE digest, "Networks" (N = 2 critics with dropout and LayerNorm)."""

    def __init__(self, seeds, obs_dim, act_dim, hidden, n_critics=2, dropout=0.01, salt=1):
        super().__init__()
        R = len(seeds)
        gens = [g for s in seeds for g in _member_generators([s * n_critics + i for i in range(n_critics)], salt)]
        self.R, self.N = R, n_critics
        self.net = BatchedMLP((R, n_critics), obs_dim + act_dim, hidden, 1, dropout=dropout, generators=None)
        with torch.no_grad():                             # per-(run, critic) seeded init
            for lin in [*self.net.linears, self.net.head]:
                bound = math.sqrt(6.0 / sum(lin.weight.shape[-2:]))
                flat = lin.weight.view(R * n_critics, *lin.weight.shape[-2:])
                for m, g in enumerate(gens):
                    flat[m].uniform_(-bound, bound, generator=g)

    def forward(self, obs: torch.Tensor, act: torch.Tensor, gens=None, mask=None, runs=None) -> torch.Tensor:
        """``gens``/``mask``/``runs``: per-run dropout generators, the runs that draw, the runs computed
        (``obs``/``act`` then hold only those runs; see ``BatchedMLP.forward``)."""
        x = torch.cat([obs, act], dim=-1)                                    # (R, B, o+a)
        R, B, D = x.shape
        x = x.unsqueeze(1).expand(R, self.N, B, D).reshape(R * self.N, B, D)  # (R·N, B, D)
        return self.net(x, gens, mask, runs).view(R, self.N, B)             # (R, N, B)


class TanhGaussianActor(nn.Module):
    """``π_φ(·|s)`` per run: ``(R, B, obs) → mean, log_std (R, B, A)``; actions ``a_max·tanh(u)``.

    Lesson 03.2; SOPE digest, "Symbols" (the tanh-squashed Gaussian policy π_φ)."""

    def __init__(self, seeds, obs_dim, act_dim, hidden, act_max: float, layer_norm=True):
        super().__init__()
        self.net = BatchedMLP((len(seeds),), obs_dim, hidden, 2 * act_dim, layer_norm=layer_norm,
                              generators=_member_generators(seeds, 7))
        self.act_dim, self.act_max = act_dim, float(act_max)

    def forward(self, obs, runs=None):
        mu, log_std = self.net(obs, runs=runs).chunk(2, dim=-1)               # (R, B, A) each
        return mu, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)

    def mean_action(self, obs, runs=None) -> torch.Tensor:
        """``a_max·tanh(μ)`` ``(R, B, A)``: the deterministic (evaluation) action, ``sample(deterministic=True)``'s
        without its log-probability."""
        return self.act_max * torch.tanh(self(obs, runs)[0])

    def sample(self, obs, deterministic: bool = False, gens: "list[torch.Generator] | None" = None,
               mask: "torch.Tensor | None" = None, runs: "torch.Tensor | None" = None):
        """``(action (R, B, A) scaled to ±a_max, log π (R, B))``; reparameterised (gradients flow).

        ``gens``: one generator per run for ``ε`` (runs with ``mask[r]`` False draw nothing and get ``ε = 0``);
        without ``gens`` the global torch RNG is used."""
        mu, log_std = self(obs, runs)
        if deterministic:
            eps = torch.zeros_like(mu)
            u = mu
        else:
            eps = torch.randn_like(mu) if gens is None else per_run_normal(gens, mu.shape[1:], mask)
            u = mu + log_std.exp() * eps
        t = torch.tanh(u)
        # tanh_gaussian_log_prob(u, mu, log_std) with (u − μ)/σ = ε and tanh(u) reused: the same equation, fewer ops
        logp = (-0.5 * eps**2 - log_std - (0.5 * math.log(2 * math.pi)) - torch.log(1 - t**2 + 1e-6)).sum(-1)
        return self.act_max * t, logp


# ----------------------------------------------------------------------------- optimisation
def _rows(cache: dict, t: torch.Tensor) -> "tuple[torch.Tensor, ...]":
    """``t.unbind(0)`` (one view per run), cached while ``t`` keeps its storage (parameters and optimiser
    state are only ever updated in place, so the views stay valid)."""
    hit = cache.get(id(t))
    if hit is None or hit[0] is not t or hit[1] != t.data_ptr():
        hit = (t, t.data_ptr(), t.unbind(0))
        cache[id(t)] = hit
    return hit[2]


class MaskedAdam(torch.optim.Optimizer):
    """Adam whose every parameter has a leading run dim ``R``; ``step(mask)`` updates only runs with ``mask[r]``.

    Each run is its own Adam: its own moments and its own step count (so its own bias correction). The
    update runs as one fused Adam call (``torch._fused_adam_``) over the per-run slices ``p[r]`` of every
    parameter of the active runs: runs outside the mask are simply not in the list, so they keep parameters,
    moments *and* step counts unchanged, and a run's arithmetic is the same slice by slice whatever runs beside
    it. Param groups carry a ``name`` ("actor", "critic", "alpha") and are stepped separately with
    ``step(name, mask)``; every parameter of a stepped group must have a gradient.

    Lessons 03.2–03.3; SOPE digest, "Networks" (Adam, lr 3e-4), run by run.
    """

    def __init__(self, groups: list[dict], n_runs: int, lr: float = 3e-4, betas=(0.9, 0.999), eps: float = 1e-8):
        super().__init__(groups, dict(lr=lr, betas=betas, eps=eps))
        self.n_runs = n_runs
        self._views: dict = {}
        for group in self.param_groups:
            for p in group["params"]:
                if p.shape[0] != n_runs:
                    raise ValueError(f"parameter of shape {tuple(p.shape)} has no leading run dim {n_runs}")

    @torch.no_grad()
    def step(self, name: str, mask: "torch.Tensor | None" = None):  # type: ignore[override]
        runs = range(self.n_runs) if mask is None else mask.bool().nonzero().flatten().tolist()
        if len(runs) == 0:
            return
        for group in self.param_groups:
            if group["name"] != name:
                continue
            ps, gs, ms, vs, ts, steps = [], [], [], [], [], []
            for p in group["params"]:
                if p.grad is None:
                    raise ValueError(f"a parameter of group {name!r} has no gradient")
                st = self.state[p]
                if not st:
                    st["step"] = torch.zeros(self.n_runs, device=p.device)
                    st["exp_avg"] = torch.zeros_like(p)
                    st["exp_avg_sq"] = torch.zeros_like(p)
                P, M, V, T = (_rows(self._views, x) for x in (p, st["exp_avg"], st["exp_avg_sq"], st["step"]))
                G = p.grad.unbind(0)
                steps.append(st["step"])
                for r in runs:
                    ps.append(P[r]), gs.append(G[r]), ms.append(M[r]), vs.append(V[r]), ts.append(T[r])
            b1, b2 = group["betas"]
            if mask is None:                       # each active run's step count + 1 (whole (R,) tensors: fewer ops)
                torch._foreach_add_(steps, 1.0)
            else:
                idx = torch.tensor(runs)
                for T in steps:
                    T.index_add_(0, idx, torch.ones(len(runs)))
            torch._fused_adam_(ps, gs, ms, vs, [], ts, lr=group["lr"], beta1=b1, beta2=b2, weight_decay=0.0,
                               eps=group["eps"], amsgrad=False, maximize=False)


@torch.no_grad()
def polyak_update(target: nn.Module, online: nn.Module, tau: float, mask: "torch.Tensor | None" = None,
                  _cache: "dict | None" = None) -> None:
    """``θ̄ ← (1−τ)θ̄ + τθ`` (``torch._foreach_lerp_``) for runs with ``mask[r]`` (all runs when ``mask`` is None).

    With a mask, only the active runs' slices ``θ̄[r]`` are touched (the others keep their bits).

    Lesson 03.2; SOPE digest, "Losses" (Targets: ``θ̄ ← 0.995·θ̄ + 0.005·θ`` after every critic step)."""
    tp, op = list(target.parameters()), list(online.parameters())
    if mask is None:
        torch._foreach_lerp_(tp, op, tau)
        return
    _cache = {} if _cache is None else _cache
    runs = mask.bool().nonzero().flatten().tolist()
    rows_t = [_rows(_cache, t) for t in tp]
    rows_o = [_rows(_cache, o) for o in op]
    torch._foreach_lerp_([x[r] for x in rows_t for r in runs], [x[r] for x in rows_o for r in runs], tau)


@dataclass
class SACConfig:
    """Hyper-parameters of the SAC learner (lessons 03.2–03.4; SOPE digest, "Networks" and "Losses"); defaults
    are the paper's, and ``TrainConfig.for_scale`` picks the toy-sized ones."""

    hidden: tuple = (256, 256)
    """Critic and actor widths (paper: 2×256)."""
    n_critics: int = 2
    """N, critics per run (the TD target takes their min, the actor their mean)."""
    dropout: float = 0.01
    """Critic dropout (environment-dependent in the paper: its table in "Networks")."""
    lr: float = 3e-4
    """Adam learning rate of the actor, the critics and α."""
    gamma: float = 0.99
    """Discount γ."""
    tau: float = 0.005
    """Polyak rate of the target critics."""
    target_entropy: "float | None" = None
    """H̄ of the temperature loss; None → −act_dim (the paper's code ends up with −2 everywhere)."""
    init_log_alpha: float = 0.0
    """log α at initialisation."""


class SACPopulation(nn.Module):
    """``R`` independent SAC learners (one per seed/arm) with batched parameters.

    ``update(batch)`` is one SAC step (critic, actor, α, Polyak) for the runs in ``mask``;
    ``critic_update(batch, loss="expectile")`` is a stabilisation-phase step (critics only).
    A batch is a dict of ``obs (R,B,o)``, ``act (R,B,a)``, ``rew (R,B)``, ``next_obs (R,B,o)``, ``term (R,B)``.
    ``gens`` holds run ``r``'s noise generator (policy noise, dropout), seeded from ``(seeds[r], salt)``;
    runs outside ``mask`` draw nothing, so each run's stream depends on its own updates only.
    ``taus``: one Polyak rate per run (default ``cfg.tau`` for every run).

    Lessons 03.2–03.4; SOPE digest, "Losses" and the "one SAC update (UTD = 1)" lines of "Algorithm (pseudo-code)".
    """

    def __init__(self, seeds: "list[int]", obs_dim: int, act_dim: int, act_max: float, cfg: SACConfig, salt: int = 0,
                 taus: "list[float] | None" = None):
        super().__init__()
        self.cfg, self.R = cfg, len(seeds)
        self.taus = [float(cfg.tau)] * self.R if taus is None else [float(t) for t in taus]
        if len(self.taus) != self.R:
            raise ValueError(f"{len(self.taus)} Polyak rates for {self.R} runs: give one τ per run (or none)")
        self.seeds, self.salt = [int(s) for s in seeds], int(salt)
        self.gens = run_generators(self.seeds, "noise", self.salt)
        hidden = tuple(cfg.hidden)
        self.actor = TanhGaussianActor(seeds, obs_dim, act_dim, hidden, act_max)
        self.critic = TwinCritic(seeds, obs_dim, act_dim, hidden, cfg.n_critics, cfg.dropout)
        self.critic_target = TwinCritic(seeds, obs_dim, act_dim, hidden, cfg.n_critics, cfg.dropout)
        self.critic_target.load_state_dict(self.critic.state_dict())
        for p in self.critic_target.parameters():
            p.requires_grad_(False)
        self.log_alpha = nn.Parameter(torch.full((self.R,), float(cfg.init_log_alpha)))
        self.target_entropy = float(-act_dim if cfg.target_entropy is None else cfg.target_entropy)
        self.opt = MaskedAdam([
            {"params": list(self.critic.parameters()), "name": "critic"},
            {"params": list(self.actor.parameters()), "name": "actor"},
            {"params": [self.log_alpha], "name": "alpha"},
        ], n_runs=self.R, lr=cfg.lr)

    @property
    def alpha(self) -> torch.Tensor:
        """``(R, 1)`` temperatures (detached)."""
        return self.log_alpha.detach().exp().unsqueeze(-1)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        """``(R, E, obs) → (R, E, act)``; stochastic actions draw from each run's own generator."""
        if deterministic:
            return self.actor.mean_action(obs)
        return self.actor.sample(obs, False, self.gens)[0]

    def select(self, runs: "list[int]") -> "SACPopulation":
        """A population of only the runs ``runs`` (indices into this one), in that order: copies of their
        actors, critics, targets, temperatures and optimiser state, sharing their generator *objects* (so what
        the sub-population draws advances the runs' own streams). Train it, then ``absorb`` it back.

        A stabilisation phase trains the runs still in their phase this way, so it costs what those runs cost,
        and a run's arithmetic is the same whichever runs are in the phase beside it.

        Lesson 03.3 (course machinery: the paper trains one run at a time)."""
        idx = torch.as_tensor(list(runs), dtype=torch.long)
        sub = SACPopulation.__new__(SACPopulation)
        nn.Module.__init__(sub)
        sub.cfg, sub.R = self.cfg, len(idx)
        sub.taus = [self.taus[r] for r in idx.tolist()]
        sub.seeds, sub.salt = [self.seeds[r] for r in idx.tolist()], self.salt
        sub.gens = [self.gens[r] for r in idx.tolist()]
        for name in ("actor", "critic", "critic_target"):
            mod = copy.deepcopy(getattr(self, name))
            with torch.no_grad():
                for q, p in zip(mod.parameters(), getattr(self, name).parameters()):
                    q.data = p.data.index_select(0, idx)
            setattr(sub, name, mod)
        sub.log_alpha = nn.Parameter(self.log_alpha.data.index_select(0, idx))
        sub.target_entropy = self.target_entropy
        groups = [{"params": list(sub.critic.parameters()), "name": "critic"},
                  {"params": list(sub.actor.parameters()), "name": "actor"},
                  {"params": [sub.log_alpha], "name": "alpha"}]
        for g, mine in zip(groups, self.opt.param_groups):
            g.update({k: v for k, v in mine.items() if k != "params"})
        sub.opt = MaskedAdam(groups, n_runs=sub.R, lr=self.cfg.lr)
        for mine, theirs in zip(self.opt.param_groups, sub.opt.param_groups):
            for p, q in zip(mine["params"], theirs["params"]):
                if self.opt.state[p]:
                    sub.opt.state[q] = {k: v.index_select(0, idx) for k, v in self.opt.state[p].items()}
        return sub

    @classmethod
    def concat(cls, pops: "list[SACPopulation]") -> "SACPopulation":
        """One population holding the runs of ``pops`` in order: their parameters, temperatures, optimiser state,
        Polyak rates, seeds and generator objects (all ``pops`` share one config and salt).

        Lessons 03.2–03.4 (course machinery: a population trained in shards on several processes is put back
        together, ``parallel.train_sharded``)."""
        if len({(repr(p.cfg), p.salt) for p in pops}) != 1:
            raise ValueError("populations with different configs or salts cannot be joined")
        out = pops[0].select([0] * sum(p.R for p in pops))     # the layout; every run is overwritten below
        start = 0
        for p in pops:
            out.absorb(p, list(range(start, start + p.R)))
            start += p.R
        out.taus = [t for p in pops for t in p.taus]
        out.seeds = [s for p in pops for s in p.seeds]
        out.gens = [g for p in pops for g in p.gens]
        return out

    @torch.no_grad()
    def absorb(self, sub: "SACPopulation", runs: "list[int]") -> None:
        """Write a ``select(runs)`` population back into runs ``runs`` (parameters, temperatures, optimiser state).

        Lesson 03.3 (course machinery)."""
        idx = torch.as_tensor(list(runs), dtype=torch.long)
        for name in ("actor", "critic", "critic_target"):
            for p, q in zip(getattr(self, name).parameters(), getattr(sub, name).parameters()):
                p.data.index_copy_(0, idx, q.data)
        self.log_alpha.data.index_copy_(0, idx, sub.log_alpha.data)
        for mine, theirs in zip(self.opt.param_groups, sub.opt.param_groups):
            for p, q in zip(mine["params"], theirs["params"]):
                if sub.opt.state[q]:
                    st = self.opt.state[p]
                    if not st:
                        st.update(step=torch.zeros(self.R, device=p.device), exp_avg=torch.zeros_like(p), exp_avg_sq=torch.zeros_like(p))
                    for k, v in sub.opt.state[q].items():
                        st[k].index_copy_(0, idx, v)

    def td_target(self, batch, mask=None, gens=None, runs=None) -> torch.Tensor:
        """``(R, B)`` soft TD targets (no gradient); noise from ``gens`` (default: the runs' own) for runs in
        ``mask``. With ``runs`` (indices), ``batch`` and ``gens`` cover only those runs and so does the result."""
        gens = self.gens if gens is None else gens
        alpha = self.alpha if runs is None else self.alpha[runs]
        with torch.no_grad():
            a2, logp2 = self.actor.sample(batch["next_obs"], gens=gens, mask=mask, runs=runs)
            q2 = self.critic_target(batch["next_obs"], a2, gens, mask, runs)   # (R, N, B)
            return soft_td_target(batch["rew"], batch["term"], q2, logp2, alpha, self.cfg.gamma)

    def critic_loss(self, batch, loss: str = "mse", mask=None, gens=None, runs=None) -> torch.Tensor:
        """``(R,)``: ``Σ_i mean_B ℓ(Q_i(s,a) − y)``, ℓ = square ("mse", online) or expectile τ=0.5 ("expectile")."""
        gens = self.gens if gens is None else gens
        y = self.td_target(batch, mask, gens, runs)                            # (R, B)
        diff = self.critic(batch["obs"], batch["act"], gens, mask, runs) - y.unsqueeze(1)   # (R, N, B)
        per = diff**2 if loss == "mse" else expectile_loss(diff, 0.5)
        return per.mean(-1).sum(-1)

    def critic_update(self, batch, mask=None, loss: str = "mse") -> torch.Tensor:
        """One critic gradient step + Polyak for runs in ``mask``; returns the ``(R,)`` losses (0 for the others).

        When only some runs are in ``mask`` only those runs are computed: the same per-run arithmetic, at the cost
        of the active runs alone (a stabilisation phase goes further and trains a ``select``-ed population of the
        runs still in their phase).

        Lessons 03.2–03.3; SOPE digest, "Losses" (online critic loss; in a phase, the expectile loss) and "Targets"."""
        critic_params = self._group_params("critic")
        for p in critic_params:
            p.grad = None
        if mask is None or bool(mask.all()):
            lq = self.critic_loss(batch, loss, None)
            mask = None
        else:
            runs = mask.nonzero().squeeze(1)
            sub = {k: v[runs] for k, v in batch.items()}
            lq_sub = self.critic_loss(sub, loss, None, [self.gens[r] for r in runs.tolist()], runs)
            lq = torch.zeros(self.R).index_put((runs,), lq_sub)
        lq.sum().backward()
        self.opt.step("critic", mask)
        self._polyak(mask)
        return lq.detach()

    def _group_params(self, name: str) -> list:
        return next(g["params"] for g in self.opt.param_groups if g["name"] == name)

    @torch.no_grad()
    def _polyak(self, mask=None) -> None:
        """``θ̄[r] ← lerp(θ̄[r], θ[r], τ)`` slice by slice, for every run (or the runs in ``mask``): a run's target
        update is the same arithmetic whatever runs beside it."""
        cache = self.__dict__.setdefault("_row_views", {})
        runs = range(self.R) if mask is None else mask.bool().nonzero().flatten().tolist()
        if "_polyak_pairs" not in self.__dict__:
            self._polyak_pairs = (list(self.critic_target.parameters()), list(self.critic.parameters()))
        tp, op = self._polyak_pairs
        rows_t = [_rows(cache, t) for t in tp]
        rows_o = [_rows(cache, o) for o in op]
        for tau in dict.fromkeys(self.taus[r] for r in runs):                 # one call per distinct τ (runs may differ)
            same = [r for r in runs if self.taus[r] == tau]
            torch._foreach_lerp_([x[r] for x in rows_t for r in same], [x[r] for x in rows_o for r in same], tau)

    def update(self, batch, mask=None) -> dict[str, torch.Tensor]:
        """One online SAC step (UTD = 1): critic, then actor on the same batch, then α, then Polyak.

        The actor step differentiates through the critics with their parameters frozen (no critic gradients are
        computed); α's gradient ``−mean_B(log π + H̄)`` is written directly (the loss is linear in log α).

        Lesson 03.2; SOPE digest, "Algorithm (pseudo-code)": "critic step on L_Q; actor step on L_π; α step; Polyak
        update θ̄"."""
        lq = self.critic_update(batch, mask, "mse")
        actor_params, critic_params = self._group_params("actor"), self._group_params("critic")
        for p in actor_params:
            p.grad = None
        for p in critic_params:
            p.requires_grad_(False)
        try:
            a, logp = self.actor.sample(batch["obs"], gens=self.gens, mask=mask)
            q_pi = self.critic(batch["obs"], a, self.gens, mask)                   # (R, N, B)
            la = actor_objective(logp, q_pi, self.alpha)                          # (R,)
            la.sum().backward()
        finally:
            for p in critic_params:
                p.grad = None
                p.requires_grad_(True)
        self.opt.step("actor", mask)
        # L(α) = −mean_B[log α · (log π + H̄)]  ⇒  ∂L/∂ log α = −mean_B(log π + H̄), per run
        self.log_alpha.grad = -(logp.detach() + self.target_entropy).mean(-1)
        self.opt.step("alpha", mask)
        for p in actor_params:
            p.grad = None
        self.log_alpha.grad = None
        return {"critic": lq, "actor": la.detach(), "alpha": self.alpha.squeeze(-1)}
