"""Rerun lessons on other base seeds and compare every claim's verdict with the lesson's own seed.

    python scripts/verdicts_across_seeds.py 01.2 03.1 --seeds 1 2      # two lessons
    python scripts/verdicts_across_seeds.py --all --seeds 1 2 --jobs 2  # the whole course

The lesson's own seed (as committed) is run too, so the three columns come from the same
machine and code. Prints one row per claim and exits non-zero when a verdict differs between
seeds: a claim must hold (or honestly stay "not resolved") on seeds it was not written with.
Writes build/verdicts-across-seeds.json.
"""
from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ThreadPoolExecutor

from hdai_lessons.course.catalogue import all_lessons, get_lesson
from hdai_lessons.core.paths import build_dir
from hdai_lessons.core.device import threads_per_job
from hdai_lessons.course.runner import run_measured

WORD = {True: "held", False: "did not hold", None: "not resolved"}


def main(argv: "list[str] | None" = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("lessons", nargs="*", help="lesson ids, e.g. 01.2")
    p.add_argument("--all", action="store_true", help="every lesson")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2], help="base seeds besides the lesson's own")
    p.add_argument("--scale", default="toy")
    p.add_argument("--jobs", type=int, default=2)
    args = p.parse_args(argv)
    lessons = all_lessons() if args.all else [get_lesson(l) for l in args.lessons]
    if not lessons:
        p.error("name lessons or pass --all")
    seeds: list = [None, *args.seeds]
    jobs = [(l, s) for l in lessons for s in seeds]
    threads = threads_per_job(args.jobs)
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(lambda js: run_measured(js[0], args.scale, seed=js[1], threads=threads), jobs))
    by_lesson: dict = {}
    for (lesson, seed), r in zip(jobs, results):
        by_lesson.setdefault(lesson.id, {})[seed] = r
    changed = 0
    header = "own seed | " + " | ".join(f"seed {s}" for s in args.seeds)
    print(f"| lesson | claim | {header} | same? |\n|---|---|{'---|' * len(seeds)}---|")
    for lid, runs in by_lesson.items():
        for s, r in runs.items():
            if r["error"]:
                print(f"| {lid} | FAILED at seed {s}: {r['error']} |")
                changed += 1
        own = runs[None]["claims"]
        for i, c in enumerate(own):
            verdicts = [WORD[runs[s]["claims"][i]["held"]] if i < len(runs[s]["claims"]) else "missing" for s in seeds]
            same = len(set(verdicts)) == 1
            changed += not same
            print(f"| {lid} | {c['claim']} | {' | '.join(verdicts)} | {'yes' if same else 'NO'} |")
    out = build_dir() / "verdicts-across-seeds.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({lid: {str(s): r for s, r in runs.items()} for lid, runs in by_lesson.items()}, indent=1))
    print(f"\n{changed} claim(s) changed verdict or failed; details in {out}")
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())
