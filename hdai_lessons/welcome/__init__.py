"""Module 00: how the course works. Its exercises are the shared ops in ``hdai_lessons.core.ops``."""
