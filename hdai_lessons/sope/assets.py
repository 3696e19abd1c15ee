"""Full-scale data for lesson 03.4: the Minari MuJoCo datasets the paper uses.

Minari datasets come through Minari's own client (asset kind ``"minari"``)::

    pip install -e .[mujoco]
    hdai-lessons fetch 03.4

``MINARI_DATASETS_PATH`` chooses where they are stored (Minari's default: ``~/.minari/datasets``).
"""
from __future__ import annotations

from hdai_lessons.core.assets import Asset, register_assets

LESSON_DATASETS = ("mujoco/hopper/expert-v0", "mujoco/halfcheetah/expert-v0")

register_assets("03.4", [Asset("minari", ds) for ds in LESSON_DATASETS])
