"""One source, two versions: stub generation, and a drift check on the committed learner notebooks."""
from __future__ import annotations

import nbformat
import pytest

from hdai_lessons.course.checkers.learner_version import learner_text, make_learner_notebook, strip_solutions
from hdai_lessons.course.catalogue import all_lessons

SOURCE = '''def f(x):
    """doc"""
    # BEGIN SOLUTION
    y = x + 1
    return y
    # END SOLUTION

f = check_exercise("00.1.2", f)'''


def test_strip_solutions_keeps_indentation_and_names_the_exercise():
    out = strip_solutions(SOURCE)
    assert "y = x + 1" not in out and "return y" not in out
    assert '    raise NotImplementedError("Exercise 00.1.2: replace this line with your implementation")' in out
    assert out.splitlines()[0] == "def f(x):" and out.splitlines()[-1] == 'f = check_exercise("00.1.2", f)'
    compile(out, "<learner>", "exec")  # the stub is valid Python


@pytest.mark.parametrize("bad", ["# BEGIN SOLUTION\nx", "x\n# END SOLUTION", "# BEGIN SOLUTION\n# BEGIN SOLUTION\n# END SOLUTION"])
def test_unbalanced_markers_are_errors(bad):
    with pytest.raises(ValueError):
        strip_solutions(bad)


def test_solution_cells_and_blocks_are_dropped():
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("Intro <!-- BEGIN SOLUTION -->the answer is 42<!-- END SOLUTION --> end"),
        nbformat.v4.new_code_cell("print('secret')", metadata={"tags": ["solution"]}),
        nbformat.v4.new_code_cell(SOURCE, outputs=[nbformat.v4.new_output("stream", text="hi")]),
    ]
    learner = make_learner_notebook(nb)
    assert len(learner.cells) == 2
    assert "42" not in learner.cells[0].source
    assert learner.cells[1].outputs == [] and learner.metadata["hdai"]["version"] == "learner"


@pytest.mark.parametrize("lesson", all_lessons(), ids=lambda l: l.id)
def test_committed_learner_version_is_current(lesson):
    assert lesson.learner_path.exists(), f"missing {lesson.learner_path}; run `hdai-lessons exercises`"
    assert lesson.learner_path.read_text() == learner_text(lesson.path), (
        f"{lesson.learner_path} is stale; run `hdai-lessons exercises`")


@pytest.mark.parametrize("lesson", all_lessons(), ids=lambda l: l.id)
def test_learner_version_has_no_solutions(lesson):
    nb = nbformat.read(str(lesson.path), as_version=4)
    if not any("# BEGIN SOLUTION" in c.source for c in nb.cells):
        pytest.skip("lesson has no marked solutions")
    text = lesson.learner_path.read_text()
    assert "# BEGIN SOLUTION" not in text and "NotImplementedError" in text
