"""HDAI Lessons: tested implementations that the course notebooks import.

Tiers (imports point only down the list; ``tests/test_architecture.py`` enforces it):

0. ``core``     — the lesson kernel: scale, seeding, device, claims, ops, metrics, checkpoints, data;
1. ``course``   — catalogue, runner, CLI, doctor, exercise checkers, workshop kit;
2. ``lm``, ``tasks`` — shared engines: the causal-LM sampler, group-RL trainer, SFT and evaluation;
   generated tasks with exact verifiers (used by modules 01 and 02);
3. one package per module — ``welcome`` (00), ``rlvr`` (01, LPO), ``cat`` (02), ``sope`` (03),
   ``flows`` (04, flow-map reward guidance), ``unified`` (05, JoyAI-Image); a later module may build
   on an earlier one (02 on 01, 05 on 04), never the reverse.

The names a lesson's first cell needs are re-exported here.
"""
from hdai_lessons.core.claims import PairedVerdict, paired_verdict, report_claim
from hdai_lessons.core.context import LessonContext, setup_lesson
from hdai_lessons.core.device import get_device
from hdai_lessons.core.progress import progress
from hdai_lessons.core.scale import Scale, by_scale, get_scale
from hdai_lessons.core.seeding import seed_everything
from hdai_lessons.course.checkers import check_exercise, cmp

__version__ = "0.1.0"

__all__ = [
    "LessonContext", "PairedVerdict", "Scale", "by_scale", "check_exercise", "cmp", "get_device", "get_scale",
    "paired_verdict", "progress", "report_claim", "seed_everything", "setup_lesson",
]
