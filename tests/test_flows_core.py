"""Module 04 foundations: data, conditional flow matching, samplers, NFE counting, flow maps."""
from __future__ import annotations

import ast
import math
import pathlib
from dataclasses import fields

import pytest
import torch

from hdai_lessons import flows
from hdai_lessons.core.config import field_docs
from hdai_lessons.flows.cfm import CFMConfig, FlowMatchingLessonConfig, cfm_loss, denoiser, linear_path, train_cfm
from hdai_lessons.flows.data2d import Checkerboard, GaussianMixture, Moons, Rings, make_dataset
from hdai_lessons.flows.metrics import energy_distance
from hdai_lessons.flows.flowmap import (
    DistillConfig, FlowMapLessonConfig, TeacherFlowMap, composition_error, distill_flow_map, distillation_target,
    flow_map_sample, sample_grid_pairs, teacher_trajectories,
)
from hdai_lessons.flows.full import FullScaleLessonConfig
from hdai_lessons.flows.guidance import GuidanceConfig, GuidanceLessonConfig
from hdai_lessons.flows.images import ClassifierConfig, DigitFlowConfig, DigitGuidanceLessonConfig
from hdai_lessons.flows.models import FlowMapMLP, VelocityMLP, as_time
from hdai_lessons.flows.pretrained import load_toy_flow
from hdai_lessons.flows.sampling import NFECounter, integrate, sample


def gaussian_velocity(mu: float, sigma: float):
    """Exact marginal velocity E[x_1 − x_0 | x_t = x] for x_0 ~ N(0, I), x_1 ~ N(mu, sigma² I)."""
    def v(x, t):
        tb = t[:, None]
        var = (1 - tb) ** 2 + tb**2 * sigma**2
        cov = tb * sigma**2 - (1 - tb)
        return mu + cov / var * (x - tb * mu)
    return v


# ---------------------------------------------------------------- data
@pytest.mark.parametrize("ds", [GaussianMixture.circle(), Moons(), Rings(), Checkerboard()], ids=lambda d: type(d).__name__)
def test_log_prob_normalises_and_fits_samples(ds):
    g = torch.Generator().manual_seed(0)
    box = (torch.rand(60_000, 2, generator=g) - 0.5) * 12  # area 144
    mass = float(ds.log_prob(box).exp().mean() * 144)
    assert abs(mass - 1) < 0.05, mass
    x = ds.sample(2000, g)
    assert x.shape == (2000, 2)
    assert torch.isfinite(ds.log_prob(x)).all()  # samples lie where the density is positive


def test_gmm_score_matches_autograd():
    d = GaussianMixture.circle(5, 2.0, 0.4)
    x = torch.randn(64, 2, dtype=torch.float64, requires_grad=True)
    (auto,) = torch.autograd.grad(d.log_prob(x).sum(), x)
    assert torch.allclose(d.score(x.detach()), auto, atol=1e-8)


def test_energy_distance_separates():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(1000, 2, generator=g), torch.randn(1000, 2, generator=g)
    assert energy_distance(a, b) < 0.01
    assert energy_distance(a, b + 1.0) > 0.5
    with pytest.raises(ValueError):
        make_dataset("spiral")


# ---------------------------------------------------------------- flow matching
def test_linear_path_and_cfm_loss_identity():
    """L(b) = E‖b − b*‖² + const: shifting the exact field by δ adds ‖δ‖² to the loss."""
    g = torch.Generator().manual_seed(0)
    n, mu, sigma = 400_000, 1.5, 0.5
    x1 = mu + sigma * torch.randn(n, 2, generator=g, dtype=torch.float64)
    x0 = torch.randn(n, 2, generator=g, dtype=torch.float64)
    t = torch.rand(n, generator=g, dtype=torch.float64)
    assert torch.allclose(linear_path(x0, x1, torch.zeros(n, dtype=torch.float64)), x0)
    assert torch.allclose(linear_path(x0, x1, torch.ones(n, dtype=torch.float64)), x1)
    b = gaussian_velocity(mu, sigma)
    delta = torch.tensor([0.3, -0.2], dtype=torch.float64)
    base = cfm_loss(b, x1, x0, t)
    shifted = cfm_loss(lambda x, tt: b(x, tt) + delta, x1, x0, t)
    assert abs(float(shifted - base) - float(delta.pow(2).sum())) < 0.01


def test_flow_matching_learns_a_gaussian_mixture():
    """Stated threshold: energy distance of 32-step Euler samples to fresh data < 0.03 (from > 0.5 at init)."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    data = GaussianMixture.circle(4, radius=2.0, std=0.3)
    v = VelocityMLP(dim=2, hidden=64, depth=3)
    ref = data.sample(1500, g)
    x0 = torch.randn(1500, 2, generator=g)
    with torch.no_grad():
        before = energy_distance(sample(v, 1500, 2, 32, x0=x0), ref)
    losses = train_cfm(v, data.sample, CFMConfig(steps=700, batch=256, lr=3e-3), generator=g)
    with torch.no_grad():
        after = energy_distance(sample(v, 1500, 2, 32, x0=x0), ref)
    assert sum(losses[-50:]) / 50 < sum(losses[:50]) / 50
    assert before > 0.2 and after < 0.03, (before, after)


def test_denoiser_is_posterior_mean_for_gaussian_data():
    mu, sigma = 1.0, 0.5
    b = gaussian_velocity(mu, sigma)
    x = torch.randn(10, 2, dtype=torch.float64)
    t = torch.full((10,), 0.3, dtype=torch.float64)
    var = (1 - 0.3) ** 2 + 0.3**2 * sigma**2
    posterior_mean = mu + 0.3 * sigma**2 / var * (x - 0.3 * mu)  # E[x1 | x_t], jointly Gaussian
    assert torch.allclose(denoiser(b, x, t), posterior_mean)


# ---------------------------------------------------------------- samplers
def test_samplers_match_the_analytic_linear_ode_with_their_orders():
    A = torch.tensor([[-0.5, 1.0], [-1.0, -0.5]], dtype=torch.float64)
    v = lambda x, t: x @ A.T  # noqa: E731
    x = torch.randn(8, 2, dtype=torch.float64)
    exact = x @ torch.linalg.matrix_exp(A * 0.8).T  # x(t) = e^{A (t − s)} x(s), s = 0.1, t = 0.9
    errs = {m: [float((integrate(v, x, 0.1, 0.9, n, m) - exact).abs().max()) for n in (20, 40)] for m in ("euler", "midpoint")}
    assert errs["midpoint"][1] < 1e-3 and errs["euler"][1] < 0.05
    assert 1.7 < errs["euler"][0] / errs["euler"][1] < 2.3  # first order
    assert 3.5 < errs["midpoint"][0] / errs["midpoint"][1] < 4.5  # second order


def test_integrate_per_row_times_backwards_and_path():
    v = lambda x, t: torch.sin(3 * t)[:, None] * x + t[:, None]  # noqa: E731
    x = torch.randn(3, 2, dtype=torch.float64)
    s, t = torch.tensor([0.0, 0.2, 0.7], dtype=torch.float64), torch.tensor([1.0, 0.5, 0.1], dtype=torch.float64)
    both = integrate(v, x, s, t, 16, "midpoint")
    rows = torch.cat([integrate(v, x[i:i + 1], float(s[i]), float(t[i]), 16, "midpoint") for i in range(3)])
    assert torch.allclose(both, rows)
    back = integrate(v, integrate(v, x, 0.0, 1.0, 400, "midpoint"), 1.0, 0.0, 400, "midpoint")
    assert torch.allclose(back, x, atol=1e-4)
    path = integrate(v, x, 0.0, 1.0, 5, return_path=True)
    assert path.shape == (6, 3, 2) and torch.equal(path[0], x) and torch.allclose(path[-1], integrate(v, x, 0.0, 1.0, 5))
    with pytest.raises(ValueError):
        integrate(v, x, 0.0, 1.0, 4, method="rk4")
    with pytest.raises(ValueError):
        as_time(torch.zeros(2), x)


def test_nfe_counter_is_exact():
    net = VelocityMLP(dim=2, hidden=16, depth=2).requires_grad_(False)
    c = NFECounter(net)
    x = torch.randn(5, 2)
    with torch.no_grad():
        integrate(c, x, 0.0, 1.0, 7, "euler")
    assert c.counts() == {"forward": 7, "vjp": 0} and c.forward_rows == 35
    c.reset()
    integrate(c, x, 0.0, 1.0, 7, "midpoint")  # nothing requires grad → no VJP possible
    assert c.counts() == {"forward": 14, "vjp": 0}
    c.reset()
    xg = x.clone().requires_grad_(True)
    out = integrate(c, xg, 0.0, 1.0, 6, "euler")
    (g1,) = torch.autograd.grad(out.sum(), xg)
    assert c.counts() == {"forward": 6, "vjp": 6}  # one VJP through every network call
    (g2,) = torch.autograd.grad(integrate(net, xg, 0.0, 1.0, 6).sum(), xg)
    assert torch.allclose(g1, g2)  # counting leaves the gradient unchanged
    c.reset()
    y = c(xg, 0.5)
    torch.autograd.grad((y * y).sum() + y.sum(), xg)  # the output used twice: still one VJP
    assert c.counts() == {"forward": 1, "vjp": 1}
    teacher = TeacherFlowMap(c.reset(), substeps=9, method="midpoint")
    with torch.no_grad():
        teacher(x, 0.0, 1.0)
    assert c.forward_calls == teacher.nfe_per_call == 18


def test_nfe_counter_works_under_torch_func():
    net = VelocityMLP(dim=2, hidden=16, depth=2).double().requires_grad_(False)
    c = NFECounter(net)
    x = torch.randn(2, dtype=torch.float64)
    jac = torch.func.jacrev(lambda z: c(z[None], 0.3)[0])(x)
    ref = torch.autograd.functional.jacobian(lambda z: net(z[None], 0.3)[0], x)
    assert torch.allclose(jac, ref)
    assert c.forward_calls >= 1 and c.vjp_calls >= 1


# ---------------------------------------------------------------- flow maps
@pytest.fixture(scope="module")
def toy():
    return load_toy_flow()


def test_shipped_flow_samples_the_mixture(toy):
    v, X, data = toy
    g = torch.Generator().manual_seed(3)
    ref, x0 = data.sample(1500, g), torch.randn(1500, 2, generator=g)
    with torch.no_grad():
        assert energy_distance(integrate(v, x0, 0.0, 1.0, 64), ref) < 0.01
        assert energy_distance(flow_map_sample(X, x0, 2), ref) < 0.01
        assert energy_distance(integrate(v, x0, 0.0, 1.0, 1), ref) > 0.5  # one Euler step collapses to the mean
    assert not any(p.requires_grad for p in v.parameters())


def test_flow_map_identity_and_composition(toy):
    v, X, _ = toy
    x = torch.randn(512, 2, generator=torch.Generator().manual_seed(4))
    assert torch.equal(X(x, 0.4, 0.4), x)  # X_{t,t} = id by construction
    teacher = TeacherFlowMap(v, substeps=64)
    for s, t, u in [(0.0, 0.5, 1.0), (0.1, 0.3, 0.8)]:
        assert composition_error(teacher, x, s, t, u) < 0.03
        assert composition_error(X, x, s, t, u) < 0.15  # looser for the distilled map
    with torch.no_grad():  # the distilled endpoint map tracks the teacher's
        xs = teacher(x, 0.0, 0.5)
        assert float((X(xs, 0.5, 1.0) - teacher(xs, 0.5, 1.0)).norm(dim=1).mean()) < 0.1


def test_distillation_pieces_and_a_short_run():
    g = torch.Generator().manual_seed(0)
    i, j = sample_grid_pairs(10_000, 16, g)
    assert (i <= j).all() and (j <= 16).all() and (i >= 0).all()
    assert 0.05 < float((i == j).float().mean()) < 0.2 and float((j == 16).float().mean()) > 0.25
    xs, xt, vs = torch.randn(3, 4, 2).unbind(0)
    s, t = torch.tensor([0.1, 0.5, 0.2, 0.3]), torch.tensor([0.6, 0.5, 1.0, 0.3])
    tgt = distillation_target(xs, xt, s, t, vs)
    assert torch.allclose(tgt[0], (xt[0] - xs[0]) / 0.5) and torch.equal(tgt[1], vs[1]) and torch.equal(tgt[3], vs[3])
    b = gaussian_velocity(1.0, 0.5)
    ts, path, vel = teacher_trajectories(b, torch.randn(64, 2, generator=g), grid_steps=8)
    assert path.shape == (9, 64, 2) and vel.shape == (9, 64, 2) and torch.allclose(vel[3], b(path[3], ts[3].expand(64)))
    torch.manual_seed(0)
    student = FlowMapMLP(dim=2, hidden=32, depth=2)
    losses = distill_flow_map(student, b, DistillConfig(n_traj=512, grid_steps=16, steps=300, batch=256, lr=3e-3), generator=g)
    assert sum(losses[-30:]) / 30 < 0.1 * sum(losses[:30]) / 30


def test_euler_sampler_matches_diffusers_flow_match_scheduler():
    """Parity with diffusers: σ = 1 − t, the scheduler's velocity is noise − data = −v (STYLE.md)."""
    diffusers = pytest.importorskip("diffusers")
    N = 6
    sched = diffusers.FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0)
    sched.set_timesteps(sigmas=torch.linspace(1, 1 / N, N).tolist())
    torch.manual_seed(0)
    v = VelocityMLP(dim=2, hidden=16, depth=2).requires_grad_(False)
    x0 = torch.randn(7, 2)
    x = x0.clone()
    for ts in sched.timesteps:
        sigma = float(ts) / 1000
        model_output = -v(x, torch.full((7,), 1 - sigma))  # diffusers' velocity, σ-time
        x = sched.step(model_output, ts, x).prev_sample
    assert torch.allclose(x, integrate(v, x0, 0.0, 1.0, N, "euler"), atol=1e-5)


def test_endpoint_jacobian_norm_matches_autograd(toy):
    from hdai_lessons.flows.flowmap import endpoint_jacobian_norm

    _, X, _ = toy
    a = math.pi / 8  # half-way between two modes' angles
    x = torch.tensor([[1.5, 0.0], [1.5 * math.cos(a), 1.5 * math.sin(a)], [0.0, 0.0]])  # at t = 0.5 mode 0 sits near (1.5, 0)
    norms = endpoint_jacobian_norm(X, x, 0.5)
    for i in range(3):
        J = torch.autograd.functional.jacobian(lambda z: X(z[None], 0.5, 1.0)[0], x[i])
        assert abs(float(torch.linalg.matrix_norm(J, ord=2)) - float(norms[i])) < 1e-4
    assert norms[1] > 5 * norms[0]  # the map stretches space between modes far more than on a mode


def test_nfe_quality_sweep_counts_and_improves(toy):
    from hdai_lessons.flows.sampling import nfe_quality_sweep

    v, _, data = toy
    g = torch.Generator().manual_seed(5)
    res = nfe_quality_sweep(v, torch.randn(800, 2, generator=g), data.sample(800, g), [1, 2, 3, 16], log_prob=data.log_prob)
    assert res["euler"]["nfe"] == [1, 2, 3, 16] and res["midpoint"]["nfe"] == [2, 16]  # odd budgets skipped
    assert res["euler"]["energy"][-1] < 0.1 * res["euler"]["energy"][0]
    assert res["euler"]["logp"][-1] > res["euler"]["logp"][0]



# ----------------------------------------------------------------------------- lesson configs and code-to-lesson links
CONFIGS = [FlowMatchingLessonConfig, FlowMapLessonConfig, GuidanceLessonConfig, DigitGuidanceLessonConfig,
           FullScaleLessonConfig, CFMConfig, DistillConfig, GuidanceConfig, ClassifierConfig, DigitFlowConfig]


def test_every_config_field_has_an_attribute_docstring():
    for cls in CONFIGS:
        assert set(field_docs(cls)) == {f.name for f in fields(cls)}, cls.__name__


def test_lesson_configs_keep_the_committed_sizes():
    """The notebooks' committed outputs were computed with these values: a change here invalidates them."""
    fm = [FlowMatchingLessonConfig.for_scale(s) for s in ("smoke", "toy", "full")]
    assert [(c.net, c.train, c.n_eval, c.n_seeds, c.nfes) for c in fm] == [
        ({"hidden": 32, "depth": 2}, CFMConfig(steps=30, batch=128, lr=3e-3), 300, 2, (1, 2, 4)),
        ({"hidden": 96, "depth": 3}, CFMConfig(steps=1500, batch=512, lr=3e-3), 2000, 4, (1, 2, 4, 8, 16, 32, 64)),
        ({"hidden": 256, "depth": 4}, CFMConfig(steps=20_000, batch=4096, lr=1e-3), 8000, 5, (1, 2, 4, 8, 16, 32, 64, 128))]
    toy = FlowMapLessonConfig.for_scale("toy")
    assert (toy.distill, toy.n_eval, toy.n_seeds, toy.n_claim, toy.budgets, toy.jacobian_grid) == (
        DistillConfig(n_traj=2048, grid_steps=32, steps=600, batch=512, lr=3e-3), 2000, 4, 4000, (1, 2, 4, 8), 60)
    assert FlowMapLessonConfig.for_scale("smoke").distill == DistillConfig(n_traj=256, grid_steps=8, steps=20, batch=128)
    assert GuidanceLessonConfig.for_scale("toy") == GuidanceLessonConfig(n=256, n_seeds=8, exact_iters=15, pool=20000)
    assert DigitGuidanceLessonConfig.for_scale("toy") == DigitGuidanceLessonConfig(
        n=64, n_seeds=8, targets=(3, 8), lams=(0.3, 1.0), budgets=(12, 24))
    full = FullScaleLessonConfig.for_scale("full")
    assert (full.model, full.n, full.n_seeds, full.budgets) == ("flux-schnell", 2, 2, (12,))
    assert FullScaleLessonConfig.for_scale("toy").on_digits and not full.on_digits


def test_every_public_name_of_module_04_names_its_lesson_and_source():
    """Each public function and class says which lesson teaches it and what of the paper it implements."""
    missing = []
    for path in sorted(pathlib.Path(flows.__file__).parent.glob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
                doc = ast.get_docstring(node) or ""
                if "Lesson 04." not in doc and "Lessons 04." not in doc:
                    missing.append(f"{path.name}:{node.name} (no lesson)")
                elif not any(k in doc for k in ("FMRG", "Lipman", "no paper counterpart")):
                    missing.append(f"{path.name}:{node.name} (no source)")
    assert not missing, missing
