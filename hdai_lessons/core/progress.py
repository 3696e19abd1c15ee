"""Progress bars: ``tqdm.auto`` (widget in Jupyter, text in a terminal), a plain fallback otherwise.

``HDAI_PROGRESS=0`` silences bars (the headless runner and nbval set it so outputs stay clean).
"""
from __future__ import annotations

import os
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")


def progress_enabled() -> bool:
    return os.environ.get("HDAI_PROGRESS", "1") not in ("0", "false", "no")


def progress(iterable: Iterable[T], desc: str = "", total: "int | None" = None, **kwargs) -> Iterator[T]:
    """Wrap ``iterable`` in a progress bar when enabled and tqdm is importable; else pass through.

    Course infrastructure used by every lesson (no lesson or paper equation of its own).
    """
    if not progress_enabled():
        yield from iterable
        return
    try:
        from tqdm.auto import tqdm
    except ImportError:  # plain fallback: a line every ~10 %
        items = list(iterable) if total is None else iterable
        n = total if total is not None else len(items)  # type: ignore[arg-type]
        step = max(1, n // 10)
        for i, item in enumerate(items):
            if i % step == 0:
                print(f"{desc} {i}/{n}", flush=True)
            yield item
        return
    yield from tqdm(iterable, desc=desc, total=total, leave=False, **kwargs)
