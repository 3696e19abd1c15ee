"""nbval runs: longest notebooks first, and each notebook's wall time printed at the end of the session.

Two workers (``pytest -n 2 --dist loadfile --no-loadscope-reorder``) take whole notebooks in collection
order, so the order is the schedule: starting with the longest (``nbval_durations.json``, measured) keeps
one long lesson from running alone at the end. ``HDAI_RECORD_NBVAL_TIMES=1`` rewrites that file from the
session's measured times (toy-scale solution notebooks on this CPU's own float path only: the perturbed pass's
scalar kernels cost ~1.5x and would overwrite them).
"""
from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path

from hdai_lessons.course.runner import MEASURED_TIMES, UNKNOWN_LESSON_S, measured_seconds

_TIMES_FILE = Path(__file__).with_name(MEASURED_TIMES)
_durations: dict[str, float] = defaultdict(float)


def _lesson_key(nodeid: str) -> str:
    """``notebooks/learner/03_sope/x.ipynb::Cell 3`` → ``03_sope/x.ipynb`` (a learner copy costs like its lesson)."""
    path = nodeid.split("::")[0].replace("\\", "/")
    parts = [p for p in path.split("/") if p not in ("notebooks", "learner")]
    return "/".join(parts[-2:])


def pytest_collection_modifyitems(session, config, items):
    if not any(item.nodeid.split("::")[0].endswith(".ipynb") for item in items):
        return
    cost, first = measured_seconds(), {}
    for i, item in enumerate(items):
        first.setdefault(_lesson_key(item.nodeid), i)
    items.sort(key=lambda it: (-cost.get(_lesson_key(it.nodeid), UNKNOWN_LESSON_S), first[_lesson_key(it.nodeid)]))


def pytest_runtest_logreport(report):
    if report.nodeid.endswith(".ipynb") or "::Cell" in report.nodeid:
        _durations[report.nodeid.split("::")[0]] += report.duration


def _records_times() -> bool:
    """Asked to (``HDAI_RECORD_NBVAL_TIMES=1``), at toy scale, on this CPU's own kernels (no ``ATEN_CPU_CAPABILITY``)."""
    return (os.environ.get("HDAI_RECORD_NBVAL_TIMES") == "1" and os.environ.get("HDAI_SCALE", "toy") == "toy"
            and not os.environ.get("ATEN_CPU_CAPABILITY"))


def pytest_terminal_summary(terminalreporter):
    if not _durations:
        return
    terminalreporter.section("notebook wall times")
    for path, secs in sorted(_durations.items(), key=lambda kv: -kv[1]):
        terminalreporter.write_line(f"{secs:7.1f} s  {path}")
    terminalreporter.write_line(f"{sum(_durations.values()):7.1f} s  total (sum over notebooks)")
    if _records_times():
        times = measured_seconds()
        times.update({_lesson_key(p): round(s, 1) for p, s in _durations.items() if "/learner/" not in p})
        _TIMES_FILE.write_text(json.dumps(dict(sorted(times.items())), indent=1) + "\n")
