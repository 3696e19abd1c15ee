"""Lesson 00.1's example of the scale ladder: a lesson's sizes live in a config, chosen once by scale.

Every lesson of the course reads its sizes (steps, seeds, evaluation sizes) from a config class's
``for_scale(scale)``, the one place where the rungs ``smoke`` / ``toy`` / ``full`` differ; the notebook
never branches on the scale itself.
"""
from __future__ import annotations

from dataclasses import dataclass

from hdai_lessons.core.scale import by_scale


@dataclass
class WelcomeLessonConfig:
    """Lesson 00.1's settings: how long a trainer in this course would run at each rung.

    Lesson 00.1 (section 1, the scale ladder); course machinery, no paper equation.
    """

    steps: int = 300
    """Training steps of a typical lesson's trainer (smoke 5, toy 300, full 20 000)."""

    @classmethod
    def for_scale(cls, scale=None) -> "WelcomeLessonConfig":
        """The rung's settings: smoke proves the path runs, toy is the lesson, full is a GPU run."""
        return by_scale(scale, smoke=cls(steps=5), toy=cls(), full=cls(steps=20_000))
