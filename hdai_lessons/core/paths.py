"""Where the course's folders are (the repository root, found from the package or ``$HDAI_ROOT``)."""
from __future__ import annotations

import os
from pathlib import Path


def repo_root() -> Path:
    """The course checkout: ``$HDAI_ROOT`` if set, else the folder above the package (``hdai_lessons/core/paths.py`` → the checkout).

    Course infrastructure used by every lesson (no lesson or paper equation of its own).
    """
    env = os.environ.get("HDAI_ROOT")
    root = Path(env) if env else Path(__file__).resolve().parents[2]
    if not (root / "notebooks").is_dir():
        raise FileNotFoundError(
            f"no notebooks/ folder under {root}; install the course from a clone with "
            "`pip install -e .` or set HDAI_ROOT to the clone"
        )
    return root


def notebooks_dir() -> Path:
    return repo_root() / "notebooks"


def learner_dir() -> Path:
    """Generated learner versions live in ``notebooks/learner/<module>/<lesson>.ipynb``."""
    return notebooks_dir() / "learner"


def data_dir() -> Path:
    return repo_root() / "data"


def build_dir() -> Path:
    path = repo_root() / "build"
    path.mkdir(exist_ok=True)
    return path
