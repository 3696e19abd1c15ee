"""HDAI Lessons: tested implementations that the course notebooks import.

Core: ``setup_lesson``, the scale ladder (``Scale``, ``get_scale``, ``by_scale``),
``seed_everything``, ``get_device``, ``progress``, checkpoints, exercises and checkers.
One subpackage per module: ``rlvr`` (LPO), ``cat``, ``sope``, ``flows`` (FMRG), ``unified``.
"""
from .claims import PairedVerdict, paired_verdict, report_claim
from .device import get_device
from .exercises import check_exercise, cmp
from .lesson import LessonContext, setup_lesson
from .progress import progress
from .scale import Scale, by_scale, get_scale
from .seeding import seed_everything

__version__ = "0.1.0"

__all__ = [
    "LessonContext", "PairedVerdict", "Scale", "by_scale", "check_exercise", "cmp", "get_device", "get_scale",
    "paired_verdict", "progress", "report_claim", "seed_everything", "setup_lesson",
]
