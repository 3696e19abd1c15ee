"""HDAI Lessons: tested implementations that the course notebooks import.

Tiers (imports point only down the list; ``tests/test_architecture.py`` enforces it):

0. ``core``     — the lesson kernel: scale, seeding, device, claims, ops, metrics, checkpoints, data;
1. ``course``   — catalogue, runner, CLI, doctor, exercise checkers, workshop kit;
2. ``lm``, ``tasks`` — shared engines: the causal-LM sampler, group-RL trainer, SFT and evaluation;
   generated tasks with exact verifiers (used by modules 01 and 02);
3. one package per module — ``welcome`` (00), ``rlvr`` (01, LPO), ``cat`` (02), ``sope`` (03),
   ``flows`` (04, flow-map reward guidance), ``unified`` (05, JoyAI-Image); a later module may build
   on an earlier one (02 on 01, 05 on 04), never the reverse.

The names a lesson's first cell needs are re-exported here, imported on first use (so that
``hdai-lessons doctor`` can start, and report, on a machine where torch or numpy is broken).
"""
import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "PairedVerdict": "hdai_lessons.core.claims", "paired_verdict": "hdai_lessons.core.claims",
    "report_claim": "hdai_lessons.core.claims",
    "LessonContext": "hdai_lessons.core.context", "setup_lesson": "hdai_lessons.core.context",
    "get_device": "hdai_lessons.core.device", "progress": "hdai_lessons.core.progress",
    "Scale": "hdai_lessons.core.scale", "by_scale": "hdai_lessons.core.scale", "get_scale": "hdai_lessons.core.scale",
    "seed_everything": "hdai_lessons.core.seeding",
    "check_exercise": "hdai_lessons.course.checkers", "cmp": "hdai_lessons.course.checkers",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    """``from hdai_lessons import setup_lesson`` imports ``core.context`` only then (PEP 562)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'hdai_lessons' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
