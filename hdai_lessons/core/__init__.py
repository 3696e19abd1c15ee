"""Tier 0 — the lesson kernel: what every lesson and every module package imports.

- ``context``: ``setup_lesson`` → ``LessonContext`` (scale, seed, device, plotting style, threads);
- ``scale``: the scale ladder (``Scale``, ``get_scale``, ``by_scale``); ``seeding``; ``device``;
- ``claims``: the paired-seed claim rule (``paired_verdict``, ``report_claim``, ``all_of``/``any_of``);
- ``ops``, ``metrics``: masked reductions, pass@k and other shared estimators;
- ``progress``, ``plotting``: progress bars and the course's figure style;
- ``checkpoint``: atomic save / resume; ``paths``, ``data``, ``assets``: where files live, the shipped
  toy data and the full-scale downloads; ``modules``: module number → package.

Nothing here imports from the tiers above (``course``, ``lm``/``tasks``, the module packages).
"""
