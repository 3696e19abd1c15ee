"""The shipped 2-D flow: a trained velocity field and its distilled flow map (lesson 04.3 loads them).

Files in ``data/flows/`` (listed in ``data/flows/manifest.json``, rebuilt with
``hdai-lessons data build NAME``):

- ``flows-2d-velocity``: ``VelocityMLP`` trained by conditional flow matching on
  ``GaussianMixture.circle(8, radius=3, std=0.3)`` (``build_velocity_checkpoint``);
- ``flows-2d-flowmap``: ``FlowMapMLP`` distilled from that velocity field's 64-step Euler teacher
  (``build_flowmap_checkpoint``).

Each file is a safetensors state dict; its metadata key ``"hdai"`` holds JSON with the model config,
the data-set spec, the seed and the final training loss.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import torch
from safetensors.torch import load_file, safe_open, save_file

from hdai_lessons.core.data import data_path
from hdai_lessons.flows.cfm import CFMConfig, train_cfm
from hdai_lessons.flows.data2d import GaussianMixture
from hdai_lessons.flows.flowmap import DistillConfig, distill_flow_map
from hdai_lessons.flows.models import FlowMapMLP, VelocityMLP

VELOCITY = "flows-2d-velocity"
FLOWMAP = "flows-2d-flowmap"
#: The data set of the shipped flow: 8 modes on a circle of radius 3, std 0.3.
DATA_SPEC = {"kind": "gmm_circle", "k": 8, "radius": 3.0, "std": 0.3}
VELOCITY_CFG = CFMConfig(steps=4000, batch=1024, lr=2e-3)
DISTILL_CFG = DistillConfig(n_traj=8192, grid_steps=64, steps=3000, batch=1024, lr=2e-3)


def toy_dataset(spec: "dict | None" = None) -> GaussianMixture:
    """The shipped flow's data set (``DATA_SPEC``).

    Lessons 04.2–04.3 (the shipped 2-D flow); FMRG "Toy experiment for the course".
    """
    spec = spec or DATA_SPEC
    if spec.get("kind") != "gmm_circle":
        raise ValueError(f"unknown data spec {spec}")
    return GaussianMixture.circle(int(spec["k"]), float(spec["radius"]), float(spec["std"]))


def _save(model: torch.nn.Module, out_path: Path, kind: str, seed: int, extra: "dict | None" = None) -> None:
    meta = {"kind": kind, "config": model.config(), "data": DATA_SPEC, "seed": seed, **(extra or {})}
    sd = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    # one metadata key holding sorted JSON: safetensors writes several keys in a random order,
    # which would change the file's checksum from one rebuild to the next
    save_file(sd, str(out_path), metadata={"hdai": json.dumps(meta, sort_keys=True)})


def _load(path: Path, cls, kind: str):
    with safe_open(str(path), framework="pt") as f:
        raw = (f.metadata() or {}).get("hdai")
    meta = json.loads(raw) if raw else {}
    if meta.get("kind") != kind:
        raise ValueError(f"{path} holds {meta.get('kind')!r}, expected a {kind!r} checkpoint written by this module")
    model = cls(**meta["config"])
    model.load_state_dict(load_file(str(path)))
    model.eval().requires_grad_(False)
    return model, meta["data"]


def build_velocity_checkpoint(out_path: Path, seed: int) -> None:
    """Generator of ``flows-2d-velocity``: train ``VelocityMLP(2, 128, 4)`` by flow matching (~1–2 min).

    Lessons 04.2–04.3 (the shipped 2-D flow); FMRG "Toy experiment for the course".
    """
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    data = toy_dataset()
    v = VelocityMLP(dim=2, hidden=128, depth=4)
    losses = train_cfm(v, data.sample, VELOCITY_CFG, generator=g, desc="velocity")
    _save(v, Path(out_path), "velocity", seed, {"final_loss": f"{sum(losses[-200:]) / 200:.4f}"})


def build_flowmap_checkpoint(out_path: Path, seed: int) -> None:
    """Generator of ``flows-2d-flowmap``: distil the shipped velocity field into ``FlowMapMLP(2, 128, 4)``.

    Lessons 04.2–04.3 (the shipped 2-D flow); FMRG "Toy experiment for the course".
    """
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    v = load_velocity()
    X = FlowMapMLP(dim=2, hidden=128, depth=4)
    losses = distill_flow_map(X, v, DISTILL_CFG, generator=g, desc="flow map")
    _save(X, Path(out_path), "flowmap", seed, {"final_loss": f"{sum(losses[-200:]) / 200:.5f}"})


def load_velocity(path: "Path | None" = None) -> VelocityMLP:
    """The shipped velocity field (frozen, eval mode).

    Lessons 04.2–04.3 (the shipped 2-D flow); FMRG "Toy experiment for the course".
    """
    return _load(Path(path) if path else data_path(VELOCITY), VelocityMLP, "velocity")[0]


def load_flowmap(path: "Path | None" = None) -> FlowMapMLP:
    """The shipped distilled flow map (frozen, eval mode).

    Lessons 04.2–04.3 (the shipped 2-D flow); FMRG "Toy experiment for the course".
    """
    return _load(Path(path) if path else data_path(FLOWMAP), FlowMapMLP, "flowmap")[0]


class ToyFlow(NamedTuple):
    """What ``load_toy_flow`` returns (unpacks as ``v, X, data = load_toy_flow()``).

    Lessons 04.2–04.3 (the shipped 2-D flow); FMRG "Toy experiment for the course".
    """

    velocity: VelocityMLP
    flow_map: FlowMapMLP
    data: GaussianMixture


def load_toy_flow() -> ToyFlow:
    """The shipped 2-D flow: velocity field ``v(x (B,2), t (B,))``, distilled map ``X(x, s, t)``, data set.

    Both networks are frozen (``requires_grad_(False)``) and in eval mode; gradients still flow to
    inputs, as guidance needs. Loading takes milliseconds; no training, no network.

    Lessons 04.2–04.3 (the shipped 2-D flow); FMRG "Toy experiment for the course".
    """
    v, spec = _load(data_path(VELOCITY), VelocityMLP, "velocity")
    X, _ = _load(data_path(FLOWMAP), FlowMapMLP, "flowmap")
    return ToyFlow(v, X, toy_dataset(spec))
