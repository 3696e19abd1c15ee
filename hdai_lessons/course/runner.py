"""Run lessons headless: one notebook (``run``), or all of them with a report (``course``).

Each notebook runs in its own subprocess with one torch thread, two at a time, so the kernel's
peak memory can be read from ``RUSAGE_CHILDREN`` and two cores are both used.
"""
from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat

from hdai_lessons.course.catalogue import Lesson, all_lessons
from hdai_lessons.core.paths import build_dir, notebooks_dir
from hdai_lessons.core.scale import Scale, get_scale

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")   # terminal colour codes

# Environment every headless kernel gets: chosen scale, no network, quiet bars, one thread.
# (No MPLBACKEND: the kernel's inline backend is what stores figures in the notebook.)
HEADLESS_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HDAI_PROGRESS": "0",
    "PYDEVD_DISABLE_FILE_VALIDATION": "1",
}


# Each wait on the kernel's reply lasts at most this long before it is re-armed. nbclient waits
# once for the whole cell timeout; a wake-up lost in that single wait cost a whole timeout (a
# 26 s lesson took 627 s), so we wait in short slices instead.
WAIT_SLICE_S = 1.0
PROGRESS_ENV = "HDAI_RUN_PROGRESS"     # set by ``run_measured(progress=True)`` for its child process
PROGRESS_TAG = "[progress]"
LOG_TAIL_LINES = 40


def cell_timeout_for(budget_s: int) -> int:
    """Per-cell timeout from a lesson's budget: 3× the budget (the report's "over budget" line), ≥ 120 s."""
    return max(120, 3 * int(budget_s))


def _sliced_client_class():
    """A ``NotebookClient`` that waits for replies in ≤ 1 s slices and times every cell."""
    import asyncio
    from queue import Empty

    from jupyter_core.utils import ensure_async
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError

    class SlicedNotebookClient(NotebookClient):
        cell_seconds: list

        async def _async_poll_for_reply(self, msg_id, cell, timeout, task_poll_output_msg, task_poll_kernel_alive):
            deadline = None if timeout is None else time.monotonic() + timeout
            while True:
                remaining = WAIT_SLICE_S if deadline is None else min(WAIT_SLICE_S, deadline - time.monotonic())
                try:
                    if remaining <= 0:
                        raise Empty
                    msg = await ensure_async(self.kc.shell_channel.get_msg(timeout=remaining))
                except Empty:
                    await self._async_check_alive()
                    if deadline is not None and time.monotonic() >= deadline:
                        task_poll_kernel_alive.cancel()
                        await self._async_handle_timeout(timeout, cell)  # interrupts the kernel, raises
                        raise CellTimeoutError.error_from_timeout_and_cell("Cell timed out", timeout, cell)
                    continue
                if msg["parent_header"].get("msg_id") != msg_id:
                    continue
                try:  # the reply came; drain the cell's outputs (also in slices)
                    waited = 0.0
                    while not task_poll_output_msg.done():
                        await asyncio.wait([task_poll_output_msg], timeout=WAIT_SLICE_S)
                        waited += WAIT_SLICE_S
                        if waited >= self.iopub_timeout and not task_poll_output_msg.done():
                            self.log.warning("Timeout waiting for IOPub output")
                            break
                finally:
                    task_poll_kernel_alive.cancel()
                return msg

        async def async_execute_cell(self, cell, cell_index, *args, **kwargs):
            start = time.perf_counter()
            try:
                return await super().async_execute_cell(cell, cell_index, *args, **kwargs)
            finally:
                if cell.get("cell_type") == "code":
                    self.cell_seconds.append((cell_index, round(time.perf_counter() - start, 2)))
                    if os.environ.get(PROGRESS_ENV) == "1":        # ``hdai-lessons run`` shows where it is
                        total = len(self.nb.cells)
                        print(f"{PROGRESS_TAG} cell {cell_index + 1}/{total} done in {time.perf_counter() - start:.1f} s",
                              file=sys.stderr, flush=True)

    return SlicedNotebookClient


class _TailHandler:
    """Collects the last ``LOG_TAIL_LINES`` records of the kernel client's log."""

    def __init__(self):
        import logging
        from collections import deque

        self.lines: "deque[str]" = deque(maxlen=LOG_TAIL_LINES)
        outer = self

        class _Handler(logging.Handler):
            def emit(self, record):
                outer.lines.append(f"{time.strftime('%H:%M:%S')} {record.levelname} {record.getMessage()}")

        self.handler = _Handler(level=logging.DEBUG)


def _local_kernel_manager_class(folder: str):
    """A kernel manager class that talks to its kernel over local sockets (IPC) in ``folder`` on POSIX.

    Over TCP (Jupyter's default) every kernel start warns that the traffic is unencrypted; a
    headless run never needs the network, so on Linux and macOS it uses Unix sockets instead.
    nbclient creates, owns and shuts down the manager as usual.
    """
    from jupyter_client import AsyncKernelManager   # what nbclient uses by default

    if os.name != "posix":
        return AsyncKernelManager

    class LocalSocketKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs):
            kwargs.setdefault("transport", "ipc")
            kwargs.setdefault("ip", os.path.join(folder, "kernel"))
            super().__init__(**kwargs)

    return LocalSocketKernelManager


def execute_notebook(path: Path, out_path: "Path | None", scale: "Scale | str | None" = None,
                     timeout: int = 600, threads: int = 1, claims_file: "Path | None" = None,
                     strict: bool = True, seed: "int | None" = None,
                     timings: "dict | None" = None) -> nbformat.NotebookNode:
    """Execute ``path`` top to bottom with nbclient; write the executed copy to ``out_path``.

    ``timeout`` is per cell (seconds). ``seed`` sets the lesson's base seed (``$HDAI_SEED``).
    When ``timings`` is a dict it receives ``cell_seconds`` (``[(cell index, s), ...]``) and
    ``log_tail`` (the kernel client's last log lines), also when the run fails, so a stall names
    its cell.
    """
    import logging

    env = {**HEADLESS_ENV, "HDAI_SCALE": get_scale(scale).value, "HDAI_THREADS": str(threads),
           "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "HDAI_EXERCISES_STRICT": "1" if strict else "0"}
    if claims_file is not None:
        env["HDAI_CLAIMS_FILE"] = str(claims_file)
    if seed is not None:
        if not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        env["HDAI_SEED"] = str(seed)
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    tail = _TailHandler()
    log = logging.getLogger("hdai_lessons.course.runner.kernel")
    log.setLevel(logging.DEBUG)
    log.addHandler(tail.handler)
    client = None
    ipc_dir = tempfile.TemporaryDirectory(prefix="hdai-kernel-")
    try:
        nb = nbformat.read(str(path), as_version=4)
        client = _sliced_client_class()(nb, timeout=timeout, kernel_name="python3", record_timing=False,
                                        resources={"metadata": {"path": str(path.parent)}}, log=log,
                                        kernel_manager_class=_local_kernel_manager_class(ipc_dir.name))
        client.cell_seconds = []
        client.execute()
    finally:
        log.removeHandler(tail.handler)
        ipc_dir.cleanup()
        if timings is not None:
            timings["cell_seconds"] = list(client.cell_seconds) if client is not None else []
            timings["log_tail"] = list(tail.lines)
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    for cell in nb.cells:  # timestamps would make every re-run a diff
        cell.get("metadata", {}).pop("execution", None)
    nb = stable_widget_ids(nb)
    if out_path is not None:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, str(out_path))
    return nb


WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def stable_widget_ids(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Replace the random ids of widget outputs by ids numbered in order of appearance.

    ipywidgets gives every widget a fresh uuid, so re-executing an unchanged lesson rewrote every
    notebook with a widget; numbered ids make a re-run that changes nothing a zero diff. The ids
    also key the saved widget state (``metadata.widgets``), which is renamed consistently.
    """
    ids: dict[str, str] = {}
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            view = out.get("data", {}).get(WIDGET_VIEW)
            if view and view.get("model_id") and view["model_id"] not in ids:
                ids[view["model_id"]] = f"{len(ids) + 1:032x}"
    if not ids:
        return nb
    text = nbformat.writes(nb)
    for old, new in ids.items():
        text = text.replace(old, new)
    return nbformat.reads(text, as_version=4)


def _run_one_measured(lesson_id: str, scale: str, out_path: str, claims_file: str, inplace: bool,
                      seed: "int | None" = None, threads: int = 1) -> None:
    """Child-process entry point: execute, then print a JSON line with time, memory and cell timings."""
    from hdai_lessons.course.catalogue import get_lesson

    lesson = get_lesson(lesson_id)
    start = time.perf_counter()
    error = None
    timings: dict = {}
    try:
        nb = execute_notebook(lesson.path, Path(out_path), scale=scale, claims_file=Path(claims_file),
                              timeout=cell_timeout_for(lesson.budget_s), seed=seed, timings=timings,
                              threads=threads)
        if inplace:
            nbformat.write(nb, str(lesson.path))
    except Exception as err:  # reported, not raised: the course report lists failures
        text = _ANSI.sub("", str(err)).strip()           # kernel tracebacks are coloured; the report is plain
        error = f"{type(err).__name__}: {text.splitlines()[-1] if text else ''}"
    wall = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(json.dumps({"lesson": lesson_id, "wall_s": round(wall, 1), "peak_mib": round(peak_kib / 1024, 0), "error": error,
                      "cell_seconds": timings.get("cell_seconds", []),
                      "log_tail": timings.get("log_tail", []) if error else []}))


def run_measured(lesson: Lesson, scale: "Scale | str | None", inplace: bool = False, seed: "int | None" = None,
                 progress: bool = False, threads: "int | None" = None) -> dict:
    """Run one lesson in a fresh process; return wall time, peak memory, error, cell timings and claims.

    ``threads``: torch threads for the lesson's kernel; default ``threads_per_job(1)`` (every core,
    or ``$HDAI_THREADS``), since a lesson run alone has the machine to itself.
    ``seed`` overrides the lesson's base seed (``hdai-lessons run LESSON --seed N``); executed
    copies for another seed go to ``build/executed/<scale>-seed<N>/`` and never in place.
    """
    if seed is not None and inplace:
        raise ValueError("--inplace writes the committed outputs, which come from the lesson's own seed; drop --seed or --inplace")
    if threads is None:
        from hdai_lessons.core.device import threads_per_job   # imports torch; the runner itself does not need it

        threads = threads_per_job(1)
    scale_v = get_scale(scale).value
    folder = scale_v if seed is None else f"{scale_v}-seed{seed}"
    out_path = build_dir() / "executed" / folder / lesson.path.parent.name / lesson.path.name
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        claims_file = f.name
    proc = subprocess.Popen(
        [sys.executable, "-c",
         "import sys; from hdai_lessons.course.runner import _run_one_measured as r; "
         "r(*sys.argv[1:5], sys.argv[5] == '1', None if sys.argv[6] == '' else int(sys.argv[6]), int(sys.argv[7]))",
         lesson.id, scale_v, str(out_path), claims_file, "1" if inplace else "0", "" if seed is None else str(seed),
         str(threads)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, PROGRESS_ENV: "1" if progress else "0"},
    )
    other_stderr, stdout_parts = [], []
    reader = threading.Thread(target=lambda: stdout_parts.append(proc.stdout.read()), daemon=True)
    reader.start()                                 # read stdout meanwhile: a result over a pipe's 64 KiB must not block
    for line in proc.stderr:                       # progress lines are shown as they come, the rest kept
        if line.startswith(PROGRESS_TAG):
            print(f"  [{lesson.id}]{line[len(PROGRESS_TAG):].rstrip()}", file=sys.stderr, flush=True)
        else:
            other_stderr.append(line)
    reader.join()
    stdout = "".join(stdout_parts)
    proc.wait()
    result = {"lesson": lesson.id, "seed": seed, "threads": threads, "wall_s": None, "peak_mib": None, "error": None,
              "cell_seconds": [], "log_tail": []}
    lines = [l for l in stdout.splitlines() if l.startswith("{")]
    if lines:
        result.update(json.loads(lines[-1]))
    else:
        result["error"] = ("".join(other_stderr).strip().splitlines() or ["runner crashed"])[-1]
    claims_path = Path(claims_file)
    result["claims"] = [json.loads(l) for l in claims_path.read_text().splitlines() if l.strip()]
    claims_path.unlink(missing_ok=True)
    result["executed"] = str(out_path)
    return result


MEASURED_TIMES = "nbval_durations.json"
"""Beside the notebooks: each lesson's measured wall time (s) under the two-at-a-time runner, keyed by its path
below ``notebooks/`` (``03_sope/03_sope_stabilisation_phases.ipynb``); ``HDAI_RECORD_NBVAL_TIMES=1 make test``
rewrites it."""
UNKNOWN_LESSON_S = 60.0
"""A lesson with no measured time is scheduled like a one-minute lesson."""


def measured_seconds() -> dict[str, float]:
    """``MEASURED_TIMES`` as ``{path below notebooks/: seconds}`` ({} if it is missing or unreadable)."""
    try:
        return {str(k): float(v) for k, v in json.loads((notebooks_dir() / MEASURED_TIMES).read_text()).items()}
    except (OSError, ValueError, AttributeError):
        return {}


def lesson_seconds(lesson: Lesson, cost: "dict[str, float] | None" = None) -> float:
    """``lesson``'s measured time two at a time (``MEASURED_TIMES``, or ``cost`` if given); ``UNKNOWN_LESSON_S``
    for a lesson without one."""
    cost = measured_seconds() if cost is None else cost
    try:
        key = lesson.path.resolve().relative_to(notebooks_dir().resolve()).as_posix()
    except ValueError:
        return UNKNOWN_LESSON_S
    return cost.get(key, UNKNOWN_LESSON_S)


def longest_first(lessons: "list[Lesson]") -> "list[Lesson]":
    """``lessons`` ordered by measured time, longest first (ties keep catalogue order): with a pool of workers
    taking lessons in this order, no long lesson starts last and runs on alone."""
    cost = measured_seconds()
    return sorted(lessons, key=lambda l: -lesson_seconds(l, cost))       # sorted() is stable


ALONE_ABOVE_S = 45.0
"""``run_course`` runs a lesson measured above this two at a time alone on every core, as a learner runs it: beside
another lesson it shares the cores (and their caches), and the SOPE lessons split their runs over the cores
(``sope.parallel.train_sharded(..., workers=ctx.threads)``)."""


def course_plan(lessons: "list[Lesson]", jobs: int) -> "tuple[list[Lesson], list[Lesson]]":
    """``(alone, together)``: the lessons ``run_course`` runs one at a time on every core (measured above
    ``ALONE_ABOVE_S``), then the rest ``jobs`` at a time; both longest first. With ``jobs`` 1 every lesson runs alone."""
    cost, ordered = measured_seconds(), longest_first(lessons)
    if jobs <= 1:
        return ordered, []
    alone = [l for l in ordered if lesson_seconds(l, cost) > ALONE_ABOVE_S]
    return alone, [l for l in ordered if l not in alone]


def run_course(scale: "Scale | str | None" = None, jobs: int = 2, inplace: bool = False,
               lessons: "list[Lesson] | None" = None, seed: "int | None" = None) -> tuple[list[dict], Path]:
    """Run every lesson and write ``build/course-report.md`` and ``.json`` (lessons in catalogue order).

    ``course_plan`` decides the order: the longest lessons one at a time on every core (``threads_per_job(1)``),
    then the others ``jobs`` at a time on ``threads_per_job(jobs)`` threads each, longest first."""
    lessons = lessons if lessons is not None else all_lessons()
    from hdai_lessons.core.device import threads_per_job   # imports torch; the runner itself does not need it

    alone, together = course_plan(lessons, jobs)
    start = time.perf_counter()
    done = {l.id: run_measured(l, scale, inplace, seed=seed, threads=threads_per_job(1)) for l in alone}
    with ThreadPoolExecutor(max_workers=jobs) as pool:       # workers take submissions in order
        futures = {l.id: pool.submit(run_measured, l, scale, inplace, seed=seed, threads=threads_per_job(jobs))
                   for l in together}
        done.update({k: f.result() for k, f in futures.items()})
    total = time.perf_counter() - start
    results = [done[l.id] for l in lessons]
    report = write_report(lessons, results, get_scale(scale), total, jobs, n_alone=len(alone) if jobs > 1 else 0)
    return results, report


def describe_claim(record: dict) -> str:
    """One line for a recorded claim: verdict, claim, then the rule's numbers (``d̄``, SE, N) if any."""
    word = {True: "✔ held", False: "✘ did not hold", None: "◐ not resolved"}[record["held"]]
    if record.get("smoke"):
        word = "· not tested at smoke scale"
    ev = record.get("evidence")
    detail = []
    if ev:
        se = "n/a" if ev.get("se") is None else f"{ev['se']:.3g}"
        detail.append(f"mean diff {ev['mean_diff']:+.3g} ± SE {se}, N={ev['n']}")
    detail += [f"{k}={v}" for k, v in record.get("numbers", {}).items()]
    return f"{word}: {record['claim']}" + (f" ({'; '.join(detail)})" if detail else "")


def write_report(lessons: list[Lesson], results: list[dict], scale: Scale, total_s: float, jobs: int,
                 n_alone: int = 0) -> Path:
    """The course report: one row per result; ``n_alone`` lessons ran one at a time (``course_plan``)."""
    by_id = {l.id: l for l in lessons}
    plan = f"{jobs} at a time" if not n_alone else (
        f"{n_alone} (measured above {ALONE_ABOVE_S:.0f} s two at a time) one at a time on every core, the rest {jobs} at a time")
    rows = ["| lesson | title | status | wall (s) | threads | budget (s) | slowest cell (s) | peak memory (MiB) | claims checked |",
            "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        lesson = by_id[r["lesson"]]
        status = "FAILED: " + r["error"] if r["error"] else ("ok" if (r["wall_s"] or 0) <= lesson.budget_s * 3 else "over budget")
        slowest = max(r.get("cell_seconds") or [(None, 0.0)], key=lambda c: c[1])
        slow = f"{slowest[1]} (cell {slowest[0]})" if slowest[0] is not None else "—"
        claims = "<br>".join(describe_claim(c) for c in r["claims"]) or "—"
        rows.append(f"| {lesson.id} | {lesson.title} | {status} | {r['wall_s']} | {r.get('threads', 1)} | {lesson.budget_s} | {slow} | {r['peak_mib']} | {claims} |")
    seeds = sorted({r.get("seed") for r in results}, key=lambda x: -1 if x is None else x)
    seed_note = "" if seeds in ([None], []) else f" Base seed {', '.join('lesson default' if s is None else str(s) for s in seeds)}."
    text = (f"# Course report ({scale} scale)\n\nGenerated by `hdai-lessons course`; {len(results)} lessons, "
            f"{plan}; total wall time {total_s:.0f} s.{seed_note}\n\n" + "\n".join(rows) + "\n")
    out = build_dir() / "course-report.md"
    out.write_text(text)
    (build_dir() / "course-report.json").write_text(json.dumps(results, indent=1))
    return out
