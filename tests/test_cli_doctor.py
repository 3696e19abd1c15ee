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


# ------------------------------------------------------------------ every mistake: one line, non-zero (issue 15)
import os  # noqa: E402

import pytest  # noqa: E402


def _cli(*args, env=None):
    proc = subprocess.run([sys.executable, "-m", "hdai_lessons.course.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120)
    return proc.returncode, [l for l in (proc.stdout + proc.stderr).splitlines() if l.strip()]


@pytest.mark.parametrize("args, env, expect", [
    (["run", "00.1"], {"HDAI_SCALE": "huge"}, "unknown scale 'huge'"),
    (["course", "--module", "abc"], None, "'abc' is not a module"),
    (["course", "--module", "9"], None, "'9' is not a module"),
    (["course", "--jobs", "0"], None, "use 1 or more"),
    (["data", "verify", "nosuch"], None, "no data named 'nosuch'"),
    (["data", "restore"], None, "needs a NAME"),
])
def test_cli_mistakes_are_one_line_and_nonzero(args, env, expect):
    code, lines = _cli(*args, env=env)
    assert code != 0
    assert any(expect in l for l in lines), lines
    assert not any(l.startswith("Traceback") for l in lines), lines
    assert len([l for l in lines if not l.startswith("usage:") and not l.startswith(" ")]) == 1, lines


def test_a_malformed_manifest_is_reported_not_raised(tmp_path, monkeypatch, capsys):
    import hdai_lessons.core.data as data

    (tmp_path / "manifest.json").write_text("{broken")
    monkeypatch.setattr(data, "data_dir", lambda: tmp_path)
    assert main(["data", "verify"]) == 2
    assert "manifest.json is malformed" in capsys.readouterr().err
    from hdai_lessons.course.doctor import check_data
    (finding,) = check_data()
    assert not finding.ok and "malformed" in finding.detail


def test_doctor_reports_a_package_that_fails_to_import(tmp_path, monkeypatch):
    (tmp_path / "brokenpkg").mkdir()
    (tmp_path / "brokenpkg" / "__init__.py").write_text("raise OSError('libfoo.so: cannot open shared object file')")
    monkeypatch.syspath_prepend(str(tmp_path))
    (finding,) = check_packages([("brokenpkg", "a test")])
    assert not finding.ok and "fails to import: OSError" in finding.detail and "--force-reinstall" in finding.fix


def test_the_cli_starts_without_importing_torch():
    code = "import sys, hdai_lessons.course.cli, hdai_lessons.course.doctor; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"


def test_lesson_names_still_import_from_the_top():
    from hdai_lessons import by_scale, cmp, report_claim, setup_lesson  # noqa: F401
    with pytest.raises(AttributeError):
        import hdai_lessons
        hdai_lessons.no_such_name  # noqa: B018
