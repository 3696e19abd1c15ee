"""Rewrite the claims table of docs/course-report.md from the committed lesson outputs.

Reads every lesson notebook's stored outputs (the executed, committed run: seed 0, the authoring
machine), collects each ``report_claim`` block (the verdict line and its ``evidence:`` line), and
replaces the table between the report's header row and the first blank line after it. Nothing is
executed; ``make course`` is the way to re-measure (it writes ``build/course-report.md``).

    python scripts/course_report_from_outputs.py            # rewrite docs/course-report.md
    python scripts/course_report_from_outputs.py --check    # exit 1 if it is stale
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

from hdai_lessons.course.catalogue import all_lessons

REPORT = Path(__file__).resolve().parent.parent / "docs" / "course-report.md"
HEADER = "| lesson | title | budget (s) | claims (verdict: claim — evidence: paired mean diff, SE, N) |"
VERDICT = re.compile(r"^\[(\d\d\.\d)\] claim (HOLDS|DOES NOT HOLD|NOT RESOLVED at \d+ seeds?): (.*)$")
SYMBOL = {"HOLDS": "✔ held", "DOES NOT HOLD": "✘ did not hold"}


def lesson_claims(path: Path) -> list[str]:
    """``"✔ held: claim — evidence"`` for each claim block in the notebook's stored stream outputs."""
    nb = nbformat.read(str(path), as_version=4)
    out: list[str] = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            lines = "".join(output.get("text", "")).splitlines()
            for i, line in enumerate(lines):
                m = VERDICT.match(line)
                if not m:
                    continue
                word = SYMBOL.get(m.group(2), "◐ " + m.group(2).lower())
                evidence = ""
                if i + 1 < len(lines) and lines[i + 1].strip().startswith("evidence:"):
                    evidence = " — " + lines[i + 1].strip()[len("evidence:"):].split("; rule:")[0].strip()
                out.append(f"{word}: {m.group(3)}{evidence}")
    return out


def table() -> str:
    rows = [HEADER, "|---|---|---|---|"]
    for lesson in all_lessons():
        claims = lesson_claims(lesson.path)
        rows.append(f"| {lesson.id} | {lesson.title} | {lesson.budget_s} | {'<br>'.join(claims) or '(no claim)'} |")
    return "\n".join(rows)


def rewrite(text: str) -> str:
    start = text.index(HEADER)
    end = text.index("\n\n", start)
    return text[:start] + table() + text[end:]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--check", action="store_true", help="only report whether the table is current")
    args = p.parse_args(argv)
    old = REPORT.read_text()
    new = rewrite(old)
    if args.check:
        print("course report is current" if new == old else "course report is stale: run scripts/course_report_from_outputs.py")
        return 0 if new == old else 1
    REPORT.write_text(new)
    print(f"wrote {REPORT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
