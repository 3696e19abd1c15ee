"""Tier 1 — the course's own tooling, built on ``core``.

- ``catalogue``: the lessons (id, notebook, time budget) read from the notebooks' metadata;
- ``runner``: executes lessons (nbclient) at a scale and seed, with per-cell timings;
- ``cli``: the ``hdai-lessons`` command (run, course, fetch, doctor, exercises, slides, …);
- ``doctor``: checks a learner's installation;
- ``checkers``: the exercise framework (registry, checks against known mistakes, learner versions);
- ``workshop``: slide decks, agendas and catch-up checkpoints generated from the notebooks.
"""
