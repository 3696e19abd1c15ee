"""Lesson 02.2's toy: a categorical "prompt → answer" model trained with CE vs CAT SFT losses.

``P`` prompts with features ``φ(x) ∈ R^d`` and ``A`` candidate answers. The correct answer of an
*easy* prompt is the argmax of a hidden linear teacher ``φ W*``; a *hard* prompt's correct answer
is drawn at random, so it cannot be predicted from ``φ``. The policy is
``π(a | x) = softmax(φ U V + b)`` with a rank-r map shared by every prompt, so probability spent on
one prompt is capacity taken from others. With purely tabular logits CE and Pass@N would both
drive every p → 1 and show nothing (CAT digest, "Toy experiment").

All arms start from one CE warm-up and then train full batch with their own loss (the paper's
SFT protocol: CE warm-up, then the strategy loss); pass@k and maj@k are computed *exactly* on
held-out prompts from the generator (``strategies``).

This is the same idea as module 01's reasoning bandit (prompts × answers, low-rank shared
logits); it is kept separate because CAT needs one correct answer per prompt (majority vote
over answer classes) and the hard/easy split, and trains with SFT rather than RL.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch

from hdai_lessons.core.scale import by_scale
from hdai_lessons.cat.losses import cat_sft_loss, majority_sft_weight, passn_sft_weight
from hdai_lessons.cat.strategies import majority_at_k_exact, pass_at_k_exact


@dataclass
class SyntheticConfig:
    """Sizes and training settings of the categorical toy (lesson 02.2).

    Lesson 02.2; the CAT digest's "Toy experiment" with the paper's SFT protocol (CE warm-up, then
    the strategy loss of CAT Table 1).
    """

    num_prompts: int = 300
    """Training prompts."""
    num_test: int = 300
    """Held-out prompts from the same generator (where the curves are measured)."""
    num_answers: int = 10
    """A, candidate answers per prompt."""
    dim: int = 8
    """d, prompt feature dimension."""
    rank: int = 6
    """r, rank of the shared logit map (< A: shared capacity)."""
    hard_frac: float = 0.3
    """Fraction of prompts whose answer is random (unpredictable from φ)."""
    warmup_steps: int = 100
    """Shared CE warm-up steps (full-batch Adam)."""
    steps: int = 400
    """Steps of each arm's own loss after the warm-up."""
    lr: float = 0.05
    """Adam learning rate."""
    init_scale: float = 0.1
    """Std of the initial U, V."""
    k_max: int = 64
    """Largest budget evaluated."""
    n_seeds: int = 5
    """Paired seeds of lesson 02.2 (``ctx.seed, ctx.seed + 1, …``): each seed draws a task and an init."""

    @classmethod
    def for_scale(cls, scale) -> "SyntheticConfig":
        """smoke: tiny and fast; toy: the lesson; full: more prompts and steps (still CPU-cheap)."""
        return by_scale(scale,
                        smoke=cls(num_prompts=60, num_test=60, warmup_steps=20, steps=40, k_max=16, n_seeds=2),
                        toy=cls(),
                        full=cls(num_prompts=3000, num_test=3000, dim=16, rank=8, warmup_steps=300, steps=1500))


@dataclass
class SyntheticTask:
    """Generated prompts: features ``phi (P, d)``, correct answers ``y (P,)``, ``hard (P,)`` flags.

    Lesson 02.2; the CAT digest's toy experiment.
    """

    phi: torch.Tensor
    y: torch.Tensor
    hard: torch.Tensor
    phi_test: torch.Tensor
    y_test: torch.Tensor
    hard_test: torch.Tensor


def make_task(cfg: SyntheticConfig, seed: int) -> SyntheticTask:
    """Draw train and held-out prompts: easy answers = argmax of a hidden teacher, hard = uniform.

    Lesson 02.2; the CAT digest's toy experiment.
    """
    g = torch.Generator().manual_seed(seed)
    n = cfg.num_prompts + cfg.num_test
    phi = torch.randn(n, cfg.dim, generator=g)                                  # (n, d)
    w_star = torch.randn(cfg.dim, cfg.num_answers, generator=g)                 # (d, A) hidden teacher
    hard = torch.rand(n, generator=g) < cfg.hard_frac                           # (n,)
    y = torch.where(hard, torch.randint(0, cfg.num_answers, (n,), generator=g), (phi @ w_star).argmax(-1))
    P = cfg.num_prompts
    return SyntheticTask(phi[:P], y[:P], hard[:P], phi[P:], y[P:], hard[P:])


@dataclass
class LowRankPolicy:
    """``π(a|x) = softmax(φ U V + b)``: U ``(d, r)``, V ``(r, A)``, b ``(A,)``.

    Lesson 02.2; the CAT digest's toy experiment (shared capacity).
    """

    U: torch.Tensor
    V: torch.Tensor
    b: torch.Tensor

    @classmethod
    def init(cls, cfg: SyntheticConfig, seed: int) -> "LowRankPolicy":
        g = torch.Generator().manual_seed(10_000 + seed)
        return cls(torch.randn(cfg.dim, cfg.rank, generator=g) * cfg.init_scale,
                   torch.randn(cfg.rank, cfg.num_answers, generator=g) * cfg.init_scale,
                   torch.zeros(cfg.num_answers))

    def params(self) -> list[torch.Tensor]:
        return [self.U, self.V, self.b]

    def log_probs(self, phi: torch.Tensor) -> torch.Tensor:
        """``(P, d)`` features → ``(P, A)`` log-probabilities."""
        return torch.log_softmax(phi @ self.U @ self.V + self.b, dim=-1)

    def probs(self, phi: torch.Tensor) -> torch.Tensor:
        """``(P, d)`` → ``(P, A)`` answer distribution (no grad)."""
        with torch.no_grad():
            return self.log_probs(phi).exp()


def train_sft(policy: LowRankPolicy, phi: torch.Tensor, y: torch.Tensor, strategy: str, N: int = 1, k: int = 1,
              steps: int = 100, lr: float = 0.05) -> tuple[LowRankPolicy, list[float]]:
    """Full-batch Adam on ``mean_x cat_sft_loss(log π(y*|x))``; returns a new policy and the loss curve.

    Args:
        policy: start point (not modified). phi ``(P, d)``, y ``(P,)`` training prompts.
        strategy: ``"ce"`` | ``"passn"`` | ``"majority"``; N, k: its budget and threshold.

    Lesson 02.2; CAT's SFT step (Table 1 losses).
    """
    params = [t.detach().clone().requires_grad_(True) for t in policy.params()]
    new = LowRankPolicy(*params)
    opt = torch.optim.Adam(params, lr=lr)
    losses = []
    for _ in range(steps):
        logp = new.log_probs(phi).gather(1, y.view(-1, 1)).squeeze(1)          # (P,) log π(y*|x)
        loss = cat_sft_loss(logp, strategy, N, k).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return LowRankPolicy(*[t.detach() for t in params]), losses


# The three arms of lesson 02.2: name → (strategy, N, k).
ARMS = {"CE": ("ce", 1, 1), "CAT-Pass@16": ("passn", 16, 1), "CAT-Maj(8,3)": ("majority", 8, 3)}


@dataclass
class ArmResult:
    """One trained arm on one seed: exact curves on held-out prompts, k = 1..k_max.

    Lesson 02.2; exact pass@k (S(p) of CAT Table 1) and maj@k.
    """

    name: str
    pass_at_k: torch.Tensor     # (k_max,) mean over held-out prompts
    maj_at_k: torch.Tensor      # (k_max,)
    p_test: torch.Tensor        # (P_test,) probability of the correct answer
    p_train: torch.Tensor       # (P,)
    entropy_test: float = 0.0   # mean entropy (nats) of π(·|x) on held-out prompts
    losses: list = field(default_factory=list)
    policy: "LowRankPolicy | None" = None


def evaluate(policy: LowRankPolicy, phi: torch.Tensor, y: torch.Tensor, k_max: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Exact mean pass@k and maj@k (k = 1..k_max) and per-prompt p; shapes ``(k_max,), (k_max,), (P,)``.

    Lesson 02.2; exact pass@k (S(p) of CAT Table 1) and maj@k.
    """
    probs = policy.probs(phi).double()                                          # (P, A)
    p = probs.gather(1, y.view(-1, 1)).squeeze(1)                               # (P,)
    return pass_at_k_exact(p, k_max).mean(0), majority_at_k_exact(probs, y, k_max).mean(0), p


def run_seed(cfg: SyntheticConfig, seed: int, arms: "dict[str, tuple] | None" = None) -> tuple[SyntheticTask, dict[str, ArmResult]]:
    """Generate a task, warm up with CE, train every arm from the warm-up, evaluate exactly.

    Lesson 02.2; CAT's SFT protocol (CE warm-up, then the strategy loss).
    """
    arms = arms or ARMS
    task = make_task(cfg, seed)
    warm, _ = train_sft(LowRankPolicy.init(cfg, seed), task.phi, task.y, "ce", steps=cfg.warmup_steps, lr=cfg.lr)
    out = {}
    for name, (strategy, N, k) in arms.items():
        pol, losses = train_sft(warm, task.phi, task.y, strategy, N, k, steps=cfg.steps, lr=cfg.lr)
        pk, mk, p = evaluate(pol, task.phi_test, task.y_test, cfg.k_max)
        with torch.no_grad():
            p_train = pol.log_probs(task.phi).gather(1, task.y.view(-1, 1)).squeeze(1).exp()
            probs = pol.probs(task.phi_test)
            ent = float(-(probs * probs.clamp_min(1e-30).log()).sum(-1).mean())
        out[name] = ArmResult(name, pk, mk, p, p_train, ent, losses, pol)
    return task, out


def crossover_k(curve_a: torch.Tensor, curve_b: torch.Tensor) -> "int | None":
    """Smallest k (1-based) from which ``curve_b ≥ curve_a`` for every larger k; None if never.

    Args: two ``(k_max,)`` curves, e.g. CE's and CAT-Pass@16's pass@k.

    Lesson 02.2; the 'search tax' of CAT's results (Tables 2–3).
    """
    ahead = (curve_b >= curve_a).tolist()
    for i in range(len(ahead)):
        if all(ahead[i:]):
            return i + 1
    return None


def sft_weight_of(strategy: str, p: torch.Tensor, N: int = 1, k: int = 1) -> torch.Tensor:
    """The per-prompt factor each arm puts on the CE gradient, ``(P,)`` from ``p (P,)`` (1 for CE).

    Lesson 02.2; the SFT weights of CAT Table 1 (Eq. (7)/(16) for majority).
    """
    logp = torch.log(p.clamp_min(1e-30))
    if strategy == "ce":
        return torch.ones_like(p)
    if strategy == "passn":
        return passn_sft_weight(logp, N)
    return majority_sft_weight(logp, N, k)


def scaled(cfg: SyntheticConfig, **changes) -> SyntheticConfig:
    """A copy of ``cfg`` with some fields changed (for the interactive part).

    Lesson 02.2; a helper (no paper equation).
    """
    return replace(cfg, **changes)
