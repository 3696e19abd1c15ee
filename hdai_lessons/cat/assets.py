"""What lesson 02.4 downloads at full scale (``hdai-lessons fetch 02.4``): the same model and data as 01.4."""
from hdai_lessons.core.assets import register_assets
from hdai_lessons.rlvr.assets import DATASET, MODEL

register_assets("02.4", [MODEL, DATASET])
