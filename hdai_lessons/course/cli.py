"""The ``hdai-lessons`` command: list, run, course, exercises, doctor, fetch, data, slides, workshop, readme.

A mistake in what the user typed or in the environment (an unknown lesson, module or scale, a
damaged manifest) is reported as one line on stderr with a non-zero exit; ``HDAI_DEBUG=1`` shows
the traceback instead.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from hdai_lessons.core.modules import MODULE_PACKAGES


class UsageError(Exception):
    """What the user asked for cannot be done as asked; the message says what to do instead."""


def _cmd_list(args: argparse.Namespace) -> int:
    from hdai_lessons.course.catalogue import all_lessons

    lessons = all_lessons()
    print(f"{'lesson':7s} {'budget':>7s}  {'status':7s} title")
    for l in lessons:
        learner = "learner ✔" if l.learner_path.exists() else "learner ✘"
        print(f"{l.id:7s} {l.budget_s:>6d}s  {l.status:7s} {l.title}  [{learner}]")
    return 0


def _lesson_or_exit(lesson_id: str):
    from hdai_lessons.course.catalogue import get_lesson

    try:
        return get_lesson(lesson_id)
    except KeyError as err:
        print(str(err).strip("'\""), file=sys.stderr)
        return None


def _cmd_run(args: argparse.Namespace) -> int:
    from hdai_lessons.course.runner import describe_claim, run_measured

    lesson = _lesson_or_exit(args.lesson)
    if lesson is None:
        return 2
    if args.seed is not None and args.inplace:
        print("--inplace writes the committed outputs, which use the lesson's own seed: drop --seed or --inplace", file=sys.stderr)
        return 2
    print(f"running lesson {lesson.id} headless (budget {lesson.budget_s} s)…", file=sys.stderr, flush=True)
    result = run_measured(lesson, args.scale, inplace=args.inplace, seed=args.seed, progress=True)
    for c in result["claims"]:
        print(f"[{lesson.id}] {describe_claim(c)}")
    if result["error"]:
        print(f"lesson {lesson.id} FAILED after {result['wall_s']} s: {result['error']}", file=sys.stderr)
        for line in result.get("log_tail", [])[-10:]:
            print(f"  kernel log: {line}", file=sys.stderr)
        return 1
    print(f"lesson {lesson.id} ran in {result['wall_s']} s (peak {result['peak_mib']} MiB); executed copy: {result['executed']}")
    return 0


def _cmd_course(args: argparse.Namespace) -> int:
    from hdai_lessons.course.catalogue import all_lessons
    from hdai_lessons.course.runner import run_course

    lessons = all_lessons()
    if args.module:
        lessons = [l for l in lessons if l.module == args.module]
        if not lessons:
            raise UsageError(f"module {args.module} has no lessons yet")
    if args.seed is not None and args.inplace:
        print("--inplace writes the committed outputs, which use each lesson's own seed: drop --seed or --inplace", file=sys.stderr)
        return 2
    results, report = run_course(args.scale, jobs=args.jobs, inplace=args.inplace, lessons=lessons, seed=args.seed)
    print(report.read_text())
    return 1 if any(r["error"] for r in results) else 0


def _cmd_exercises(args: argparse.Namespace) -> int:
    from hdai_lessons.course.checkers.learner_version import learner_text
    from hdai_lessons.course.catalogue import all_lessons

    stale = []
    for lesson in all_lessons():
        text = learner_text(lesson.path)
        current = lesson.learner_path.read_text() if lesson.learner_path.exists() else None
        if current == text:
            continue
        if args.check:
            stale.append(lesson.id)
        else:
            lesson.learner_path.parent.mkdir(parents=True, exist_ok=True)
            lesson.learner_path.write_text(text)
            print(f"wrote {lesson.learner_path}")
    if args.check and stale:
        print(f"stale learner versions: {', '.join(stale)}; run `hdai-lessons exercises`", file=sys.stderr)
        return 1
    if args.check:
        print("learner versions are up to date")
    return 0


def _cmd_doctor(args: argparse.Namespace) -> int:
    from hdai_lessons.course.doctor import print_report, run_doctor

    return 1 if print_report(run_doctor()) else 0


def _cmd_fetch(args: argparse.Namespace) -> int:
    from hdai_lessons.core.assets import MissingAssetError, assets_for, fetch_lesson

    lesson = _lesson_or_exit(args.lesson)
    if lesson is None:
        return 2
    if not assets_for(lesson.id):
        print(f"lesson {lesson.id} needs no downloads (it generates or ships its data)")
        return 0
    try:
        for path in fetch_lesson(lesson.id):
            print(f"ok {path}")
    except MissingAssetError as err:
        print(f"fetch failed: {err}", file=sys.stderr)
        return 1
    return 0


def _cmd_data(args: argparse.Namespace) -> int:
    from hdai_lessons.core.data import build, load_manifest, restore, verify

    if args.action == "verify":
        names = [args.name] if args.name else [e["name"] for e in load_manifest()]
        bad = [p for p in (verify(n) for n in names) if p]
        for p in bad:
            print(p, file=sys.stderr)
        print(f"{len(names) - len(bad)} verified, {len(bad)} bad")
        return 1 if bad else 0
    if not args.name:
        raise UsageError(f"data {args.action} needs a NAME; the names are in data/manifest.json "
                         "(`hdai-lessons data verify` lists problems)")
    if args.action == "restore":
        print(f"restored {restore(args.name)} (the committed file, verified)")
        return 0
    path, sha = build(args.name, out_dir=Path(args.out) if args.out else None)
    print(f"built {path}\nsha256 {sha}\n(the shipped file and manifest are unchanged; to ship this build, copy it "
          f"over the shipped file and put this sha256 in its manifest)")
    return 0


def _cmd_readme(args: argparse.Namespace) -> int:
    from hdai_lessons.course.catalogue import update_readme
    from hdai_lessons.core.paths import repo_root

    changed = update_readme(repo_root() / "README.md")
    print("README lesson map updated" if changed else "README lesson map already current")
    return 0


def _cmd_slides(args: argparse.Namespace) -> int:
    from hdai_lessons.course.workshop.slides import build_all

    for path in build_all(Path(args.out) if args.out else None):
        print(f"wrote {path}")
    return 0


def _cmd_workshop(args: argparse.Namespace) -> int:
    from hdai_lessons.core.paths import repo_root
    from hdai_lessons.course.workshop.agenda import instructor_guide

    path = repo_root() / "slides" / "INSTRUCTOR.md"
    text = instructor_guide()
    if args.check:
        if not path.exists() or path.read_text() != text:
            print(f"{path} is stale; run `hdai-lessons workshop`", file=sys.stderr)
            return 1
        print("instructor guide is current")
        return 0
    path.write_text(text)
    print(f"wrote {path}")
    return 0


def _cmd_gpu_check(args: argparse.Namespace) -> int:
    if args.plan:
        from hdai_lessons.course.gpu_plan import format_plans, full_scale_plans

        plans = full_scale_plans()
        print(format_plans(plans, args.gpu_gb))
        too_big = [p.lesson for p in plans if not p.fits(args.gpu_gb)]
    else:
        import torch

        from hdai_lessons.course.gpu_check import format_checks, full_scale_checks

        device = args.device or ("cuda" if torch.cuda.is_available() else None)
        if device is None:
            raise UsageError("gpu-check runs every full-scale path on a CUDA GPU and none is visible here; "
                             "plan the memory on this CPU with `hdai-lessons gpu-check --plan`, or try the code "
                             "path at tiny size with `hdai-lessons gpu-check --tiny --device cpu`")
        rows = full_scale_checks(device, tiny=args.tiny)
        print(format_checks(rows, args.gpu_gb))
        too_big = [r.lesson for r in rows if r.peak_gib is not None and r.peak_gib > args.gpu_gb]
    if too_big:
        print(f"\n{len(too_big)} path(s) do not fit {args.gpu_gb:g} GiB: {', '.join(too_big)}", file=sys.stderr)
        return 1
    return 0


def _module_arg(text: str) -> str:
    """``1`` / ``01`` → ``"01"``; anything that is not a module of the course is an argparse error."""
    key = text.strip().zfill(2)
    if key not in MODULE_PACKAGES:
        raise argparse.ArgumentTypeError(f"{text!r} is not a module; choose one of {', '.join(sorted(MODULE_PACKAGES))}")
    return key


def _jobs_arg(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of parallel jobs: use 1 or more")
    return int(text)


def _seed_arg(text: str) -> int:
    if not text.strip().isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a seed: use a non-negative integer")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hdai-lessons", description="HDAI Lessons course tools")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("list", help="lessons with budget and status")
    s.set_defaults(func=_cmd_list)
    s = sub.add_parser("run", help="run one lesson headless and save the executed copy under build/")
    s.add_argument("lesson", help="lesson id, e.g. 01.2")
    s.add_argument("--scale", choices=["smoke", "toy", "full"], default=None)
    s.add_argument("--inplace", action="store_true", help="also write outputs back into the lesson notebook")
    s.add_argument("--seed", type=_seed_arg, default=None,
                   help="the lesson's base seed (default: the lesson's own, or $HDAI_SEED); rerun a claim on other seeds")
    s.set_defaults(func=_cmd_run)
    s = sub.add_parser("course", help="run every lesson and write build/course-report.md")
    s.add_argument("--scale", choices=["smoke", "toy", "full"], default=None)
    s.add_argument("--jobs", type=_jobs_arg, default=2, help="lessons run at once (default 2)")
    s.add_argument("--module", type=_module_arg, default=None, help="only this module, e.g. 01")
    s.add_argument("--inplace", action="store_true", help="write outputs back into the lesson notebooks")
    s.add_argument("--seed", type=_seed_arg, default=None, help="base seed for every lesson (see run --seed)")
    s.set_defaults(func=_cmd_course)
    s = sub.add_parser("exercises", help="generate learner versions (solutions replaced by stubs)")
    s.add_argument("--check", action="store_true", help="only report stale learner versions")
    s.set_defaults(func=_cmd_exercises)
    s = sub.add_parser("doctor", help="check this machine can run the course; print fixes")
    s.set_defaults(func=_cmd_doctor)
    s = sub.add_parser("fetch", help="download and verify what a full-scale lesson needs")
    s.add_argument("lesson")
    s.set_defaults(func=_cmd_fetch)
    s = sub.add_parser("data", help="verify shipped data, restore a file from git, or rebuild one elsewhere")
    s.add_argument("action", choices=["verify", "restore", "build"],
                   help="verify: checksums; restore: the committed file back from git; build: rerun its generator into build/data/")
    s.add_argument("name", nargs="?", help="a name from data/manifest.json (verify: all when omitted)")
    s.add_argument("--out", default=None, help="build: output folder (default build/data/)")
    s.set_defaults(func=_cmd_data)
    s = sub.add_parser("slides", help="build one offline reveal.js deck per module into slides/")
    s.add_argument("--out", default=None, help="output folder (default slides/)")
    s.set_defaults(func=_cmd_slides)
    s = sub.add_parser("workshop", help="write slides/INSTRUCTOR.md (agendas, checklist) from the lessons")
    s.add_argument("--check", action="store_true", help="only report whether it is current")
    s.set_defaults(func=_cmd_workshop)
    s = sub.add_parser("gpu-check", help="run every full-scale path at real size with random weights on a GPU "
                                          "and measure it; --plan: plan its memory on this CPU instead")
    s.add_argument("--plan", action="store_true",
                   help="build the real-size architectures on the meta device and plan memory (no GPU needed)")
    s.add_argument("--tiny", action="store_true", help="tiny architectures of the same classes (tries the code path)")
    s.add_argument("--device", default=None, help="torch device (default: cuda when visible)")
    s.add_argument("--gpu-gb", type=float, default=80.0, help="target GPU memory in GiB (default 80)")
    s.set_defaults(func=_cmd_gpu_check)
    s = sub.add_parser("readme", help="rewrite the lesson map in README.md from the notebooks")
    s.set_defaults(func=_cmd_readme)
    return p


def _user_errors() -> tuple[type, ...]:
    """Errors that describe a problem with the input or the environment, each with its fix in the message."""
    from hdai_lessons.core.assets import MissingAssetError
    from hdai_lessons.core.checkpoint import CheckpointError
    from hdai_lessons.core.data import DataError

    return UsageError, DataError, CheckpointError, MissingAssetError


def main(argv: "list[str] | None" = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if getattr(args, "scale", None) is None and "HDAI_SCALE" in os.environ:
            from hdai_lessons.core.scale import get_scale
            try:
                get_scale(None)
            except ValueError as err:
                raise UsageError(str(err)) from None
        return int(args.func(args) or 0)
    except Exception as err:
        if os.environ.get("HDAI_DEBUG") or not isinstance(err, _user_errors()):
            raise
        print(f"hdai-lessons: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
