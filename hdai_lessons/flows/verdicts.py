"""Claims made of several paired comparisons: "A and B" (``all_of``) and "some setting" (``any_of``).

Module 04's claims are often conjunctions ("FMRG-J reaches best-of-16's reward *and* stays on the
manifold") or existence statements over a few settings ("for some λ"). Each part is decided by
``hdai_lessons.claims.paired_verdict`` (or is a Python bool for a deterministic fact); these
functions combine the parts by three-valued logic and return the part that decides the outcome,
so ``report_claim`` prints that part's evidence line (d̄, SE, N):

* ``all_of``: holds iff every part holds; does not hold if some part does not hold (that part is
  returned); otherwise not resolved (the first unresolved part is returned). When every part
  holds, the part that clears its margin by the fewest standard errors is returned.
* ``any_of``: holds if some part holds (the one with the most standard errors to spare is
  returned); does not hold iff every part does not hold (the least bad part is returned);
  otherwise not resolved (the unresolved part closest to holding is returned).
"""
from __future__ import annotations

import math
from typing import Union

from ..claims import PairedVerdict

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
    """Three-valued AND of paired verdicts / bools; returns the deciding part (see the module doc)."""
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
    """Three-valued OR of paired verdicts / bools; returns the deciding part (see the module doc)."""
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
    """One line for a part of a claim: ``name: held|did not hold|not resolved (mean diff=…, SE=…, N=…)``."""
    word = {True: "held", False: "did not hold", None: "not resolved"}[_held(part)]
    detail = f" ({part.describe().split(';')[0]})" if isinstance(part, PairedVerdict) else ""
    return f"{name}: {word}{detail}"
