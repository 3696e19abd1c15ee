"""The workshop kit: offline slide decks, agendas, speaker notes and catch-up checkpoints.

Everything here is generated from the lesson notebooks, so it never drifts from them and a new
module is picked up without hand edits.
"""
from hdai_lessons.course.workshop.catchup import catch_up

__all__ = ["catch_up"]
