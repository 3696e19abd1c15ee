"""Exercises and their checkers (COURSE.md §5): registry, comparison, checking, learner versions."""
from hdai_lessons.course.checkers.check import CheckFailure, check, check_exercise, find_problem, whose
from hdai_lessons.course.checkers.compare import cmp, describe_difference
from hdai_lessons.course.checkers.registry import Case, Exercise, Mistake, all_exercises, get_exercise, register

__all__ = [
    "Case", "CheckFailure", "Exercise", "Mistake", "all_exercises", "check", "check_exercise",
    "cmp", "describe_difference", "find_problem", "get_exercise", "register", "whose",
]
