"""The scale ladder: one setting, three rungs, one code path.

``smoke`` proves a notebook runs top to bottom in seconds (CI runs learner versions at it),
``toy`` is the default (CPU, about a minute, the paper's claim reproduced on generated data) and
``full`` hands the same functions a real pretrained model, a real dataset and a GPU.

The rung comes from an explicit argument, else the ``HDAI_SCALE`` environment variable, else
``toy``. Code never branches on "am I in CI"; it asks for a config by scale::

    cfg = by_scale(scale, smoke=Cfg(steps=5), toy=Cfg(steps=300), full=Cfg(steps=20_000))
"""
from __future__ import annotations

import enum
import os
from typing import TypeVar

T = TypeVar("T")

SCALE_ENV = "HDAI_SCALE"


class Scale(str, enum.Enum):
    """A rung of the scale ladder.

    Lesson 00.1 (the scale ladder); no paper equation.
    """

    SMOKE = "smoke"
    TOY = "toy"
    FULL = "full"

    def __str__(self) -> str:  # "toy", not "Scale.TOY", in printed setup lines
        return self.value


def get_scale(scale: "Scale | str | None" = None) -> Scale:
    """Resolve the scale: explicit argument > ``$HDAI_SCALE`` > ``toy``.

    >>> get_scale("smoke")
    <Scale.SMOKE: 'smoke'>

    Lesson 00.1 (the scale ladder); no paper equation.
    """
    raw = scale if scale is not None else os.environ.get(SCALE_ENV) or Scale.TOY.value
    if isinstance(raw, Scale):
        return raw
    try:
        return Scale(str(raw).strip().lower())
    except ValueError:
        valid = ", ".join(s.value for s in Scale)
        source = "argument" if scale is not None else f"${SCALE_ENV}"
        raise ValueError(f"unknown scale {raw!r} (from {source}); choose one of: {valid}") from None


def by_scale(scale: "Scale | str | None", *, smoke: T, toy: T, full: T) -> T:
    """Pick the value for ``scale`` from the three rungs (the one place configs branch).

    Lesson 00.1 (the scale ladder); no paper equation.
    """
    return {Scale.SMOKE: smoke, Scale.TOY: toy, Scale.FULL: full}[get_scale(scale)]
