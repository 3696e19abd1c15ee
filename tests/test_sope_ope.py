"""Lesson 03.1: the gridworld's exact evaluation and the OPE estimators against it."""
import numpy as np
import pytest

from hdai_lessons.sope.ope import (all_estimates, dr_estimate, fqe_tabular, importance_ratios, is_estimate,
                                   pdis_estimate, wis_estimate)
from hdai_lessons.sope.tabular import (evaluate_policy, make_gridworld, mix_policies, optimal_q, sample_trajectories,
                                       softmax_policy, uniform_policy)


@pytest.fixture(scope="module")
def setup():
    mdp = make_gridworld()
    pi_e = softmax_policy(optimal_q(mdp), 0.05)
    pi_b = mix_policies(pi_e, uniform_policy(mdp), 0.5)
    return mdp, pi_e, pi_b


def test_exact_evaluation_matches_monte_carlo(setup):
    mdp, pi_e, _ = setup
    J, Q, V = evaluate_policy(mdp, pi_e)
    traj = sample_trajectories(mdp, pi_e, 20_000, np.random.default_rng(0))
    mc = traj.rewards @ (mdp.gamma ** np.arange(mdp.horizon))
    assert abs(mc.mean() - J) < 4 * mc.std() / np.sqrt(len(mc))
    assert Q.shape == (mdp.horizon, mdp.n_states, mdp.n_actions) and V.shape == (mdp.horizon + 1, mdp.n_states)


def test_on_policy_ratios_make_is_the_monte_carlo_mean(setup):
    mdp, pi_e, _ = setup
    traj = sample_trajectories(mdp, pi_e, 50, np.random.default_rng(1))
    rho = importance_ratios(traj, pi_e)
    np.testing.assert_allclose(rho, 1.0)
    g = mdp.gamma
    mc = float((traj.rewards @ (g ** np.arange(mdp.horizon))).mean())
    for f in (is_estimate, wis_estimate, pdis_estimate):
        assert f(traj.rewards, rho, g) == pytest.approx(mc)


def test_is_unbiased_across_seeds(setup):
    """The mean of 200 independent IS estimates lies within a 4-standard-error band of the truth."""
    mdp, pi_e, pi_b = setup
    J = evaluate_policy(mdp, pi_e)[0]
    est = []
    for seed in range(200):
        traj = sample_trajectories(mdp, pi_b, 50, np.random.default_rng(seed))
        est.append(is_estimate(traj.rewards, importance_ratios(traj, pi_e), mdp.gamma))
    est = np.array(est)
    assert abs(est.mean() - J) < 4 * est.std() / np.sqrt(len(est))
    assert est.std() > 0.01            # a real variance, not a degenerate estimator


def test_dr_and_dm_have_lower_variance_than_is(setup):
    mdp, pi_e, pi_b = setup
    J = evaluate_policy(mdp, pi_e)[0]
    res = {k: [] for k in ("IS", "DR", "DM", "WIS")}
    for seed in range(60):
        e = all_estimates(mdp, sample_trajectories(mdp, pi_b, 100, np.random.default_rng(100 + seed)), pi_e)
        for k in res:
            res[k].append(e[k])
    std = {k: np.std(v) for k, v in res.items()}
    assert std["DR"] < 0.6 * std["IS"]
    assert std["WIS"] < std["IS"]
    assert abs(np.mean(res["DR"]) - J) < 4 * std["DR"] / np.sqrt(60) + 1e-3


def test_dr_is_exact_with_the_true_q(setup):
    """With Q̂ = Q^π exact, DR's per-episode error is a martingale; with on-policy data and exact Q the
    estimate equals J up to the reward noise only — check the unbiased identity on many episodes."""
    mdp, pi_e, pi_b = setup
    J, Q, _ = evaluate_policy(mdp, pi_e)
    traj = sample_trajectories(mdp, pi_b, 4000, np.random.default_rng(7))
    t = np.arange(mdp.horizon)[None]
    q_sa = Q[t, traj.states, traj.actions]
    v_s = (pi_e[traj.states] * Q[t, traj.states]).sum(-1)
    rho = importance_ratios(traj, pi_e)
    dr = dr_estimate(traj.rewards, rho, q_sa, v_s, mdp.gamma)
    is_ = is_estimate(traj.rewards, rho, mdp.gamma)
    assert abs(dr - J) < abs(is_ - J) + 0.01
    assert abs(dr - J) < 0.02


def test_fqe_with_full_coverage_recovers_the_truth(setup):
    mdp, pi_e, _ = setup
    traj = sample_trajectories(mdp, uniform_policy(mdp), 5000, np.random.default_rng(3))
    q = fqe_tabular(traj, pi_e, mdp.n_states, mdp.n_actions, mdp.gamma, mdp.horizon)
    J = evaluate_policy(mdp, pi_e)[0]
    assert float(mdp.d0 @ (pi_e * q[0]).sum(-1)) == pytest.approx(J, abs=0.03)


def test_bad_policy_shape_is_reported(setup):
    mdp, *_ = setup
    with pytest.raises(ValueError, match="shape"):
        evaluate_policy(mdp, np.ones((3, 4)) / 4)


def test_cross_fitted_dr_removes_the_small_sample_bias(setup):
    """DR with Q̂ fitted on the same 10 episodes inherits FQE's bias; fitting Q̂ on the other half removes
    most of it (and costs variance)."""
    from hdai_lessons.sope.ope import cross_fit_dr_estimate, estimator_study
    mdp, pi_e, _ = setup
    J = evaluate_policy(mdp, pi_e)[0]
    est = estimator_study(mdp, pi_e, mix_policies(pi_e, uniform_policy(mdp), 0.9), 10, 150, seed=3, cross_fit=True)
    bias_dr, bias_cf = est["DR"].mean() - J, est["DR-CF"].mean() - J
    se_cf = est["DR-CF"].std() / np.sqrt(150)
    assert bias_dr < -0.3 and abs(bias_cf) < abs(bias_dr) / 2 and abs(bias_cf) < 4 * se_cf + 0.05
    assert est["DR-CF"].std() > 3 * est["DR"].std()
    traj = sample_trajectories(mdp, pi_e, 4, np.random.default_rng(0))
    with pytest.raises(ValueError, match="folds"):
        cross_fit_dr_estimate(mdp, traj, pi_e, folds=5)
