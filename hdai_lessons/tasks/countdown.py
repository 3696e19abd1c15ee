"""A mini-Countdown: reach a target with ``+ - * /`` and parentheses, using each given number once.

Model output is parsed by a small tokenizer and recursive-descent parser into exact fractions —
never ``eval``. Reward as in LPO's Countdown runs: 1.0 correct, 0.1 well-formed but wrong, 0.0 else.

    "Use 3 7 25 to make 46: " → "25+3*7"  (an ``<answer>…</answer>`` tag is honoured if present)
"""
from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction

from hdai_lessons.tasks.base import Problem

MAX_EXPR_CHARS = 64     # longer answers are rejected before parsing
MAX_DEPTH = 16          # parenthesis nesting limit (no recursion blow-up on "((((((…")
_TOKEN = re.compile(r"\s*(?:(\d{1,6})|([-+*/()]))", re.ASCII)   # ASCII digits only


class ParseError(ValueError):
    """The text is not a well-formed arithmetic expression.

    Lesson 01.3 (a second verifiable task); no paper equation.
    """


def tokenize_expression(text: str) -> list[str]:
    """Split ``text`` into integer and operator tokens; raise ``ParseError`` on anything else.

    Lesson 01.3 (a second verifiable task); no paper equation.
    """
    if len(text) > MAX_EXPR_CHARS:
        raise ParseError(f"expression longer than {MAX_EXPR_CHARS} characters")
    tokens, pos, stripped = [], 0, text.rstrip()
    while pos < len(stripped):
        m = _TOKEN.match(stripped, pos)
        if m is None:
            raise ParseError(f"unexpected character {stripped[pos]!r} at {pos}")
        tokens.append(m.group(1) or m.group(2))
        pos = m.end()
    if not tokens:
        raise ParseError("empty expression")
    return tokens


class _Parser:
    """expr := term (('+'|'-') term)* ; term := atom (('*'|'/') atom)* ; atom := INT | '(' expr ')'."""

    def __init__(self, tokens: list[str]):
        self.tokens, self.i, self.numbers = tokens, 0, []

    def peek(self) -> "str | None":
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> str:
        tok = self.peek()
        if tok is None:
            raise ParseError("unexpected end of expression")
        self.i += 1
        return tok

    def expr(self, depth: int) -> Fraction:
        value = self.term(depth)
        while self.peek() in ("+", "-"):
            op = self.take()
            rhs = self.term(depth)
            value = value + rhs if op == "+" else value - rhs
        return value

    def term(self, depth: int) -> Fraction:
        value = self.atom(depth)
        while self.peek() in ("*", "/"):
            op = self.take()
            rhs = self.atom(depth)
            if op == "/":
                if rhs == 0:
                    raise ParseError("division by zero")
                value = value / rhs
            else:
                value = value * rhs
        return value

    def atom(self, depth: int) -> Fraction:
        tok = self.take()
        if tok == "(":
            if depth >= MAX_DEPTH:
                raise ParseError("parentheses nested too deeply")
            value = self.expr(depth + 1)
            if self.take() != ")":
                raise ParseError("missing ')'")
            return value
        if tok.isdigit():
            self.numbers.append(int(tok))
            return Fraction(int(tok))
        raise ParseError(f"unexpected token {tok!r}")


def evaluate_expression(text: str) -> tuple[Fraction, list[int]]:
    """Exact value of an arithmetic expression and the integers it uses, by parsing (no ``eval``).

    >>> evaluate_expression("25+3*7")
    (Fraction(46, 1), [25, 3, 7])
    Raises ``ParseError`` for anything that is not ``+ - * / ( )`` over non-negative integers.

    Lesson 01.3 (a second verifiable task); no paper equation.
    """
    parser = _Parser(tokenize_expression(text))
    value = parser.expr(0)
    if parser.peek() is not None:
        raise ParseError(f"unexpected token {parser.peek()!r} after the expression")
    return value, parser.numbers


def extract_answer(completion: str) -> str:
    """The text inside the first ``<answer>…</answer>``, else the completion's first line.

    Two ``str.find`` scans, linear in the length (a lazy regex over many unclosed tags is quadratic).

    Lesson 01.3 (a second verifiable task); no paper equation.
    """
    start = completion.find("<answer>")
    if start >= 0:
        end = completion.find("</answer>", start + len("<answer>"))
        if end >= 0:
            return completion[start + len("<answer>"):end]
    return completion.split("\n", 1)[0]


@dataclass(frozen=True)
class CountdownTask:
    """Reach ``target`` from ``n_numbers`` numbers in ``1..max_number``, each used exactly once.

    Lesson 01.3 (a second verifiable task); no paper equation.
    """

    n_numbers: int = 3
    max_number: int = 20
    name: str = "countdown"

    def _expression(self, numbers: list[int], rng: random.Random) -> str:
        exprs = [str(x) for x in numbers]
        while len(exprs) > 1:
            a, b = exprs.pop(rng.randrange(len(exprs))), exprs.pop(rng.randrange(len(exprs)))
            op = rng.choice("+-*")
            exprs.append(f"({a}{op}{b})" if len(exprs) else f"{a}{op}{b}")
        return exprs[0]

    def sample(self, n: int, rng: random.Random) -> list[Problem]:
        """``n`` solvable problems: a random expression over the numbers fixes a positive target."""
        out = []
        while len(out) < n:
            numbers = [rng.randint(1, self.max_number) for _ in range(self.n_numbers)]
            expr = self._expression(list(numbers), rng)
            value, _ = evaluate_expression(expr)
            if value <= 0 or value.denominator != 1:
                continue
            prompt = f"Use {' '.join(map(str, numbers))} to make {value.numerator}: "
            out.append(Problem(prompt=prompt, answer=str(value.numerator), target=expr,
                               meta={"numbers": tuple(numbers), "target": value.numerator}))
        return out

    def reward(self, problem: Problem, completion: str) -> float:
        """1.0 correct; 0.1 a well-formed expression (numbers used once each) with the wrong value; 0.0 else."""
        try:
            value, used = evaluate_expression(extract_answer(completion))
        except ParseError:
            return 0.0
        if Counter(used) != Counter(problem.meta["numbers"]):
            return 0.0
        return 1.0 if value == problem.meta["target"] else 0.1
