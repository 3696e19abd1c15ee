"""Module 03 — SOPE (arXiv 2605.05863): off-policy evaluation and online RL with prior data.

One concept per file:

- ``tabular``: a gridworld MDP with exact finite-horizon policy evaluation (lesson 03.1);
- ``ope``: off-policy estimators — direct method (tabular FQE), IS, WIS, per-decision IS, DR, cross-fitted DR;
- ``sac``: SAC as SOPE uses it (tanh-Gaussian actor, twin LayerNorm+dropout critics, α, Polyak),
  vectorised over a *population* of independent runs so several arms/seeds train in one process;
- ``rng``: per-run random streams (batches, policy noise, splits, evaluation), so a run's numbers do not
  depend on which other runs share its population;
- ``buffers``: replay buffers with symmetric 50/50 sampling and a restorable hold-out split;
- ``phases``: SACfD (no phases), SPEQ-O2O (fixed-length critic-only phases), SOPE (early-stopped);
- ``prior_data``: scripted/noisy controllers, npz in the D4RL layout, a Minari loader (full scale);
- ``flops``: the paper's analytic FLOP accounting (plus the validation passes);
- ``train``: the online loop with atomic checkpoint/resume;
- configs (the scale is resolved once, in ``for_scale``): ``train.TrainConfig`` (with ``sac.SACConfig`` and
  ``phases.PhaseConfig``) and one per lesson: ``ope.OPELessonConfig`` (03.1), ``prior_study.PriorDataLessonConfig`` (03.2),
  ``train.StabilisationLessonConfig`` (03.3), ``benchmark.BenchmarkLessonConfig`` (03.4);
- ``benchmark``: the paper's protocol (tasks, score bounds, normalised scores, TFLOPs) at any scale;
- ``assets``: fetching the Minari datasets for full scale (``hdai-lessons fetch 03.4``);
- ``exercises``: the bank for lessons 03.1–03.4.
"""
