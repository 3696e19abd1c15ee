"""One plotting style for the whole course, and the few figure helpers every module reuses."""
from __future__ import annotations

import matplotlib

# A colour per method, stable across lessons, so "LPO-fwd" is the same colour everywhere.
METHOD_COLORS = {
    "reference": "#444444",
    "GRPO": "#d62728",
    "LPO-fwd": "#1f77b4",
    "LPO-rev": "#2ca02c",
    "pointwise": "#9467bd",
    "PG": "#ff7f0e",
    "unguided": "#7f7f7f",
    "best-of-N": "#8c564b",
    "DPS": "#e377c2",
    "FlowChef": "#bcbd22",
    "FMRG-E": "#17becf",
    "FMRG-J": "#1f77b4",
    "exact": "#000000",
}

STYLE = {
    "figure.figsize": (6.4, 4.0),
    "figure.dpi": 90,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "legend.fontsize": 9,
    "legend.frameon": False,
    "lines.linewidth": 1.8,
    "image.cmap": "viridis",
    "savefig.bbox": "tight",
}


def use_course_style() -> None:
    """Apply the course's matplotlib style (called by ``setup_lesson``)."""
    matplotlib.rcParams.update(STYLE)


def color_for(name: str, fallback_index: int = 0) -> str:
    """The course colour of a method name, or a colour from the default cycle.

    Course infrastructure used by every lesson (no lesson or paper equation of its own).
    """
    if name in METHOD_COLORS:
        return METHOD_COLORS[name]
    cycle = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    return cycle[fallback_index % len(cycle)]
