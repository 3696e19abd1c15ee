"""``setup_lesson``: the one setup call at the top of every lesson (seed, scale, device, style)."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from hdai_lessons.core.device import get_device, set_threads
from hdai_lessons.core.plotting import use_course_style
from hdai_lessons.core.scale import Scale, get_scale
from hdai_lessons.core.seeding import seed_everything


@dataclass
class LessonContext:
    """What a lesson needs from its setup cell."""

    lesson: str
    scale: Scale
    device: torch.device
    seed: int
    generator: torch.Generator
    threads: int = 1
    """Torch threads, i.e. the CPU cores this lesson was given (``$HDAI_THREADS``; a lesson may also split its work
    over that many processes, e.g. ``sope.parallel.train_sharded(..., workers=ctx.threads)``)."""


SEED_ENV = "HDAI_SEED"


def seed_from_env(default: int) -> int:
    """The lesson's base seed: ``$HDAI_SEED`` when set (``hdai-lessons run LESSON --seed N``), else ``default``."""
    raw = os.environ.get(SEED_ENV, "").strip()
    if not raw:
        return default
    if not raw.isdigit():
        raise ValueError(f"{SEED_ENV}={raw!r} is not a seed: use a non-negative integer, e.g. {SEED_ENV}=1")
    return int(raw)


def setup_lesson(lesson: str, scale: "Scale | str | None" = None, seed: int = 0, device: "str | None" = None) -> LessonContext:
    """Seed everything, resolve the scale and device, apply the plot style; print one line.

    ``scale`` defaults to ``$HDAI_SCALE`` or ``toy``; toy and smoke lessons run on the CPU
    (small models are faster there; the checked outputs are the same on any float path).
    ``seed`` is the lesson's base seed; ``$HDAI_SEED`` overrides it, so a claim can be rerun on
    seeds the lesson was not written with. Every seed the lesson uses derives from ``ctx.seed``.
    """
    seed = seed_from_env(seed)
    resolved = get_scale(scale)
    threads = set_threads()
    gen = seed_everything(seed)
    dev = get_device(device if device is not None else (None if resolved is Scale.FULL else "cpu"))
    use_course_style()
    print(f"Lesson {lesson} · scale={resolved} · device={dev} · seed={seed} · torch {torch.__version__} · threads={threads}")
    return LessonContext(lesson=lesson, scale=resolved, device=dev, seed=seed, generator=gen, threads=threads)
