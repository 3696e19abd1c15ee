"""Training a population in shards on several processes gives the numbers one process gives, bit for bit."""
from dataclasses import replace

import numpy as np
import pytest
import torch

from hdai_lessons.core.data import data_path
from hdai_lessons.sope.parallel import merge_results, shard_runs, train_sharded
from hdai_lessons.sope.phases import PhaseConfig
from hdai_lessons.sope.prior_data import load_npz
from hdai_lessons.sope.rng import get_states
from hdai_lessons.sope.sac import SACConfig
from hdai_lessons.sope.train import RunSpec, TrainConfig, train_population


def _cfg(**kw) -> TrainConfig:
    base = dict(total_steps=300, warmup=100, batch_per_source=16, eval_every=100, eval_episodes=2,
                sac=SACConfig(hidden=(16, 16), dropout=0.01, lr=1e-3), share_prefix=True, show_progress=False,
                phases=PhaseConfig(every=100, e_max=60, check_every=10, patience=20, val_batch=16))
    base.update(kw)
    return TrainConfig(**base)


def _priors() -> dict:
    return {"expert": load_npz(data_path("sope-pendulum-expert"))}


def _assert_same_state(a: dict, b: dict) -> None:
    pa, pb = a["population"], b["population"]
    assert (pa.R, pa.seeds, pa.taus) == (pb.R, pb.seeds, pb.taus)
    for (name, x), (_, y) in zip(pa.state_dict().items(), pb.state_dict().items()):
        assert torch.equal(x, y), name
    for qa, qb in zip(pa.opt.param_groups, pb.opt.param_groups):
        for x, y in zip(qa["params"], qb["params"]):
            assert pa.opt.state[x].keys() == pb.opt.state[y].keys()
            assert all(torch.equal(pa.opt.state[x][k], pb.opt.state[y][k]) for k in pa.opt.state[x])
    assert get_states(a["gens"]) == get_states(b["gens"]) and get_states(pa.gens) == get_states(pb.gens)
    assert torch.equal(a["use_prior"], b["use_prior"])
    for key, rows in (("online", slice(None)), ("prior", a["use_prior"])):    # prior rows of non-users: placeholders
        if a[key] is None or b[key] is None:
            assert a[key] is None and b[key] is None, key
            continue
        assert a[key].size == b[key].size and torch.equal(a[key].active, b[key].active), key
        assert all(a[key].data[f].shape == b[key].data[f].shape for f in a[key].data), key
        assert all(torch.equal(a[key].data[f][rows], b[key].data[f][rows]) for f in a[key].data), key


def _assert_same(a, b) -> None:
    assert a.specs == b.specs and a.steps == b.steps
    for field in ("returns", "online_updates", "critic_updates", "flops"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)
    assert len(a.phases) == len(b.phases)
    for pa, pb in zip(a.phases, b.phases):
        assert (pa.env_step, pa.lengths, pa.checks, pa.trace_e) == (pb.env_step, pb.lengths, pb.checks, pb.trace_e)
        np.testing.assert_array_equal(np.array(pa.trace_J), np.array(pb.trace_J))   # nan where it is nan
    _assert_same_state(a.state, b.state)


def test_shards_keep_a_shared_prefix_together_and_balance_run_counts():
    specs = [RunSpec(arm, seed, "expert", 60) for seed in range(4) for arm in ("SACfD", "SPEQ-O2O", "SOPE")]
    shards = shard_runs(specs, 2)
    assert shards == [[0, 1, 2, 6, 7, 8], [3, 4, 5, 9, 10, 11]]       # whole seeds, 6 runs each
    assert shard_runs(specs, 8) == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 10, 11]]   # never a seed cut in two
    assert shard_runs(specs, 1) == [list(range(12))]
    taus = [RunSpec("SAC", s, tau=t) for s in range(3) for t in (0.005, 0.02)]   # another τ: another prefix
    assert sorted(len(s) for s in shard_runs(taus, 2)) == [3, 3]
    with pytest.raises(ValueError, match="workers"):
        shard_runs(specs, 0)


def test_two_processes_give_one_process_numbers_bit_for_bit():
    """Two seeds of SOPE/SPEQ-O2O (sharing their prefix) and a seed of plain SAC: the shard holding SAC has no
    phases of its own, so the merge must fill its runs' phase entries as one population does."""
    specs = [RunSpec("SOPE", 0, "expert", 60), RunSpec("SPEQ-O2O", 0, "expert", 60),
             RunSpec("SOPE", 1, "expert", 60), RunSpec("SPEQ-O2O", 1, "expert", 60), RunSpec("SAC", 2), RunSpec("SAC", 3)]
    cfg, priors = _cfg(), _priors()
    one = train_population(specs, cfg, priors)
    assert one.phase_lengths()[0].sum() < one.phase_lengths()[1].sum()   # SOPE stopped early: traces hold nans
    two = train_sharded(specs, cfg, priors, workers=2)
    _assert_same(one, two)                                           # curves, phases, weights, optimiser, buffers, RNG
    three = train_sharded(specs, cfg, priors, workers=3)             # SOPE/SPEQ seed 0 | seed 1 | both SAC runs
    _assert_same(one, three)


def test_merge_puts_rows_back_and_rejects_shards_of_different_configs():
    specs = [RunSpec("SACfD", 0, "expert"), RunSpec("SAC", 1), RunSpec("SACfD", 2, "expert")]
    cfg, priors = _cfg(total_steps=200, warmup=150), _priors()
    one = train_population(specs, cfg, priors)
    shards = [[0, 2], [1]]
    parts = [train_population([specs[i] for i in idx], cfg, priors) for idx in shards]
    _assert_same(one, merge_results(parts, shards, specs))
    wrong = train_population([specs[1]], replace(cfg, eval_every=200), priors)
    with pytest.raises(ValueError, match="different steps"):
        merge_results([parts[0], wrong], shards, specs)
    # the rows really move: merging the shards in swapped order puts SAC's curve on a SACfD row
    swapped = merge_results([parts[1], parts[0]], [[0], [1, 2]], specs)
    assert not np.array_equal(swapped.returns, one.returns)


def test_checkpoints_keep_training_in_one_process(tmp_path):
    specs = [RunSpec("SAC", 0), RunSpec("SAC", 1)]
    res = train_sharded(specs, _cfg(total_steps=200, warmup=150, checkpoint_dir=str(tmp_path)), workers=2)
    assert res.state["population"].R == 2 and any(tmp_path.iterdir())     # one population, resumable from tmp_path


def test_a_failing_shard_is_reported_with_its_traceback():
    specs = [RunSpec("SAC", 0), RunSpec("SACfD", 1, "missing")]       # only the spawned shard fails
    with pytest.raises(RuntimeError, match="worker process failed(.|\n)*prior dataset 'missing' not given"):
        train_sharded(specs, _cfg(total_steps=20, warmup=10, eval_every=10), _priors(), workers=2)


def test_a_script_without_a_main_guard_gets_an_actionable_error(tmp_path):
    """Spawned workers import the calling script; unguarded, each would start workers itself. The parent must
    stop with advice, not hang."""
    import subprocess
    import sys

    script = tmp_path / "unguarded.py"
    script.write_text(
        "from hdai_lessons.sope.parallel import train_sharded\n"
        "from hdai_lessons.sope.train import RunSpec, TrainConfig\n"
        "train_sharded([RunSpec('SAC', 0), RunSpec('SAC', 1)], TrainConfig(total_steps=20, warmup=10, eval_every=10,\n"
        "              eval_episodes=1, batch_per_source=8, show_progress=False), workers=2)\n")
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=240)
    assert run.returncode != 0
    assert 'if __name__ == "__main__":' in run.stderr and "without a result" in run.stderr
