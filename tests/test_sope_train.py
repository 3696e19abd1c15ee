"""The online loop: SAC learns Pendulum-v1 in a short seeded budget; checkpoint/resume continues a run."""
from dataclasses import replace

import numpy as np
import pytest
import torch

from hdai_lessons.sope.phases import PhaseConfig
from hdai_lessons.sope.prior_data import load_npz
from hdai_lessons.core.data import data_path
from hdai_lessons.sope.sac import SACConfig, SACPopulation
from hdai_lessons.sope.train import RunSpec, TrainConfig, train_population


def _cfg(**kw):
    base = dict(total_steps=2500, warmup=500, batch_per_source=64, eval_every=500, eval_episodes=2,
                sac=SACConfig(hidden=(64, 64), dropout=0.0, lr=1e-3), show_progress=False)
    base.update(kw)
    return TrainConfig(**base)


def test_seeded_sac_improves_pendulum():
    torch.manual_seed(0)
    res = train_population([RunSpec("SAC", 1)], _cfg())
    first, last = res.returns[0, 0], res.returns[0, -1]
    assert last > first + 500, res.returns
    assert last > -800, res.returns
    assert res.online_updates[0, -1] == 2000 and res.critic_updates[0, -1] == 2000


def test_phases_and_resume(tmp_path):
    prior = {"expert": load_npz(data_path("sope-pendulum-expert"))}
    specs = [RunSpec("SOPE", 0, "expert", 60), RunSpec("SPEQ-O2O", 0, "expert", 30), RunSpec("SACfD", 0, "expert")]
    kw = dict(warmup=50, batch_per_source=8, eval_every=100, eval_episodes=1, sac=SACConfig(hidden=(8, 8), dropout=0.01),
              phases=PhaseConfig(every=100, e_max=60, check_every=10, patience=20, val_batch=8), checkpoint_dir=str(tmp_path))
    a = train_population(specs, _cfg(total_steps=200, **kw), prior)
    assert [p.env_step for p in a.phases] == [100, 200]
    L = a.phase_lengths()
    assert (L[1] == 30).all() and (L[2] == 0).all() and (20 <= L[0]).all() and (L[0] <= 60).all()
    assert a.critic_updates[1, -1] == a.online_updates[1, -1] + 60
    assert (a.flops[0] > 0).all() and a.flops[1, -1] > a.flops[2, -1]
    b = train_population(specs, _cfg(total_steps=300, **kw), prior)    # resumes from step 200
    assert b.steps == [100, 200, 300]
    np.testing.assert_array_equal(b.returns[:, :2], a.returns)
    assert b.online_updates[0, -1] == 250 and len(b.phases) == 3


def test_a_run_is_the_same_alone_or_beside_other_arms():
    """Each run owns its generators (batches, policy noise, dropout, hold-out split, DM noise, evaluation
    states), so its curve does not depend on which arms train beside it; bitwise on one float path."""
    prior = {"expert": load_npz(data_path("sope-pendulum-expert")), "poor": load_npz(data_path("sope-pendulum-poor"))}
    cfg = _cfg(total_steps=300, warmup=100, batch_per_source=16, eval_every=100, eval_episodes=2,
               sac=SACConfig(hidden=(16, 16), dropout=0.01, lr=1e-3),
               phases=PhaseConfig(every=100, e_max=60, check_every=10, patience=20, val_batch=16))
    specs = [RunSpec("SOPE", 0, "expert", 60), RunSpec("SPEQ-O2O", 0, "expert", 60), RunSpec("SAC", 1),
             RunSpec("SACfD", 2, "poor")]
    together = train_population(specs, cfg, prior)
    for i in (0, 1, 3):                         # the SOPE run stops early while SPEQ-O2O continues beside it
        alone = train_population([specs[i]], cfg, prior)
        np.testing.assert_allclose(alone.returns[0], together.returns[i], rtol=1e-6, atol=1e-4, err_msg=specs[i].name)
        assert alone.critic_updates[0, -1] == together.critic_updates[i, -1]
        assert alone.flops[0, -1] == together.flops[i, -1]
        assert [p.lengths[0] for p in alone.phases] == ([p.lengths[i] for p in together.phases] if i < 2 else [])
    assert together.phase_lengths()[0].sum() < together.phase_lengths()[1].sum()   # SOPE did stop early
    # same seed, other arm: same start, then a different run
    assert together.returns[0, 0] == together.returns[1, 0] and not np.array_equal(together.returns[0], together.returns[1])


def test_a_run_with_its_own_tau_is_the_same_as_in_a_population_at_that_tau():
    """``RunSpec.tau`` overrides the config's Polyak rate for one run: a population mixing two rates gives each run
    exactly what a population at its rate gives (lesson 03.2 trains its two τ in one population), and the shared
    prefix never merges runs that differ in τ (they differ from the first update)."""
    prior = {"expert": load_npz(data_path("sope-pendulum-expert"))}
    cfg = _cfg(total_steps=240, warmup=100, batch_per_source=16, eval_every=60, eval_episodes=1,
               sac=SACConfig(hidden=(16, 16), dropout=0.0, lr=1e-3, tau=0.02), share_prefix=True,
               phases=PhaseConfig(every=100, e_max=40, check_every=10, patience=20, val_batch=16))
    slow = replace(cfg, sac=replace(cfg.sac, tau=0.005))
    mixed = train_population([RunSpec("SPEQ-O2O", 0, "expert", 40, tau=0.005), RunSpec("SPEQ-O2O", 0, "expert", 40)], cfg, prior)
    at_slow = train_population([RunSpec("SPEQ-O2O", 0, "expert", 40)], slow, prior)
    at_fast = train_population([RunSpec("SPEQ-O2O", 0, "expert", 40)], cfg, prior)
    np.testing.assert_array_equal(mixed.returns[0], at_slow.returns[0])
    np.testing.assert_array_equal(mixed.returns[1], at_fast.returns[0])
    assert not np.array_equal(mixed.returns[0], mixed.returns[1])
    with pytest.raises(ValueError, match="one τ per run"):
        SACPopulation([0, 1], 3, 1, 2.0, cfg.sac, taus=[0.01])


def test_unknown_arm_and_missing_prior_are_reported():
    with pytest.raises(ValueError, match="unknown arm"):
        train_population([RunSpec("RLPD", 0)], _cfg(total_steps=10, warmup=5, eval_every=10))
    with pytest.raises(KeyError, match="not given"):
        train_population([RunSpec("SACfD", 0, "expert")], _cfg(total_steps=10, warmup=5, eval_every=10), {})


def test_benchmark_protocol_on_pendulum():
    from hdai_lessons.sope.benchmark import TASKS, load_prior, prior_from_sac_run, run_benchmark, score_bounds

    task = TASKS["pendulum-expert"]
    prior = load_prior(task)
    lo, hi = score_bounds(task, prior, episodes=2, seed=0)
    assert lo < -600 and hi > -300
    cfg = TrainConfig.for_scale("smoke")
    res, summary = run_benchmark(task, [RunSpec(a, 0, "prior") for a in ("SACfD", "SPEQ-O2O", "SOPE")], cfg, prior, (lo, hi), last_evals=1)
    assert summary["SPEQ-O2O"]["tflops"] > summary["SOPE"]["tflops"] >= summary["SACfD"]["tflops"] > 0
    assert summary["SPEQ-O2O"]["tflops_paper"] > summary["SACfD"]["tflops_paper"] > 0     # counted at B = 256
    assert all(np.isfinite(s["score"]) for s in summary.values())
    sac_prior = prior_from_sac_run("Pendulum-v1", 120, 0, cfg)
    assert sac_prior["observations"].shape == (120, 3) and sac_prior["timeouts"].sum() == 0


def test_lesson_configs_resolve_the_scale_once_and_document_every_field():
    """Module 03's settings: one ``for_scale`` per config; the toy rungs the committed outputs were made with.
    ``TrainConfig``'s defaults are the paper's protocol, a lesson config's defaults its toy rung."""
    from dataclasses import fields

    from hdai_lessons.core.config import field_docs
    from hdai_lessons.sope.benchmark import TASKS, BenchmarkLessonConfig
    from hdai_lessons.sope.ope import OPELessonConfig
    from hdai_lessons.sope.prior_study import PriorDataLessonConfig
    from hdai_lessons.sope.train import StabilisationLessonConfig

    configs = (TrainConfig, PhaseConfig, SACConfig, OPELessonConfig, PriorDataLessonConfig, StabilisationLessonConfig,
               BenchmarkLessonConfig)
    for cls in configs:
        assert set(field_docs(cls)) == {f.name for f in fields(cls)}, cls.__name__
        if hasattr(cls, "for_scale"):
            small, toy = cls.for_scale("smoke"), cls.for_scale("toy")
            if cls.__name__.endswith("LessonConfig"):
                assert toy == cls(), cls.__name__         # a lesson's defaults are its toy rung
            assert small != toy and cls.for_scale("full") != toy, cls.__name__
    toy = TrainConfig.for_scale("toy")
    assert (toy.total_steps, toy.warmup, toy.batch_per_source, toy.eval_every, toy.eval_episodes) == (3000, 500, 64, 250, 2)
    assert toy.phases == PhaseConfig(every=500, e_max=2000, check_every=100, patience=500, val_batch=64)
    assert toy.sac == SACConfig(hidden=(64, 64), dropout=0.0, lr=1e-3)
    prior = PriorDataLessonConfig()
    assert prior.n_seeds >= 5 and prior.pendulum.eval_episodes >= 5 and prior.mountaincar.eval_episodes >= 5  # issue 13
    stab = StabilisationLessonConfig()
    assert (stab.train.total_steps, stab.study_train.total_steps, stab.study_train.eval_every, stab.n_study) == (2500, 1500, 1500, 2000)
    assert stab.train.phases == PhaseConfig(every=500, e_max=1000, check_every=50, patience=250, val_batch=64)
    assert (stab.train.reward_shift, stab.train.sac.gamma, stab.train.sac.tau) == (16.3, 0.95, 0.04)
    assert (stab.long_phase, stab.n_seeds) == (1000, 4)     # issue 13: ≥ 4 paired seeds
    assert stab.train.share_prefix and not TrainConfig().share_prefix   # the lesson shares its arms' common prefix
    # policy evaluation (~1/((1−γ)τ) critic updates) fits in E_max, so SOPE can stop a phase in between (issue 13)
    assert 1 / ((1 - stab.train.sac.gamma) * stab.train.sac.tau) <= stab.train.phases.e_max / 2
    assert stab.study_train.reward_shift == 0 and stab.study_train.sac.gamma == 0.99   # the traced phase: raw rewards
    bench, full = BenchmarkLessonConfig(), BenchmarkLessonConfig.for_scale("full")
    assert bench.train.phases == PhaseConfig(every=500, e_max=1000, check_every=100, patience=200, val_batch=64)
    assert bench.train.total_steps == 2000   # SOPE can stop at 200, 300, …, 1000 (issue 13: not only 500 or 1000)
    assert full.train.sac.dropout == TASKS[full.task].dropout == 0.001
    assert OPELessonConfig.for_scale("smoke").sizes == (20, 100)


def test_reward_shift_moves_training_rewards_but_not_evaluation_returns():
    """``TrainConfig.reward_shift`` (lesson 03.3, section 5) is added to the rewards the learner trains on, online and
    prior, while evaluation returns stay in the environment's units."""
    prior = {"expert": load_npz(data_path("sope-pendulum-expert"))}
    kw = dict(total_steps=20, warmup=20, batch_per_source=8, eval_every=20, eval_episodes=1, sac=SACConfig(hidden=(8, 8), dropout=0.0))
    plain = train_population([RunSpec("SACfD", 0, "expert")], _cfg(**kw), prior)
    shifted = train_population([RunSpec("SACfD", 0, "expert")], _cfg(reward_shift=16.3, **kw), prior)
    for buf in ("online", "prior"):
        a, b = plain.state[buf].data["rew"][:, :20], shifted.state[buf].data["rew"][:, :20]
        torch.testing.assert_close(b, a + 16.3)
    np.testing.assert_array_equal(plain.returns, shifted.returns)     # no update ran: same policy, same units


def test_runs_identical_until_the_first_phase_are_trained_once_and_copied_bit_for_bit():
    """``TrainConfig.share_prefix``: runs with the same seed and prior data train once until the first phase and
    are copied there (weights, optimiser, buffers, generators, environments); every number is the same as when
    each trains on its own, on one float path."""
    from hdai_lessons.sope.train import _fork_plan

    prior = {"expert": load_npz(data_path("sope-pendulum-expert"))}
    cfg = _cfg(total_steps=300, warmup=100, batch_per_source=16, eval_every=50, eval_episodes=2,
               sac=SACConfig(hidden=(16, 16), dropout=0.01, lr=1e-3),
               phases=PhaseConfig(every=100, e_max=60, check_every=10, patience=20, val_batch=16), share_prefix=True)
    specs = [RunSpec(arm, s, "expert", 60 if arm != "SACfD" else 0) for s in (0, 1) for arm in ("SACfD", "SPEQ-O2O", "SOPE")]
    specs.append(RunSpec("SAC", 0))
    assert _fork_plan(specs, cfg) == ([0, 3, 6], [0, 0, 0, 1, 1, 1, 2], 200)
    shared = train_population(specs, cfg, prior)
    plain = train_population(specs, replace(cfg, share_prefix=False), prior)
    for k in ("returns", "online_updates", "critic_updates", "flops"):
        np.testing.assert_array_equal(getattr(shared, k), getattr(plain, k), err_msg=k)
    np.testing.assert_array_equal(shared.phase_lengths(), plain.phase_lengths())
    for a, b in zip(shared.phases, plain.phases):                # the validation traces too (nan: not in a phase)
        np.testing.assert_array_equal(np.array(a.trace_J), np.array(b.trace_J))
    for a, b in zip(shared.state["population"].parameters(), plain.state["population"].parameters()):
        assert torch.equal(a, b)
    assert torch.equal(shared.state["online"].data["obs"], plain.state["online"].data["obs"])
    assert (shared.phase_lengths()[2] < 60).any()               # SOPE stopped early somewhere: the phases differ


@pytest.mark.parametrize("env_id", ["Pendulum-v1", "MountainCarContinuous-v0"])
def test_evaluation_steps_the_bare_env_with_the_same_returns_as_the_wrappers(env_id):
    """``evaluate`` steps ``env.unwrapped`` and applies the time limit itself: the returns equal those of stepping
    ``gymnasium.make``'s wrapped envs (TimeLimit truncation included: these policies never finish early)."""
    from hdai_lessons.sope.prior_data import make_env
    from hdai_lessons.sope.sac import SACPopulation
    from hdai_lessons.sope.train import eval_seed, evaluate

    env = make_env(env_id)
    pop = SACPopulation([0, 1, 2], env.observation_space.shape[0], 1, float(env.action_space.high[0]),
                        SACConfig(hidden=(8, 8), dropout=0.0))
    fast = evaluate(pop, env_id, 2, 250)
    ref = np.zeros((3, 2))
    for r in range(3):
        for j in range(2):
            e = make_env(env_id)
            o, _ = e.reset(seed=eval_seed(pop.seeds[r], 250, j, pop.salt))
            done = False
            while not done:
                a = pop.act(torch.as_tensor(o, dtype=torch.float32).view(1, 1, -1).expand(3, 1, -1).contiguous(), deterministic=True)
                o, rew, term, trunc, _ = e.step(a[r, 0].numpy())
                ref[r, j] += rew
                done = term or trunc
    np.testing.assert_array_equal(fast, ref.mean(1))
