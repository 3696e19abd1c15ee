"""Guidance (FMRG, arXiv 2604.27147): controls, NFE accounting, the adjoint, the tilt, the Gaussian toy."""
from __future__ import annotations

import math

import pytest
import torch

from hdai_lessons.flows.adjoint import adjoint_gradient, objective, solve_optimal_control
from hdai_lessons.flows.data2d import GaussianMixture
from hdai_lessons.flows.flowmap import TeacherFlowMap
from hdai_lessons.flows.guidance import (GuidanceConfig, dps_control, euler_endpoint, flow_map_jacobian,
                                         flowchef_control, fmrg_e_control, fmrg_j_control, guide, guided_steps,
                                         run_suite, summarize)
from hdai_lessons.flows.metrics import (control_energy, data_log_density, energy_distance, mean_reward, mmd,
                                        on_manifold_fraction, sample_variance)
from hdai_lessons.flows.pretrained import load_toy_flow
from hdai_lessons.flows.rewards import (ClassifierLogProb, GMMClassifier, LinearReward, QuadraticReward,
                                        SoftModeIndicator, reward_grad)
from hdai_lessons.flows.tilt import (GaussianToy, gaussian_terminal, gaussian_tilt, simulate_gaussian_fmrg,
                                     snis_weights, tilt_resample)


@pytest.fixture(scope="module")
def toy():
    torch.set_num_threads(1)
    return load_toy_flow()


@pytest.fixture(scope="module")
def reward(toy):
    return QuadraticReward(toy.data.means[0], 1.0)


def _x(n=64, seed=0, d=2):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------- every method works
METHOD_CFGS = {
    "best_of_n": GuidanceConfig(steps=4, n_particles=8),
    "dps": GuidanceConfig(steps=4, lam=1.0),
    "flowchef": GuidanceConfig(steps=4, lam=1.0),
    "fmrg_e": GuidanceConfig(steps=4, lam=1.0),
    "fmrg_j": GuidanceConfig(steps=4, lam=1.0),
    "dflow": GuidanceConfig(steps=4, dflow_iters=5),
    "exact": GuidanceConfig(steps=8, lam=1.0, adjoint_iters=6),
}


@pytest.mark.parametrize("method", sorted(METHOD_CFGS))
def test_every_method_raises_mean_reward_over_unguided(toy, reward, method):
    x0 = _x(128, seed=1)
    base = guide("unguided", reward, x0, GuidanceConfig(steps=4), velocity=toy.velocity, flow_map=toy.flow_map)
    res = guide(method, reward, x0, METHOD_CFGS[method], velocity=toy.velocity, flow_map=toy.flow_map,
                generator=torch.Generator().manual_seed(2))
    assert res.samples.shape == x0.shape
    assert mean_reward(res.samples, reward) > mean_reward(base.samples, reward) + 2.0, method


@pytest.mark.parametrize("control", ["normalized", "adam"])
def test_normalised_controls_raise_reward(toy, reward, control):
    x0 = _x(128, seed=3)
    base = guide("unguided", reward, x0, GuidanceConfig(steps=4), flow_map=toy.flow_map)
    res = guide("fmrg_j", reward, x0, GuidanceConfig(steps=8, lam=2.0, control=control), flow_map=toy.flow_map)
    assert mean_reward(res.samples, reward) > mean_reward(base.samples, reward) + 2.0


# ----------------------------------------------------------------------------- NFE accounting
class _Calls:
    """An independent counter: counts calls of the wrapped function (no autograd tricks)."""

    def __init__(self, fn):
        self.fn, self.n = fn, 0

    def __call__(self, *a):
        self.n += 1
        return self.fn(*a)


@pytest.mark.parametrize("method,steps,n_opt,t_stop", [
    ("fmrg_j", 4, 1, 1.0), ("fmrg_j", 8, 2, 0.5), ("fmrg_e", 4, 3, 0.25), ("dps", 6, 1, 1.0),
    ("flowchef", 4, 2, 0.5), ("unguided", 5, 1, 1.0)])
def test_nfe_counter_is_exact(toy, reward, method, steps, n_opt, t_stop):
    uses_map = method in ("fmrg_j", "fmrg_e", "unguided")
    net = _Calls(toy.flow_map if uses_map else toy.velocity)
    kw = {"flow_map": net} if uses_map else {"velocity": net}
    res = guide(method, reward, _x(16), GuidanceConfig(steps=steps, lam=0.5, n_opt=n_opt, t_stop=t_stop), **kw)
    n_guided = sum(guided_steps(steps, t_stop)) if method != "unguided" else 0
    expected_fwd = steps + n_opt * n_guided           # one jump per step + one endpoint per inner step
    expected_vjp = n_opt * n_guided if method in ("fmrg_j", "dps") else 0
    assert (res.nfe_forward, res.nfe_vjp) == (expected_fwd, expected_vjp)
    assert net.n == expected_fwd                      # the independent count agrees


def test_nfe_of_best_of_n_dflow_exact_and_teacher(toy, reward):
    x0 = _x(8)
    r = guide("best_of_n", reward, x0, GuidanceConfig(steps=4, n_particles=5), flow_map=toy.flow_map,
              generator=torch.Generator().manual_seed(0))
    assert (r.nfe_forward, r.nfe_vjp) == (20, 0)
    r = guide("dflow", reward, x0, GuidanceConfig(steps=3, dflow_iters=4), flow_map=toy.flow_map)
    assert (r.nfe_forward, r.nfe_vjp) == (4 * 3 + 3, 4 * 3)
    r = guide("exact", reward, x0, GuidanceConfig(steps=5, adjoint_iters=3), velocity=toy.velocity)
    assert (r.nfe_forward, r.nfe_vjp) == (3 * 2 * 5 + 5, 3 * 5)
    teacher = TeacherFlowMap(toy.velocity, substeps=6)
    r = guide("fmrg_j", reward, x0, GuidanceConfig(steps=2), flow_map=teacher)
    assert (r.nfe_forward, r.nfe_vjp) == ((2 + 2) * 6, 2 * 6)


def test_guided_steps_schedule():
    assert guided_steps(4, 1.0) == [True] * 4
    assert guided_steps(4, 0.5) == [True, True, False, False]
    assert guided_steps(5, 0.3) == [True, True, False, False, False]
    assert guided_steps(4, 0.0) == [False] * 4


def test_missing_network_has_a_clear_error(toy, reward):
    with pytest.raises(ValueError, match="flow_map"):
        guide("fmrg_j", reward, _x(4), velocity=toy.velocity)
    with pytest.raises(ValueError, match="velocity"):
        guide("dps", reward, _x(4), flow_map=toy.flow_map)
    with pytest.raises(ValueError, match="unknown method"):
        guide("nope", reward, _x(4), flow_map=toy.flow_map)
    with pytest.raises(ValueError, match=r"\(B, D\)"):
        guide("fmrg_j", reward, torch.zeros(3), flow_map=toy.flow_map)


# ----------------------------------------------------------------------------- the controls
@pytest.mark.parametrize("t", [0.0, 0.3, 0.7])
def test_fmrg_j_control_is_jacobian_transpose_times_reward_gradient(toy, reward, t):
    x, lam = _x(32, seed=4), 0.7
    X = toy.flow_map
    jac = torch.stack([torch.autograd.functional.jacobian(lambda z: X(z[None], t, 1.0)[0], x[b]) for b in range(len(x))])
    with torch.no_grad():
        e = X(x, t, 1.0)
    grad_r = -(e - reward.a) / reward.sigma_r**2
    expected = lam * torch.einsum("bij,bi->bj", jac, grad_r)  # λ (∂X/∂x)ᵀ ∇r
    torch.testing.assert_close(fmrg_j_control(X, reward, x, t, lam), expected, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(flow_map_jacobian(X, x, t), jac, atol=1e-5, rtol=1e-5)


def test_fmrg_e_control_is_reward_gradient_at_detached_endpoint(toy, reward):
    x, t, lam = _x(32, seed=5), 0.4, 1.3
    with torch.no_grad():
        e = toy.flow_map(x, t, 1.0)
    torch.testing.assert_close(fmrg_e_control(toy.flow_map, reward, x, t, lam), lam * reward_grad(reward, e))


def test_dps_uses_the_euler_endpoint(toy, reward):
    v, x, t, lam = toy.velocity, _x(16, seed=6), 0.25, 0.9
    tt = torch.full((16,), t)
    with torch.no_grad():
        e = x + (1 - t) * v(x, tt)
    torch.testing.assert_close(euler_endpoint(v, x, t), e)
    # DPS: λ (I + (1−t) ∂v/∂x)ᵀ ∇r(x̂_1), Jacobian built explicitly
    jv = torch.stack([torch.autograd.functional.jacobian(lambda z: v(z[None], tt[:1])[0], x[b]) for b in range(16)])
    jac = torch.eye(2) + (1 - t) * jv
    expected = lam * torch.einsum("bij,bi->bj", jac, reward_grad(reward, e))
    torch.testing.assert_close(dps_control(v, reward, x, t, lam), expected, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(flowchef_control(v, reward, x, t, lam), lam * reward_grad(reward, e))


# ----------------------------------------------------------------------------- the adjoint
def test_adjoint_gradient_equals_autograd_through_the_discretised_ode(toy, reward):
    x0 = _x(8, seed=7)
    u = 0.3 * torch.randn(6, 8, 2, generator=torch.Generator().manual_seed(8))
    g_adj, p, path = adjoint_gradient(toy.velocity, reward, x0, u, lam=0.8)
    u_req = u.clone().requires_grad_(True)
    (g_auto,) = torch.autograd.grad(objective(toy.velocity, reward, x0, u_req, lam=0.8).sum(), u_req)
    torch.testing.assert_close(g_adj, g_auto, atol=1e-5, rtol=1e-4)
    assert p.shape == (7, 8, 2) and path.shape == (7, 8, 2)


def test_adjoint_solver_decreases_the_objective_monotonically(toy, reward):
    _, hist = solve_optimal_control(toy.velocity, reward, _x(32, seed=9), lam=2.0, steps=6, iters=8, return_history=True)
    assert all(b <= a + 1e-9 for a, b in zip(hist, hist[1:]))
    assert hist[-1] < hist[0] - 1.0


def test_exact_control_matches_the_gaussian_closed_form():
    """The adjoint solver on the analytic Gaussian flow reproduces x_1 − a = (y_0 − a)/(1 + λαG(1))."""
    toy = GaussianToy(mu1=0.0, sigma1=0.5, a=2.0, alpha=1.0)
    v = lambda x, t: toy.velocity(x, float(t[0]))  # noqa: E731
    r = QuadraticReward([2.0], 1.0)
    x0 = torch.randn(2000, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    res = solve_optimal_control(v, lambda x: r(x.float()).double(), x0, lam=2.0, steps=200, iters=40, damping=0.5)
    m, var = gaussian_terminal(toy, 2.0, "exact")
    assert abs(float(res.samples.mean()) - m) < 0.03
    assert abs(float(res.samples.var()) / var - 1) < 0.1


# ----------------------------------------------------------------------------- tilt and the Gaussian toy
def test_snir_tilt_matches_the_closed_form_gaussian_tilt():
    mean, cov = torch.tensor([1.0, -0.5]), torch.tensor([[1.0, 0.3], [0.3, 0.5]])
    r = QuadraticReward([2.0, 1.0], sigma_r=1.2)
    m_t, c_t = gaussian_tilt(mean, cov, r.a, r.precision, beta=1.5)
    pool = torch.distributions.MultivariateNormal(mean, cov).sample((200_000,))
    ts = tilt_resample(pool, r, beta=1.5, n_out=100_000, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(ts.samples.mean(0).double(), m_t, atol=0.02, rtol=0)
    torch.testing.assert_close(torch.cov(ts.samples.T).double(), c_t, atol=0.02, rtol=0)
    assert 0 < ts.ess < 200_000 and abs(float(ts.weights.sum()) - 1) < 1e-9


def test_snis_weights_are_stable_for_large_rewards():
    w = snis_weights(torch.tensor([1000.0, 999.0, -1e4]))
    assert torch.isfinite(w).all() and abs(float(w.sum()) - 1) < 1e-12 and w[0] > w[1] > w[2]


@pytest.mark.parametrize("jacobian,method", [(True, "fmrg_j"), (False, "fmrg_e")])
@pytest.mark.parametrize("t_stop", [1.0, 0.4])
def test_gaussian_closed_form_matches_simulation(jacobian, method, t_stop):
    toy = GaussianToy(mu1=0.5, sigma1=0.6, a=2.0, alpha=1.0)
    x = simulate_gaussian_fmrg(toy, 1.5, t_stop=t_stop, steps=1000, n=20000, jacobian=jacobian)
    m, var = gaussian_terminal(toy, 1.5, method, t_stop=t_stop)
    assert abs(float(x.mean()) - m) < 0.02 and abs(float(x.var()) / var - 1) < 0.05


def test_greedy_contracts_exponentially_exact_and_tilt_polynomially():
    toy = GaussianToy(mu1=0.0, sigma1=0.5, a=2.0, alpha=1.0)
    for lam in (1.0, 4.0, 16.0):
        greedy = gaussian_terminal(toy, lam, "fmrg_j")[1]
        assert greedy < gaussian_terminal(toy, lam, "exact")[1]
        assert gaussian_terminal(toy, lam, "fmrg_j", t_stop=0.25)[1] > greedy      # early stopping helps
    g = toy.rate_integral(1.0)
    # log-variance of greedy is linear in λ; exact is −2 log(1 + λG): ratio of decades
    assert math.isclose(gaussian_terminal(toy, 8.0, "fmrg_j")[1], toy.sigma1**2 * math.exp(-16 * g), rel_tol=1e-9)
    assert math.isclose(gaussian_terminal(toy, 8.0, "exact")[1], toy.sigma1**2 / (1 + 8 * g) ** 2, rel_tol=1e-9)
    assert math.isclose(gaussian_terminal(toy, 8.0, "tilt")[1], 1 / (1 / toy.sigma1**2 + 8.0), rel_tol=1e-9)


def test_early_stopping_keeps_more_variance_on_the_2d_toy(toy, reward):
    rows = run_suite([(f"ts={ts}", "fmrg_j", GuidanceConfig(steps=8, lam=4.0, control="normalized", t_stop=ts)) for ts in (1.0, 0.25)],
                     reward, toy.velocity, toy.flow_map, toy.data.log_prob, seeds=[0], n=128)
    s = summarize(rows, ("variance", "reward"))
    assert s["ts=0.25"]["variance"][0] > s["ts=1.0"]["variance"][0]


# ----------------------------------------------------------------------------- rewards and metrics
def test_rewards_shapes_and_gradients():
    x = _x(10, seed=11)
    gmm = GaussianMixture.circle(8, 3.0, 0.3)
    clf = ClassifierLogProb(GMMClassifier(gmm.means, 0.3), target=2)
    torch.testing.assert_close(clf(x), torch.log_softmax(gmm.component_log_prob(x), -1)[:, 2], atol=1e-4, rtol=1e-5)
    for r in (QuadraticReward([1.0, 2.0]), SoftModeIndicator([0.0, 3.0], 0.5), LinearReward([1.0, -1.0], 0.5), clf):
        assert r(x).shape == (10,)
        assert reward_grad(r, x).shape == (10, 2)
    torch.testing.assert_close(reward_grad(LinearReward([1.0, -1.0]), x), torch.tensor([[1.0, -1.0]]).expand(10, 2))
    with pytest.raises(ValueError, match=r"\(B, 2\)"):
        QuadraticReward([1.0, 2.0])(torch.zeros(3, 5))


def test_metrics():
    a, b = _x(300, seed=12), _x(300, seed=13)
    assert energy_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    assert energy_distance(a, b + 2.0) > 10 * energy_distance(a, b)
    assert mmd(a, b + 2.0) > 10 * mmd(a, b) >= 0
    assert sample_variance(torch.tensor([[0.0, 0.0], [2.0, 2.0]])) == pytest.approx(2.0)
    assert control_energy([torch.ones(4, 2), 2 * torch.ones(4, 2)], [0.5, 0.5]) == pytest.approx(5.0)
    gmm = GaussianMixture.circle(8, 3.0, 0.3)
    on = gmm.sample(200, torch.Generator().manual_seed(0))
    assert data_log_density(on, gmm.log_prob) > data_log_density(on * 0.0, gmm.log_prob, floor=-50)
    assert on_manifold_fraction(on, gmm.log_prob, -6.0) > 0.95


# ----------------------------------------------------------------------------- independent runs, combined claims
def test_a_runs_numbers_do_not_depend_on_what_runs_beside_it(toy, reward):
    """Each (seed, method) owns its noise and its best-of-N generator: running it alone, beside other
    methods, or beside other seeds gives the same samples and metrics."""
    from hdai_lessons.flows.guidance import run_specs

    bon = ("bon", "best_of_n", GuidanceConfig(steps=2, n_particles=4))
    j = ("j", "fmrg_j", GuidanceConfig(steps=2, lam=1.0))
    common = (reward, toy.velocity, toy.flow_map, toy.data.log_prob)
    alone = run_suite([bon], *common, seeds=[3], n=32)
    crowded = run_suite([j, bon, j], *common, seeds=[1, 3, 2], n=32)
    assert [r for r in crowded if r["label"] == "bon" and r["seed"] == 3] == alone
    torch.manual_seed(123)  # the global RNG must play no part
    specs = [(lab, m, c, toy.flow_map) for lab, m, c in (bon, j)]
    r1, s1 = run_specs(specs[:1], reward, toy.velocity, [5], 16, 2)
    torch.manual_seed(456)
    r2, s2 = run_specs(specs[::-1], reward, toy.velocity, [4, 5], 16, 2)
    assert [r for r in r2 if r["label"] == "bon" and r["seed"] == 5] == r1


def test_all_of_and_any_of_follow_three_valued_logic():
    from hdai_lessons import paired_verdict
    from hdai_lessons.core.claims import all_of, any_of, describe_part

    held = paired_verdict([1.0, 1.1, 0.9], 0.0)
    held_barely = paired_verdict([0.5, 0.7, 0.3], 0.0)
    unresolved = paired_verdict([0.1, -0.1, 0.05], 0.0)
    failed = paired_verdict([-1.0, -1.1, -0.9], 0.0)
    assert all_of(held, held_barely) is held_barely            # the part with the fewest SE to spare
    assert all_of(held, unresolved) is unresolved and all_of(held, unresolved, failed) is failed
    assert all_of(held, True) is held and all_of(held, False) is False
    assert any_of(held_barely, held, failed) is held and any_of(unresolved, failed) is unresolved
    assert any_of(failed, paired_verdict([-0.2, -0.25, -0.15], 0.0)).mean_diff == pytest.approx(-0.2)
    assert describe_part("x", failed).startswith("x: did not hold (mean diff=-1")
    with pytest.raises(ValueError):
        all_of()


# ----------------------------------------------------------------------------- the authors' protocol (lesson 04.3)
from hdai_lessons.flows.guidance import AuthorsProtocolConfig, PROTOCOL_METHODS, authors_protocol, select_lambda  # noqa: E402


class _Recorder:
    """A flow map that logs (s, t, grad-enabled input) per call."""

    def __init__(self, X):
        self.X, self.calls = X, []

    def __call__(self, x, s, t):
        self.calls.append((float(s), float(t), bool(x.requires_grad)))
        return self.X(x, s, t)


def test_protocol_guides_only_before_t_stop_then_jumps(toy, reward):
    pcfg = AuthorsProtocolConfig(grid_steps=16, t_stop=0.25, jumps=2)
    assert pcfg.n_guided == 4 and AuthorsProtocolConfig(grid_steps=16, t_stop=0.3).n_guided == 5
    rec = _Recorder(toy.flow_map)
    authors_protocol("fmrg_j", reward, _x(32, seed=3), 4.0, pcfg, flow_map=rec)
    guided = [(s, t) for s, t, g in rec.calls if g]
    assert guided == [(k / 16, 1.0) for k in range(4)]                  # endpoint X_{t_k,1} at t_k < t_stop only
    assert [(s, t) for s, t, g in rec.calls if not g] == [(0.25, 0.625), (0.625, 1.0)]   # unguided jumps to t = 1


@pytest.mark.parametrize("method", PROTOCOL_METHODS)
def test_protocol_nfe_is_counted_the_same_way_for_every_method(toy, reward, method):
    pcfg = AuthorsProtocolConfig(grid_steps=16, t_stop=0.25, jumps=2)
    res = authors_protocol(method, reward, _x(32, seed=4), 2.0, pcfg, velocity=toy.velocity, flow_map=toy.flow_map)
    vjp = 4 if method in ("dps", "fmrg_j") else 0
    assert (res.nfe_forward, res.nfe_vjp) == (4 + 2, vjp)
    assert res.nfe == pcfg.nfe(method)


def test_protocol_at_zero_strength_is_unguided_and_guidance_raises_reward(toy, reward):
    x0, pcfg = _x(128, seed=5), AuthorsProtocolConfig()
    base = authors_protocol("unguided", reward, x0, 0.0, pcfg, flow_map=toy.flow_map)
    zero = authors_protocol("fmrg_j", reward, x0, 0.0, pcfg, flow_map=toy.flow_map)
    assert torch.equal(base.samples, zero.samples)
    for m in ("fmrg_j", "fmrg_e"):
        res = authors_protocol(m, reward, x0, 8.0, pcfg, velocity=toy.velocity, flow_map=toy.flow_map)
        assert mean_reward(res.samples, reward) > mean_reward(base.samples, reward) + 2.0, m


def test_protocol_rejects_bad_input(toy, reward):
    with pytest.raises(ValueError):
        authors_protocol("dflow", reward, _x(), 1.0, flow_map=toy.flow_map)
    with pytest.raises(ValueError):
        authors_protocol("dps", reward, _x(), 1.0, flow_map=toy.flow_map)            # DPS needs the velocity
    with pytest.raises(ValueError):
        authors_protocol("fmrg_j", reward, _x(), 1.0, velocity=toy.velocity)        # the tail needs the flow map
    with pytest.raises(ValueError):
        AuthorsProtocolConfig(t_stop=1.5)


def test_select_lambda_respects_the_on_manifold_rule(toy, reward):
    kw = dict(velocity=toy.velocity, flow_map=toy.flow_map)
    lams = (0.5, 4.0, 32.0)
    ch = select_lambda("dps", reward, lams, [100, 101], 64, toy.data.log_prob, AuthorsProtocolConfig(), **kw)
    ok = [row for row in ch.table if row["log_density"] >= ch.threshold]
    assert ch.on_manifold and ok
    assert ch.lam == max(ok, key=lambda r: r["reward"])["lam"]           # best reward among the on-manifold λ
    by_lam = {row["lam"]: row for row in ch.table}
    assert by_lam[32.0]["log_density"] < ch.threshold                    # λ = 32 pushes DPS off the data: excluded
    assert by_lam[32.0]["reward"] > by_lam[ch.lam]["reward"]             # … although its reward is higher
    none = select_lambda("dps", reward, lams, [100], 64, toy.data.log_prob, AuthorsProtocolConfig(), margin=-50.0, **kw)
    assert not none.on_manifold and none.lam == 0.5                      # nothing qualifies: the smallest λ, flagged
