"""Module 01 — RLVR and Listwise Policy Optimization (LPO, arXiv 2605.06139).

- ``targets``: implicit targets of Table 1 and the LPO target of Theorem 1.
- ``losses``: GRPO's clipped surrogate, LPO forward/reverse-KL projections, the pointwise ablation,
  and ``rlvr_loss(logp, old_logp, mask, rewards, LossConfig)``, the one entry point trainers call.
- ``simplex``: K = 3 dynamics on the response simplex (lesson 01.1; sizes in ``SimplexLessonConfig``).
- ``bandit``: the reasoning bandit (lesson 01.2; ``BanditConfig``).
- ``tiny_lm``: GRPO vs LPO on the warm tiny LM (lesson 01.3; ``TinyRLVRExperiment``).
- ``full``: the GSM8K run at every scale (lesson 01.4; ``FullScaleConfig``), launched by ``launch``.

Each lesson reads its sizes from a config's ``for_scale(scale)``; the notebooks never branch on the scale.
"""
from hdai_lessons.rlvr.losses import (
    LossConfig,
    aggregate_tokens,
    clipped_token_log_ratio,
    grpo_surrogate,
    listwise_logits,
    lpo_forward_coefficients,
    lpo_forward_kl_loss,
    lpo_reverse_coefficients,
    lpo_reverse_kl_loss,
    pointwise_coefficients,
    pointwise_loss,
    rlvr_loss,
)
from hdai_lessons.rlvr.targets import (
    advantages,
    implicit_target,
    implicit_temperature,
    lpo_log_target,
    lpo_target,
    proximal_objective,
    tau_from_rule,
)

__all__ = [
    "LossConfig", "advantages", "aggregate_tokens", "clipped_token_log_ratio", "grpo_surrogate",
    "implicit_target", "implicit_temperature", "listwise_logits", "lpo_forward_coefficients",
    "lpo_forward_kl_loss", "lpo_log_target", "lpo_reverse_coefficients", "lpo_reverse_kl_loss",
    "lpo_target", "pointwise_coefficients", "pointwise_loss", "proximal_objective", "rlvr_loss",
    "tau_from_rule",
]
