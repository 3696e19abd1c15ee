"""Multi-digit arithmetic with an exact verifier: ``"37+85="`` → ``"122"``.

The verifier accepts exactly one integer in canonical form (optional minus, no leading zeros, spaces
around allowed) and compares it
with the gold answer; anything else (extra text, two numbers, a decimal) scores 0.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass

from hdai_lessons.tasks.base import Problem

_INT = re.compile(r"\s*(-?(?:0|[1-9]\d{0,39}))\s*", re.ASCII)  # canonical: no "+", no leading zeros


def parse_integer(text: str) -> "int | None":
    """The integer ``text`` spells exactly in canonical form (whitespace around allowed), else ``None``.

    >>> parse_integer(" 122"), parse_integer("-7"), parse_integer("012"), parse_integer("12 3"), parse_integer("1e3")
    (122, -7, None, None, None)

    Lesson 01.3 (the exact verifier of RLVR); no paper equation.
    """
    if not isinstance(text, str):
        return None
    m = _INT.fullmatch(text)
    return int(m.group(1)) if m else None


@dataclass(frozen=True)
class ArithmeticTask:
    """``a op b =`` with ``a, b`` of ``min_digits..max_digits`` digits, ``op`` in ``ops``.

    Reward 1.0 when the completion is exactly the integer result, else 0.0.

    Lessons 01.3, 02.3; a verifiable-reward task (RLVR; LPO digest, "Notation").
    """

    min_digits: int = 1
    max_digits: int = 2
    ops: str = "+-"
    name: str = "arithmetic"

    def __post_init__(self) -> None:
        if not 1 <= self.min_digits <= self.max_digits <= 12:
            raise ValueError(f"need 1 ≤ min_digits ≤ max_digits ≤ 12, got {self.min_digits}, {self.max_digits}")
        if not self.ops or set(self.ops) - set("+-*"):
            raise ValueError(f"ops must be a non-empty subset of '+-*', got {self.ops!r}")

    def _number(self, rng: random.Random) -> int:
        d = rng.randint(self.min_digits, self.max_digits)
        return rng.randint(0 if d == 1 else 10 ** (d - 1), 10 ** d - 1)

    def sample(self, n: int, rng: random.Random) -> list[Problem]:
        """``n`` problems drawn with ``rng`` (a ``random.Random``)."""
        out = []
        for _ in range(n):
            a, b, op = self._number(rng), self._number(rng), rng.choice(self.ops)
            value = a + b if op == "+" else a - b if op == "-" else a * b
            out.append(Problem(prompt=f"{a}{op}{b}=", answer=str(value), target=str(value), meta={"a": a, "b": b, "op": op}))
        return out

    def reward(self, problem: Problem, completion: str) -> float:
        """1.0 iff ``completion`` is exactly the gold integer (whitespace aside)."""
        got = parse_integer(completion)
        return float(got is not None and got == int(problem.answer))
