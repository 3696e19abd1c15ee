"""Atomic, verified checkpoints: safetensors for weights and optimizer tensors, JSON for everything else.

Layout of a run directory::

    run_dir/
      step-00000100/            one complete checkpoint (written to a temp dir, then renamed)
        model.safetensors       the model's state_dict
        optimizer.safetensors   the optimizer's tensor state, keys "state.<param>.<name>", and RNG states
        state.json              step, optimizer param groups and scalars, RNG states, extras, and the
                                sha256 of both tensor files (written last: its presence means complete)
      latest.json               {"dir": "step-00000100", "step": 100}, replaced atomically *after* the rename

What can go wrong, and what happens (each case has a test in ``tests/test_checkpoint.py``):

- a kill at any instant of a save: the previous checkpoint stays complete; an existing folder of the
  same step is moved aside *before* the new one is renamed in and deleted only after, and on load a
  ``latest.json`` that points at a missing or incomplete folder falls back to the newest complete one;
- a flipped or truncated byte: the sha256 in ``state.json`` does not match, and the error names the
  file and the newest intact earlier checkpoint;
- a ``latest.json`` naming a path outside the run folder (``../x``, ``/abs``): refused;
- saving an older step into a folder with newer ones: the checkpoint just written is never pruned;
- leftovers of killed saves (``.tmp-step-*``, ``.old-step-*``): removed by the next save.

Nothing here uses pickle: ``torch.load`` is never called.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

LATEST = "latest.json"
_STEP_DIR = re.compile(r"step-(\d{8})")
_TENSOR_FILES = ("model.safetensors", "optimizer.safetensors")


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used as it is; the message names the file and what to do.

    Lessons 01.4, 02.4, 03.4 show it (checkpoint/resume); Course infrastructure used by every lesson (no lesson or paper equation of its own).
    """


def atomic_write_text(path: Path, text: str) -> None:
    """Replace ``path`` by ``text`` atomically (a crash leaves the old file or the new one, never half).

    Course infrastructure used by every lesson (no lesson or paper equation of its own).
    """
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


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _step_dirs(run_dir: Path) -> list[tuple[int, Path]]:
    """``[(step, folder)]`` of the ``step-NNNNNNNN`` folders in ``run_dir``, oldest first."""
    out = []
    for p in run_dir.iterdir() if run_dir.is_dir() else []:
        m = _STEP_DIR.fullmatch(p.name)
        if m and p.is_dir():
            out.append((int(m.group(1)), p))
    return sorted(out)


def _remove_leftovers(run_dir: Path) -> None:
    """Delete the temp and moved-aside folders that killed saves left behind."""
    for p in run_dir.glob(".tmp-step-*"):
        shutil.rmtree(p, ignore_errors=True)
    for p in run_dir.glob(".old-step-*"):
        shutil.rmtree(p, ignore_errors=True)


def save_checkpoint(
    run_dir: "str | Path",
    step: int,
    model: torch.nn.Module,
    optimizer: "torch.optim.Optimizer | None" = None,
    extra: "dict[str, Any] | None" = None,
    keep: int = 2,
) -> Path:
    """Write a complete checkpoint for ``step`` atomically; keep the newest ``keep``; return its dir.

    ``extra`` must be JSON-serialisable (e.g. a metrics history, a data-loader cursor). The folder
    just written is never pruned, even when the run folder holds newer steps.

    Lessons 01.4, 02.4, 03.4 show it (checkpoint/resume); Course infrastructure used by every lesson (no lesson or paper equation of its own).
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(run_dir)
    final = run_dir / f"step-{step:08d}"
    tmp = Path(tempfile.mkdtemp(dir=run_dir, prefix=f".tmp-step-{step:08d}-"))
    aside = None
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
        for name in _TENSOR_FILES:
            _fsync_file(tmp / name)
        meta["sha256"] = {name: _sha256(tmp / name) for name in _TENSOR_FILES}
        atomic_write_text(tmp / "state.json", json.dumps(meta))          # last: marks the folder complete
        if final.exists():                                              # move aside, never delete first
            aside = Path(tempfile.mkdtemp(dir=run_dir, prefix=f".old-step-{step:08d}-"))
            os.replace(final, aside / final.name)
        os.replace(tmp, final)
    except BaseException:
        if aside is not None and not final.exists():                    # put the old folder back
            os.replace(aside / final.name, final)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    atomic_write_text(run_dir / LATEST, json.dumps({"dir": final.name, "step": int(step)}))
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)
    others = [p for _, p in _step_dirs(run_dir) if p != final]
    for p in others[:len(others) - (keep - 1)] if keep > 0 else []:
        shutil.rmtree(p, ignore_errors=True)
    return final


def _complete(folder: Path) -> bool:
    return (folder / "state.json").is_file() and all((folder / n).is_file() for n in _TENSOR_FILES)


def _read_meta(ckpt: Path) -> dict[str, Any]:
    """``state.json`` of a checkpoint folder, with its required fields checked."""
    path = ckpt / "state.json"
    try:
        meta = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path} is unreadable ({e}); {_earlier_hint(ckpt)}") from None
    missing = [k for k in ("step", "extra", "rng") if k not in meta] if isinstance(meta, dict) else ["(not an object)"]
    if missing:
        raise CheckpointError(f"{path} lacks the fields {missing}; {_earlier_hint(ckpt)}")
    return meta


def _earlier_hint(ckpt: Path) -> str:
    """What to do about a damaged checkpoint: name the newest complete earlier one, if any."""
    earlier = [p for s, p in _step_dirs(ckpt.parent) if p.name < ckpt.name and _complete(p)]
    if earlier:
        return (f"the newest earlier checkpoint {earlier[-1]} is complete: delete {ckpt} and "
                f"{ckpt.parent / LATEST} to resume from it")
    return f"no earlier checkpoint is complete: delete {ckpt.parent} to start over"


def verify_checkpoint(ckpt: "str | Path") -> dict[str, Any]:
    """Check a checkpoint folder's files against the sha256 in its ``state.json``; return the metadata.

    Raises ``CheckpointError`` naming the damaged file and the newest intact earlier checkpoint.
    Checkpoints written before checksums were recorded are accepted unverified.

    Lessons 01.4, 02.4, 03.4 show it (checkpoint/resume); Course infrastructure used by every lesson (no lesson or paper equation of its own).
    """
    ckpt = Path(ckpt)
    meta = _read_meta(ckpt)
    for name, digest in meta.get("sha256", {}).items():
        path = ckpt / name
        if not path.is_file():
            raise CheckpointError(f"{path} is missing; {_earlier_hint(ckpt)}")
        if _sha256(path) != digest:
            raise CheckpointError(f"{path} is damaged (its sha256 differs from the one saved); {_earlier_hint(ckpt)}")
    return meta


def latest_checkpoint(run_dir: "str | Path") -> "Path | None":
    """The newest complete checkpoint folder of ``run_dir``, or ``None`` when it has none yet.

    Normally the folder ``latest.json`` names. If that folder is missing or incomplete (a kill
    during a save), the newest complete ``step-*`` folder is used instead, with a warning. A
    ``latest.json`` that names anything but a ``step-NNNNNNNN`` folder inside ``run_dir`` is refused.

    Lessons 01.4, 02.4, 03.4 show it (checkpoint/resume); Course infrastructure used by every lesson (no lesson or paper equation of its own).
    """
    run_dir = Path(run_dir)
    pointer = run_dir / LATEST
    if not pointer.exists():
        complete = [p for _, p in _step_dirs(run_dir) if _complete(p)]
        return complete[-1] if complete else None
    try:
        name = json.loads(pointer.read_text())["dir"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise CheckpointError(f"{pointer} is malformed ({e!r}); delete it to resume from the newest complete "
                              f"step-* folder") from None
    if not isinstance(name, str) or not _STEP_DIR.fullmatch(name):
        raise CheckpointError(f"{pointer} names {name!r}, not a step-NNNNNNNN folder inside {run_dir}; refusing it")
    target = run_dir / name
    if _complete(target):
        return target
    complete = [p for _, p in _step_dirs(run_dir) if _complete(p)]
    if not complete:
        raise CheckpointError(f"{pointer} points at {target}, which is incomplete, and no other checkpoint in "
                              f"{run_dir} is complete; delete {run_dir} to start over")
    warnings.warn(f"{target} is incomplete (a save was interrupted); resuming from {complete[-1]}", stacklevel=2)
    return complete[-1]


def checkpoint_extra(run_dir: "str | Path") -> "dict[str, Any] | None":
    """The ``extra`` dict of the newest complete checkpoint (verified), or ``None`` without one.

    Lessons 01.4, 02.4, 03.4 show it (checkpoint/resume); Course infrastructure used by every lesson (no lesson or paper equation of its own).
    """
    ckpt = latest_checkpoint(run_dir)
    return None if ckpt is None else verify_checkpoint(ckpt)["extra"]


def load_checkpoint(
    run_dir: "str | Path",
    model: torch.nn.Module,
    optimizer: "torch.optim.Optimizer | None" = None,
    restore_rng: bool = True,
) -> "dict[str, Any] | None":
    """Restore the newest checkpoint into ``model`` (and ``optimizer``); return ``{"step", "extra"}``.

    Returns ``None`` (and touches nothing) when ``run_dir`` holds no checkpoint, so a trainer can
    call it unconditionally at start-up.

    Lessons 01.4, 02.4, 03.4 show it (checkpoint/resume); Course infrastructure used by every lesson (no lesson or paper equation of its own).
    """
    ckpt = latest_checkpoint(run_dir)
    if ckpt is None:
        return None
    meta = verify_checkpoint(ckpt)
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
            raise CheckpointError(f"checkpoint {ckpt} has no optimizer state")
        opt_tensors = {k: v for k, v in other.items() if k.startswith("state.")}
        optimizer.load_state_dict(_join_optimizer(opt_tensors, meta["optimizer"]))
    if restore_rng:
        _set_rng_state({k: v for k, v in other.items() if k.startswith("rng.")}, meta["rng"])
    return {"step": meta["step"], "extra": meta["extra"]}
