"""SOPE's stopping rule and phases, the validation split, FLOP accounting."""
import torch

from hdai_lessons.sope.buffers import ReplayBuffer
from hdai_lessons.sope.flops import NetDims, mlp_forward_flops, online_update_flops, stabilisation_update_flops, total_flops
from hdai_lessons.sope.phases import (PhaseConfig, code_improved, dm_value_estimate, phase_stop_point, run_phase,
                                      sope_improved, validation_sizes)
from hdai_lessons.sope.rng import run_generators
from hdai_lessons.sope.sac import SACConfig, SACPopulation


def test_improvement_test_with_negative_and_positive_J():
    Js = torch.tensor([-100.0, 100.0])
    worse = torch.tensor([-99.95, 100.05])       # slightly worse for both signs
    better = torch.tensor([-100.2, 99.8])         # better by 0.2 % for both
    assert sope_improved(worse, Js).tolist() == [False, False]
    assert sope_improved(better, Js).tolist() == [True, True]
    # the official code's test accepts the worse negative value: the sign bug
    assert code_improved(worse, Js).tolist() == [True, False]


def test_plateau_stops_by_patience_and_improving_signal_runs_to_max():
    t = torch.arange(40, dtype=torch.float64)
    plateau = torch.where(t < 5, -100 - 5 * t, torch.full_like(t, -125.0))
    assert phase_stop_point(plateau, m=1000, patience=10_000, e_max=75_000) == 15_000   # best reached at 5k, then 10 checks
    steady = -100 - 1.0 * t
    assert phase_stop_point(steady, m=1000, patience=10_000, e_max=30_000) == 30_000


def test_validation_sizes_follow_the_paper():
    assert validation_sizes(5000, 1_000_000) == (500, 500)
    assert validation_sizes(1000, 1_000_000) == (256, 256)
    assert validation_sizes(1000, 400) == (256, 144)


def _pop_and_buffers(R=3):
    pop = SACPopulation(list(range(R)), 3, 1, 2.0, SACConfig(hidden=(16, 16), dropout=0.0))
    g = torch.Generator().manual_seed(0)
    on = ReplayBuffer(R, 400, 3, 1)
    for _ in range(300):
        on.add(torch.randn(R, 3, generator=g), torch.rand(R, 1, generator=g), torch.randn(R, generator=g), torch.randn(R, 3, generator=g), torch.zeros(R))
    off = ReplayBuffer.from_arrays({"obs": torch.randn(500, 3, generator=g).numpy(), "act": torch.rand(500, 1, generator=g).numpy(),
                                    "rew": torch.randn(500, generator=g).numpy(), "next_obs": torch.randn(500, 3, generator=g).numpy(),
                                    "term": torch.zeros(500).numpy()}, R)
    return pop, on, off, g


def test_run_phase_lengths_and_restore():
    pop, on, off, g = _pop_and_buffers()
    cfg = PhaseConfig(every=100, e_max=60, check_every=10, patience=20, val_batch=32)
    snap = on.data["rew"].clone().sort(dim=1).values
    log = run_phase(pop, on, off, torch.tensor([0, 25, 60]), torch.tensor([False, False, True]), cfg, 16, g, None, 300)
    assert log.lengths[0] == 0 and log.lengths[1] == 25 and 20 <= log.lengths[2] <= 60
    assert log.lengths[2] % 10 == 0 or log.lengths[2] == 60
    assert on.active.tolist() == [300] * 3 and off.active.tolist() == [500] * 3
    assert torch.equal(on.data["rew"].sort(dim=1).values, snap)
    J = dm_value_estimate(pop, on.data["obs"][:, :50])
    assert J.shape == (3,)


def test_flops_accounting():
    assert mlp_forward_flops(2, [3, 4, 1]) == 2 * 2 * (12 + 4)
    d = NetDims(11, 3, (256, 256), 2)
    pi, q = mlp_forward_flops(256, d.actor), mlp_forward_flops(256, d.critic)
    assert online_update_flops(d) == (pi + 2 * q) + 2 * 3 * q + (3 * pi + 2 * q)
    assert stabilisation_update_flops(d) == pi + 2 * q + 6 * q
    no_val = total_flops(d, 10, 5, 1000, count_validation=False)
    assert total_flops(d, 10, 5, 1000) > no_val == 10 * online_update_flops(d) + 5 * stabilisation_update_flops(d)


def test_a_phase_computes_only_its_active_runs_and_a_run_is_the_same_alone():
    """``run_phase`` trains only the runs still in their phase, so a run's phase (its length, checks, trace and
    the critics it leaves behind) is the same, bitwise on one float path, alone or beside runs whose phases end
    earlier or later; runs without a phase are left untouched."""
    cfg = PhaseConfig(every=100, e_max=60, check_every=10, patience=20, val_batch=32)
    max_len, adaptive = torch.tensor([0, 25, 60, 60]), torch.tensor([False, False, True, False])

    def phase(runs):
        pop = SACPopulation(runs, 3, 1, 2.0, SACConfig(hidden=(16, 16), dropout=0.01))
        _, on, off, _ = _pop_and_buffers(len(runs))
        for k, r in enumerate(runs):                       # run r's data whatever its position
            g = torch.Generator().manual_seed(100 + r)
            for buf in (on, off):
                for v in buf.data.values():
                    v[k] = torch.randn(v[k].shape, generator=g).abs() if v is buf.data["act"] else torch.randn(v[k].shape, generator=g)
                buf.data["term"][k] = 0.0
        gens = run_generators(runs, "batch", 0)
        before = [p.detach().clone() for p in pop.critic.parameters()]
        log = run_phase(pop, on, off, max_len[runs], adaptive[runs], cfg, 16, gens, None, 300)
        return pop, log, before

    together, log_t, before_t = phase([0, 1, 2, 3])
    assert log_t.lengths[0] == 0 and log_t.lengths[1] == 25 and log_t.lengths[3] == 60 and log_t.lengths[2] < 60
    for p, b in zip(together.critic.parameters(), before_t):
        assert torch.equal(p.detach()[0], b[0])            # no phase: untouched
    for r in (1, 2, 3):
        alone, log_a, _ = phase([r])
        assert log_a.lengths == [log_t.lengths[r]] and log_a.checks == [log_t.checks[r]]
        for p, q in zip([*alone.critic.parameters(), *alone.critic_target.parameters()],
                        [*together.critic.parameters(), *together.critic_target.parameters()]):
            assert torch.equal(p.detach()[0], q.detach()[r]), r
        if r == 2:                                          # SOPE's trace while it was in its phase
            mine = [row[2] for row in log_t.trace_J if row[2] == row[2]]
            assert [row[0] for row in log_a.trace_J] == mine
