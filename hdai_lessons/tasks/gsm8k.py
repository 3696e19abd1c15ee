"""GSM8K: answer extraction and reward, the real dataset at full scale, GSM8K-format examples at toy.

GSM8K solutions end with ``#### <number>``; a model's answer is the number after its last ``####``,
else the last number in its text. Numbers compare exactly after removing ``,``/``$`` (``1,000`` = ``1000``).
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from hdai_lessons.tasks.base import Problem

_NUMBER = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?", re.ASCII)   # a candidate; ``normalize_number`` decides
# A number as people write it: ASCII digits, commas only as thousands separators, an optional decimal part.
_STRICT = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?", re.ASCII)
_MAX_CHARS = 20_000  # verifier looks at the tail only: no quadratic regex on huge outputs

INSTRUCTION = "Solve the problem. End your answer with '#### ' followed by the final number."


def normalize_number(text: str) -> "Fraction | None":
    """``"$1,234.50"`` → ``Fraction(2469, 2)``; ``None`` if ``text`` is not a number.

    Commas count only as thousands separators (``"1,,2"`` and ``"12,34"`` are not numbers), digits
    are ASCII only, and at most 40 characters are read.

    Lessons 01.4, 02.4 (exercise 01.4.3); GSM8K's '#### answer' convention (no paper equation).
    """
    if not isinstance(text, str):
        return None
    s = text.strip().replace("$", "").rstrip(".")
    if len(s) > 40 or not _STRICT.fullmatch(s):
        return None
    return Fraction(s.replace(",", ""))


def extract_gsm8k_answer(text: str) -> "str | None":
    """The final answer in a GSM8K-style solution: after the last ``####``, else the last number.

    >>> extract_gsm8k_answer("She pays 3*4 = <<3*4=12>>12 dollars.\\n#### 12")
    '12'
    >>> extract_gsm8k_answer("so the total is $1,200.") , extract_gsm8k_answer("no idea")
    ('1200', None)

    Lessons 01.4, 02.4 (exercise 01.4.3); GSM8K's '#### answer' convention (no paper equation).
    """
    if not isinstance(text, str):
        return None
    text = text[-_MAX_CHARS:]
    if "####" in text:
        text = text.rsplit("####", 1)[1]
        m = _NUMBER.search(text)
    else:
        found = _NUMBER.findall(text)
        m = None
        if found:
            value = normalize_number(found[-1])
            return None if value is None else _format(value)
    if m is None:
        return None
    value = normalize_number(m.group(0))
    return None if value is None else _format(value)


def _format(x: Fraction) -> str:
    return str(x.numerator) if x.denominator == 1 else str(float(x))


@dataclass(frozen=True)
class GSM8KTask:
    """GSM8K problems (``problems`` from ``load_gsm8k`` or ``synthetic_gsm8k``) with an exact reward.

    Lessons 01.4, 02.4 (exercise 01.4.3); GSM8K's '#### answer' convention (no paper equation).
    """

    problems: tuple = field(default=(), repr=False)
    name: str = "gsm8k"

    def sample(self, n: int, rng: random.Random) -> list[Problem]:
        if not self.problems:
            raise ValueError("GSM8KTask has no problems: pass load_gsm8k(...) or synthetic_gsm8k(...)")
        return [self.problems[rng.randrange(len(self.problems))] for _ in range(n)]

    def reward(self, problem: Problem, completion: str) -> float:
        """1.0 iff the extracted answer is a number equal to the gold number; an unparseable answer never scores."""
        got = normalize_number(extract_gsm8k_answer(completion) or "")
        gold = normalize_number(problem.answer)
        return float(got is not None and gold is not None and got == gold)


def problem_from_record(question: str, solution: str) -> Problem:
    """A ``Problem`` from one GSM8K record (``question``, ``answer`` = worked solution + ``#### x``).

    Lessons 01.4, 02.4 (exercise 01.4.3); GSM8K's '#### answer' convention (no paper equation).
    """
    gold = extract_gsm8k_answer(solution)
    if gold is None or "####" not in solution:
        raise ValueError(f"GSM8K solution has no '#### <number>' line: {solution[-80:]!r}")
    return Problem(prompt=f"{question.strip()}\n{INSTRUCTION}", answer=gold, target=solution.strip())


def load_gsm8k(snapshot_dir: "str | Path", split: str = "train", limit: "int | None" = None) -> list[Problem]:
    """GSM8K ``main`` split from a local ``openai/gsm8k`` snapshot (parquet files), as ``Problem``s.

    Raises ``FileNotFoundError`` when the snapshot lacks the split, ``ImportError`` naming the extra to
    install when ``datasets`` is absent.

    Lessons 01.4, 02.4 (exercise 01.4.3); GSM8K's '#### answer' convention (no paper equation).
    """
    try:
        from datasets import load_dataset
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("loading GSM8K needs `datasets`: pip install -e '.[full]'") from err
    files = sorted(Path(snapshot_dir).glob(f"main/{split}-*.parquet"))
    if not files:
        raise FileNotFoundError(f"no main/{split}-*.parquet under {snapshot_dir}; run `hdai-lessons fetch 01.4`")
    ds = load_dataset("parquet", data_files=[str(f) for f in files], split="train")
    rows = ds if limit is None else ds.select(range(min(limit, len(ds))))
    return [problem_from_record(r["question"], r["answer"]) for r in rows]


_NAMES = ("Ava", "Ben", "Chen", "Dana", "Eli", "Fatima", "Gus", "Hana")
_ITEMS = ("apples", "books", "coins", "pens", "stamps", "shells")


def synthetic_gsm8k(n: int, seed: int = 0, max_value: int = 20) -> list[Problem]:
    """``n`` GSM8K-*format* word problems generated in memory (toy/smoke stand-in for the dataset).

    Same record shape as GSM8K (question; worked solution with ``<<a+b=c>>`` and ``#### c``), so the
    full-scale pipeline runs unchanged on them.

    Lessons 01.4, 02.4 (exercise 01.4.3); GSM8K's '#### answer' convention (no paper equation).
    """
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
        a, b = rng.randint(1, max_value), rng.randint(1, max_value)
        if rng.random() < 0.5:
            q = f"{name} has {a} {item} and gets {b} more. How many {item} does {name} have?"
            c, op = a + b, "+"
        else:
            a, b = max(a, b), min(a, b)
            q = f"{name} has {a} {item} and gives away {b}. How many {item} are left?"
            c, op = a - b, "-"
        sol = f"{a}{op}{b}=<<{a}{op}{b}={c}>>{c}\n#### {c}"
        out.append(problem_from_record(q, sol))
    return out
