"""One source, two versions: make the learner notebook from the lesson (solution) notebook.

In the lesson notebook a reference solution sits between markers inside a code cell::

    def masked_mean(x, mask, dim=-1):
        \"\"\"...\"\"\"
        # BEGIN SOLUTION
        return (x * mask).sum(dim) / mask.sum(dim).clamp_min(1)
        # END SOLUTION

    masked_mean = check_exercise("00.1.2", masked_mean)

The learner version replaces the lines between the markers with a stub at the same indentation
(``raise NotImplementedError(...)``), drops cells tagged ``solution`` and markdown between
``<!-- BEGIN SOLUTION -->`` / ``<!-- END SOLUTION -->``, and clears outputs. ``check_exercise``
then falls back to the reference, so the learner version still runs top to bottom.
"""
from __future__ import annotations

import re
from pathlib import Path

import nbformat

BEGIN, END = "# BEGIN SOLUTION", "# END SOLUTION"
MD_BLOCK = re.compile(r"<!-- BEGIN SOLUTION -->.*?<!-- END SOLUTION -->\s*", re.S)
EXERCISE_ID = re.compile(r"check_exercise\(\s*[\"'](\d+\.\d+\.\d+)[\"']")


def strip_solutions(source: str) -> str:
    """Replace every marked solution block in a code cell's source with a stub."""
    match = EXERCISE_ID.search(source)
    label = f"Exercise {match.group(1)}" if match else "This exercise"
    out: list[str] = []
    inside = False
    for lineno, line in enumerate(source.splitlines(), 1):
        stripped = line.strip()
        if stripped == BEGIN:
            if inside:
                raise ValueError(f"line {lineno}: nested '{BEGIN}'")
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            out.append(f"{indent}# YOUR CODE HERE")
            out.append(f'{indent}raise NotImplementedError("{label}: replace this line with your implementation")')
        elif stripped == END:
            if not inside:
                raise ValueError(f"line {lineno}: '{END}' without '{BEGIN}'")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"'{BEGIN}' is never closed")
    return "\n".join(out)


def make_learner_notebook(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Return the learner version of a lesson notebook (the input is not modified)."""
    learner = nbformat.v4.new_notebook(metadata=dict(nb.metadata))
    learner.metadata.setdefault("hdai", {})
    learner.metadata["hdai"] = {**learner.metadata["hdai"], "version": "learner"}
    volatile = {"execution", "ExecuteTime", "collapsed", "scrolled"}
    for cell in nb.cells:
        if "solution" in cell.get("metadata", {}).get("tags", []):
            continue
        meta = {k: v for k, v in cell.get("metadata", {}).items() if k not in volatile}
        if cell.cell_type == "code":
            new = nbformat.v4.new_code_cell(strip_solutions(cell.source), metadata=meta)
        elif cell.cell_type == "markdown":
            text = MD_BLOCK.sub("", cell.source)
            new = nbformat.v4.new_markdown_cell(text, metadata=meta)
        else:
            new = nbformat.v4.new_raw_cell(cell.source, metadata=meta)
        new.pop("id", None)
        learner.cells.append(new)
    # deterministic cell ids so regenerating yields identical bytes (the drift check compares them)
    for i, cell in enumerate(learner.cells):
        cell["id"] = f"cell-{i:03d}"
    return learner


def learner_text(solution_path: "str | Path") -> str:
    """The learner notebook for ``solution_path`` as the exact text that would be written."""
    nb = nbformat.read(str(solution_path), as_version=4)
    return nbformat.writes(make_learner_notebook(nb)) + "\n"
