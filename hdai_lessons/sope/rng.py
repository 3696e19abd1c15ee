"""Per-run random streams for a population of SAC runs (lessons 03.2–03.4).

A population trains ``R`` runs in lockstep, but a run must draw the same random numbers whether it trains
alone or beside other arms; otherwise "SACfD, seed 0" is a different run in every lesson. So every run owns
its generators, derived from its own seed ``s`` and a population-wide salt (``TrainConfig.sample_seed``,
default 0) by ``derive_seed(s, salt, stream, …)``:

- ``"batch"``: replay indices of every update (online and prior halves), one stream per run;
- ``"noise"``: the actor's sampling noise (acting, TD targets, actor loss) and the critics' dropout masks;
- ``"holdout"``, ``"validation"``, ``"eval"``: one-off generators keyed by the environment step (and the
  check), for draws that must not depend on history: a phase's hold-out split, the action noise of the DM
  signal at each check, the evaluation episodes' initial states.

Draws for runs that are masked out (a phase that already stopped for that run) are skipped, so their streams
do not advance; a vectorised draw is ``R`` per-run draws stacked (``per_run_normal`` / ``per_run_uniform``).
"""
from __future__ import annotations

import base64
from typing import Sequence

import numpy as np
import torch

STREAMS = {"batch": 1, "noise": 2, "holdout": 3, "validation": 4, "eval": 5}


def derive_seed(*key: int) -> int:
    """A 63-bit seed from integer keys (``np.random.SeedSequence``): distinct keys give unrelated streams.

    Lessons 03.2–03.4; course machinery for paired seeds (no paper counterpart)."""
    entropy = [int(k) % (1 << 32) for k in key]
    return int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0] >> np.uint64(1))


def run_generators(seeds: Sequence[int], stream: str, salt: int = 0, *key: int) -> list[torch.Generator]:
    """One ``torch.Generator`` per run, seeded from ``(seed, salt, stream, *key)``.

    Lessons 03.2–03.4; course machinery for paired seeds (no paper counterpart)."""
    return [torch.Generator().manual_seed(derive_seed(int(s), int(salt), STREAMS[stream], *key)) for s in seeds]


def _active(mask: "torch.Tensor | None", R: int) -> list[bool]:
    return [True] * R if mask is None else [bool(m) for m in mask.tolist()]


def _per_run(gens: Sequence[torch.Generator], shape: Sequence[int], mask: "torch.Tensor | None", draw: str) -> torch.Tensor:
    """``(R, *shape)``: row ``r`` filled in place by ``Tensor.<draw>_(generator=gens[r])``; masked-out rows stay 0."""
    out = torch.zeros(len(gens), *shape)
    for r, (g, on) in enumerate(zip(gens, _active(mask, len(gens)))):
        if on:
            getattr(out[r], f"{draw}_")(generator=g)
    return out


def per_run_normal(gens: Sequence[torch.Generator], shape: Sequence[int], mask: "torch.Tensor | None" = None) -> torch.Tensor:
    """``(R, *shape)`` standard normals, row ``r`` from ``gens[r]``; rows of masked-out runs are 0 (nothing drawn).

    Lessons 03.2–03.4; course machinery (no paper counterpart)."""
    return _per_run(gens, shape, mask, "normal")


def per_run_uniform(gens: Sequence[torch.Generator], shape: Sequence[int], mask: "torch.Tensor | None" = None) -> torch.Tensor:
    """``(R, *shape)`` uniforms on ``[0, 1)``, row ``r`` from ``gens[r]``; rows of masked-out runs are 0.

    Lessons 03.2–03.4; course machinery (no paper counterpart)."""
    return _per_run(gens, shape, mask, "uniform")


def get_states(gens: Sequence[torch.Generator]) -> list[str]:
    """JSON-friendly generator states (base64), for checkpoints.

    Lessons 03.2–03.4; checkpoints (course machinery, no paper counterpart)."""
    return [base64.b64encode(bytes(g.get_state().numpy())).decode("ascii") for g in gens]


def set_states(gens: Sequence[torch.Generator], states: Sequence[str]) -> None:
    """Inverse of ``get_states``.

    Lessons 03.2–03.4; resuming a checkpoint (course machinery, no paper counterpart)."""
    if len(states) != len(gens):
        raise ValueError(f"{len(states)} saved generator states for {len(gens)} runs")
    for g, s in zip(gens, states):
        g.set_state(torch.frombuffer(bytearray(base64.b64decode(s)), dtype=torch.uint8))
