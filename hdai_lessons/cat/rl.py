"""CAT for RL: GRPO whose per-prompt advantages are re-weighted by a CAT weight (CAT §3, code ``rl.py``).

The CAT policy gradient for a strategy with success ``S(p)`` is the ordinary one scaled by ``S'(p)``
per prompt, so CAT-weighted GRPO is GRPO with ``A_{b,k} → w_b · A_{b,k}``::

    A = (R − mean_K R) / (std_K R + eps)                  group-normalised advantages (GRPO)
    p̂_b = (c_b + 1) / (K + 2)                             Laplace-smoothed success of prompt b
    w_b = N (1 − p̂)^{N−1}                                  Pass@N ("raw"), or
        = N C(N−1, k−1) p̂^{k−1} (1 − p̂)^{N−k}             Majority, k per prompt (dynamic) or fixed
    w ← clip(w, c) / mean_batch(w)                          optional, as in the official code
    loss = GRPO clipped surrogate with advantages sg(w · A)

Weights are computed from the rollout's rewards without gradient. The update itself reuses module
01's ``grpo_surrogate`` and the whole ``RLVRTrainer`` (sampling, E inner epochs, accelerate,
checkpoints); ``CATTrainer`` only swaps the loss.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import torch

from hdai_lessons.rlvr.losses import LossConfig, grpo_surrogate, rlvr_loss
from hdai_lessons.rlvr.targets import advantages as scheme_advantages
from hdai_lessons.rlvr.trainer import RLVRTrainer
from hdai_lessons.cat.weights import cat_weights, dynamic_majority_k, empirical_p, most_frequent_wrong_count


@dataclass
class CATConfig:
    """Which CAT weight multiplies GRPO's advantages (``strategy="none"`` is plain GRPO).

    Lessons 02.3 and 02.4; CAT's RL weights (Table 1) with the official code's p̂, clip and normalisation.
    """

    strategy: str = "passn"
    """"passn" | "majority" | "none"."""
    N: int = 8
    """Test-time budget the weight targets."""
    k: int = 3
    """Majority threshold when ``dynamic_k`` is off."""
    dynamic_k: bool = True
    """Majority: per-prompt k = max(2, min(N//2+1, ⌊N·c_max/K⌋+1)) from the top wrong answer's count."""
    form: str = "raw"
    """"raw" (S'(p), the RL weight) or "log" (p S'(p)/S(p), the SFT-derived weight)."""
    clip: "float | None" = 10.0
    """Clip the weight at this value (None: no clip)."""
    normalise: bool = True
    """Divide the weights by their batch mean (keeps GRPO's step size)."""


def cat_prompt_weights(rewards: torch.Tensor, cat: CATConfig, c_max: "torch.Tensor | None" = None) -> torch.Tensor:
    """Per-prompt CAT weights ``(B,)`` from ``rewards (B, K)`` (1 = correct), no gradient.

    Args:
        rewards: ``(B, K)`` verifier rewards; a rollout counts as correct when its reward is ≥ 1.
        cat: the ``CATConfig``.
        c_max: ``(B,)`` count of the most frequent wrong answer (majority with ``dynamic_k``).

    Lesson 02.3; CAT's RL weights (Table 1: S'(p), B'(p)) at the empirical p̂.
    """
    with torch.no_grad():
        correct = (rewards >= 1.0).to(torch.float64)                        # (B, K)
        p_hat = empirical_p(correct)                                         # (B,)
        k: "int | torch.Tensor" = cat.k
        if cat.strategy == "majority" and cat.dynamic_k:
            if c_max is None:
                raise ValueError("majority with dynamic_k needs c_max (the top wrong answer's count per prompt)")
            k = dynamic_majority_k(cat.N, c_max, rewards.shape[-1])
        w = cat_weights(p_hat, cat.strategy, cat.N, k, cat.form, cat.clip, cat.normalise)
        return w.to(rewards.dtype)


def cat_grpo_loss(logp: torch.Tensor, old_logp: torch.Tensor, mask: torch.Tensor, rewards: torch.Tensor,
                  loss_cfg: LossConfig, cat: CATConfig, c_max: "torch.Tensor | None" = None) -> tuple[torch.Tensor, dict]:
    """CAT-weighted GRPO: the clipped surrogate with advantages ``sg(w_b · A_{b,k})``.

    Args:
        logp: ``(B, K, T)`` token log-probs under π_θ (with grad); old_logp ``(B, K, T)``; mask ``(B, K, T)``.
        rewards: ``(B, K)``; loss_cfg: a PG ``LossConfig`` (its ``name`` picks the advantage, e.g. "grpo",
            its ``eps``/``agg`` the surrogate); cat: the weight; c_max ``(B,)`` for dynamic majority k.
    Returns:
        ``(loss, stats)`` like ``rlvr_loss``, with ``cat_w_mean`` / ``cat_w_max``.

    Lesson 02.3; CAT's RL step: GRPO's clipped surrogate (Eq. (2) of LPO) with CAT-weighted advantages.
    """
    if cat.strategy == "none":
        return rlvr_loss(logp, old_logp, mask, rewards, loss_cfg)
    adv = scheme_advantages(rewards.to(logp.dtype), loss_cfg.name, loss_cfg.adv_eps)   # (B, K)
    w = cat_prompt_weights(rewards, cat, c_max).to(logp.dtype)                          # (B,)
    per_group = grpo_surrogate(logp, old_logp, mask, (adv * w.unsqueeze(-1)).detach(), loss_cfg.eps, loss_cfg.agg)
    loss = per_group.mean()
    return loss, {"loss": float(loss.detach()), "cat_w_mean": float(w.mean()), "cat_w_max": float(w.max())}


def answer_ids(texts: "list[list[str]]", answer_fn=None) -> torch.Tensor:
    """``(B, K)`` ids of the final answers: equal ``answer_fn(text)`` share an id within a prompt.

    ``answer_fn`` extracts the final answer (default: the stripped text; GSM8K: the number after
    ``####``). An unparsable completion (``None``) gets an id of its own.

    Lesson 02.4; the answer classes of CAT's majority-vote strategy.
    """
    fn = answer_fn or (lambda t: t.strip())
    out = []
    for group in texts:
        seen: dict = {}
        row = []
        for j, t in enumerate(group):
            a = fn(t)
            row.append(seen.setdefault(("none", j) if a is None else a, len(seen)))
        out.append(row)
    return torch.tensor(out, dtype=torch.long)


def majority_k_from_rollouts(ids: torch.Tensor, correct: torch.Tensor, N: int) -> torch.Tensor:
    """Per-prompt majority threshold from one group of rollouts (CAT code, dynamic k).

    ``c_max`` = votes of the most frequent *wrong* answer among the M rollouts, then
    ``k = max(2, min(N//2 + 1, ⌊N c_max / M⌋ + 1))``.

    Args: ids ``(B, M)`` answer-class ids; correct ``(B, M)`` bool; N budget. Returns ``(B,)`` long.

    Lesson 02.4; CAT's dynamic majority threshold (official code).
    """
    return dynamic_majority_k(N, most_frequent_wrong_count(ids, correct), ids.shape[-1])


def heldout_standard_error(p_hat: torch.Tensor) -> torch.Tensor:
    """Standard error of a held-out mean success: ``sd(p̂) / sqrt(P)`` (sample sd, P problems).

    Args: p_hat ``(P,)`` per-problem success rates. Returns a 0-d tensor.

    Lesson 02.4; a statistics helper (no paper equation).
    """
    return p_hat.std(unbiased=True) / p_hat.numel() ** 0.5


class CATTrainer(RLVRTrainer):
    """Module 01's ``RLVRTrainer`` with the CAT-weighted GRPO loss (``cat_grpo_loss``).

    Everything else (sampling, verifier rewards, E inner epochs, accelerate, checkpoints, eval) is
    the parent's; this subclass defines ``prompt_extras`` (each prompt's top-wrong-answer count from the
    rollout) and ``compute_loss`` (the CAT-weighted loss of a chunk, given that count).

    Lessons 02.3 and 02.4; CAT's RL update on module 01's trainer (Algorithm 1 of LPO).
    """

    def __init__(self, *args, cat: "CATConfig | None" = None, answer_fn=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.cat = cat or CATConfig()
        self.answer_fn = answer_fn
        if self.loss_cfg.name not in ("grpo", "dr_grpo", "rloo", "reinforce", "reinforce_pp", "maxrl"):
            raise ValueError(f"CAT weights multiply policy-gradient advantages; loss {self.loss_cfg.name!r} is not one")

    def _step_seed(self) -> int:
        """Seed of this iteration's rollout sampling: a function of (``cfg.seed``, step, process) only."""
        return (self.cfg.seed * 1_000_003 + self.step_count) * 1024 + self.accelerator.process_index

    def step(self) -> dict[str, float]:
        """One RLVR iteration (the parent's) whose sampling draws from this run's own random stream.

        The parent samples rollouts from torch's global generator. Here each iteration forks that
        generator (restoring it afterwards) and seeds it from ``_step_seed()``, so a run's rollouts
        depend only on its own seed and step: not on which other arms trained or evaluated before
        it in the same process, and a resumed run draws what the uninterrupted one drew.
        """
        dev = self.accelerator.device
        cuda = dev.type == "cuda"
        devices = [dev.index if dev.index is not None else torch.cuda.current_device()] if cuda else []
        with torch.random.fork_rng(devices=devices):
            seed = self._step_seed()
            torch.random.default_generator.manual_seed(seed)
            if cuda:
                torch.cuda.manual_seed(seed)
            return super().step()

    def checkpoint_extra(self) -> dict:
        """The loss settings and the CAT weighting, so a resume with another arm is refused."""
        return {**super().checkpoint_extra(), "cat": asdict(self.cat)}

    def prompt_extras(self, ro, rewards: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"c_max": (B,)}``: each prompt's count of its most frequent wrong answer among the K responses."""
        ids = answer_ids(ro.texts, self.answer_fn)
        return {"c_max": most_frequent_wrong_count(ids, rewards.cpu() >= 1.0).to(rewards.device)}

    def compute_loss(self, logp, old_logp, mask, rewards, extras: dict[str, torch.Tensor]):
        """``cat_grpo_loss`` of one chunk of prompts, with the chunk's rows of ``prompt_extras``."""
        return cat_grpo_loss(logp, old_logp, mask, rewards, self.loss_cfg, self.cat, extras.get("c_max"))


@torch.no_grad()
def evaluate_strategies(model, tokenizer, task, problems, n_samples: int = 16, ks=(1, 4, 16), max_new_tokens: int = 8,
                        temperature: float = 1.0, trials: int = 200, generator: "torch.Generator | None" = None,
                        batch_prompts: int = 32, chat_template: bool = False, answer_fn=None) -> dict[str, float]:
    """Held-out pass@k (unbiased) and maj@k (resampled votes) of an LM from ``n_samples`` per problem.

    Answers are grouped by ``answer_fn(text)`` (default: the stripped text; ``None`` = unparsable,
    a class of its own); every verified-correct completion is one answer class (so "122" and
    " 122" vote together). maj@k resamples k of the n answers ``trials`` times
    (``majority_at_k_mc``), as the paper evaluates maj@N.

    ``generator`` (a CPU ``torch.Generator``) drives both the sampling of the completions and the
    resampled votes, so an evaluation depends only on it (with ``None``, torch's global generator
    samples the completions). On a GPU model the sampling uses a device generator seeded from it.

    Returns: ``{"pass@k": …, "maj@k": …}`` for each k, plus ``"p_hat"`` (per-problem success list).

    Lessons 02.3 and 02.4; CAT's evaluation (unbiased pass@k; maj@k by resampled votes).
    """
    from hdai_lessons.lm.sampling import format_prompts, sample_groups
    from hdai_lessons.cat.strategies import majority_at_k_mc, pass_at_k_unbiased

    was_training = model.training
    model.eval()
    sample_gen = generator
    device = next(model.parameters()).device
    if generator is not None and device.type != "cpu":
        sample_gen = torch.Generator(device=device).manual_seed(int(torch.randint(0, 2**62, (1,), generator=generator)))
    ids_all, correct_all = [], []
    for i in range(0, len(problems), batch_prompts):
        chunk = problems[i:i + batch_prompts]
        ro = sample_groups(model, tokenizer, format_prompts(tokenizer, [p.prompt for p in chunk], chat_template),
                           n_samples, max_new_tokens, temperature, generator=sample_gen)
        fn = answer_fn or (lambda t: t.strip())
        for p, group in zip(chunk, ro.texts):
            keys = []
            for j, c in enumerate(group):
                a = fn(c)
                keys.append("\x00correct" if task.reward(p, c) >= 1.0 else (("none", j) if a is None else a))
            table: dict = {"\x00correct": 0}
            ids_all.append([table.setdefault(k, len(table)) for k in keys])
            correct_all.append(sum(k == "\x00correct" for k in keys))
    model.train(was_training)
    ids = torch.tensor(ids_all, dtype=torch.long)                                  # (P, n), correct = 0
    c = torch.tensor(correct_all)
    out: dict = {}
    for k in ks:
        out[f"pass@{k}"] = float(pass_at_k_unbiased(n_samples, c, k).mean())
        out[f"maj@{k}"] = float(majority_at_k_mc(ids, torch.zeros(len(ids), dtype=torch.long), k, n_samples + 1,
                                                 trials=trials, generator=generator).mean())
    out["p_hat"] = (c.double() / n_samples).tolist()
    return out


def passn_weighted_advantages(rewards: torch.Tensor, N: int, clip: "float | None" = 10.0, eps: float = 1e-6) -> torch.Tensor:
    """GRPO advantages times batch-normalised CAT-Pass@N weights: ``A_{b,k} · w_b / mean(w)``.

    ``A`` = ``ops.group_advantages`` (population std per group); ``w_b = N (1 − p̂_b)^{N−1}`` with the
    Laplace-smoothed ``p̂_b = (c_b + 1)/(K + 2)``, clipped at ``clip``, divided by its batch mean.

    Args: rewards ``(B, K)`` 0/1; N budget. Returns ``(B, K)``.

    Lesson 02.3; CAT's Pass@N RL weight S'(p) (Table 1) on GRPO's advantages.
    """
    from hdai_lessons.core.ops import group_advantages
    from hdai_lessons.cat.weights import passn_rl_weight, clip_and_normalise

    adv = group_advantages(rewards, eps)                                       # (B, K)
    w = clip_and_normalise(passn_rl_weight(empirical_p(rewards), N), clip)      # (B,)
    return adv * w.unsqueeze(-1).to(adv.dtype)


@dataclass
class CATRLLessonConfig:
    """Lesson 02.3's settings: the shipped warm tiny LM, arithmetic with harder held-out digits.

    Only the final RMSNorm gain trains by default (``trainable="final_norm"``, module 01's
    ``rlvr.tiny_lm.set_trainable``): on this small model at its SFT optimum full-parameter RL memorises
    the sampled prompts and lowers held-out accuracy (lesson 01.3), while the output temperature is
    what RL can transfer (sharpening).

    Lesson 02.3; CAT digest § "RL update in the official code" (empirical p̂, raw weight, clip 10).
    """

    min_digits: int = 1
    """Fewest digits of an operand."""
    max_digits: int = 3
    """Most digits of an operand (the warm LM saw ≤ 2 digits: 3-digit prompts are the "hard" ones)."""
    n_train: int = 2000
    """Training problems."""
    n_heldout: int = 200
    """Held-out problems (200 × 16 samples: a per-seed paired difference resolves about a point)."""
    steps: int = 40
    """RLVR iterations per arm."""
    prompts_per_step: int = 16
    """B, prompts per iteration."""
    K: int = 8
    """Rollouts per prompt (M in CAT's notation)."""
    trainable: str = "final_norm"
    """Which parameters RL trains: "final_norm" (the output temperature, the lesson's runs) or "all"
    (full-parameter, the contrast); see ``rlvr.tiny_lm.set_trainable``."""
    lr: float = 0.1
    """AdamW learning rate. For "final_norm", 0.1 was chosen from {0.01, 0.03, 0.1, 0.3} on a selection
    run (seed 100, split 100; not an evaluation seed) as the rate whose worst gain over the warm start
    (pass@1 and maj@16, three arms) was largest (``select_lr``); "all" keeps the earlier 1e-4."""
    max_new_tokens: int = 6
    """Longest sampled answer."""
    n_samples: int = 16
    """Held-out samples per problem for pass@k / maj@k."""
    ks: tuple = (1, 4, 8, 16)
    """Budgets k of the reported pass@k and maj@k (those ≤ ``n_samples``)."""
    n_seeds: int = 4
    """Paired seeds per arm: the lesson uses ``ctx.seed, ctx.seed + 1, …`` (4 fit the 90 s budget with the
    full-parameter contrast)."""

    @classmethod
    def for_scale(cls, scale, trainable: str = "final_norm") -> "CATRLLessonConfig":
        """smoke: a few problems and steps; toy: the lesson; full: longer runs, more held-out samples.

        ``trainable="all"`` gives the full-parameter contrast (lr 1e-4, the same evaluation).
        """
        from hdai_lessons.core.scale import by_scale
        from hdai_lessons.rlvr.tiny_lm import TRAINABLE

        if trainable not in TRAINABLE:
            raise ValueError(f"unknown trainable set {trainable!r}; choose one of {TRAINABLE}")
        cfg = by_scale(scale, smoke=cls(n_train=200, n_heldout=8, steps=2, prompts_per_step=4, K=4, n_samples=8, n_seeds=2),
                       toy=cls(), full=cls(steps=300, n_heldout=500, n_samples=64, n_seeds=5, ks=(1, 4, 8, 16, 64)))
        return replace(cfg, trainable=trainable, lr=0.1 if trainable == "final_norm" else 1e-4)

    @property
    def eval_ks(self) -> tuple:
        """The ``ks`` that ``n_samples`` can estimate. Lesson 02.3; CAT digest § "Setup" (budgets)."""
        return tuple(k for k in self.ks if k <= self.n_samples)


#: Lesson 02.3's arms: GRPO, CAT-Pass@8 (raw weight), CAT-Majority (N = 8, dynamic k).
RL_ARMS = {"GRPO": CATConfig(strategy="none"),
           "CAT-Pass@8": CATConfig(strategy="passn", N=8),
           "CAT-Maj(8)": CATConfig(strategy="majority", N=8)}


def _heldout(cfg: CATRLLessonConfig, split_seed: int):
    """The arithmetic task and its (train, held-out) split of lesson 02.3."""
    from hdai_lessons.tasks import ArithmeticTask, split_problems

    task = ArithmeticTask(cfg.min_digits, cfg.max_digits, "+-")
    return (task, *split_problems(task, cfg.n_train, cfg.n_heldout, split_seed))


def run_rl_arm(cfg: CATRLLessonConfig, cat: CATConfig, seed: int, model_loader=None, split_seed: int = 0) -> dict:
    """Train one arm from the shipped warm LM and evaluate it on held-out prompts.

    Only ``cfg.trainable`` trains (``rlvr.tiny_lm.set_trainable``; the rest stays at its SFT value).
    The run owns its random streams: prompt order and rollout sampling come from ``seed`` (the
    trainer's own, see ``CATTrainer.step``), held-out sampling and votes from a generator seeded
    with ``seed``. Two arms on the same ``seed`` therefore see the same prompt order and start
    from the same draws (a paired comparison), and a run's result does not depend on what ran
    before it.

    Args:
        cfg: lesson settings; cat: the arm's weight; seed: sampling / prompt-order seed.
        model_loader: ``() -> (model, tokenizer)``; default ``hdai_lessons.lm.pretrained.load_warm_lm``.
        split_seed: seed of the train / held-out split of the arithmetic problems.
    Returns:
        ``{"eval": evaluate_strategies(...), "history": trainer history}``.

    Lesson 02.3; CAT digest § "RL update in the official code" on the warm tiny LM, then CAT's evaluation.
    """
    from hdai_lessons.lm.pretrained import load_warm_lm
    from hdai_lessons.lm.rl_trainer import RLVRConfig
    from hdai_lessons.core.seeding import seed_everything
    from hdai_lessons.rlvr.tiny_lm import set_trainable

    seed_everything(seed)
    model, tok = (model_loader or (lambda: load_warm_lm()[:2]))()
    set_trainable(model, cfg.trainable)
    task, train, held = _heldout(cfg, split_seed)
    trainer = CATTrainer(model, tok, task, train, LossConfig(name="grpo", agg="seq_mean"),
                         RLVRConfig(steps=cfg.steps, prompts_per_step=cfg.prompts_per_step, K=cfg.K, lr=cfg.lr,
                                    max_new_tokens=cfg.max_new_tokens, seed=seed), cat=cat)
    trainer.train(cfg.steps, desc=f"RLVR {cat.strategy}")
    ev = evaluate_strategies(trainer.model, tok, task, held, n_samples=cfg.n_samples, ks=cfg.eval_ks,
                             max_new_tokens=cfg.max_new_tokens, generator=torch.Generator().manual_seed(seed))
    return {"eval": ev, "history": trainer.history}


def evaluate_warm_start(cfg: CATRLLessonConfig, seed: int, model_loader=None, split_seed: int = 0) -> dict:
    """``evaluate_strategies`` of the warm LM itself with the evaluation draws of ``seed`` (the same
    generator as ``run_rl_arm``'s evaluation on that seed), for a paired "RL vs warm start" comparison.

    Lesson 02.3; CAT digest § "Setup" (evaluation: unbiased pass@k, maj@k by resampled votes).
    """
    from hdai_lessons.lm.pretrained import load_warm_lm

    model, tok = (model_loader or (lambda: load_warm_lm()[:2]))()
    task, _, held = _heldout(cfg, split_seed)
    return evaluate_strategies(model, tok, task, held, n_samples=cfg.n_samples, ks=cfg.eval_ks,
                               max_new_tokens=cfg.max_new_tokens, generator=torch.Generator().manual_seed(seed))


def select_lr(cfg: CATRLLessonConfig, lrs=(0.01, 0.03, 0.1, 0.3), seed: int = 100, split_seed: int = 100,
              arms: "dict | None" = None) -> dict:
    """How ``CATRLLessonConfig.lr`` was chosen: one selection run per (lr, arm) on ``seed`` and its own
    split (neither is an evaluation seed of the lesson); the chosen lr has the largest worst gain over
    the warm start across arms and the metrics pass@1 and maj@(largest k).

    Returns ``{"chosen": lr, "worst_gain": {lr: gain}, "gains": {lr: {arm: {metric: gain}}}}``.
    Not run by the notebook (12 extra runs); ``tests/test_cat_rl.py`` runs it at smoke scale.

    Lesson 02.3; CAT digest § "Toy experiment for the course" (its RL variant; model selection, no paper equation).
    """
    arms = arms or RL_ARMS
    metrics = ("pass@1", f"maj@{cfg.eval_ks[-1]}")
    warm = evaluate_warm_start(cfg, seed, split_seed=split_seed)
    gains = {lr: {a: {m: run_rl_arm(replace(cfg, lr=lr), cat, seed, split_seed=split_seed)["eval"][m] - warm[m]
                      for m in metrics} for a, cat in arms.items()}
             for lr in lrs}
    worst = {lr: min(g[m] for g in per_arm.values() for m in metrics) for lr, per_arm in gains.items()}
    return {"chosen": max(worst, key=worst.get), "worst_gain": worst, "gains": gains}
