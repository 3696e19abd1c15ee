"""Seeding: every lesson and trainer starts from ``seed_everything`` so two runs print the same."""
from __future__ import annotations

import os
import random
import sys

import numpy as np
import torch


def seed_everything(seed: int = 0, *, deterministic: bool = True) -> torch.Generator:
    """Seed Python, NumPy and torch (CPU and CUDA); return a fresh ``torch.Generator`` on CPU.

    With ``deterministic`` torch is asked for deterministic kernels where they exist (a warning,
    not an error, where an op has none), so CPU runs repeat bit for bit.

    Lesson 00.1 (every lesson's setup); no paper equation.
    """
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))
    if deterministic:
        _use_deterministic_kernels()
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    return torch.Generator().manual_seed(seed)


def _use_deterministic_kernels() -> None:
    """``torch.use_deterministic_algorithms(True, warn_only=True)``, without its import of ``torch._inductor.config``
    (which loads sympy: ~1 s of every lesson's start) when nothing has loaded it yet.

    The public call sets two flags: the eager kernels' (set here directly) and the compiler's
    ``inductor.config.deterministic``, which reads ``TORCHINDUCTOR_DETERMINISTIC`` when it is first imported."""
    if "torch._inductor.config" in sys.modules or not hasattr(torch._C, "_set_deterministic_algorithms"):
        torch.use_deterministic_algorithms(True, warn_only=True)
        return
    os.environ.setdefault("TORCHINDUCTOR_DETERMINISTIC", "1")
    torch._C._set_deterministic_algorithms(True, warn_only=True)
