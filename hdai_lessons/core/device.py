"""Device choice (cuda → mps → cpu) and CPU thread count."""
from __future__ import annotations

import os
from contextlib import contextmanager

import torch

THREADS_ENV = "HDAI_THREADS"


def get_device(prefer: "str | torch.device | None" = None) -> torch.device:
    """Return ``prefer`` if given and available, else the best of cuda → mps → cpu.

    ``HDAI_DEVICE`` overrides the automatic choice (e.g. ``HDAI_DEVICE=cpu`` on a GPU box).

    Course infrastructure used by every lesson (no lesson or paper equation of its own).
    """
    choice = prefer if prefer is not None else os.environ.get("HDAI_DEVICE")
    if choice is not None:
        dev = torch.device(choice)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"device {dev} requested but CUDA is not available; use 'cpu' or unset HDAI_DEVICE")
        if dev.type == "mps" and not torch.backends.mps.is_available():
            raise RuntimeError(f"device {dev} requested but MPS is not available; use 'cpu' or unset HDAI_DEVICE")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def set_threads(n: "int | None" = None) -> int:
    """Set torch's intra-op CPU threads from ``n`` or ``$HDAI_THREADS`` (the test runner uses 1).

    Course infrastructure used by every lesson (no lesson or paper equation of its own).
    """
    if n is None:
        raw = os.environ.get(THREADS_ENV)
        n = int(raw) if raw else None
    if n is not None:
        torch.set_num_threads(max(1, n))
    return torch.get_num_threads()


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask; ``os.cpu_count()`` where there is none).

    Course infrastructure used by every lesson (no lesson or paper equation of its own).
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:                      # macOS, Windows
        return max(1, os.cpu_count() or 1)


def threads_per_job(jobs: int = 1) -> int:
    """Torch threads for each of ``jobs`` lessons run at once: ``$HDAI_THREADS`` if set, else cores // jobs.

    A lesson run alone uses every core; the two-at-a-time test runner gives each notebook one of
    two cores, so the lessons never oversubscribe the machine.

    Course infrastructure used by every lesson (no lesson or paper equation of its own).
    """
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    raw = os.environ.get(THREADS_ENV)
    if raw:
        return max(1, int(raw))
    return max(1, available_cores() // jobs)


@contextmanager
def one_thread():
    """Run the body on one intra-op thread (``torch.set_num_threads(1)``), then restore the setting.

    For small workloads (module 01's bandit, the 0.13M-parameter tiny LM): extra intra-op threads buy
    nothing there and add a synchronisation per op, which on a CPU shared with other jobs made a run
    10–30× slower. The lessons run on one thread anyway, so this changes none of their numbers.

    Course infrastructure used by every lesson (no lesson or paper equation of its own).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
