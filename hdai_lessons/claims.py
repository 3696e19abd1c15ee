"""A lesson's verdict on a paper's claim: printed for the reader, recorded for the course report.

``report_claim`` prints one stable line (numbers rounded) and, when ``$HDAI_CLAIMS_FILE`` is set
(the headless runner sets it), appends a JSON record there, so ``make course`` can tabulate every
claim with its numbers without parsing notebook output.
"""
from __future__ import annotations

import json
import os
from typing import Mapping

import numpy as np

CLAIMS_ENV = "HDAI_CLAIMS_FILE"


def _round_sig(x: float, digits: int) -> float:
    return float(f"{float(x):.{digits}g}")


def report_claim(lesson: str, claim: str, held: "bool | None", numbers: Mapping[str, float], digits: int = 4) -> None:
    """Print and record whether ``claim`` held on this run. ``held=None`` means "mixed / partial".

    ``numbers`` are the measured values the verdict was computed from, rounded to ``digits``
    significant digits for printing and recording.
    """
    if isinstance(held, np.bool_):  # numpy's bool, from comparing measured numbers
        held = bool(held)
    if not (held is None or isinstance(held, bool)):
        raise TypeError(f"held must be True, False or None, got {held!r} (pass a Python bool)")
    verdict = {True: "HOLDS", False: "DOES NOT HOLD", None: "MIXED"}[held]
    rounded = {k: _round_sig(v, digits) for k, v in numbers.items()}
    nums = ", ".join(f"{k}={v:.{digits}g}" for k, v in rounded.items())
    line = f"[{lesson}] claim {verdict}: {claim} ({nums})"
    print(line)
    path = os.environ.get(CLAIMS_ENV)
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"lesson": lesson, "claim": claim, "held": held, "numbers": rounded}) + "\n")
