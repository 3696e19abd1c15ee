"""Full-scale RLVR: Qwen2.5-0.5B-Instruct on GSM8K with the same trainer as the toy lessons.

``build_run(scale, loss)`` returns everything a run needs, by scale, through one code path:

- ``full``: the pretrained Qwen from its local snapshot (``hdai-lessons fetch 01.4`` downloads it)
  and GSM8K's ``main`` split; settings scaled down from the paper (K = 8, 2 updates per rollout
  batch, AdamW lr 1e-6, weight decay 0.1, ε = 0.2, τ = σ_G);
- ``toy`` / ``smoke``: a randomly-initialised ``Qwen2ForCausalLM`` of the same class with the in-memory
  char tokenizer (it has a chat template) and GSM8K-format problems generated in memory, so CI runs
  the identical code — loading, chat formatting, sampling, verifier, update, checkpoint/resume.

Launch: ``accelerate launch -m hdai_lessons.rlvr.launch --scale full --loss lpo_fwd --run-dir runs/lpo``
(see ``train.py``).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from hdai_lessons.core.scale import Scale, by_scale, get_scale
from hdai_lessons.tasks import GSM8KTask, load_gsm8k, synthetic_gsm8k
from hdai_lessons.rlvr.losses import LossConfig
from hdai_lessons.lm.rl_trainer import RLVRConfig


@dataclass
class FullScaleConfig:
    """One rung's settings of the GSM8K RLVR run.

    Lesson 01.4; the LPO digest's full-scale Option A, the paper's setup scaled down
    (Section 4.3: τ = σ_G, ε = 0.2).
    """

    rl: RLVRConfig
    """Trainer settings (K, E, lr, lengths …)."""
    n_train: "int | None" = None
    """Training problems (None: the whole split)."""
    n_eval: int = 200
    """Held-out problems for pass@k (from the test split at full scale)."""
    eval_samples: int = 8
    """Samples per held-out problem."""
    eval_ks: tuple = (1, 8)
    """k of the reported pass@k."""
    eval_temperature: float = 0.6
    """Evaluation temperature (the paper: 0.6)."""
    sft_steps: int = 0
    """Supervised warm-up steps on the worked solutions before RL (toy: teaches the '####' format)."""
    synthetic_max_value: int = 5
    """Toy/smoke: operands of the generated GSM8K-format problems are 1..this (small answers, so a
    barely-trained tiny model is sometimes right and groups carry a learning signal)."""
    dtype: str = "float32"
    """Master weights dtype (on a GPU the forward passes run in bf16 autocast: ``RLVRConfig.bf16_autocast``)."""

    @classmethod
    def for_scale(cls, scale=None) -> "FullScaleConfig":
        return by_scale(
            scale,
            smoke=cls(rl=RLVRConfig(steps=2, prompts_per_step=2, K=2, inner_epochs=2, lr=1e-3, max_new_tokens=8,
                                    chat_template=True, warmup_updates=1),
                      n_train=16, n_eval=4, eval_samples=2, eval_ks=(1, 2), sft_steps=2),
            toy=cls(rl=RLVRConfig(steps=6, prompts_per_step=8, K=4, inner_epochs=2, lr=1e-4, max_new_tokens=24,
                                  chat_template=True, warmup_updates=2, ckpt_every=3),
                    n_train=512, n_eval=32, eval_samples=4, eval_ks=(1, 4), sft_steps=120),
            full=cls(rl=RLVRConfig(steps=60, prompts_per_step=32, K=8, inner_epochs=1, minibatches=2, lr=1e-6,
                                   weight_decay=0.1, max_new_tokens=320, temperature=1.0, chat_template=True,
                                   warmup_updates=4, ckpt_every=10, micro_batch_prompts=1),
                     n_train=None, n_eval=200, eval_samples=8, eval_ks=(1, 8)),
        )


@dataclass
class RunSetup:
    """Everything ``RLVRTrainer`` needs, plus the held-out set.

    Lessons 01.4 and 02.4; the inputs of Algorithm 1 of LPO on GSM8K.
    """

    model: object
    tokenizer: object
    task: GSM8KTask
    train: list
    held_out: list
    cfg: FullScaleConfig
    loss: LossConfig = field(default_factory=LossConfig)


def _tiny_policy(scale: Scale, seed: int):
    from hdai_lessons.lm import TinyLMConfig, build_tiny_lm

    return build_tiny_lm(TinyLMConfig.for_scale(Scale.SMOKE if scale is Scale.SMOKE else Scale.TOY), seed=seed)


def build_run(scale=None, loss: str = "lpo_fwd", seed: int = 0, **overrides) -> RunSetup:
    """Model, tokenizer, task and problems for the GSM8K RLVR run at ``scale``.

    Args:
        scale: "smoke" | "toy" | "full" (default ``$HDAI_SCALE`` / toy).
        loss: a ``LossConfig.name`` ("grpo", "lpo_fwd", "lpo_rev", …); τ = σ_G, ε = 0.2, token mean.
        overrides: fields of ``RLVRConfig`` to change (e.g. ``steps=10``).
    Raises:
        ``MissingAssetError`` at full scale when the model or dataset is not downloaded (the message
        names ``hdai-lessons fetch 01.4``).

    Lessons 01.4 and 02.4; the LPO digest's full-scale Option A (Qwen2.5-0.5B-Instruct, GSM8K).
    """
    scale = get_scale(scale)
    cfg = FullScaleConfig.for_scale(scale)
    cfg = replace(cfg, rl=replace(cfg.rl, seed=seed, **overrides))
    if scale is Scale.FULL:
        from hdai_lessons.core.assets import require
        from hdai_lessons.lm import load_pretrained_lm
        from hdai_lessons.rlvr.assets import DATASET, MODEL

        from hdai_lessons.lm.requirements import check_policy

        model, tok = load_pretrained_lm(MODEL, "01.4", dtype=getattr(torch, cfg.dtype))
        check_policy(model, tok, cfg.rl.chat_template, name=MODEL.repo_id)
        data_dir = require(DATASET, "01.4")
        train = load_gsm8k(data_dir, "train", cfg.n_train)
        held = load_gsm8k(data_dir, "test", cfg.n_eval)
    else:
        model, tok = _tiny_policy(scale, seed)
        problems = synthetic_gsm8k(cfg.n_train + cfg.n_eval, seed=seed, max_value=cfg.synthetic_max_value)
        train, held = problems[:cfg.n_train], problems[cfg.n_train:]
    return RunSetup(model=model, tokenizer=tok, task=GSM8KTask(tuple(train)), train=train, held_out=held, cfg=cfg,
               loss=LossConfig(name=loss, eps=0.2, tau_rule="std", agg="mean"))


def warm_up(run: RunSetup, seed: int = 0, batch_size: int = 16, lr: float = 3e-3) -> list[float]:
    """Supervised warm-up on the worked solutions for ``run.cfg.sft_steps`` steps (0 at full scale:
    the instruct model already follows the format), on one intra-op thread. Returns the loss per step.

    Lessons 01.4 and 02.4; a course step before RL (no paper equation): teaches a toy model the '####' format.
    """
    if not run.cfg.sft_steps:
        return []
    from hdai_lessons.core.device import one_thread
    from hdai_lessons.lm.sft import sft

    with one_thread():                      # a tiny model: intra-op threads only add synchronisation
        return sft(run.model, run.tokenizer, run.train, steps=run.cfg.sft_steps, batch_size=batch_size, lr=lr,
                   seed=seed, chat_template=run.cfg.rl.chat_template, desc="SFT warm-up")


def start_launch(run: RunSetup, run_dir: "str | Path", seed: int = 0):
    """A launcher's first steps: ``(accelerator, run_dir)`` with the model on the accelerator's device
    and, for a fresh run only, the SFT warm-up (a resumed run keeps its warmed-up weights).

    Lessons 01.4 and 02.4 (``rlvr.launch``, ``cat.launch``); no paper equation.
    """
    from accelerate import Accelerator

    from hdai_lessons.core.checkpoint import latest_checkpoint

    accelerator = Accelerator()
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    run.model.to(accelerator.device)
    if latest_checkpoint(run_dir) is None:
        warm_up(run, seed=seed)
    return accelerator, run_dir


def make_trainer(run: RunSetup, run_dir=None, accelerator=None, loss: "str | None" = None, **overrides):
    """An ``RLVRTrainer`` for ``run`` (optionally another loss or changed ``RLVRConfig`` fields).

    Lesson 01.4; Algorithm 1 of LPO on the GSM8K run.
    """
    from hdai_lessons.rlvr.trainer import RLVRTrainer

    loss_cfg = replace(run.loss, name=loss) if loss else run.loss
    return RLVRTrainer(run.model, run.tokenizer, run.task, run.train, loss_cfg, replace(run.cfg.rl, **overrides),
                       accelerator=accelerator, run_dir=run_dir)


def max_param_diff(a, b) -> float:
    """Largest absolute difference between the parameters of two models of the same architecture.

    Lesson 01.4; checks resume and Proposition 1 of LPO (Eq. (5)) on the full pipeline.
    """
    return max(float((p - q).abs().max()) for p, q in zip(a.parameters(), b.parameters()))
