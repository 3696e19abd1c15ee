"""Module 00: how the course works. Its exercises are the shared ops in ``hdai_lessons.core.ops``.

- ``scale_ladder``: ``WelcomeLessonConfig``, lesson 00.1's example of a config chosen by scale.
"""
from hdai_lessons.welcome.scale_ladder import WelcomeLessonConfig

__all__ = ["WelcomeLessonConfig"]
