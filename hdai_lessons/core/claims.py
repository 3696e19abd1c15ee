"""A lesson's verdict on a paper's claim: decided by a stated rule, printed, recorded.

Two kinds of claim appear in the course:

* **Comparisons across seeds** ("LPO-fwd keeps more correct answers than GRPO"). These are decided
  by :func:`paired_verdict` from the paired per-seed differences ``d_i = a_i - b_i`` (same seed,
  same data, two arms): with mean ``d̄``, standard error ``SE = sd(d) / √N`` and a margin ``m``,

  - **held** if ``d̄ - m > z·SE`` (the difference clears the margin by ``z`` standard errors),
  - **did not hold** if ``d̄ - m < -z·SE`` (it is beyond noise in the other direction),
  - **not resolved at N seeds** otherwise, and always when ``N < 2`` (one seed has no noise estimate).

  ``z = 2`` by default. The rule's numbers (``d̄``, ``SE``, ``N``) are printed with the verdict.
* **Identities and deterministic facts** ("resuming equals the uninterrupted run", "the exact
  adjoint matches autograd to 1e-5"): a Python bool computed against a stated tolerance.

``report_claim`` returns nothing (a notebook cell that ends with it shows no ``Out[]``); it prints one verdict line that is identical on every machine (it is what a
``# NBVAL_CHECK_OUTPUT`` cell compares) and, indented below it, the measured numbers behind it
(``evidence:`` and ``numbers:`` lines; the committed nbval sanitizer masks them, because trained
numbers differ in their last digits on another CPU, BLAS or thread count). When
``$HDAI_CLAIMS_FILE`` is set (the headless runner sets it) a JSON record is appended there too, so
``make course`` can tabulate every claim without parsing notebook output.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from typing import Mapping, Sequence, Union

import numpy as np

CLAIMS_ENV = "HDAI_CLAIMS_FILE"
DEFAULT_Z = 2.0

VERDICT_WORDS = {True: "HOLDS", False: "DOES NOT HOLD", None: "NOT RESOLVED"}


@dataclass(frozen=True)
class PairedVerdict:
    """The outcome of the paired-difference rule (see the module docstring).

    ``held`` is True / False / None (not resolved); the other fields are the rule's inputs.

    Lesson 00.1 introduces the rule; every lesson's claims use it (docs/AUTHORING.md). No paper equation.
    """

    held: "bool | None"
    mean_diff: float       # d̄ = mean of (a_i - b_i), sign-flipped when the claim is "a < b"
    se: float              # sd(d, ddof=1) / √N; nan when N < 2
    n: int                 # number of paired seeds
    n_in_direction: int    # seeds whose difference lies beyond the margin in the claimed direction
    margin: float
    z: float

    def describe(self) -> str:
        """One line with the rule's numbers, e.g. ``d̄=+0.031, SE=0.008, N=5 (5/5 in the claimed direction) …``."""
        se = "n/a" if math.isnan(self.se) else f"{self.se:.3g}"
        margin = f" - margin {self.margin:g}" if self.margin else ""
        return (f"mean diff={self.mean_diff:+.4g}, SE={se}, N={self.n} "
                f"({self.n_in_direction}/{self.n} in the claimed direction); "
                f"rule: held if mean diff{margin} > {self.z:g} SE, did not hold if < -{self.z:g} SE")


def _as_1d(x, name: str) -> np.ndarray:
    try:
        import torch

        if isinstance(x, torch.Tensor):
            x = x.detach().double().cpu().numpy()
    except ImportError:  # pragma: no cover - torch is a hard dependency of the package
        pass
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one value per seed (shape (N,)), got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} has a non-finite value ({arr.tolist()}); a claim cannot be decided from NaN/inf")
    return arr


def paired_verdict(a: "Sequence[float]", b: "Sequence[float] | float" = 0.0, *, direction: str = "greater",
                   margin: float = 0.0, z: float = DEFAULT_Z) -> PairedVerdict:
    """Decide "``a`` is greater (or less) than ``b`` by more than ``margin``" from paired seeds.

    ``a`` and ``b``: shape ``(N,)``, one value per seed, paired by index (same seed, two arms); ``b``
    may be a scalar (a fixed reference such as the SFT start or a best-of-N value). ``direction``
    is ``"greater"`` (claim: a - b > margin) or ``"less"`` (claim: b - a > margin).

    Lesson 00.1 introduces the rule; every lesson's claims use it (docs/AUTHORING.md). No paper equation.
    """
    if direction not in ("greater", "less"):
        raise ValueError(f"direction must be 'greater' or 'less', got {direction!r}")
    a_arr = _as_1d(a, "a")
    b_arr = np.full_like(a_arr, float(b)) if np.ndim(b) == 0 else _as_1d(b, "b")
    if a_arr.shape != b_arr.shape:
        raise ValueError(f"a and b must pair seed by seed: shapes {a_arr.shape} and {b_arr.shape}")
    if a_arr.size == 0:
        raise ValueError("no seeds: a claim needs at least one paired value (and two to be resolved)")
    d = a_arr - b_arr if direction == "greater" else b_arr - a_arr
    n = int(d.size)
    mean = float(d.mean())
    se = float(d.std(ddof=1) / math.sqrt(n)) if n >= 2 else float("nan")
    n_dir = int((d > margin).sum())
    excess = mean - margin
    if n < 2:
        held = None
    elif se == 0.0:  # every seed gives the same difference: decided by its sign
        held = True if excess > 0 else (False if excess < 0 else None)
    elif excess > z * se:
        held = True
    elif excess < -z * se:
        held = False
    else:
        held = None
    return PairedVerdict(held=held, mean_diff=mean, se=se, n=n, n_in_direction=n_dir, margin=float(margin), z=float(z))


def _round_sig(x: float, digits: int) -> float:
    return float(f"{float(x):.{digits}g}")


def _smoke_scale() -> bool:
    return os.environ.get("HDAI_SCALE", "").strip().lower() == "smoke"


def report_claim(lesson: str, claim: str, held: "bool | None | PairedVerdict",
                 numbers: "Mapping[str, float] | None" = None, digits: int = 4) -> None:
    """Print and record the verdict on ``claim`` (True / False / None = not resolved).

    ``held`` is a :class:`PairedVerdict` (a comparison across seeds; its rule numbers are printed
    as ``evidence:``) or a Python bool for an identity checked against a stated tolerance.
    ``numbers`` are further measured values shown beside the verdict (``numbers:``), rounded to
    ``digits`` significant digits. At smoke scale the verdict is marked as not tested: smoke runs
    only prove that a lesson executes; they are too small to test a claim.
    """
    evidence = None
    if isinstance(held, PairedVerdict):
        evidence, held = held, held.held
    if isinstance(held, np.bool_):  # numpy's bool, from comparing measured numbers
        held = bool(held)
    if not (held is None or isinstance(held, bool)):
        raise TypeError(f"held must be a PairedVerdict, True, False or None, got {held!r} (pass a Python bool)")
    numbers = dict(numbers or {})
    rounded = {k: _round_sig(v, digits) for k, v in numbers.items()}
    word = VERDICT_WORDS[held]
    if held is None and evidence is not None:
        word = f"NOT RESOLVED at {evidence.n} seed{'s' if evidence.n != 1 else ''}"
    if _smoke_scale():
        word = f"not tested at smoke scale (would read: {word})"
    lines = [f"[{lesson}] claim {word}: {claim}"]
    if evidence is not None:
        lines.append(f"    evidence: {evidence.describe()}")
    if rounded:
        lines.append("    numbers: " + ", ".join(f"{k}={v:.{digits}g}" for k, v in rounded.items()))
    print("\n".join(lines))
    path = os.environ.get(CLAIMS_ENV)
    if path:
        record = {"lesson": lesson, "claim": claim, "held": held, "numbers": rounded,
                  "evidence": None if evidence is None else {k: (None if isinstance(v, float) and math.isnan(v) else v)
                                                            for k, v in asdict(evidence).items()},
                  "smoke": _smoke_scale()}
        with open(path, "a") as f:
            f.write(json.dumps(record) + "\n")


# ---------------------------------------------------------------- claims made of several parts
# "A and B" (``all_of``) and "for some setting" (``any_of``): each part is a ``PairedVerdict`` or a
# bool (a deterministic fact); they combine by three-valued logic and return the part that decides,
# so ``report_claim`` prints that part's evidence. ``all_of``: holds iff every part holds (then the
# part with the fewest SEs to spare is returned); does not hold if some part does not. ``any_of``:
# holds if some part holds (the one with the most SEs to spare); does not hold iff every part does not.

Part = Union[PairedVerdict, bool, None]


def _held(p: Part) -> "bool | None":
    return p.held if isinstance(p, PairedVerdict) else (None if p is None else bool(p))


def _z(p: Part) -> float:
    """How many standard errors the part clears its margin by (±inf for SE = 0 or a bool)."""
    if not isinstance(p, PairedVerdict):
        return {True: math.inf, False: -math.inf, None: 0.0}[_held(p)]
    excess = p.mean_diff - p.margin
    if math.isnan(p.se):
        return 0.0
    if p.se == 0.0:
        return math.copysign(math.inf, excess) if excess else 0.0
    return excess / p.se


def all_of(*parts: Part) -> Part:
    """Three-valued AND of paired verdicts / bools; returns the deciding part (see the comment above).

    Lesson 00.1 introduces the rule; every lesson's claims use it (docs/AUTHORING.md). No paper equation.
    """
    if not parts:
        raise ValueError("all_of needs at least one part")
    for p in parts:
        if _held(p) is False:
            return p
    for p in parts:
        if _held(p) is None:
            return p
    return min(parts, key=_z)


def any_of(*parts: Part) -> Part:
    """Three-valued OR of paired verdicts / bools; returns the deciding part (see the comment above).

    Lesson 00.1 introduces the rule; every lesson's claims use it (docs/AUTHORING.md). No paper equation.
    """
    if not parts:
        raise ValueError("any_of needs at least one part")
    held = [p for p in parts if _held(p) is True]
    if held:
        return max(held, key=_z)
    unresolved = [p for p in parts if _held(p) is None]
    if unresolved:
        return max(unresolved, key=_z)
    return max(parts, key=_z)


def describe_part(name: str, part: Part) -> str:
    """One line for a part of a claim: ``name: held|did not hold|not resolved (mean diff=…, SE=…, N=…)``.

    Lesson 00.1 introduces the rule; every lesson's claims use it (docs/AUTHORING.md). No paper equation.
    """
    word = {True: "held", False: "did not hold", None: "not resolved"}[_held(part)]
    detail = f" ({part.describe().split(';')[0]})" if isinstance(part, PairedVerdict) else ""
    return f"{name}: {word}{detail}"
