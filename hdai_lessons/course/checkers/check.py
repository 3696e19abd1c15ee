"""The checker: run a learner's function against the reference on every case, say what is wrong.

``check(fn, exercise)`` raises ``CheckFailure`` with specific feedback (which case, shape, dtype,
first differing index with both values, gradient mismatch, input mutated, and — when the output
matches a known mistake — that mistake's hint) or prints one pass line.

``check_exercise(id, fn)`` is what lessons call: it returns the function later cells should use
(the learner's when it passes, the reference with a loud notice when the exercise is unsolved).
"""
from __future__ import annotations

import copy
import os
from typing import Any, Callable

import torch

from hdai_lessons.course.checkers.compare import describe_difference
from hdai_lessons.course.checkers.registry import Case, Exercise, get_exercise

STRICT_ENV = "HDAI_EXERCISES_STRICT"


class CheckFailure(AssertionError):
    """A learner's implementation disagrees with the reference; the message says how."""


def _clone(x: Any) -> Any:
    if torch.is_tensor(x):
        return x.detach().clone()
    return copy.deepcopy(x)


def _call(fn: Callable[..., Any], case: Case, grad_wrt: tuple) -> tuple[Any, tuple]:
    args = [_clone(a) for a in case.args]
    for i in grad_wrt:
        args[i] = args[i].detach().clone().requires_grad_(True)
    out = fn(*args, **{k: _clone(v) for k, v in case.kwargs.items()})
    return out, tuple(args)


def _grads(out: Any, inputs: tuple, grad_wrt: tuple) -> "list[torch.Tensor] | str":
    if not torch.is_tensor(out) or not out.requires_grad:
        return "output does not depend differentiably on the inputs (was it detached, or computed in numpy?)"
    g = torch.Generator().manual_seed(1234)
    cotangent = torch.randn(out.shape, generator=g, dtype=out.dtype)
    wrt = [inputs[i] for i in grad_wrt]
    grads = torch.autograd.grad(out, wrt, grad_outputs=cotangent, allow_unused=True)
    return [torch.zeros_like(w) if gr is None else gr for gr, w in zip(grads, wrt)]


def _case_name(case: Case, k: int) -> str:
    return f"case {k + 1}" + (f" ({case.label})" if case.label else "")


def _same_behaviour(exercise: Exercise, a: tuple[Any, tuple], b: tuple[Any, tuple]) -> bool:
    """Two calls' outputs agree, and so do their gradients when the exercise checks gradients."""
    (out_a, in_a), (out_b, in_b) = a, b
    if describe_difference(out_a, out_b, atol=exercise.atol, rtol=exercise.rtol) is not None:
        return False
    if not exercise.grad_wrt:
        return True
    ga, gb = _grads(out_a, in_a, exercise.grad_wrt), _grads(out_b, in_b, exercise.grad_wrt)
    if isinstance(ga, str) or isinstance(gb, str):
        return isinstance(ga, str) and isinstance(gb, str)
    return all(describe_difference(x, y, atol=exercise.atol, rtol=exercise.rtol) is None for x, y in zip(ga, gb))


def _matching_mistake(exercise: Exercise, cases: list[Case], fn: Callable[..., Any]) -> "str | None":
    """The hint of the known mistake that behaves like ``fn`` on *every* case (values and gradients).

    Matching on every case, not just the failing one, keeps two mistakes that agree on one input from
    being confused; when no mistake matches throughout, no hint is shown rather than a wrong one.
    """
    for mistake in exercise.mistakes:
        try:
            if all(_same_behaviour(exercise, _call(fn, c, exercise.grad_wrt), _call(mistake.fn, c, exercise.grad_wrt))
                   for c in cases):
                return f"This looks like a known mistake — {mistake.name}: {mistake.hint}"
        except Exception:
            continue
    return None


def _describe_value(x: Any, limit: int = 6) -> str:
    """A short, readable rendering of one input: small tensors in full, large ones by shape and dtype."""
    if torch.is_tensor(x):
        head = f"tensor{tuple(x.shape)} {str(x.dtype).replace('torch.', '')}"
        if x.numel() <= limit:
            return f"{head} {[round(v, 6) if isinstance(v, float) else v for v in x.detach().flatten().tolist()]}"
        return head
    if callable(x):
        return getattr(x, "__name__", type(x).__name__)
    text = repr(x)
    return text if len(text) <= 60 else text[:57] + "..."


def describe_inputs(case: Case) -> str:
    """The inputs of a case, one short item each: what a learner needs to reproduce the failure."""
    items = [_describe_value(a) for a in case.args] + [f"{k}={_describe_value(v)}" for k, v in case.kwargs.items()]
    return "inputs: (" + ", ".join(items) + ")"


def find_problem(fn: Callable[..., Any], exercise: Exercise) -> "str | None":
    """``None`` if ``fn`` passes every case of ``exercise``, else the feedback message.

    A ``NotImplementedError`` from ``fn`` propagates (it means "not attempted", not "wrong").
    """
    cases = list(exercise.cases())
    for k, case in enumerate(cases):
        where = _case_name(case, k)
        ref_out, ref_in = _call(exercise.reference, case, exercise.grad_wrt)
        try:
            ours, our_in = _call(fn, case, exercise.grad_wrt)
        except NotImplementedError:
            raise
        except Exception as err:  # a crash is feedback too
            return f"{where}: your function raised {type(err).__name__}: {err}"
        for i, (passed, original) in enumerate(zip(our_in, case.args)):
            if torch.is_tensor(original) and not torch.equal(passed.detach(), original):
                return f"{where}: argument {i} was modified in place; compute a new tensor instead"
        diff = describe_difference(ours, ref_out, atol=exercise.atol, rtol=exercise.rtol)
        if diff is None and exercise.grad_wrt:
            ours_g = _grads(ours, our_in, exercise.grad_wrt)
            ref_g = _grads(ref_out, ref_in, exercise.grad_wrt)
            if isinstance(ours_g, str):
                diff = f"gradient: {ours_g}"
            elif not isinstance(ref_g, str):
                for i, og, rg in zip(exercise.grad_wrt, ours_g, ref_g):
                    d = describe_difference(og, rg, atol=exercise.atol, rtol=exercise.rtol, where=f"gradient w.r.t. argument {i}")
                    if d:
                        diff = d + " (values match but gradients do not: a detach / stop-gradient in the wrong place?)"
                        break
        if diff is not None:
            msg = f"{where}: {diff}\n  {describe_inputs(case)}"
            hint = _matching_mistake(exercise, cases, fn)
            return msg + ("\n  " + hint if hint else "")
    if exercise.check_fn is not None:
        extra = exercise.check_fn(fn)
        if extra:
            return extra
    return None


def check(fn: Callable[..., Any], exercise: "Exercise | str", *, quiet: bool = False) -> int:
    """Raise ``CheckFailure`` with feedback if ``fn`` is wrong; else print a pass line, return #cases."""
    ex = get_exercise(exercise) if isinstance(exercise, str) else exercise
    problem = find_problem(fn, ex)
    if problem is not None:
        raise CheckFailure(f"✘ Exercise {ex.id} ({ex.title}) failed.\n  {problem}")
    n = len(list(ex.cases()))
    if not quiet:
        print(f"✔ Exercise {ex.id} passed: {ex.title} ({n} cases)")
    return n


def check_exercise(exercise_id: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """Check a learner's ``fn``; return the function later cells should use.

    - passes → prints ``✔ …`` and returns ``fn``;
    - unsolved (raises ``NotImplementedError``) → prints a loud notice, returns the reference;
    - wrong → prints the feedback and returns the reference, or raises ``CheckFailure`` when
      ``$HDAI_EXERCISES_STRICT=1`` (the test-suite runs solution notebooks that way).
    """
    ex = get_exercise(exercise_id)
    ref_name = f"{ex.reference.__module__}.{ex.reference.__qualname__}"
    try:
        check(fn, ex)
        return fn
    except NotImplementedError:
        print(
            f"⚠ Exercise {ex.id} ({ex.title}) is not solved yet — using the reference "
            f"`{ref_name}` so the rest of the lesson runs. Implement it and re-run this cell."
        )
        return ex.reference
    except CheckFailure as failure:
        if os.environ.get(STRICT_ENV, "0") == "1":
            raise
        print(str(failure))
        print(f"⚠ Using the reference `{ref_name}` for the rest of the lesson until this passes.")
        return ex.reference


def whose(fn: Callable[..., Any]) -> str:
    """``"yours"`` for a function the learner wrote in the notebook, ``"reference"`` for the package's.

    For plot legends and printouts after ``check_exercise``, which hands back the reference while
    an exercise is unsolved: the label then says so instead of claiming the curve is the learner's.
    """
    return "reference" if getattr(fn, "__module__", "").startswith("hdai_lessons.") else "yours"
