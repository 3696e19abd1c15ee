"""pass@k: the stable product form against brute-force enumeration of k-subsets."""
from __future__ import annotations

import itertools
import math

import pytest
import torch

from hdai_lessons.core.metrics import pass_at_k, pass_at_k_from_probs, pass_at_k_tensor


def brute_force(n: int, c: int, k: int) -> float:
    """Fraction of k-subsets of n samples (the first c correct) that contain a correct one."""
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(i < c for i in s) for s in subsets) / len(subsets)


@pytest.mark.parametrize("n", [1, 2, 5, 8, 10])
def test_matches_enumeration_of_subsets(n):
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(brute_force(n, c, k), abs=1e-12), (n, c, k)


def test_known_values_and_edge_cases():
    assert pass_at_k(10, 3, 5) == pytest.approx(0.916667, abs=1e-6)  # libraries.md worked value
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)                  # pass@1 = c/n
    assert pass_at_k(10, 0, 4) == 0.0
    assert pass_at_k(10, 7, 4) == 1.0                                 # n − c < k
    # the plug-in estimator is biased; the unbiased one is not it
    assert pass_at_k(10, 3, 5) != pytest.approx(1 - (1 - 0.3) ** 5, abs=1e-3)


def test_stable_for_large_n():
    v = pass_at_k(2000, 3, 1000)
    exact = 1 - math.comb(1997, 1000) / math.comb(2000, 1000)
    assert v == pytest.approx(exact, rel=1e-9)


def test_bad_input_raises():
    for args in [(5, 6, 1), (5, 2, 0), (5, 2, 6), (5, -1, 1), (5.5, 2, 1)]:
        with pytest.raises(ValueError):
            pass_at_k(*args)


def test_tensor_version_matches_scalar():
    n = 12
    c = torch.arange(0, n + 1)
    for k in (1, 3, 8, 12):
        vec = pass_at_k_tensor(n, c, k)
        ref = torch.tensor([pass_at_k(n, int(ci), k) for ci in c], dtype=torch.float64)
        assert torch.allclose(vec, ref, atol=1e-12)
    with pytest.raises(ValueError):
        pass_at_k_tensor(4, torch.tensor([5]), 1)


def test_from_probs_is_monotone_and_exact():
    p = torch.tensor([0.0, 0.1, 0.5, 1.0], dtype=torch.float64)
    assert torch.allclose(pass_at_k_from_probs(p, 1), p)
    assert torch.allclose(pass_at_k_from_probs(p, 8), 1 - (1 - p) ** 8)
    assert bool((pass_at_k_from_probs(p, 32) >= pass_at_k_from_probs(p, 8)).all())
