"""Catch-up checkpoints: restore the state after any exercise of any lesson with one call.

``catch_up("01.2", exercise=3)`` runs, in the participant's own kernel, the lesson's code cells
from the top through the cell that checks exercise 01.2.3 — with the reference solutions — so a
participant who fell behind continues from exactly where the room is. Outputs are captured, not
shown. It runs the course's own lesson source (never model output), through IPython's
``run_cell``.
"""
from __future__ import annotations

import re
import time
from typing import Any

import nbformat

from hdai_lessons.course.checkers.registry import all_exercises, get_exercise
from hdai_lessons.course.catalogue import Lesson, get_lesson

_CHECK = re.compile(r"""(\w+)\s*=\s*check_exercise\(\s*["'](\d+\.\d+\.\d+)["']""")


def exercise_cells(lesson: Lesson) -> dict[str, tuple[int, str]]:
    """Map exercise id → (index among the lesson's code cells, the name the learner's function has)."""
    nb = nbformat.read(str(lesson.path), as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    found: dict[str, tuple[int, str]] = {}
    for i, cell in enumerate(code):
        for name, ex_id in _CHECK.findall(cell.source):
            found.setdefault(ex_id, (i, name))
    return found


def lesson_exercise_ids(lesson_id: str) -> list[str]:
    """The registered exercises of a lesson, in order."""
    return [e.id for e in all_exercises() if e.lesson == lesson_id]


def catch_up(lesson_id: str, exercise: int, shell: Any = None, scale: "str | None" = None) -> dict:
    """Run lesson ``lesson_id`` up to and including exercise ``exercise``'s checked cell.

    Args:
        lesson_id: e.g. ``"01.2"``.
        exercise: the exercise number within the lesson (``3`` for ``"01.2.3"``).
        shell: an IPython ``InteractiveShell``; defaults to the running kernel's.
        scale: override the lesson's ``SCALE`` parameter (e.g. ``"smoke"`` in a hurry).
    Returns:
        ``{"lesson", "exercise", "cells", "seconds", "name"}``; the shell's namespace now holds
        everything the lesson defined so far, with the reference solution under ``name``.
    """
    lesson = get_lesson(lesson_id)
    ex_id = f"{lesson.id}.{int(exercise)}"
    get_exercise(ex_id)  # a clear error for an exercise that does not exist
    cells = exercise_cells(lesson)
    if ex_id not in cells:
        raise KeyError(f"lesson {lesson.id} has no cell that checks exercise {ex_id}; its exercises: {', '.join(sorted(cells))}")
    if shell is None:
        try:
            from IPython import get_ipython
        except ImportError:  # pragma: no cover - IPython ships with Jupyter
            get_ipython = lambda: None  # noqa: E731
        shell = get_ipython()
        if shell is None:
            raise RuntimeError("catch_up runs inside a Jupyter notebook or IPython (or pass shell=...)")
    from IPython.utils.capture import capture_output

    nb = nbformat.read(str(lesson.path), as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    last, name = cells[ex_id]
    start = time.perf_counter()
    for i, cell in enumerate(code[: last + 1]):
        with capture_output():
            result = shell.run_cell(cell.source, store_history=False, silent=True)
        if not result.success:
            err = result.error_in_exec or result.error_before_exec
            raise RuntimeError(f"catch-up of lesson {lesson.id} stopped at code cell {i + 1}: {type(err).__name__}: {err}")
        if "parameters" in cell.get("metadata", {}).get("tags", []) and scale is not None:
            shell.user_ns["SCALE"] = scale
    seconds = time.perf_counter() - start
    print(f"✔ Caught up: lesson {lesson.id} through exercise {ex_id} ({last + 1} cells in {seconds:.1f} s). "
          f"`{name}` is now the reference solution; continue from the next cell.")
    return {"lesson": lesson.id, "exercise": ex_id, "cells": last + 1, "seconds": seconds, "name": name}
