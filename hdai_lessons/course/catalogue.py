"""The lesson map, discovered from ``notebooks/`` so a new module needs no registration.

A lesson is ``notebooks/MM_module/LL_name.ipynb`` (id ``"MM.L"``), with ``metadata.hdai``::

    {"title": "...", "builds": "what you build", "budget_s": 60, "status": "ready",
     "module_title": "RLVR and Listwise Policy Optimization"}
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from hdai_lessons.core.paths import learner_dir, notebooks_dir

_MODULE_DIR = re.compile(r"^(\d\d)_([a-z0-9_]+)$")
_LESSON_FILE = re.compile(r"^(\d\d)_([a-z0-9_]+)\.ipynb$")


@dataclass(frozen=True)
class Lesson:
    id: str                 # "01.2"
    module: str             # "01"
    module_title: str
    title: str
    builds: str
    budget_s: int
    status: str
    path: Path              # the lesson (solution) notebook
    learner_path: Path      # its generated learner version

    @property
    def number(self) -> int:
        return int(self.id.split(".")[1])


def _lesson_from(path: Path, module: str, module_slug: str) -> Lesson:
    m = _LESSON_FILE.match(path.name)
    assert m is not None
    meta = json.loads(path.read_text()).get("metadata", {}).get("hdai", {})
    lesson_id = f"{module}.{int(m.group(1))}"
    return Lesson(
        id=lesson_id,
        module=module,
        module_title=meta.get("module_title", module_slug.replace("_", " ").title()),
        title=meta.get("title", m.group(2).replace("_", " ")),
        builds=meta.get("builds", ""),
        budget_s=int(meta.get("budget_s", 60)),
        status=meta.get("status", "draft"),
        path=path,
        learner_path=learner_dir() / path.parent.name / path.name,
    )


def all_lessons() -> list[Lesson]:
    """Every lesson, in course order."""
    lessons = []
    for module_dir in sorted(notebooks_dir().iterdir()):
        m = _MODULE_DIR.match(module_dir.name)
        if not m or not module_dir.is_dir():
            continue
        for path in sorted(module_dir.glob("*.ipynb")):
            if _LESSON_FILE.match(path.name):
                lessons.append(_lesson_from(path, m.group(1), m.group(2)))
    return lessons


def get_lesson(lesson_id: str) -> Lesson:
    """Look a lesson up by id (``"01.2"``; ``"1.2"`` and ``"01.02"`` work too)."""
    lessons = all_lessons()
    norm = lesson_id.strip()
    parts = norm.split(".")
    if len(parts) == 2 and all(p.isdigit() for p in parts):
        norm = f"{int(parts[0]):02d}.{int(parts[1])}"
    for lesson in lessons:
        if lesson.id == norm:
            return lesson
    valid = ", ".join(l.id for l in lessons)
    raise KeyError(f"unknown lesson {lesson_id!r}; valid lessons: {valid}")


MAP_START, MAP_END = "<!-- LESSON MAP START -->", "<!-- LESSON MAP END -->"


def lesson_map_markdown(lessons: "list[Lesson] | None" = None) -> str:
    """The README's lesson map: module, lesson, what you build, budget, status."""
    rows = ["| module | lesson | title | what you build | budget | status |", "|---|---|---|---|---|---|"]
    for l in lessons if lessons is not None else all_lessons():
        link = l.path.relative_to(l.path.parents[2]).as_posix()
        rows.append(f"| {l.module} {l.module_title} | {l.id} | [{l.title}]({link}) | {l.builds} | {l.budget_s} s | {l.status} |")
    return "\n".join(rows)


def update_readme(readme: Path) -> bool:
    """Rewrite the lesson map between the markers in ``readme``; return whether it changed."""
    text = readme.read_text()
    if MAP_START not in text or MAP_END not in text:
        raise ValueError(f"{readme} has no {MAP_START} … {MAP_END} block")
    head, rest = text.split(MAP_START, 1)
    _, tail = rest.split(MAP_END, 1)
    new = f"{head}{MAP_START}\n{lesson_map_markdown()}\n{MAP_END}{tail}"
    if new != text:
        readme.write_text(new)
    return new != text
