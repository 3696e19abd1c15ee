"""Exercises and their checkers (COURSE.md §5): registry, comparison, checking, learner versions."""
from .check import CheckFailure, check, check_exercise, find_problem
from .compare import cmp, describe_difference
from .registry import Case, Exercise, Mistake, all_exercises, get_exercise, register

__all__ = [
    "Case", "CheckFailure", "Exercise", "Mistake", "all_exercises", "check", "check_exercise",
    "cmp", "describe_difference", "find_problem", "get_exercise", "register",
]
