"""The ``hdai-lessons`` command and the doctor, as a user meets them."""
from __future__ import annotations

import subprocess
import sys

from hdai_lessons.course.cli import main
from hdai_lessons.course.doctor import check_packages, print_report, run_doctor


def test_list_shows_lesson_00(capsys):
    assert main(["list"]) == 0
    assert "00.1" in capsys.readouterr().out


def test_run_unknown_lesson_is_one_line_and_nonzero():
    proc = subprocess.run([sys.executable, "-m", "hdai_lessons.course.cli", "run", "nosuch"], capture_output=True, text=True)
    assert proc.returncode != 0
    lines = [l for l in (proc.stdout + proc.stderr).splitlines() if l.strip()]
    assert len(lines) == 1 and "valid lessons: 00.1" in lines[0]


def test_fetch_of_lesson_without_assets(capsys):
    assert main(["fetch", "00.1"]) == 0
    assert "needs no downloads" in capsys.readouterr().out


def test_exercises_check_reports_current(capsys):
    assert main(["exercises", "--check"]) == 0


def test_doctor_reports_cleanly_here(capsys):
    problems = print_report(run_doctor())
    out = capsys.readouterr().out
    assert problems == 0, out
    assert "All good" in out


def test_doctor_names_the_fix_for_a_missing_package(capsys):
    findings = check_packages([("torch", "every lesson"), ("surely_not_installed_pkg", "a lesson")])
    assert [f.ok for f in findings] == [True, False]
    assert print_report(findings) == 1
    out = capsys.readouterr().out
    assert "✘ package surely_not_installed_pkg" in out
    assert "make setup" in out and "pip install surely_not_installed_pkg" in out
