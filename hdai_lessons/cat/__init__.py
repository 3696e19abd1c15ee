"""Module 02 — Compute Aligned Training (CAT, arXiv 2604.24957).

Training usually maximises the success of *one* sample, but models are used with N samples and a
test-time strategy (Pass@N with a verifier, majority vote, best-of-N with a reward model). CAT
differentiates through the strategy: the loss becomes ``-log S(p)`` (SFT) or the policy gradient
is re-weighted by ``S'(p)`` (RL).

- ``losses``: the CAT SFT losses (Pass@N, majority) and their SFT-derived weights.
- ``weights``: the CAT RL weights, their "raw" / "log" forms, clipping, normalisation, p̂, dynamic k.
- ``strategies``: test-time estimators (unbiased and plug-in pass@k, exact / Monte Carlo maj@k,
  best-of-N expected reward); lesson 02.1's sizes in ``StrategiesLessonConfig``.
- ``baselines``: Pass@k-Training advantages and PKPO weights, for comparison.
- ``synthetic``: the categorical toy of lesson 02.2 (prompts × answers, low-rank shared logits).
- ``rl``: CAT-weighted GRPO (``cat_grpo_loss``, ``CATTrainer`` on module 01's ``RLVRTrainer``),
  held-out pass@k / maj@k of an LM (lesson 02.3).
- ``full``, ``assets``: the full-scale run on Qwen2.5-0.5B / GSM8K (lesson 02.4; its arms, seeds and
  evaluation in ``CATFullLessonConfig``);
  ``python -m hdai_lessons.cat.launch --scale full --arm cat-pass8 --run-dir runs/x``.

``rl``/``full`` import ``transformers`` and ``accelerate``; import them explicitly
(``from hdai_lessons.cat import rl``) so the math modules stay light.
"""
from hdai_lessons.cat.baselines import passk_training_advantages, pkpo_weights
from hdai_lessons.cat.losses import log1mexp, majority_sft_loss, majority_sft_weight, passn_sft_loss, passn_sft_weight
from hdai_lessons.cat.strategies import (
    best_of_n_expected_exact,
    best_of_n_expected_from_samples,
    majority_at_k_exact,
    majority_at_k_mc,
    majority_credit,
    majority_vote,
    pass_at_k_plugin,
    pass_at_k_unbiased,
)
from hdai_lessons.cat.weights import (
    bon_quantile,
    bon_rl_weight,
    cat_weights,
    clip_and_normalise,
    dynamic_majority_k,
    empirical_p,
    majority_rl_weight,
    passn_rl_weight,
)

__all__ = [
    "best_of_n_expected_exact", "best_of_n_expected_from_samples", "bon_quantile", "bon_rl_weight",
    "cat_weights", "clip_and_normalise", "dynamic_majority_k", "empirical_p", "log1mexp",
    "majority_at_k_exact", "majority_at_k_mc", "majority_credit", "majority_rl_weight", "majority_sft_loss",
    "majority_sft_weight", "majority_vote", "pass_at_k_plugin", "pass_at_k_unbiased",
    "passk_training_advantages", "passn_rl_weight", "passn_sft_loss", "passn_sft_weight", "pkpo_weights",
]
