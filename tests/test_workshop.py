"""The workshop kit: decks built from the lessons and checked in a real headless browser, the
instructor guide current, agendas that add up, and catch-up checkpoints for every lesson."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from hdai_lessons.course.catalogue import all_lessons
from hdai_lessons.core.paths import build_dir, repo_root
from hdai_lessons.course.workshop.agenda import DAY_MINUTES, instructor_guide, lesson_time, one_day
from hdai_lessons.course.workshop.catchup import catch_up, exercise_cells, lesson_exercise_ids
from hdai_lessons.course.workshop.slides import build_all, lesson_slides, modules_with_lessons, render_deck, build_deck

LESSONS = all_lessons()


def _ensure_browser() -> None:
    """Install Debian's Chromium + ChromeDriver when missing (the test setup does it, as root)."""
    from hdai_lessons.course.workshop.browser import browser_available

    if browser_available() is None:
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip(browser_available())
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, capture_output=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "chromium", "chromium-driver"], check=True, env=env,
                   capture_output=True)
    assert browser_available() is None


@pytest.fixture(scope="module")
def decks(tmp_path_factory):
    return build_all(tmp_path_factory.mktemp("slides"))


def test_one_deck_per_module(decks):
    assert sorted(p.stem for p in decks) == [f"module-{m}" for m in sorted(modules_with_lessons())]


def test_committed_decks_are_current():
    for module, lessons in modules_with_lessons().items():
        path = repo_root() / "slides" / f"module-{module}.html"
        assert path.exists(), f"{path} missing; run `make slides`"
        assert path.read_text() == render_deck(build_deck(module, lessons)), f"{path} is stale; run `make slides`"


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda l: l.id)
def test_each_lesson_gives_title_claim_and_summary_slides(lesson):
    kinds = [s.kind for s in lesson_slides(lesson)]
    assert kinds[0] == "title" and "summary" in kinds
    assert "claim" in kinds, f"lesson {lesson.id} printed no claim or checked numbers for its deck"


def test_decks_render_offline_in_headless_chromium(decks):
    _ensure_browser()
    from hdai_lessons.course.workshop.browser import inspect_deck

    shots = build_dir() / "slides-screenshots"
    for deck in decks:
        report = inspect_deck(deck, shots)
        assert report.slides >= 3, deck
        assert not report.console_errors, (deck, report.console_errors)
        assert not report.external_requests, (deck, report.external_requests)
        assert not report.raw_math_left and report.katex_errors == 0, (deck, report.raw_math_left)
        assert report.katex_elements > 0, f"{deck} shows no rendered math"
        assert all(p.exists() and p.stat().st_size > 5000 for p in report.screenshots)
        assert len(report.screenshots) == 2, f"{deck}: no equation slide to screenshot"


def test_browser_check_catches_a_cdn_and_broken_math(tmp_path):
    _ensure_browser()
    from hdai_lessons.course.workshop.browser import inspect_deck

    bad = tmp_path / "bad.html"
    vendor = repo_root() / "slides" / "vendor"
    bad.write_text(f"""<html><head><link rel="stylesheet" href="{vendor}/reveal/dist/reveal.css">
<script src="https://cdn.example.invalid/reveal.js"></script></head><body><div class="reveal"><div class="slides">
<section>$$\\frac{{1}}{{2}}$$ never rendered</section></div></div>
<script src="{vendor}/reveal/dist/reveal.js"></script><script>Reveal.initialize();</script></body></html>""")
    report = inspect_deck(bad, tmp_path)
    assert report.external_requests and report.raw_math_left and not report.ok


def test_instructor_guide_is_current():
    path = repo_root() / "slides" / "INSTRUCTOR.md"
    assert path.exists() and path.read_text() == instructor_guide(), "run `hdai-lessons workshop`"


def test_agendas_add_up():
    times = [lesson_time(l) for l in LESSONS]
    chosen, left, demos = one_day(times)
    assert sum(t.total - (t.exercises if t.lesson.id in demos else 0) for t in chosen) <= DAY_MINUTES
    assert chosen[0].lesson.id == "00.1"
    modules = {l.module for l in LESSONS} - {"00"}
    assert {t.lesson.module for t in chosen[1:]} == modules and len(chosen) == 1 + len(modules)  # one per method
    assert {t.lesson.id for t in chosen} | {t.lesson.id for t in left} == {l.id for l in LESSONS}
    for t in times:
        assert t.total >= t.exercises > 0 or not lesson_exercise_ids(t.lesson.id)


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda l: l.id)
def test_every_exercise_has_a_catch_up_point(lesson):
    cells = exercise_cells(lesson)
    for ex_id in lesson_exercise_ids(lesson.id):
        assert ex_id in cells, f"lesson {lesson.id} never checks {ex_id} with `name = check_exercise(...)`"


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda l: l.id)
def test_catch_up_restores_the_state_after_the_last_exercise(lesson, monkeypatch):
    from IPython.core.interactiveshell import InteractiveShell

    from hdai_lessons.course.checkers import find_problem, get_exercise

    ids = lesson_exercise_ids(lesson.id)
    if not ids:
        pytest.skip("lesson has no exercises")
    monkeypatch.setenv("HDAI_EXERCISES_STRICT", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    shell = InteractiveShell()
    shell.run_cell("import matplotlib; matplotlib.use('Agg')")
    last = ids[-1]
    info = catch_up(lesson.id, int(last.rsplit(".", 1)[1]), shell=shell, scale="smoke")
    fn = shell.user_ns[info["name"]]
    assert find_problem(fn, get_exercise(last)) is None
    assert shell.user_ns["ctx"].scale.value == "smoke"


def test_catch_up_errors_are_clear():
    with pytest.raises(KeyError, match="unknown exercise"):
        catch_up("00.1", 99)
    with pytest.raises(RuntimeError, match="inside a Jupyter notebook"):
        catch_up("00.1", 1)


def test_raw_angle_brackets_in_markdown_are_caught():
    from hdai_lessons.course.workshop.slides import _md, unclosed_tags

    assert unclosed_tags(_md("Rotate the <view> side view.")) == ["view"]
    assert unclosed_tags(_md("Move the <object> into the box.")) == ["object"]
    assert unclosed_tags(_md("Rotate the &lt;view&gt; side view, `<view>` and $a<b$.")) == []
