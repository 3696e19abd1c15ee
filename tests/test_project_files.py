"""Project files agree: environment.yml ↔ pyproject, README ↔ lessons and commands, .ci/run ↔ README."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

from hdai_lessons.course.catalogue import all_lessons

ROOT = Path(__file__).resolve().parent.parent


def test_environment_yml_matches_pyproject():
    py = tomllib.loads((ROOT / "pyproject.toml").read_text())
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    deps = env["dependencies"]
    pip_section = next(d["pip"] for d in deps if isinstance(d, dict))
    assert "-e .[dev]" in pip_section, "environment.yml must install the package from pyproject"
    torch_pin = next(d for d in deps if isinstance(d, str) and d.startswith(("pytorch=", "pytorch-cpu=")))
    version = torch_pin.split("=")[1]
    spec = next(d for d in py["project"]["dependencies"] if d.startswith("torch"))
    lo, hi = re.findall(r">=([\d.]+)", spec)[0], re.findall(r"<([\d.]+)", spec)[0]
    as_tuple = lambda v: tuple(int(x) for x in v.split("."))  # noqa: E731
    assert as_tuple(lo) <= as_tuple(version) < as_tuple(hi), f"conda torch {version} outside pyproject's {spec}"
    py_req = py["project"]["requires-python"].lstrip(">=")
    conda_py = next(d for d in deps if isinstance(d, str) and d.startswith("python=")).split("=")[1]
    assert as_tuple(conda_py) >= as_tuple(py_req)


def test_torch_range_never_forces_a_newer_build():
    py = tomllib.loads((ROOT / "pyproject.toml").read_text())
    spec = next(d for d in py["project"]["dependencies"] if d.startswith("torch"))
    assert "<2.15" in spec and ">=" in spec


def test_readme_lesson_map_lists_every_lesson():
    readme = (ROOT / "README.md").read_text()
    for lesson in all_lessons():
        assert f"| {lesson.id} |" in readme, f"README lesson map lacks {lesson.id}; run `make readme`"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and "make test" in ci


def test_every_lesson_has_metadata_and_sections():
    import nbformat

    for lesson in all_lessons():
        nb = nbformat.read(str(lesson.path), as_version=4)
        meta = nb.metadata["hdai"]
        for key in ("title", "module_title", "builds", "budget_s", "status"):
            assert key in meta, f"{lesson.path}: metadata.hdai lacks {key}"
        assert meta["budget_s"] <= 180
        first_code = next(c for c in nb.cells if c.cell_type == "code")
        assert "parameters" in first_code.metadata.get("tags", []), f"{lesson.path}: first code cell must be the parameters cell"
        setup = [c for c in nb.cells if c.cell_type == "code"][1].source
        assert f'setup_lesson("{lesson.id}"' in setup, f"{lesson.path}: second code cell must call setup_lesson(\"{lesson.id}\", ...)"
        text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown").lower()
        for section in ("summary", "objectives" if "objectives" in text else "you will learn"):
            assert section in text, f"{lesson.path}: no '{section}' section"
