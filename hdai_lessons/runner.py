"""Run lessons headless: one notebook (``run``), or all of them with a report (``course``).

Each notebook runs in its own subprocess with one torch thread, two at a time, so the kernel's
peak memory can be read from ``RUSAGE_CHILDREN`` and two cores are both used.
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat

from .lessons import Lesson, all_lessons
from .paths import build_dir
from .scale import Scale, get_scale

# Environment every headless kernel gets: chosen scale, no network, quiet bars, one thread.
# (No MPLBACKEND: the kernel's inline backend is what stores figures in the notebook.)
HEADLESS_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HDAI_PROGRESS": "0",
    "PYDEVD_DISABLE_FILE_VALIDATION": "1",
}


def execute_notebook(path: Path, out_path: "Path | None", scale: "Scale | str | None" = None,
                     timeout: int = 600, threads: int = 1, claims_file: "Path | None" = None,
                     strict: bool = True) -> nbformat.NotebookNode:
    """Execute ``path`` top to bottom with nbclient; write the executed copy to ``out_path``."""
    from nbclient import NotebookClient

    env = {**HEADLESS_ENV, "HDAI_SCALE": get_scale(scale).value, "HDAI_THREADS": str(threads),
           "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "HDAI_EXERCISES_STRICT": "1" if strict else "0"}
    if claims_file is not None:
        env["HDAI_CLAIMS_FILE"] = str(claims_file)
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        nb = nbformat.read(str(path), as_version=4)
        NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=False,
                       resources={"metadata": {"path": str(path.parent)}}).execute()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    for cell in nb.cells:  # timestamps would make every re-run a diff
        cell.get("metadata", {}).pop("execution", None)
    if out_path is not None:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, str(out_path))
    return nb


def _run_one_measured(lesson_id: str, scale: str, out_path: str, claims_file: str, inplace: bool) -> None:
    """Child-process entry point: execute, then print a JSON line with time and peak memory."""
    from .lessons import get_lesson

    lesson = get_lesson(lesson_id)
    start = time.perf_counter()
    error = None
    try:
        nb = execute_notebook(lesson.path, Path(out_path), scale=scale, claims_file=Path(claims_file))
        if inplace:
            nbformat.write(nb, str(lesson.path))
    except Exception as err:  # reported, not raised: the course report lists failures
        error = f"{type(err).__name__}: {str(err).strip().splitlines()[-1] if str(err).strip() else ''}"
    wall = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(json.dumps({"lesson": lesson_id, "wall_s": round(wall, 1), "peak_mib": round(peak_kib / 1024, 0), "error": error}))


def run_measured(lesson: Lesson, scale: "Scale | str | None", inplace: bool = False) -> dict:
    """Run one lesson in a fresh process; return wall time, peak memory, error and claims."""
    scale_v = get_scale(scale).value
    out_path = build_dir() / "executed" / scale_v / lesson.path.parent.name / lesson.path.name
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        claims_file = f.name
    proc = subprocess.run(
        [sys.executable, "-c",
         "import sys; from hdai_lessons.runner import _run_one_measured as r; r(*sys.argv[1:5], sys.argv[5] == '1')",
         lesson.id, scale_v, str(out_path), claims_file, "1" if inplace else "0"],
        capture_output=True, text=True,
    )
    result = {"lesson": lesson.id, "wall_s": None, "peak_mib": None, "error": None}
    lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
    if lines:
        result.update(json.loads(lines[-1]))
    else:
        result["error"] = (proc.stderr.strip().splitlines() or ["runner crashed"])[-1]
    claims_path = Path(claims_file)
    result["claims"] = [json.loads(l) for l in claims_path.read_text().splitlines() if l.strip()]
    claims_path.unlink(missing_ok=True)
    result["executed"] = str(out_path)
    return result


def run_course(scale: "Scale | str | None" = None, jobs: int = 2, inplace: bool = False,
               lessons: "list[Lesson] | None" = None) -> tuple[list[dict], Path]:
    """Run every lesson (``jobs`` at a time); write ``build/course-report.md`` and ``.json``."""
    lessons = lessons if lessons is not None else all_lessons()
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        results = list(pool.map(lambda l: run_measured(l, scale, inplace), lessons))
    total = time.perf_counter() - start
    report = write_report(lessons, results, get_scale(scale), total, jobs)
    return results, report


def write_report(lessons: list[Lesson], results: list[dict], scale: Scale, total_s: float, jobs: int) -> Path:
    by_id = {l.id: l for l in lessons}
    rows = ["| lesson | title | status | wall (s) | budget (s) | peak memory (MiB) | claims checked |",
            "|---|---|---|---|---|---|---|"]
    for r in results:
        lesson = by_id[r["lesson"]]
        status = "FAILED: " + r["error"] if r["error"] else ("ok" if (r["wall_s"] or 0) <= lesson.budget_s * 3 else "over budget")
        claims = "<br>".join(
            f"{'✔ held' if c['held'] else ('✘ did not hold' if c['held'] is False else '◐ mixed')}: {c['claim']} "
            f"({', '.join(f'{k}={v}' for k, v in c['numbers'].items())})" for c in r["claims"]) or "—"
        rows.append(f"| {lesson.id} | {lesson.title} | {status} | {r['wall_s']} | {lesson.budget_s} | {r['peak_mib']} | {claims} |")
    text = (f"# Course report ({scale} scale)\n\nGenerated by `hdai-lessons course`; {len(results)} lessons, "
            f"{jobs} at a time, total wall time {total_s:.0f} s.\n\n" + "\n".join(rows) + "\n")
    out = build_dir() / "course-report.md"
    out.write_text(text)
    (build_dir() / "course-report.json").write_text(json.dumps(results, indent=1))
    return out
