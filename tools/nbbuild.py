"""Tiny helper for authoring notebooks from Python: ``md(...)``, ``code(...)``, ``write(path, meta)``.

Lessons are edited as notebooks; this only saves typing JSON when a lesson is first drafted.
"""
from __future__ import annotations

import sys
from pathlib import Path

import nbformat

_cells: list = []


def md(text: str) -> None:
    _cells.append(nbformat.v4.new_markdown_cell(text.strip("\n")))


def code(src: str, tags: "list[str] | None" = None) -> None:
    cell = nbformat.v4.new_code_cell(src.strip("\n"))
    if tags:
        cell.metadata["tags"] = tags
    _cells.append(cell)


def write(path: "str | Path", hdai_meta: dict) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.metadata["hdai"] = hdai_meta
    nb.cells = list(_cells)
    for i, c in enumerate(nb.cells):
        c["id"] = f"c{i:03d}"
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    _cells.clear()
    print(f"wrote {path}", file=sys.stderr)
