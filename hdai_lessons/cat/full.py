"""Full-scale CAT-weighted RL: Qwen2.5-0.5B-Instruct on GSM8K through module 01's trainer.

One code path for every scale (``hdai_lessons.rlvr.full.build_run`` does the loading):

- ``full``: the pretrained Qwen from its local snapshot and GSM8K (``hdai-lessons fetch 02.4``);
  arms GRPO vs GRPO × CAT-Pass@8 weight ``8(1−p̂)^7`` (Laplace p̂ over K = 8 rollouts, clip 10,
  batch mean-normalised) and optionally CAT-Majority (N = 8, dynamic k); held-out pass@k and maj@k
  from 16 samples per problem (unbiased pass@k; maj@k by resampled votes over the extracted
  ``####`` answers). These settings follow the CAT digest's full-scale proposal (a scaled-down
  version of the paper's Mistral-7B / MATH runs).
- ``toy`` / ``smoke``: a randomly-initialised ``Qwen2ForCausalLM`` of the same class, the in-memory
  char tokenizer (with a chat template) and GSM8K-format problems generated in memory — the
  identical loading, chat formatting, sampling, verifier, CAT update and checkpoint/resume, so CI
  covers the path. The toy model cannot solve GSM8K; toy numbers only prove the path runs.

Launch: ``accelerate launch -m hdai_lessons.cat.launch --scale full --arm cat-pass8 --run-dir runs/cat``.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch

from hdai_lessons.rlvr.full import RunSetup, build_run
from hdai_lessons.core.scale import Scale, by_scale, get_scale
from hdai_lessons.tasks import extract_gsm8k_answer
from hdai_lessons.tasks.gsm8k import synthetic_gsm8k
from hdai_lessons.cat.rl import CATConfig, CATTrainer, evaluate_strategies

#: Arms of lesson 02.4 (CLI ``--arm``).
FULL_ARMS = {
    "grpo": CATConfig(strategy="none"),
    "cat-pass8": CATConfig(strategy="passn", N=8, form="raw", clip=10.0, normalise=True),
    "cat-maj8": CATConfig(strategy="majority", N=8, dynamic_k=True, form="raw", clip=10.0, normalise=True),
}


@dataclass
class CATEvalConfig:
    """Held-out evaluation of a CAT run (CAT's evaluation protocol, scaled down).

    Lesson 02.4; unbiased pass@k (Chen et al. 2021, §2.1) and maj@k by resampled votes (CAT's
    evaluation: 500 resampling trials).
    """

    n_samples: int = 16
    """Samples per held-out problem."""
    ks: tuple = (1, 4, 16)
    """k of the reported pass@k and maj@k."""
    temperature: float = 0.6
    """Sampling temperature of the evaluation."""
    trials: int = 200
    """Resampled votes per problem for maj@k."""

    @classmethod
    def for_scale(cls, scale=None) -> "CATEvalConfig":
        """smoke / toy: a few samples (the path runs); full: 16 samples per problem."""
        return by_scale(scale, smoke=cls(n_samples=2, ks=(1, 2), trials=20),
                        toy=cls(n_samples=4, ks=(1, 4), trials=50), full=cls())


@dataclass
class CATFullLessonConfig:
    """Lesson 02.4's settings at one rung: the arms compared, the paired seeds, the evaluation.

    Lesson 02.4; the CAT digest's full-scale proposal (GRPO vs CAT-Pass@8, optionally CAT-Majority).
    """

    arms: tuple = ("grpo", "cat-pass8")
    """Arms compared (keys of ``FULL_ARMS``)."""
    n_seeds: int = 8
    """Paired RL seeds, ``ctx.seed, ctx.seed + 1, …``: every arm trains once per seed from the same start."""
    eval: CATEvalConfig = field(default_factory=CATEvalConfig)
    """Held-out evaluation of each trained arm."""

    @classmethod
    def for_scale(cls, scale=None) -> "CATFullLessonConfig":
        """smoke: 2 seeds; toy: 8 seeds; full: 3 seeds and the CAT-Majority arm too."""
        scale = get_scale(scale)
        ev = CATEvalConfig.for_scale(scale)
        return by_scale(scale, smoke=cls(n_seeds=2, eval=ev), toy=cls(n_seeds=8, eval=ev),
                        full=cls(arms=("grpo", "cat-pass8", "cat-maj8"), n_seeds=3, eval=ev))


#: Held-out problems of the generated GSM8K-format set at toy scale. Module 01's 32 are too few for
#: a comparison of arms: every seed is evaluated on the same problems, so which 32 were drawn is a
#: fixed effect that paired seeds do not average out (it decided a verdict on one base seed).
TOY_HELDOUT = 128


def build_cat_run(scale=None, seed: int = 0, n_heldout: "int | None" = None, **overrides) -> RunSetup:
    """Module 01's GSM8K run (model, tokenizer, task, problems, settings) with the GRPO loss.

    At full scale raises ``MissingAssetError`` naming the fetch command when Qwen / GSM8K are absent.
    ``overrides``: ``RLVRConfig`` fields (e.g. ``steps=10``); at full scale K = 8 rollouts.
    ``n_heldout``: toy / smoke only, the number of generated held-out problems (default: ``TOY_HELDOUT``
    at toy, module 01's count at smoke); they continue the same generator after the training
    problems, so the training set is unchanged. At full scale the held-out set is module 01's.

    Lesson 02.4; the CAT digest's full-scale proposal (Qwen2.5-0.5B / GSM8K).
    """
    scale = get_scale(scale)                     # resolved once; build_run receives the Scale
    run = build_run(scale, loss="grpo", seed=seed, **overrides)
    if scale is Scale.FULL:
        if "K" not in overrides:
            run.cfg = replace(run.cfg, rl=replace(run.cfg.rl, K=8))
        return run
    n_heldout = TOY_HELDOUT if n_heldout is None and scale is Scale.TOY else n_heldout
    if n_heldout is not None:
        problems = synthetic_gsm8k(len(run.train) + n_heldout, seed=seed, max_value=run.cfg.synthetic_max_value)
        if [p.prompt for p in problems[:len(run.train)]] != [p.prompt for p in run.train]:
            raise RuntimeError("module 01's generated training problems changed; cannot extend its held-out set")
        run.held_out = problems[len(run.train):]
    return run


def make_trainer(run: RunSetup, arm: str, accelerator=None, run_dir=None, seed: "int | None" = None) -> CATTrainer:
    """A ``CATTrainer`` for ``arm`` (a key of ``FULL_ARMS``) on ``run``; answers parsed GSM8K-style.

    ``seed`` (default: ``run.cfg.rl.seed``) sets the run's prompt order and rollout sampling; the
    trainer owns these streams, so arms trained one after another in a process do not share them.

    Lesson 02.4; CAT's RL update (Table 1 weights on GRPO's advantages; official-code p̂, clip, normalisation).
    """
    if arm not in FULL_ARMS:
        raise ValueError(f"unknown arm {arm!r}; choose one of {sorted(FULL_ARMS)}")
    rl_cfg = run.cfg.rl if seed is None else replace(run.cfg.rl, seed=seed)
    return CATTrainer(run.model, run.tokenizer, run.task, run.train, run.loss, rl_cfg, accelerator=accelerator,
                      run_dir=run_dir, cat=FULL_ARMS[arm], answer_fn=extract_gsm8k_answer)


def evaluate_run(trainer: CATTrainer, run: RunSetup, ev: "CATEvalConfig | None" = None, seed: int = 0) -> dict:
    """Held-out pass@k and maj@k of the trainer's current policy (GSM8K answer extraction).

    Lesson 02.4; CAT's evaluation (pass@k, maj@k by resampled votes).
    """
    ev = ev or CATEvalConfig()
    model = trainer.accelerator.unwrap_model(trainer.model)
    return evaluate_strategies(model, run.tokenizer, run.task, run.held_out, n_samples=ev.n_samples, ks=ev.ks,
                               max_new_tokens=run.cfg.rl.max_new_tokens, temperature=ev.temperature, trials=ev.trials,
                               generator=torch.Generator().manual_seed(seed), chat_template=run.cfg.rl.chat_template,
                               answer_fn=extract_gsm8k_answer)
