"""The course's modules: module number → the package that implements it (COURSE.md §1).

Each module package keeps its exercise bank in ``<package>/exercises.py`` and its full-scale assets
in ``<package>/assets.py``; the checkers and ``core.assets`` find them through this table.
"""

# Module number → the package whose ``exercises`` module registers that module's bank.
MODULE_PACKAGES = {
    "00": "hdai_lessons.welcome",
    "01": "hdai_lessons.rlvr",
    "02": "hdai_lessons.cat",
    "03": "hdai_lessons.sope",
    "04": "hdai_lessons.flows",
    "05": "hdai_lessons.unified",
}
