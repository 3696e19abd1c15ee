"""The headless runner: sliced waits (no lost wake-up can cost a whole timeout), cell timings, seeds."""
from __future__ import annotations

import time

import nbformat
import pytest

from hdai_lessons.course.runner import cell_timeout_for, describe_claim, execute_notebook


def _notebook(tmp_path, *sources: str):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, str(path))
    return path


def test_runner_times_every_cell_and_passes_the_seed(tmp_path):
    path = _notebook(tmp_path, "import os, time\ntime.sleep(0.3)", "print(os.environ['HDAI_SEED'], os.environ['HDAI_SCALE'])")
    timings: dict = {}
    nb = execute_notebook(path, tmp_path / "out.ipynb", scale="smoke", seed=5, timeout=60, timings=timings)
    assert nb.cells[1].outputs[0]["text"].strip() == "5 smoke"
    idx = [i for i, _ in timings["cell_seconds"]]
    assert idx == [0, 1] and timings["cell_seconds"][0][1] >= 0.3
    assert (tmp_path / "out.ipynb").exists()


def test_a_cell_timeout_is_raised_on_time_and_names_the_cell(tmp_path):
    from nbclient.exceptions import CellTimeoutError

    path = _notebook(tmp_path, "x = 1", "import time\ntime.sleep(30)")
    timings: dict = {}
    start = time.perf_counter()
    with pytest.raises(CellTimeoutError):
        execute_notebook(path, None, scale="smoke", timeout=2, timings=timings)
    assert time.perf_counter() - start < 25
    assert [i for i, _ in timings["cell_seconds"]][0] == 0 and timings["cell_seconds"][-1][0] == 1


def test_runner_rejects_bad_seeds_and_sizes_timeouts_from_budgets(tmp_path):
    with pytest.raises(ValueError, match="non-negative int"):
        execute_notebook(_notebook(tmp_path, "1"), None, seed=-3)
    assert cell_timeout_for(30) == 120 and cell_timeout_for(200) == 600


def test_describe_claim_shows_the_rule_numbers():
    rec = {"claim": "a beats b", "held": None, "numbers": {"a": 0.5},
           "evidence": {"mean_diff": 0.01, "se": 0.02, "n": 5}}
    assert describe_claim(rec) == "◐ not resolved: a beats b (mean diff +0.01 ± SE 0.02, N=5; a=0.5)"
    assert describe_claim({**rec, "smoke": True}).startswith("· not tested at smoke scale")


def test_widget_ids_are_numbered_so_a_rerun_is_not_a_diff():
    import nbformat

    from hdai_lessons.course.runner import stable_widget_ids

    def nb_with(ids):
        nb = nbformat.v4.new_notebook()
        cell = nbformat.v4.new_code_cell("slider", id="fixed")
        cell.outputs = [nbformat.v4.new_output("display_data", data={
            "application/vnd.jupyter.widget-view+json": {"model_id": i, "version_major": 2, "version_minor": 0},
            "text/plain": "IntSlider"}) for i in ids]
        nb.cells = [cell]
        nb.metadata["widgets"] = {"state": {i: {"model_name": "IntSliderModel"} for i in ids}}
        return nb

    a = stable_widget_ids(nb_with(["3f2a9c", "77b1e0"]))
    b = stable_widget_ids(nb_with(["d41d8c", "0cc175"]))
    assert nbformat.writes(a) == nbformat.writes(b)
    assert a.cells[0].outputs[0].data["application/vnd.jupyter.widget-view+json"]["model_id"] == f"{1:032x}"
    assert set(a.metadata["widgets"]["state"]) == {f"{1:032x}", f"{2:032x}"}


def test_run_reports_progress_and_kernels_use_local_sockets(tmp_path, monkeypatch, capfd):
    import os

    from hdai_lessons.course.runner import PROGRESS_ENV, _local_kernel_manager_class

    monkeypatch.setenv(PROGRESS_ENV, "1")
    execute_notebook(_notebook(tmp_path, "x = 1", "y = 2"), None, scale="smoke")
    err = capfd.readouterr().err                       # fd level: the kernel process writes there too
    assert "[progress] cell 1/2 done" in err and "[progress] cell 2/2 done" in err
    assert "without encryption" not in err
    if os.name == "posix":
        assert _local_kernel_manager_class(str(tmp_path))().transport == "ipc"


def test_the_course_runs_the_longest_measured_lessons_first(tmp_path):
    """``make course`` schedules like the nbval passes: by ``notebooks/nbval_durations.json``, longest first,
    ties in catalogue order, a lesson with no measured time as a one-minute one."""
    from dataclasses import replace

    from hdai_lessons.course.catalogue import all_lessons
    from hdai_lessons.course.runner import UNKNOWN_LESSON_S, longest_first, measured_seconds

    lessons = all_lessons()
    cost = measured_seconds()
    assert len(cost) == len(lessons)                         # every lesson has a measured time
    order = longest_first(lessons)
    assert sorted(l.id for l in order) == sorted(l.id for l in lessons)
    secs = [cost[l.path.parent.name + "/" + l.path.name] for l in order]
    assert secs == sorted(secs, reverse=True) and secs[0] == max(cost.values())
    stray = replace(lessons[0], id="99.1", path=tmp_path / "99_x" / "01_x.ipynb")    # outside notebooks/: unknown
    placed = longest_first([*lessons, stray])
    i = placed.index(stray)
    known = lambda l: cost[l.path.parent.name + "/" + l.path.name]
    assert all(known(l) >= UNKNOWN_LESSON_S for l in placed[:i]) and all(known(l) <= UNKNOWN_LESSON_S for l in placed[i + 1:])


def test_the_course_runs_its_longest_lessons_alone_on_every_core_then_the_rest_two_at_a_time(monkeypatch):
    """``course_plan``: lessons measured above ``ALONE_ABOVE_S`` two at a time run first, one at a time, on every core
    (the SOPE lessons split their runs over them), the others two at a time on one thread each."""
    from hdai_lessons.core import device
    from hdai_lessons.course import runner
    from hdai_lessons.course.catalogue import all_lessons

    lessons = all_lessons()
    alone, together = runner.course_plan(lessons, jobs=2)
    assert sorted(l.id for l in alone + together) == sorted(l.id for l in lessons)
    assert alone and together and {"03.2", "03.3"} <= {l.id for l in alone}
    assert all(runner.lesson_seconds(l) > runner.ALONE_ABOVE_S for l in alone)
    assert all(runner.lesson_seconds(l) <= runner.ALONE_ABOVE_S for l in together)
    assert alone == runner.longest_first(alone) and together == runner.longest_first(together)
    assert runner.course_plan(lessons, jobs=1) == (runner.longest_first(lessons), [])

    calls = []
    monkeypatch.delenv("HDAI_THREADS", raising=False)
    monkeypatch.setattr(device, "available_cores", lambda: 2)
    monkeypatch.setattr(runner, "run_measured", lambda l, scale, inplace, seed=None, threads=None:
                        calls.append((l.id, threads)) or {"lesson": l.id, "threads": threads})
    monkeypatch.setattr(runner, "write_report", lambda *a, **k: None)
    results, _ = runner.run_course("toy", jobs=2, lessons=lessons)
    assert [r["lesson"] for r in results] == [l.id for l in lessons]          # the report keeps catalogue order
    assert calls[:len(alone)] == [(l.id, 2) for l in alone]                   # run one after another, first
    assert sorted(calls[len(alone):]) == sorted((l.id, 1) for l in together)


def test_nbval_times_are_recorded_only_from_the_toy_pass_on_this_cpus_own_kernels(monkeypatch):
    """``make test`` runs the lessons twice at toy scale; the second pass (scalar kernels, ~1.5x slower) must not
    overwrite the measured times that schedule ``make course`` and the nbval passes."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("nbval_conftest", Path(__file__).resolve().parent.parent / "notebooks" / "conftest.py")
    nbval_conftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(nbval_conftest)
    monkeypatch.setenv("HDAI_RECORD_NBVAL_TIMES", "1")
    monkeypatch.setenv("HDAI_SCALE", "toy")
    monkeypatch.delenv("ATEN_CPU_CAPABILITY", raising=False)
    assert nbval_conftest._records_times()
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "default")
    assert not nbval_conftest._records_times()
    monkeypatch.delenv("ATEN_CPU_CAPABILITY")
    monkeypatch.setenv("HDAI_SCALE", "smoke")
    assert not nbval_conftest._records_times()
    monkeypatch.setenv("HDAI_SCALE", "toy")
    monkeypatch.setenv("HDAI_RECORD_NBVAL_TIMES", "0")
    assert not nbval_conftest._records_times()
