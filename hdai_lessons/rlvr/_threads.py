"""One intra-op thread for the module's small workloads (the bandit, the tiny LM).

Their tensors are small (a bandit of ~10^4–10^5 float64 values, a 0.13M-parameter transformer), so
extra intra-op threads buy nothing and add a synchronisation per op. On a CPU shared with other jobs
(e.g. two notebooks at two threads each on two cores) that synchronisation made a run 10–30× slower.
The lessons run on one thread anyway, so this changes none of their numbers.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch


@contextmanager
def one_thread():
    """Run the body with ``torch.set_num_threads(1)``, then restore the previous setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
