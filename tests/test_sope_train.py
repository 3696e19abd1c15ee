"""The online loop: SAC learns Pendulum-v1 in a short seeded budget; checkpoint/resume continues a run."""
import numpy as np
import pytest
import torch

from hdai_lessons.sope.phases import PhaseConfig
from hdai_lessons.sope.prior_data import load_npz
from hdai_lessons.data import data_path
from hdai_lessons.sope.sac import SACConfig
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


def test_unknown_arm_and_missing_prior_are_reported():
    with pytest.raises(ValueError, match="unknown arm"):
        train_population([RunSpec("RLPD", 0)], _cfg(total_steps=10, warmup=5, eval_every=10))
    with pytest.raises(KeyError, match="not given"):
        train_population([RunSpec("SACfD", 0, "expert")], _cfg(total_steps=10, warmup=5, eval_every=10), {})


def test_benchmark_protocol_on_pendulum():
    from hdai_lessons.sope.benchmark import TASKS, load_prior, prior_from_sac_run, run_benchmark, score_bounds
    from hdai_lessons.sope.train import pendulum_config

    task = TASKS["pendulum-expert"]
    prior = load_prior(task)
    lo, hi = score_bounds(task, prior, episodes=2, seed=0)
    assert lo < -600 and hi > -300
    cfg = pendulum_config("smoke")
    res, summary = run_benchmark(task, [RunSpec(a, 0, "prior") for a in ("SACfD", "SPEQ-O2O", "SOPE")], cfg, prior, (lo, hi), last_evals=1)
    assert summary["SPEQ-O2O"]["tflops"] > summary["SOPE"]["tflops"] >= summary["SACfD"]["tflops"] > 0
    assert summary["SPEQ-O2O"]["tflops_paper"] > summary["SACfD"]["tflops_paper"] > 0     # counted at B = 256
    assert all(np.isfinite(s["score"]) for s in summary.values())
    sac_prior = prior_from_sac_run("Pendulum-v1", 120, 0, cfg)
    assert sac_prior["observations"].shape == (120, 3) and sac_prior["timeouts"].sum() == 0
