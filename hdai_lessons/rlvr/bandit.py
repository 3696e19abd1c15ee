"""The reasoning bandit (lesson 01.2): LPO vs GRPO where answers are sampled and prompts share parameters.

Each prompt x has M candidate answers, of which a few are correct (reward 1; the rest 0). The
policy is a categorical distribution over the M answers. With ``shared=True`` its logits come
from one low-rank map shared by all prompts, ``logits(x) = φ(x) W + b`` (``φ(x)`` fixed prompt
features of dimension d, ``W`` ``(d, M)`` and ``b`` ``(M,)`` learned), so a step for one prompt moves
every other prompt too — the interference a real LM has. With ``shared=False`` every prompt has
its own table of logits (started at the same values), so prompts do not interact.

The correct answers of a prompt are the top ``n_correct`` answers of a hidden low-rank score
``φ(x) W_true``, so the shared policy *can* learn them, but not independently per prompt.

One RLVR iteration (Algorithm 1 of LPO): sample K answers per prompt from π_b = π_θ, reward them
with the exact verifier (is the answer in the correct set?), then E inner Adam steps on any loss of
``losses.rlvr_loss`` (responses are one token long: T = 1). All seeds run at once as a leading
batch dimension S (Adam is element-wise, so seeds stay independent).

Metrics (exact, from the policy, not from samples): expected reward, entropy, correct answers kept
(π > threshold), pass@k = 1 − (1 − p_correct)^k, and Σ|c_k| from the loss.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch

from hdai_lessons.core.metrics import pass_at_k_from_probs
from hdai_lessons.core.scale import by_scale
from hdai_lessons.core.device import one_thread
from hdai_lessons.rlvr.losses import LossConfig, rlvr_loss

#: float64 throughout: with E = 1, LPO-rev and GRPO then agree to ~1e-15 and draw identical samples.
DTYPE = torch.float64


@dataclass
class BanditConfig:
    """Settings of the reasoning bandit (one field per knob; ``for_scale`` gives the lesson's).

    Lesson 01.2; the LPO digest's toy experiment, trained by Algorithm 1 of LPO (T = 1 responses).
    """

    n_prompts: int = 50
    """P, prompts."""
    n_answers: int = 30
    """M, candidate answers per prompt."""
    n_correct: int = 3
    """Correct answers per prompt (distinct modes to keep)."""
    feat_dim: int = 8
    """d, dimension of the prompt features (rank of the shared map)."""
    shared: bool = True
    """Logits from a map shared across prompts (True) or one free table per prompt (False)."""
    init_scale: float = 2.0
    """Std of the initial map W0 (sets the initial pass@1 and entropy)."""
    K: int = 8
    """Answers sampled per prompt (group size)."""
    epochs: int = 1
    """E, inner Adam steps per rollout batch (E > 1: off-policy updates)."""
    iters: int = 150
    """RLVR iterations."""
    lr: float = 0.05
    """Adam learning rate."""
    keep_threshold: float = 0.05
    """A correct answer counts as kept while π(answer | x) > this."""
    pass_ks: tuple = (1, 8, 32)
    """k of the reported pass@k."""
    loss: LossConfig = field(default_factory=LossConfig)
    """The loss (name, ε, τ rule); token aggregation is irrelevant at T = 1."""
    n_seeds: int = 24
    """Paired seeds of lesson 01.2 (``ctx.seed, ctx.seed + 1, …``): every arm runs on the same bandits."""

    @classmethod
    def for_scale(cls, scale, **overrides) -> "BanditConfig":
        """The lesson's config at ``scale`` (smoke: a few iterations), with ``overrides`` applied."""
        base = by_scale(scale, smoke=cls(iters=8, n_seeds=2), toy=cls(), full=cls(iters=400, n_seeds=32))
        return replace(base, **overrides)


@dataclass
class BanditTask:
    """S independent bandits (one per seed). ``features`` ``(S, P, d)``; ``correct`` ``(S, P, M)`` bool;
    ``W0`` ``(S, d, M)`` initial map; ``seeds`` the seeds.

    Lesson 01.2; the LPO digest's toy experiment (prompts × answers, exact verifier).
    """

    features: torch.Tensor
    correct: torch.Tensor
    W0: torch.Tensor
    seeds: list


def make_task(cfg: BanditConfig, seeds) -> BanditTask:
    """Build one bandit per seed: features, the correct sets (top answers of a hidden low-rank score), W0.

    Lesson 01.2; the LPO digest's toy experiment (a few correct modes per prompt).
    """
    feats, correct, W0 = [], [], []
    for seed in seeds:
        g = torch.Generator().manual_seed(10_000 + int(seed))
        phi = torch.randn(cfg.n_prompts, cfg.feat_dim, generator=g, dtype=DTYPE) / cfg.feat_dim ** 0.5  # (P, d)
        W_true = torch.randn(cfg.feat_dim, cfg.n_answers, generator=g, dtype=DTYPE)  # (d, M)
        top = (phi @ W_true).topk(cfg.n_correct, dim=-1).indices  # (P, n_correct)
        c = torch.zeros(cfg.n_prompts, cfg.n_answers, dtype=torch.bool)
        c.scatter_(1, top, True)
        feats.append(phi)
        correct.append(c)
        W0.append(torch.randn(cfg.feat_dim, cfg.n_answers, generator=g, dtype=DTYPE) * cfg.init_scale)
    return BanditTask(torch.stack(feats), torch.stack(correct), torch.stack(W0), [int(s) for s in seeds])


class BanditPolicy(torch.nn.Module):
    """Logits ``(S, P, M)``: ``φ W + b`` (shared) or a free table started at ``φ W0`` (tabular).

    Lesson 01.2; π_θ(y|x) of LPO's notation with one-token responses (shared logits: interference).
    """

    def __init__(self, task: BanditTask, shared: bool):
        super().__init__()
        self.shared = shared
        self.register_buffer("features", task.features)
        S, _, M = task.correct.shape
        if shared:
            self.W = torch.nn.Parameter(task.W0.clone())  # (S, d, M)
            self.b = torch.nn.Parameter(torch.zeros(S, 1, M, dtype=task.W0.dtype))
        else:
            self.table = torch.nn.Parameter(task.features @ task.W0)  # (S, P, M)

    def forward(self) -> torch.Tensor:
        if self.shared:
            return self.features @ self.W + self.b  # (S, P, d) @ (S, d, M) → (S, P, M)
        return self.table


def policy_metrics(logits: torch.Tensor, correct: torch.Tensor, keep_threshold: float, ks) -> dict:
    """Exact metrics of a categorical policy, per seed.

    Args:
        logits: ``(S, P, M)``; correct: ``(S, P, M)`` bool.
    Returns:
        dict of ``(S,)`` tensors: ``reward`` (mean over prompts of p_correct), ``entropy`` (nats),
        ``kept`` (mean number of correct answers with π > threshold), ``pass@k`` for each k.

    Lesson 01.2; the metrics of LPO's results (pass@1, pass@k, entropy), exact for a categorical π.
    """
    probs = torch.softmax(logits, -1)
    logp = torch.log_softmax(logits, -1)
    p_correct = (probs * correct).sum(-1)  # (S, P)
    out = {
        "reward": p_correct.mean(-1),
        "entropy": -(probs * logp).sum(-1).mean(-1),
        "kept": ((probs > keep_threshold) & correct).sum(-1).to(probs.dtype).mean(-1),
    }
    for k in ks:
        out[f"pass@{k}"] = pass_at_k_from_probs(p_correct, k).mean(-1)
    return out


@dataclass
class BanditResult:
    """History of one arm: ``history[name]`` is ``(iters + 1, S)`` (metrics) or ``(iters,)`` (loss stats).

    Lesson 01.2; the record of Algorithm 1 of LPO run for one arm.
    """

    name: str
    epochs: int
    shared: bool
    history: dict


def sample_answers(probs: torch.Tensor, K: int, gens: list) -> torch.Tensor:
    """Draw K answers per prompt by inverse CDF, one generator per seed (so a seed's draws do not
    depend on which other seeds share the batch). ``probs`` ``(S, P, M)`` → ``(S, P, K)`` indices.

    Lesson 01.2; the rollout line of Algorithm 1 of LPO (y_1..y_K ~ π_b(·|x)).
    """
    S, P, M = probs.shape
    u = torch.stack([torch.rand(P, K, generator=g, dtype=probs.dtype) for g in gens])  # (S, P, K)
    cdf = probs.cumsum(-1)  # (S, P, M)
    return torch.searchsorted(cdf, u).clamp_max(M - 1)


def run_bandit(cfg: BanditConfig, task: BanditTask, name: "str | None" = None) -> BanditResult:
    """Train one arm (``cfg.loss``) on every seed of ``task`` at once; return its history.

    Each seed samples with its own generator, identical for every arm, so two arms whose policies
    are equal draw the same answers (E = 1: LPO-rev and GRPO coincide), and a seed's run does not
    depend on the other seeds in the batch. ``history["final_probs"]`` is π at the end ``(S, P, M)``.
    Runs on one intra-op thread (``core.device.one_thread``: the tensors are tiny).

    Lesson 01.2; Algorithm 1 of LPO (sample K, verify, E inner steps of the loss).
    """
    with one_thread():
        return _run_bandit(cfg, task, name)


def _run_bandit(cfg: BanditConfig, task: BanditTask, name: "str | None") -> BanditResult:
    policy = BanditPolicy(task, cfg.shared)
    opt = torch.optim.Adam(policy.parameters(), lr=cfg.lr)
    gens = [torch.Generator().manual_seed(7919 * (seed + 1)) for seed in task.seeds]
    S, P, M = task.correct.shape
    K = cfg.K
    correct = task.correct
    hist: dict = {k: [] for k in ["reward", "entropy", "kept"] + [f"pass@{k}" for k in cfg.pass_ks]}
    hist.update(sum_abs_c=[], clip_frac=[])

    def record():
        with torch.no_grad():
            for key, val in policy_metrics(policy(), correct, cfg.keep_threshold, cfg.pass_ks).items():
                hist[key].append(val)

    record()
    ones = torch.ones(S * P, K, 1, dtype=DTYPE)  # (S·P, K, T=1) mask
    for _ in range(cfg.iters):
        with torch.no_grad():
            logp_all = torch.log_softmax(policy(), -1)  # (S, P, M) under π_b
            answers = sample_answers(logp_all.exp(), K, gens)  # (S, P, K)
            rewards = correct.gather(-1, answers).to(DTYPE).reshape(S * P, K)  # exact verifier
            old_logp = logp_all.gather(-1, answers).reshape(S * P, K, 1)  # (S·P, K, 1)
        c_sum, clip = 0.0, 0.0
        for _ in range(cfg.epochs):
            logp = torch.log_softmax(policy(), -1).gather(-1, answers).reshape(S * P, K, 1)
            loss, stats = rlvr_loss(logp, old_logp, ones, rewards, cfg.loss)
            opt.zero_grad(set_to_none=True)
            (loss * S).backward()  # mean over each seed's prompts, seeds independent
            opt.step()
            c_sum += stats["sum_abs_c"] / cfg.epochs
            clip += stats["clip_frac"] / cfg.epochs
        hist["sum_abs_c"].append(c_sum)
        hist["clip_frac"].append(clip)
        record()
    out = {k: (torch.stack(v) if torch.is_tensor(v[0]) else torch.tensor(v)) for k, v in hist.items()}
    with torch.no_grad():
        out["final_probs"] = torch.softmax(policy(), -1)
    return BanditResult(name=name or cfg.loss.name, epochs=cfg.epochs, shared=cfg.shared, history=out)


def policy_tv(a: BanditResult, b: BanditResult) -> torch.Tensor:
    """Total-variation distance between two arms' final policies, averaged over prompts: ``(S,)``.

    Lesson 01.2; checks Proposition 1 of LPO (Eq. (5)): at E = 1 LPO-rev and GRPO coincide.
    """
    return 0.5 * (a.history["final_probs"] - b.history["final_probs"]).abs().sum(-1).mean(-1)


ARMS = {"GRPO": "grpo", "LPO-fwd": "lpo_fwd", "LPO-rev": "lpo_rev", "pointwise": "pointwise"}


def run_arms(cfg: BanditConfig, task: BanditTask, arms=tuple(ARMS), epochs=(1, 4)) -> dict:
    """Every (arm, E) pair on the same task; returns ``{(arm, E): BanditResult}``.

    Lesson 01.2; Algorithm 1 of LPO for each loss (Eqs. (2), (10), (11), (52)) and E.
    """
    from hdai_lessons.core.progress import progress

    runs = {}
    pairs = [(E, arm) for E in epochs for arm in arms]
    for E, arm in progress(pairs, desc="bandit arms"):
        c = replace(cfg, epochs=E, loss=replace(cfg.loss, name=ARMS[arm]))
        runs[(arm, E)] = run_bandit(c, task, name=arm)
    return runs


def final(runs: dict, metric: str, last: int = 1) -> dict:
    """``{(arm, E): (S,)}`` — the metric averaged over the last ``last`` iterations, per seed.

    Lesson 01.2; a summary of the runs (no paper equation).
    """
    return {key: r.history[metric][-last:].mean(0) for key, r in runs.items()}


def plot_runs(runs: dict, metrics=("reward", "entropy", "kept", "pass@32", "sum_abs_c"), epochs=None, axes=None):
    """One panel per metric, seed-mean curves per arm; solid E = 1, dashed E > 1.

    Lesson 01.2; a plot of the runs (no paper equation).
    """
    import matplotlib.pyplot as plt

    from hdai_lessons.core.plotting import color_for

    if axes is None:
        _, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 3.0))
    for ax, metric in zip(axes, metrics):
        for (arm, E), r in runs.items():
            if epochs is not None and E not in epochs:
                continue
            y = r.history[metric]
            y = y.mean(-1) if y.dim() == 2 else y
            ax.plot(y.numpy(), color=color_for(arm), ls="-" if E == 1 else "--", lw=1.4, label=f"{arm}, E={E}")
        ax.set_title(metric)
        ax.set_xlabel("iteration")
    return axes


def onpolicy_coefficients(K: int = 8, tau_rule: str = "std", tau_scale: float = 1.0) -> dict:
    """On-policy descent coefficients on a correct and on a wrong response vs the number correct.

    For binary groups with ``c = 1 … K−1`` correct: LPO-fwd ``P − w*`` (τ from ``tau_rule`` times
    ``tau_scale``), and GRPO's ``−A/K``. Returns dict of ``(K−1,)`` tensors:
    ``n_correct``, ``fwd_correct``, ``fwd_wrong``, ``grpo_correct``, ``grpo_wrong``.

    Lesson 01.2; Eq. (13) of LPO vs GRPO's −A/K (Proposition 1): the digest's worked-intuition table.
    """
    from hdai_lessons.rlvr.losses import lpo_forward_coefficients
    from hdai_lessons.rlvr.targets import advantages, lpo_target, tau_from_rule

    n = torch.arange(1, K)
    R = (torch.arange(K).unsqueeze(0) < n.unsqueeze(1)).to(DTYPE)  # (K−1, K): first c responses correct
    tau = tau_from_rule(R, tau_rule, eps=0.0) * tau_scale
    c = lpo_forward_coefficients(torch.zeros_like(R), lpo_target(R, tau))
    a = -advantages(R, "grpo", eps=0.0) / K
    return {"n_correct": n, "fwd_correct": c[:, 0], "fwd_wrong": c[:, -1], "grpo_correct": a[:, 0], "grpo_wrong": a[:, -1]}
