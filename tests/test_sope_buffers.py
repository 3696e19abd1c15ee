"""Replay buffers: hold-out/restore conserves every transition; symmetric batches are half and half."""
import numpy as np
import pytest
import torch

from hdai_lessons.sope.buffers import ReplayBuffer, symmetric_batch


def _filled(R=2, n=50):
    buf = ReplayBuffer(R, 100, 2, 1)
    for i in range(n):
        o = torch.stack([torch.tensor([i, r], dtype=torch.float32) for r in range(R)])
        buf.add(o, torch.full((R, 1), float(i)), torch.full((R,), float(i)), o + 0.5, torch.zeros(R))
    return buf


def _rows(buf, r):
    d = buf.data
    return sorted(tuple(np.concatenate([d["obs"][r, i], d["act"][r, i], [d["rew"][r, i]], d["next_obs"][r, i], [d["term"][r, i]]]).tolist())
                  for i in range(buf.size))


def test_hold_out_and_restore_conserve_every_transition():
    buf = _filled()
    before = [_rows(buf, r) for r in range(2)]
    g = torch.Generator().manual_seed(0)
    val = buf.hold_out(torch.tensor([10, 0]), g)
    assert buf.active.tolist() == [40, 50]
    # the held-out rows are not sampled
    idx = buf.sample_indices(5000, g)
    held = set(val["rew"][0].tolist())
    sampled = set(buf.gather(idx)["rew"][0].tolist())
    assert not (held & sampled) and len(held) == 10
    assert len(sampled) == 40
    buf.restore()
    after = [_rows(buf, r) for r in range(2)]
    assert before == after                       # same multiset: nothing lost, nothing duplicated
    assert len(set(map(tuple, after[0]))) == 50


def test_no_add_while_held_out_and_no_double_hold_out():
    buf = _filled()
    g = torch.Generator().manual_seed(1)
    buf.hold_out(5, g)
    with pytest.raises(RuntimeError, match="restore"):
        buf.add(torch.zeros(2, 2), torch.zeros(2, 1), torch.zeros(2), torch.zeros(2, 2), torch.zeros(2))
    with pytest.raises(RuntimeError, match="already"):
        buf.hold_out(5, g)


def test_symmetric_batch_is_half_and_half():
    online = _filled(2, 30)
    prior = ReplayBuffer.from_arrays({"obs": np.full((40, 2), -1.0), "act": np.zeros((40, 1)), "rew": np.full(40, -7.0),
                                      "next_obs": np.zeros((40, 2)), "term": np.zeros(40)}, 2)
    g = torch.Generator().manual_seed(2)
    b = symmetric_batch(online, prior, 16, g)
    assert b["obs"].shape == (2, 32, 2)
    assert (b["rew"][:, :16] >= 0).all() and (b["rew"][:, 16:] == -7).all()
    b = symmetric_batch(online, prior, 16, g, use_prior=torch.tensor([True, False]))
    assert (b["rew"][0, 16:] == -7).all() and (b["rew"][1] >= 0).all()     # plain SAC: all online


def test_per_run_generators_make_batches_independent_of_other_runs():
    """With one generator per run, run r's batch depends only on its own generator and buffer slice; runs
    masked out draw nothing (their generator does not advance)."""
    from hdai_lessons.sope.rng import run_generators
    g = torch.Generator().manual_seed(3)
    online, prior = ReplayBuffer(3, 50, 2, 1), ReplayBuffer.from_arrays(
        {"obs": torch.randn(40, 2, generator=g).numpy(), "act": torch.randn(40, 1, generator=g).numpy(),
         "rew": torch.randn(40, generator=g).numpy(), "next_obs": torch.randn(40, 2, generator=g).numpy(),
         "term": torch.zeros(40).numpy()}, 3)
    for _ in range(30):
        online.add(torch.randn(3, 2, generator=g), torch.randn(3, 1, generator=g), torch.randn(3, generator=g),
                   torch.randn(3, 2, generator=g), torch.zeros(3))
    use = torch.tensor([True, False, True])
    a = symmetric_batch(online, prior, 8, run_generators([0, 1, 2], "batch"), use)
    gens = run_generators([0, 1, 2], "batch")
    skip = symmetric_batch(online, prior, 8, gens, use, mask=torch.tensor([False, True, True]))
    assert torch.equal(skip["rew"][1:], a["rew"][1:])
    b = symmetric_batch(online, prior, 8, gens, use, mask=torch.tensor([True, False, False]))  # run 0's first draw
    assert torch.equal(b["rew"][0], a["rew"][0])
