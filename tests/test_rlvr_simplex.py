"""K = 3 simplex dynamics of lesson 01.1: who lands on w*, who overshoots, Proposition 1 and 2."""
from __future__ import annotations

import numpy as np
import torch

from hdai_lessons.rlvr import simplex
from hdai_lessons.rlvr.targets import tau_from_rule

D = torch.float64
R = torch.tensor([1.0, 0.4, 0.0], dtype=D)


def test_barycentric_coordinates():
    assert np.allclose(simplex.to_xy(torch.eye(3, dtype=D)), simplex.VERTICES)
    assert np.allclose(simplex.to_xy(torch.full((3,), 1 / 3)), simplex.VERTICES.mean(0))


def test_gibbs_path_limits():
    path = simplex.gibbs_path(R, torch.tensor([1e-3, 1.0, 1e4], dtype=D))
    assert torch.allclose(path[0], torch.tensor([1.0, 0.0, 0.0], dtype=D), atol=1e-6)
    assert torch.allclose(path[1], torch.softmax(R, -1))
    assert torch.allclose(path[2], torch.full((3,), 1 / 3, dtype=D), atol=1e-3)


def test_lpo_lands_on_target_and_pg_overshoots():
    tau = float(tau_from_rule(R, "std"))
    run = simplex.project(simplex.METHODS, R, tau, [2.0], epochs=40)
    w = run.w_star[0]
    P = {lab.split(",")[0]: run.P[i, -1] for i, lab in enumerate(run.labels)}
    for m in ("LPO-fwd", "LPO-rev"):
        assert torch.allclose(P[m], w, atol=1e-4), m
        i = simplex.METHODS.index(m)
        assert run.c[i, -1].abs().sum() < 1e-3 < run.c[i, 0].abs().sum()  # coefficients vanish on arrival
    assert P["PG"][0] > w[0] + 0.1  # past the target, toward the best vertex
    assert torch.allclose(run.P[:, 0], torch.full((4, 3), 1 / 3, dtype=D))  # P starts at the centre
    # forward coefficients are P − w* along the whole run (Eq. 13)
    i = simplex.METHODS.index("LPO-fwd")
    assert torch.allclose(run.c[i], run.P[i, :-1] - w, atol=1e-12)


def test_first_step_pg_equals_reverse_kl_proposition1():
    study = simplex.overshoot_study([0, 1, 2], lr=2.0, epochs=20)
    assert float(study["first_step_gap"].max()) < 1e-12
    assert float(study["last_step_gap"].min()) > 1e-3
    assert (study["best_mass_excess"][:, simplex.METHODS.index("PG")] > 0.01).all()
    assert (study["kl_to_target"][:, simplex.METHODS.index("LPO-fwd")] < 1e-3).all()


def test_iterations_follow_proposition2():
    """With an exact projection, π_t ∝ π_0 exp(tR/τ)."""
    tau = 0.7
    path = simplex.iterate("LPO-fwd", R, tau, lr=2.0, epochs=200, iterations=3)
    for t in range(4):
        expected = torch.softmax(t * R / tau, -1)
        assert torch.allclose(path[t], expected, atol=1e-6), t
