"""Replay buffers for a population of ``R`` runs: online data, prior data, symmetric sampling, hold-out.

- ``ReplayBuffer``: ``(R, capacity, ·)`` tensors, one slice per run, filled in lockstep (every run adds
  one transition per environment step). A prior dataset is a full ``ReplayBuffer`` that never grows.
- ``symmetric_batch``: SOPE/RLPD-style 50/50 batches — ``B`` online + ``B`` prior transitions per run
  (the official SOPE code uses 256 + 256). Runs without prior data draw both halves online (plain SAC).
- ``hold_out`` / ``restore``: SOPE's validation split. Held-out rows are *moved* (a permutation) to the
  end of each run's slice and the sampler only draws from the first ``active`` rows, so restoring is
  just resetting ``active``: no transition is lost or duplicated (a test checks the multiset).

Randomness: pass one ``torch.Generator`` per run (a list) and run ``r`` draws its indices and its split from
``gens[r]`` alone (runs outside ``mask`` draw nothing), so its batches do not depend on the other runs. A
single generator is still accepted (one stream shared by all runs, in run order) for one-off uses.
"""
from __future__ import annotations

import numpy as np
import torch

from hdai_lessons.sope.rng import per_run_uniform

FIELDS = ("obs", "act", "rew", "next_obs", "term")


class ReplayBuffer:
    """Transitions of ``R`` runs: ``obs (R, C, o)``, ``act (R, C, a)``, ``rew (R, C)``, ``next_obs (R, C, o)``, ``term (R, C)``.

    Lessons 03.2–03.3; ``D_on`` and ``D_off`` of the SOPE digest ("Symbols"); ``hold_out``/``restore`` are "Validation
    split at stabilisation phase k"."""

    def __init__(self, n_runs: int, capacity: int, obs_dim: int, act_dim: int):
        self.R, self.capacity = n_runs, capacity
        self.data = {
            "obs": torch.zeros(n_runs, capacity, obs_dim), "act": torch.zeros(n_runs, capacity, act_dim),
            "rew": torch.zeros(n_runs, capacity), "next_obs": torch.zeros(n_runs, capacity, obs_dim),
            "term": torch.zeros(n_runs, capacity),
        }
        self.size = 0
        self.active = torch.zeros(n_runs, dtype=torch.long)   # rows [0, active[r]) are sampled from
        self.held = torch.zeros(n_runs, dtype=torch.long)     # rows [size - held[r], size) are held out

    @classmethod
    def from_arrays(cls, arrays: "dict[str, np.ndarray | torch.Tensor]", n_runs: int) -> "ReplayBuffer":
        """A full buffer from ``(R, N, ·)`` arrays, or ``(N, ·)`` arrays shared by every run."""
        t = {k: torch.as_tensor(np.asarray(arrays[k]), dtype=torch.float32) for k in FIELDS}
        if t["obs"].dim() == 2:   # (N, o) → (R, N, o): the same prior for every run
            t = {k: v.unsqueeze(0).expand(n_runs, *v.shape).clone() for k, v in t.items()}
        if t["obs"].shape[0] != n_runs:
            raise ValueError(f"prior arrays have {t['obs'].shape[0]} runs, expected {n_runs}")
        n = t["obs"].shape[1]
        buf = cls(n_runs, n, t["obs"].shape[-1], t["act"].shape[-1])
        for k in FIELDS:
            buf.data[k].copy_(t[k].reshape(buf.data[k].shape))
        buf.size = n
        buf.active[:] = n
        return buf

    def add(self, obs, act, rew, next_obs, term) -> None:
        """Append one transition per run: ``obs (R, o)``, ``act (R, a)``, ``rew (R,)``, ``next_obs (R, o)``, ``term (R,)``."""
        if int(self.held.sum()) > 0:
            raise RuntimeError("cannot add while a validation split is held out; call restore() first")
        if self.size >= self.capacity:
            raise RuntimeError(f"replay buffer full ({self.capacity}); give it a larger capacity")
        i = self.size
        for k, v in zip(FIELDS, (obs, act, rew, next_obs, term)):
            self.data[k][:, i] = torch.as_tensor(v, dtype=torch.float32).reshape(self.data[k][:, i].shape)
        self.size += 1
        self.active[:] = self.size

    def select(self, runs: "list[int]") -> "ReplayBuffer":
        """A copy holding runs ``runs`` (indices, repeats allowed) in that order: their rows, size and split.

        Lesson 03.3 (course machinery: runs identical until the first phase are trained once, then copied)."""
        idx = torch.as_tensor(list(runs), dtype=torch.long)
        out = ReplayBuffer.__new__(ReplayBuffer)
        out.R, out.capacity, out.size = len(idx), self.capacity, self.size
        out.data = {k: v.index_select(0, idx) for k, v in self.data.items()}
        out.active, out.held = self.active.index_select(0, idx), self.held.index_select(0, idx)
        return out

    @classmethod
    def concat(cls, buffers: "list[ReplayBuffer]") -> "ReplayBuffer":
        """One buffer holding the runs of ``buffers`` in order (all of one capacity and size): their rows and split.

        Lessons 03.2–03.4 (course machinery: a population trained in shards on several processes is put back
        together, ``parallel.train_sharded``)."""
        if len({(b.capacity, b.size) for b in buffers}) != 1:
            raise ValueError("buffers of different capacities or sizes cannot hold one population's runs")
        out = cls.__new__(cls)
        out.R, out.capacity, out.size = sum(b.R for b in buffers), buffers[0].capacity, buffers[0].size
        out.data = {k: torch.cat([b.data[k] for b in buffers]) for k in buffers[0].data}
        out.active, out.held = torch.cat([b.active for b in buffers]), torch.cat([b.held for b in buffers])
        return out

    def sample_indices(self, batch_size: int, gen: "torch.Generator | list[torch.Generator]",
                       mask: "torch.Tensor | None" = None) -> torch.Tensor:
        """``(R, batch_size)`` uniform indices into each run's active rows (with replacement).

        ``gen``: one generator per run (run ``r`` draws from ``gen[r]``; runs with ``mask[r]`` False draw
        nothing and get index 0), or one generator shared by all runs."""
        if int(self.active.min()) <= 0:
            raise RuntimeError("cannot sample from an empty buffer")
        if isinstance(gen, torch.Generator):
            u = torch.rand(self.R, batch_size, generator=gen)
        else:
            u = per_run_uniform(_check_gens(gen, self.R), (batch_size,), mask)
        return (u * self.active.unsqueeze(1)).long()          # (R, B)

    def gather(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        """Rows ``idx (R, B)`` of every field: ``obs (R, B, o)`` … ``term (R, B)``."""
        out = {}
        for k, v in self.data.items():
            ix = idx if v.dim() == 2 else idx.unsqueeze(-1).expand(*idx.shape, v.shape[-1])
            out[k] = torch.gather(v, 1, ix)
        return out

    def sample(self, batch_size: int, gen: "torch.Generator | list[torch.Generator]", mask=None) -> dict[str, torch.Tensor]:
        """``batch_size`` uniform rows per run (``sample_indices`` then ``gather``)."""
        return self.gather(self.sample_indices(batch_size, gen, mask))

    def hold_out(self, n: "int | torch.Tensor", gen: "torch.Generator | list[torch.Generator]") -> dict[str, torch.Tensor]:
        """Move ``n`` (per run: an ``(R,)`` tensor, 0 = none) random rows of each run to the end; stop sampling them.

        ``gen``: one generator per run (run ``r``'s split comes from ``gen[r]``), or one shared generator.

        Returns the held-out rows as a batch ``(R, n_max, ·)`` (runs holding fewer rows are padded with
        their last active rows; the caller uses only runs that hold out).

        Lesson 03.3; SOPE digest, "Validation split at stabilisation phase k" ("remove them from the training
        buffers for the length of the phase").
        """
        if int(self.held.sum()) > 0:
            raise RuntimeError("a validation split is already held out; restore() it first")
        n = torch.as_tensor(n, dtype=torch.long).expand(self.R).clone()
        if int(n.max()) >= self.size:
            raise ValueError(f"cannot hold out {int(n.max())} of {self.size} transitions")
        gens = [gen] * self.R if isinstance(gen, torch.Generator) else _check_gens(gen, self.R)
        for r in range(self.R):
            perm = torch.randperm(self.size, generator=gens[r])
            chosen = perm[: int(n[r])]
            rest = perm[int(n[r]):].sort().values
            order = torch.cat([rest, chosen])                 # held-out rows go last
            for v in self.data.values():
                v[r, : self.size] = v[r, order]
        self.held = n
        self.active = self.size - n
        n_max = max(int(n.max()), 1)
        idx = (self.size - n_max + torch.arange(n_max)).unsqueeze(0).expand(self.R, n_max)   # (R, n_max)
        return self.gather(idx.contiguous())

    def restore(self) -> None:
        """Put the held-out rows back into the sampled set (they never left the storage).

        Lesson 03.3; SOPE digest, "Validation split at stabilisation phase k" ("then restore them afterwards")."""
        self.held = torch.zeros(self.R, dtype=torch.long)
        self.active = torch.full((self.R,), self.size, dtype=torch.long)

    def state_tensors(self, prefix: str) -> dict[str, torch.Tensor]:
        """For checkpoints: the filled rows of every field (``(R, size, ·)``)."""
        return {f"{prefix}.{k}": v[:, : self.size].contiguous() for k, v in self.data.items()}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor], prefix: str) -> None:
        """Inverse of ``state_tensors``: refill the buffer from a checkpoint (nothing held out)."""
        n = tensors[f"{prefix}.obs"].shape[1]
        for k in self.data:
            self.data[k][:, :n] = tensors[f"{prefix}.{k}"]
        self.size = n
        self.restore()


def _check_gens(gens, R: int) -> list:
    gens = list(gens)
    if len(gens) != R:
        raise ValueError(f"{len(gens)} generators for {R} runs; pass one generator per run")
    return gens


def symmetric_batch(online: ReplayBuffer, prior: "ReplayBuffer | None", batch_per_source: int,
                    gen: "torch.Generator | list[torch.Generator]", use_prior: "torch.Tensor | None" = None,
                    mask: "torch.Tensor | None" = None) -> dict[str, torch.Tensor]:
    """``B`` online + ``B`` prior transitions per run, concatenated: every field ``(R, 2B, ·)``.

    Runs with ``use_prior[r] == False`` (or when ``prior`` is None) draw both halves from online data,
    so plain SAC sees the same batch size. The first ``B`` rows are online, the last ``B`` prior.
    With one generator per run (``gen`` a list), run ``r`` draws ``2B`` uniforms from ``gen[r]`` (the
    first ``B`` index its online rows, the last ``B`` its prior rows, or online rows for plain SAC) and
    runs with ``mask[r]`` False draw nothing (their rows are then meaningless).

    Lesson 03.2; SOPE digest, "Symbols" (symmetric batch ``B = B_on ∪ B_off``) and the pseudo-code line "B ← 256
    online + 256 offline".
    """
    if not isinstance(gen, torch.Generator):
        B = batch_per_source
        u = per_run_uniform(_check_gens(gen, online.R), (2 * B,), mask)       # (R, 2B)
        b_on = online.gather((u[:, :B] * online.active.unsqueeze(1)).long())
        mixed = prior is not None and use_prior is not None and not bool(use_prior.all())
        if prior is None or mixed:
            b_alt = online.gather((u[:, B:] * online.active.unsqueeze(1)).long())
        if prior is None:
            return {k: torch.cat([b_on[k], b_alt[k]], dim=1) for k in b_on}
        b_off = prior.gather((u[:, B:] * prior.active.unsqueeze(1)).long())
        if mixed:
            for k in b_off:
                m = use_prior.view(-1, *([1] * (b_off[k].dim() - 1)))
                b_off[k] = torch.where(m, b_off[k], b_alt[k])
        return {k: torch.cat([b_on[k], b_off[k]], dim=1) for k in b_on}
    b_on = online.sample(batch_per_source, gen)
    if prior is None:
        b_off = online.sample(batch_per_source, gen)
    else:
        b_off = prior.sample(batch_per_source, gen)
        if use_prior is not None and not bool(use_prior.all()):
            alt = online.sample(batch_per_source, gen)
            for k in b_off:
                m = use_prior.view(-1, *([1] * (b_off[k].dim() - 1)))
                b_off[k] = torch.where(m, b_off[k], alt[k])
    return {k: torch.cat([b_on[k], b_off[k]], dim=1) for k in b_on}
