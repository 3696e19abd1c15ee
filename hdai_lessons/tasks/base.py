"""What every generated task provides: problems with a gold answer, and an exact verifier.

A task is anything with ``sample(n, rng) -> list[Problem]`` and ``reward(problem, completion) -> float``.
Verifiers *parse* model output; they never evaluate it as code.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence


@dataclass(frozen=True)
class Problem:
    """One prompt with its verifiable answer.

    Attributes:
        prompt: the text shown to the model (before any chat template), e.g. ``"37+85="``.
        answer: the gold answer the verifier compares with, e.g. ``"122"``.
        target: a correct completion for supervised warm-up (often ``answer`` itself).
        meta: task-specific data the verifier needs (e.g. Countdown's numbers).

    Lessons 01.3, 01.4, 02.3, 02.4; no paper equation.
    """

    prompt: str
    answer: str
    target: str
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


class Task(Protocol):
    """A generator of problems with an exact verifier.

    Lessons 01.3, 01.4, 02.3, 02.4; the verifier r(x, y) of RLVR (LPO digest, "Notation").
    """

    name: str

    def sample(self, n: int, rng: random.Random) -> list[Problem]: ...

    def reward(self, problem: Problem, completion: str) -> float: ...


def rewards_for(task: Task, problems: Sequence[Problem], completions: Sequence[Sequence[str]]) -> list[list[float]]:
    """Verifier rewards for K completions per problem: ``(B, K)`` nested lists.

    Lesson 01.3; the verifier r(x, y) of RLVR (LPO digest, "Notation").
    """
    if len(problems) != len(completions):
        raise ValueError(f"{len(problems)} problems but {len(completions)} groups of completions")
    return [[float(task.reward(p, c)) for c in group] for p, group in zip(problems, completions)]


def split_problems(task: Task, n_train: int, n_eval: int, seed: int) -> tuple[list[Problem], list[Problem]]:
    """Disjoint train / held-out problem sets (held-out prompts never appear in training).

    Lessons 01.3, 02.3; no paper equation.
    """
    rng = random.Random(seed)
    seen: set[str] = set()
    train: list[Problem] = []
    held: list[Problem] = []
    tries = 0
    while len(held) < n_eval or len(train) < n_train:
        tries += 1
        if tries > 100 * (n_train + n_eval) + 1000:
            raise ValueError(f"task {task.name} cannot produce {n_train}+{n_eval} distinct prompts")
        (p,) = task.sample(1, rng)
        if p.prompt in seen:
            continue
        seen.add(p.prompt)
        (held if len(held) < n_eval else train).append(p)
    return train, held
