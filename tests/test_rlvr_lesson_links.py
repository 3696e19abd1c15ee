"""Modules 00–02: code-to-lesson links and the lesson configs (issue 17).

Every public function and class of ``welcome``, ``rlvr`` and ``cat`` names the lesson that teaches it;
every config documents each field; and the lesson configs keep the sizes the committed notebook
outputs were made with (the notebooks read them from ``for_scale`` instead of spelling ``by_scale``).
"""
from __future__ import annotations

import ast
import dataclasses
import json
from pathlib import Path

import pytest

from hdai_lessons.core.config import field_docs

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("welcome", "rlvr", "cat")


def _public_defs():
    for pkg in PACKAGES:
        for path in sorted((ROOT / "hdai_lessons" / pkg).glob("*.py")):
            for node in ast.parse(path.read_text(encoding="utf-8")).body:
                if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
                    yield f"{pkg}/{path.name}:{node.name}", ast.get_docstring(node) or ""


def test_every_public_name_links_to_its_lesson():
    missing = [name for name, doc in _public_defs() if "Lesson" not in doc]
    assert missing == []


def _configs():
    from hdai_lessons.cat import full as cat_full, rl, strategies, synthetic
    from hdai_lessons.rlvr import bandit, full, losses, simplex, tiny_lm
    from hdai_lessons.welcome import WelcomeLessonConfig

    return [WelcomeLessonConfig, simplex.SimplexLessonConfig, bandit.BanditConfig, tiny_lm.TinyRLVRExperiment,
            full.FullScaleConfig, losses.LossConfig, strategies.StrategiesLessonConfig, synthetic.SyntheticConfig,
            rl.CATConfig, rl.CATRLLessonConfig, cat_full.CATEvalConfig, cat_full.CATFullLessonConfig]


def test_every_config_field_has_a_docstring():
    for cls in _configs():
        assert {f.name for f in dataclasses.fields(cls)} == set(field_docs(cls)), cls.__name__


@pytest.mark.parametrize("scale, want", [
    ("smoke", dict(steps=5, simplex=(10, 3, 2), bandit_seeds=2, tiny=(2, 8, 4, 4, 4), strategies=(40, 20, 2, 16),
                   sft_seeds=2, arms=("grpo", "cat-pass8"), full_seeds=2)),
    ("toy", dict(steps=300, simplex=(30, 6, 8), bandit_seeds=24, tiny=(4, 200, 16, 64, 16),
                 strategies=(200, 300, 5, 64), sft_seeds=5, arms=("grpo", "cat-pass8"), full_seeds=8)),
    ("full", dict(steps=20_000, simplex=(30, 6, 8), bandit_seeds=32, tiny=(8, 200, 32, 256, 32),
                  strategies=(1000, 1000, 8, 64), sft_seeds=5, arms=("grpo", "cat-pass8", "cat-maj8"), full_seeds=3)),
])
def test_lesson_configs_keep_the_sizes_of_the_committed_outputs(scale, want):
    from hdai_lessons.cat.full import CATEvalConfig, CATFullLessonConfig
    from hdai_lessons.cat.strategies import StrategiesLessonConfig
    from hdai_lessons.cat.synthetic import SyntheticConfig
    from hdai_lessons.rlvr.bandit import BanditConfig
    from hdai_lessons.rlvr.simplex import SimplexLessonConfig
    from hdai_lessons.rlvr.tiny_lm import TinyRLVRExperiment
    from hdai_lessons.welcome import WelcomeLessonConfig

    assert WelcomeLessonConfig.for_scale(scale).steps == want["steps"]
    s = SimplexLessonConfig.for_scale(scale)
    assert (s.epochs, s.iterations, s.n_seeds) == want["simplex"]
    assert BanditConfig.for_scale(scale).n_seeds == want["bandit_seeds"]
    t = TinyRLVRExperiment.for_scale(scale)
    assert (t.trainable, t.rl.lr) == ("final_norm", 3e-2)                  # the sharpening run of lesson 01.3
    assert (len(t.seeds), t.n_eval, t.eval_samples, t.grad_prompts, t.grad_K) == want["tiny"]
    f = TinyRLVRExperiment.for_scale(scale, trainable="all")                  # the full-parameter failure
    assert (f.trainable, f.rl.lr, f.seeds, f.n_eval, f.eval_samples) == ("all", 1e-4, t.seeds, t.n_eval, t.eval_samples)
    st = StrategiesLessonConfig.for_scale(scale)
    assert (st.num_prompts, st.repeats, st.n_seeds, st.k_max) == want["strategies"]
    assert SyntheticConfig.for_scale(scale).n_seeds == want["sft_seeds"]
    c = CATFullLessonConfig.for_scale(scale)
    assert (c.arms, c.n_seeds, c.eval) == (want["arms"], want["full_seeds"], CATEvalConfig.for_scale(scale))


def test_lessons_of_modules_00_to_02_never_spell_a_scale_choice():
    for path in sorted((ROOT / "notebooks").glob("0[0-2]_*/*.ipynb")):
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        code = "".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        assert "by_scale" not in code, path.name
