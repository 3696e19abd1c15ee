"""Every checker accepts its reference and rejects each of its known-wrong implementations."""
from __future__ import annotations

import pytest
import torch

from hdai_lessons.course.checkers import (Case, CheckFailure, Exercise, Mistake, all_exercises, check, check_exercise,
                                    describe_difference, find_problem, get_exercise)

EXERCISES = all_exercises()


def test_registry_is_not_empty_and_ids_are_well_formed():
    assert len(EXERCISES) >= 3
    for ex in EXERCISES:
        assert ex.lesson.count(".") == 1


@pytest.mark.parametrize("ex", EXERCISES, ids=lambda e: e.id)
def test_reference_passes(ex):
    assert find_problem(ex.reference, ex) is None


@pytest.mark.parametrize("ex", EXERCISES, ids=lambda e: e.id)
def test_at_least_three_known_mistakes(ex):
    assert len(ex.mistakes) >= 3, f"{ex.id} needs at least 3 known-wrong implementations"
    assert 1 <= ex.difficulty <= 3 and 1 <= ex.importance <= 3 and ex.minutes > 0


@pytest.mark.parametrize(
    "ex,mistake", [(ex, m) for ex in EXERCISES for m in ex.mistakes], ids=lambda v: getattr(v, "id", getattr(v, "name", "")))
def test_every_mistake_is_rejected(ex, mistake):
    problem = find_problem(mistake.fn, ex)
    assert problem is not None, f"checker {ex.id} accepted the known mistake {mistake.name!r}"
    assert "raised" not in problem.split("\n")[0], f"{ex.id}: {mistake.name!r} is rejected only because it crashes"
    assert f"known mistake — {mistake.name}:" in problem, (
        f"{ex.id}: the learner who made {mistake.name!r} is not shown its own hint:\n{problem}")


@pytest.mark.parametrize("ex", EXERCISES, ids=lambda e: e.id)
def test_cases_are_deterministic(ex):
    a, b = list(ex.cases()), list(ex.cases())
    assert len(a) == len(b)
    for ca, cb in zip(a, b):
        assert describe_difference(list(ca.args), list(cb.args)) is None


# --- the feedback itself --------------------------------------------------------------------------

def test_feedback_names_shape_dtype_and_first_index():
    ref = torch.zeros(2, 3)
    assert "shape (3, 2), expected (2, 3)" in describe_difference(torch.zeros(3, 2), ref)
    assert "dtype torch.float64, expected torch.float32" in describe_difference(torch.zeros(2, 3, dtype=torch.float64), ref)
    wrong = ref.clone()
    wrong[1, 2] = 5.0
    msg = describe_difference(wrong, ref)
    assert "first at index (1, 2): got 5, expected 0" in msg and "1 of 6 values differ" in msg
    assert describe_difference(ref + 1e-7, ref) is None
    assert "expected a number" in describe_difference("x", 1.0)
    assert "length 2" in describe_difference([1.0], [1.0, 2.0])


def test_known_mistake_hint_is_shown():
    ex = get_exercise("00.1.2")
    msg = find_problem(lambda x, m, dim=-1: (x * m).mean(dim), ex)
    assert "known mistake" in msg and "divided by the full length" in msg


def test_detach_is_caught_by_the_gradient_check():
    ex = get_exercise("00.1.1")
    msg = find_problem(lambda x: x - torch.logsumexp(x, -1, keepdim=True).detach(), ex)
    assert msg is not None and "gradient" in msg


def test_in_place_modification_is_reported():
    ex = get_exercise("00.1.3")

    def mutating(r, eps=1e-6):
        out = (r - r.mean(-1, keepdim=True)) / (r.std(-1, unbiased=False, keepdim=True) + eps)
        r.zero_()
        return out

    assert "modified in place" in find_problem(mutating, ex)


def test_check_prints_a_pass_line(capsys):
    ex = get_exercise("00.1.3")
    check(ex.reference, ex)
    assert capsys.readouterr().out.startswith("✔ Exercise 00.1.3 passed")


def test_check_raises_with_feedback():
    with pytest.raises(CheckFailure, match="Exercise 00.1.2"):
        check(lambda x, m, dim=-1: x.mean(dim), "00.1.2")


def test_unsolved_exercise_falls_back_to_reference(capsys):
    def stub(x):
        raise NotImplementedError("Exercise 00.1.1: replace this line")

    fn = check_exercise("00.1.1", stub)
    assert fn is get_exercise("00.1.1").reference
    assert "not solved yet" in capsys.readouterr().out


def test_wrong_exercise_falls_back_unless_strict(monkeypatch, capsys):
    wrong = lambda x, m, dim=-1: x.mean(dim)  # noqa: E731
    monkeypatch.setenv("HDAI_EXERCISES_STRICT", "0")
    assert check_exercise("00.1.2", wrong) is get_exercise("00.1.2").reference
    assert "failed" in capsys.readouterr().out
    monkeypatch.setenv("HDAI_EXERCISES_STRICT", "1")
    with pytest.raises(CheckFailure):
        check_exercise("00.1.2", wrong)


def test_unknown_exercise_lists_known_ids():
    with pytest.raises(KeyError, match="unknown exercise '00.1.99'; known: .*00.1.1"):
        get_exercise("00.1.99")


def test_register_rejects_bad_ids():
    from hdai_lessons.course.checkers import register

    with pytest.raises(ValueError, match="MM.L.E"):
        register(Exercise(id="1.2", title="x", reference=abs, cases=lambda: [Case((1,))],
                          mistakes=[Mistake("m", abs, "h")]))


def test_feedback_rejects_numpy_for_a_tensor_and_leads_with_nan():
    import numpy as np

    from hdai_lessons.course.checkers import describe_difference

    ref = torch.tensor([1.0, 2.0])
    assert "expected a torch.Tensor" in describe_difference(np.array([1.0, 2.0], dtype=np.float32), ref)
    msg = describe_difference(torch.tensor([1.0, float("nan")]), ref)
    assert msg.startswith("output: 1 of 2 values are NaN/inf where the reference is finite") and "max abs error" not in msg


def test_failure_shows_the_failing_inputs():
    ex = get_exercise("01.2.3")
    problem = find_problem(lambda n, c, k: 0.5, ex)
    assert "inputs: (10, 3, 5)" in problem


def test_labels_say_whose_function_ran():
    from hdai_lessons.course.checkers import whose

    def mine(x):
        return x

    mine.__module__ = "__main__"                      # what a function defined in a notebook cell carries
    assert whose(mine) == "yours"
    assert whose(get_exercise("00.1.1").reference) == "reference"
