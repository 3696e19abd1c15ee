"""Atomic checkpoints: safetensors for weights and optimizer tensors, JSON for everything else.

Layout of a run directory::

    run_dir/
      step-00000100/            one complete checkpoint (written to a temp dir, then renamed)
        model.safetensors       the model's state_dict
        optimizer.safetensors   the optimizer's tensor state, keys "state.<param>.<name>"
        state.json              step, optimizer param groups and scalars, RNG states, extras
      latest.json               {"dir": "step-00000100"}, replaced atomically *after* the rename

A crash at any moment leaves ``latest.json`` pointing at a complete checkpoint, so nothing is lost
and ``load_checkpoint`` resumes bit-for-bit (the RNG states are restored too). Nothing here uses
pickle: ``torch.load`` is never called.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

LATEST = "latest.json"


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    np_state = np.random.get_state()
    py_state = random.getstate()
    meta = {
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "python": [py_state[0], list(py_state[1]), py_state[2]],
    }
    return tensors, meta


def _set_rng_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    cuda = sorted(k for k in tensors if k.startswith("rng.cuda."))
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([tensors[k] for k in cuda])
    n = meta["numpy"]
    np.random.set_state((n[0], np.array(n[1], dtype=np.uint32), n[2], n[3], n[4]))
    p = meta["python"]
    random.setstate((p[0], tuple(p[1]), p[2]))


def _split_optimizer(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, st in sd["state"].items():
        for name, val in st.items():
            if torch.is_tensor(val):
                tensors[f"state.{pid}.{name}"] = val.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(pid), {})[name] = val
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _join_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, val in tensors.items():
        _, pid, name = key.split(".", 2)
        state.setdefault(int(pid), {})[name] = val
    for pid, st in meta["scalars"].items():
        state.setdefault(int(pid), {}).update(st)
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(
    run_dir: "str | Path",
    step: int,
    model: torch.nn.Module,
    optimizer: "torch.optim.Optimizer | None" = None,
    extra: "dict[str, Any] | None" = None,
    keep: int = 2,
) -> Path:
    """Write a complete checkpoint for ``step`` atomically; keep the newest ``keep``; return its dir.

    ``extra`` must be JSON-serialisable (e.g. a metrics history, a data-loader cursor).
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    final = run_dir / f"step-{step:08d}"
    tmp = Path(tempfile.mkdtemp(dir=run_dir, prefix=f".tmp-step-{step:08d}-"))
    try:
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        # tied weights share storage; safetensors refuses shared tensors, so clone them apart
        save_file({k: v.clone() for k, v in state.items()}, str(tmp / "model.safetensors"))
        meta: dict[str, Any] = {"step": int(step), "extra": extra or {}}
        rng_tensors, meta["rng"] = _rng_state()
        opt_tensors: dict[str, torch.Tensor] = {}
        if optimizer is not None:
            opt_tensors, meta["optimizer"] = _split_optimizer(optimizer)
        save_file({**opt_tensors, **rng_tensors}, str(tmp / "optimizer.safetensors"))
        (tmp / "state.json").write_text(json.dumps(meta))
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _atomic_write_text(run_dir / LATEST, json.dumps({"dir": final.name, "step": int(step)}))
    old = sorted(p for p in run_dir.glob("step-*") if p.is_dir())
    for p in old[:-keep] if keep > 0 else []:
        shutil.rmtree(p, ignore_errors=True)
    return final


def latest_checkpoint(run_dir: "str | Path") -> "Path | None":
    """The directory ``latest.json`` points at, or ``None`` when the run has no checkpoint yet."""
    pointer = Path(run_dir) / LATEST
    if not pointer.exists():
        return None
    target = Path(run_dir) / json.loads(pointer.read_text())["dir"]
    if not (target / "state.json").exists():
        raise FileNotFoundError(f"{pointer} points at {target}, which is incomplete; delete {pointer} to start over")
    return target


def load_checkpoint(
    run_dir: "str | Path",
    model: torch.nn.Module,
    optimizer: "torch.optim.Optimizer | None" = None,
    restore_rng: bool = True,
) -> "dict[str, Any] | None":
    """Restore the newest checkpoint into ``model`` (and ``optimizer``); return ``{"step", "extra"}``.

    Returns ``None`` (and touches nothing) when ``run_dir`` holds no checkpoint, so a trainer can
    call it unconditionally at start-up.
    """
    ckpt = latest_checkpoint(run_dir)
    if ckpt is None:
        return None
    meta = json.loads((ckpt / "state.json").read_text())
    weights = load_file(str(ckpt / "model.safetensors"))
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if unexpected or [k for k in missing if k not in weights]:
        # tied weights appear under both names in the file; anything else is a real mismatch
        real_missing = [k for k in missing if not k.endswith("lm_head.weight")]
        if unexpected or real_missing:
            raise RuntimeError(
                f"checkpoint {ckpt} does not fit this model: missing {real_missing[:5]}, unexpected {unexpected[:5]}"
            )
    other = load_file(str(ckpt / "optimizer.safetensors"))
    if optimizer is not None:
        if "optimizer" not in meta:
            raise RuntimeError(f"checkpoint {ckpt} has no optimizer state")
        opt_tensors = {k: v for k, v in other.items() if k.startswith("state.")}
        optimizer.load_state_dict(_join_optimizer(opt_tensors, meta["optimizer"]))
    if restore_rng:
        _set_rng_state({k: v for k, v in other.items() if k.startswith("rng.")}, meta["rng"])
    return {"step": meta["step"], "extra": meta["extra"]}
