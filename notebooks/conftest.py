"""nbval runs: print each notebook's wall time (sum of its cells) at the end of the session."""
from __future__ import annotations

from collections import defaultdict

_durations: dict[str, float] = defaultdict(float)


def pytest_runtest_logreport(report):
    if report.nodeid.endswith(".ipynb") or "::Cell" in report.nodeid:
        _durations[report.nodeid.split("::")[0]] += report.duration


def pytest_terminal_summary(terminalreporter):
    if not _durations:
        return
    terminalreporter.section("notebook wall times")
    for path, secs in sorted(_durations.items(), key=lambda kv: -kv[1]):
        terminalreporter.write_line(f"{secs:7.1f} s  {path}")
    terminalreporter.write_line(f"{sum(_durations.values()):7.1f} s  total (sum over notebooks)")
