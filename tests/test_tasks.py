"""Task generators and verifiers: exact on well-formed answers, fuzzed for crashes and code execution."""
import builtins
import contextlib
import random
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hdai_lessons.tasks import (ArithmeticTask, CountdownTask, GSM8KTask, ParseError, evaluate_expression,
                                extract_gsm8k_answer, parse_integer, problem_from_record, rewards_for,
                                split_problems, synthetic_gsm8k)

FUZZ = settings(max_examples=300, deadline=None)
ANY_TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=120)
EXPR_TEXT = st.text(alphabet="0123456789+-*/() _.abc<>=#\n", max_size=80)


@contextlib.contextmanager
def no_eval():
    """Fail if the code inside reaches eval/exec/compile (patched only while the verifier runs)."""
    def boom(*a, **k):
        raise AssertionError("verifier executed code")
    saved = {n: getattr(builtins, n) for n in ("eval", "exec", "compile")}
    try:
        for n in saved:
            setattr(builtins, n, boom)
        yield
    finally:
        for n, f in saved.items():
            setattr(builtins, n, f)


# ------------------------------------------------------------------ arithmetic
def test_arithmetic_exact_on_gold_and_rejects_near_misses():
    task = ArithmeticTask(1, 3, "+-*")
    for p in task.sample(200, random.Random(0)):
        a, b, op = p.meta["a"], p.meta["b"], p.meta["op"]
        assert int(p.answer) == {"+": a + b, "-": a - b, "*": a * b}[op]
        assert task.reward(p, p.answer) == 1.0 and task.reward(p, f" {p.answer}\n") == 1.0
        assert task.reward(p, str(int(p.answer) + 1)) == 0.0
        assert task.reward(p, p.answer + "0") == 0.0 and task.reward(p, p.answer + " 1") == 0.0


@given(st.integers(-10**12, 10**12))
def test_parse_integer_roundtrip(n):
    assert parse_integer(str(n)) == n and parse_integer(f"{n}.5") is None and parse_integer(f"+{abs(n)}") is None


@FUZZ
@given(ANY_TEXT)
def test_arithmetic_verifier_fuzz(text):
    task = ArithmeticTask()
    (p,) = task.sample(1, random.Random(1))
    with no_eval():
        r = task.reward(p, text)
    assert r in (0.0, 1.0)
    assert r == float(parse_integer(text) == int(p.answer))


# ------------------------------------------------------------------ countdown
def test_countdown_targets_are_reachable_and_rewards_graded():
    task = CountdownTask()
    for p in task.sample(100, random.Random(2)):
        value, used = evaluate_expression(p.target)
        assert value == p.meta["target"] and sorted(used) == sorted(p.meta["numbers"])
        assert task.reward(p, p.target) == 1.0
        assert task.reward(p, f"<answer>{p.target}</answer>") == 1.0
        a, b, c = p.meta["numbers"]
        wrong = f"{a}+{b}+{c}"
        expected = 1.0 if a + b + c == p.meta["target"] else 0.1
        assert task.reward(p, wrong) == expected                  # well-formed: 1.0 or 0.1
        assert task.reward(p, f"{a}+{b}") == 0.0                  # a number left unused
        assert task.reward(p, f"{a}+{b}+{c}+{c}") == 0.0          # a number used twice


def test_expression_parser_precedence_and_errors():
    assert evaluate_expression("2+3*4")[0] == 14
    assert evaluate_expression("(2+3)*4")[0] == 20
    assert evaluate_expression("7/2")[0] == Fraction(7, 2)
    assert evaluate_expression("8-2-1")[0] == 5                    # left associative
    with no_eval():
        assert CountdownTask().reward(CountdownTask().sample(1, random.Random(0))[0], "__import__('os').system('x')") == 0.0
    for bad in ("1/0", "2**3", "__import__('os')", "1+", "(1+2", "1 2", "", "(" * 40 + "1" + ")" * 40, "1" * 80):
        with pytest.raises(ParseError):
            evaluate_expression(bad)


@FUZZ
@given(EXPR_TEXT)
def test_countdown_verifier_fuzz_never_executes(text):
    task = CountdownTask()
    (p,) = task.sample(1, random.Random(3))
    with no_eval():
        r = task.reward(p, text)
    assert r in (0.0, 0.1, 1.0)


@FUZZ
@given(st.lists(st.integers(0, 999), min_size=1, max_size=4), st.lists(st.sampled_from("+-*"), min_size=3, max_size=3))
def test_parser_matches_integer_arithmetic(nums, ops):
    expr = str(nums[0])
    ref = nums[0]
    # left-to-right + and - only → compare against Python ints (no precedence subtleties)
    for n, op in zip(nums[1:], ops):
        op = "+" if op == "*" else op
        expr += f"{op}{n}"
        ref = ref + n if op == "+" else ref - n
    assert evaluate_expression(expr) == (Fraction(ref), nums)


# ------------------------------------------------------------------ GSM8K
def test_gsm8k_extraction_examples():
    assert extract_gsm8k_answer("She pays 3*4 = <<3*4=12>>12.\n#### 12") == "12"
    assert extract_gsm8k_answer("#### 1,000") == "1000"
    assert extract_gsm8k_answer("It costs $18.00 in total.") == "18"
    assert extract_gsm8k_answer("first 3 then 5 then -2") == "-2"
    assert extract_gsm8k_answer("#### 0.5") == "0.5"
    assert extract_gsm8k_answer("no numbers here") is None
    assert extract_gsm8k_answer("#### ") is None


def test_gsm8k_reward_and_records():
    probs = synthetic_gsm8k(30, seed=0)
    task = GSM8KTask(tuple(probs))
    for p in probs:
        assert task.reward(p, p.target) == 1.0
        assert task.reward(p, f"The answer is {p.answer}.") == 1.0
        assert task.reward(p, f"#### {int(p.answer) + 1}") == 0.0
    with pytest.raises(ValueError, match="####"):
        problem_from_record("q", "no final line")
    with pytest.raises(ValueError, match="no problems"):
        GSM8KTask().sample(1, random.Random(0))


@FUZZ
@given(ANY_TEXT)
def test_gsm8k_extraction_fuzz(text):
    with no_eval():
        out = extract_gsm8k_answer(text)
    assert out is None or Fraction(out) is not None


@FUZZ
@given(st.integers(-10**9, 10**9), st.text(alphabet="abc .,\n", max_size=20))
def test_gsm8k_exact_on_well_formed(n, prefix):
    assert extract_gsm8k_answer(f"{prefix}\n#### {n:,}") == str(n)


def test_load_gsm8k_from_parquet_snapshot(tmp_path):
    pytest.importorskip("datasets")
    import pandas as pd
    from hdai_lessons.tasks import load_gsm8k
    (tmp_path / "main").mkdir()
    recs = [{"question": p.prompt.split("\n")[0], "answer": p.target} for p in synthetic_gsm8k(5, seed=1)]
    pd.DataFrame(recs).to_parquet(tmp_path / "main" / "train-00000-of-00001.parquet")
    probs = load_gsm8k(tmp_path, "train")
    assert len(probs) == 5 and all(GSM8KTask(tuple(probs)).reward(p, p.target) == 1.0 for p in probs)
    with pytest.raises(FileNotFoundError, match="fetch 01.4"):
        load_gsm8k(tmp_path, "test")


# ------------------------------------------------------------------ helpers
def test_split_is_disjoint_and_rewards_shape():
    task = ArithmeticTask()
    train, held = split_problems(task, 300, 50, seed=0)
    assert len(train) == 300 and len(held) == 50
    assert not {p.prompt for p in train} & {p.prompt for p in held}
    r = rewards_for(task, held[:2], [[held[0].answer, "x"], ["1", held[1].answer]])
    assert r == [[1.0, 0.0], [float(held[1].answer == "1"), 1.0]]
    with pytest.raises(ValueError):
        split_problems(ArithmeticTask(1, 1, "+"), 500, 10, seed=0)   # only 100 distinct prompts exist


# ------------------------------------------------------------------ verifiers under hostile input (issue 15)
import time  # noqa: E402

from hdai_lessons.tasks import Problem, extract_answer, normalize_number  # noqa: E402

_GOLD12 = Problem(prompt="q", answer="12", target="#### 12")


@pytest.mark.parametrize("completion", ["#### ,,1,,2,,", "#### 1,,2", "#### 12,34", "the answer is 1,2", "#### ١٢",
                                        "#### 1٢", "#### ", "no number"])
def test_gsm8k_never_rewards_an_unparseable_answer(completion):
    assert GSM8KTask((_GOLD12,)).reward(_GOLD12, completion) == 0.0


def test_gsm8k_two_unparseable_values_do_not_match():
    bad_gold = Problem(prompt="q", answer="1,,2", target="")
    assert normalize_number("1,,2") is None
    assert GSM8KTask((bad_gold,)).reward(bad_gold, "#### ,,") == 0.0
    assert GSM8KTask((bad_gold,)).reward(bad_gold, "#### 1,,2") == 0.0


def test_gsm8k_accepts_numbers_as_people_write_them():
    for text in ("#### 12", "#### $12.", "so it is 12", "#### 12 apples", "#### 12.0"):
        assert GSM8KTask((_GOLD12,)).reward(_GOLD12, text) == 1.0, text
    assert normalize_number("$1,234.50") == normalize_number("1234.5")
    assert extract_gsm8k_answer("#### 1,200,000") == "1200000"


def test_unicode_digits_are_rejected_by_every_verifier():
    assert normalize_number("١٢") is None and parse_integer("1٢") is None and parse_integer("١٢") is None
    task = CountdownTask()
    p = Problem(prompt="", answer="12", target="", meta={"numbers": (3, 4, 1), "target": 12})
    assert task.reward(p, "3*4*1") == 1.0 and task.reward(p, "٣*4*1") == 0.0


def test_countdown_extraction_is_linear_in_the_length():
    hostile = "<answer>" * 8192                       # 64 KB of unclosed tags: quadratic for a lazy regex
    start = time.perf_counter()
    assert extract_answer(hostile) == hostile.split("\n", 1)[0]
    assert extract_answer("x<answer> 3+4 </answer><answer>9</answer>") == " 3+4 "
    assert time.perf_counter() - start < 1.0          # the quadratic version took ~9 s here


@settings(max_examples=400, deadline=None, derandomize=True)
@given(st.text(max_size=200))
def test_fuzzed_answers_never_crash_and_score_only_exact_numbers(text):
    gsm = GSM8KTask((_GOLD12,)).reward(_GOLD12, text)
    assert gsm in (0.0, 1.0)
    if gsm == 1.0:
        assert normalize_number(extract_gsm8k_answer(text)) == 12
    p = Problem(prompt="", answer="12", target="", meta={"numbers": (3, 4, 1), "target": 12})
    assert CountdownTask().reward(p, text) in (0.0, 0.1, 1.0)
    value = parse_integer(text)
    assert value is None or str(value) == text.strip()
