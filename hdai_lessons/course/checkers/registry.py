"""Exercises: what a learner implements, the reference, the test cases and the known mistakes.

Each module keeps its bank in ``hdai_lessons/<module>/exercises.py`` and calls ``register``.
An exercise id is ``"MM.L.E"``: module, lesson, exercise (``"01.2.3"``).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from hdai_lessons.core.modules import MODULE_PACKAGES



@dataclass(frozen=True)
class Case:
    """One call of the function under test: ``fn(*args, **kwargs)``; ``label`` names it in feedback."""

    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    label: str = ""


@dataclass(frozen=True)
class Mistake:
    """A known-wrong implementation, and the hint shown when a learner's output matches it."""

    name: str
    fn: Callable[..., Any]
    hint: str


@dataclass
class Exercise:
    """A focused function to implement, with everything its checker needs.

    Attributes:
        id: ``"MM.L.E"``.
        title: what the learner builds, e.g. "group-normalised advantages".
        reference: the package's implementation (the fallback for an unsolved exercise).
        cases: builds the test cases (deterministic: seed inside).
        mistakes: known-wrong implementations; a test proves the checker rejects each.
        difficulty, importance: 1 (low) to 3 (high). minutes: time to budget for it.
        atol, rtol: tolerances for floating outputs.
        grad_wrt: positional-argument indices whose gradients must match the reference's
            (catches a missing or extra ``detach``).
        check_fn: optional extra property check ``(fn) -> str | None`` run after the cases.
    """

    id: str
    title: str
    reference: Callable[..., Any]
    cases: Callable[[], Sequence[Case]]
    mistakes: Sequence[Mistake] = ()
    difficulty: int = 1
    importance: int = 2
    minutes: int = 10
    atol: float = 1e-5
    rtol: float = 1e-4
    grad_wrt: tuple = ()
    check_fn: "Callable[[Callable[..., Any]], str | None] | None" = None

    @property
    def lesson(self) -> str:
        return self.id.rsplit(".", 1)[0]

    @property
    def stars(self) -> str:
        return f"difficulty {'●' * self.difficulty}{'○' * (3 - self.difficulty)}, importance {'●' * self.importance}{'○' * (3 - self.importance)}, ~{self.minutes} min"


_REGISTRY: dict[str, Exercise] = {}


def register(exercise: Exercise) -> Exercise:
    """Add an exercise to the course registry (ids are unique)."""
    parts = exercise.id.split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise ValueError(f"exercise id must look like 'MM.L.E' (e.g. '01.2.3'), got {exercise.id!r}")
    if exercise.id in _REGISTRY and _REGISTRY[exercise.id] is not exercise:
        raise ValueError(f"exercise {exercise.id} registered twice")
    _REGISTRY[exercise.id] = exercise
    return exercise


def _load_module_bank(module: str) -> None:
    package = MODULE_PACKAGES.get(module)
    if package is None:
        return
    try:
        importlib.import_module(f"{package}.exercises")
    except ModuleNotFoundError as err:
        if err.name not in (package, f"{package}.exercises"):
            raise  # a real import error inside the bank, not a module that does not exist yet


def get_exercise(exercise_id: str) -> Exercise:
    """Look up an exercise by id, loading its module's bank on first use."""
    if exercise_id not in _REGISTRY:
        _load_module_bank(exercise_id.split(".")[0])
    try:
        return _REGISTRY[exercise_id]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise KeyError(f"unknown exercise {exercise_id!r}; known: {known}") from None


def all_exercises() -> list[Exercise]:
    """Every exercise of every module that exists, sorted by id."""
    for module in MODULE_PACKAGES:
        _load_module_bank(module)
    return [_REGISTRY[k] for k in sorted(_REGISTRY, key=lambda s: tuple(int(p) for p in s.split(".")))]
