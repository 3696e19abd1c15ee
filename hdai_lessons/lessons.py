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

from .paths import learner_dir, notebooks_dir

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
