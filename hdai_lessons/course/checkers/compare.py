"""Compare a learner's output with the reference's and say *what* differs, Karpathy-``cmp`` style.

``describe_difference(ours, ref)`` returns ``None`` when they agree, else one specific sentence:
the type, the shape, the dtype, or the first differing index with both values and the max error.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch


def _fmt(x: Any) -> str:
    if isinstance(x, float):
        return f"{x:.6g}"
    return repr(x)


def _as_tensor(x: Any) -> "torch.Tensor | None":
    if torch.is_tensor(x):
        return x
    if isinstance(x, np.ndarray):
        return torch.from_numpy(x)
    return None


def describe_difference(ours: Any, ref: Any, *, atol: float = 1e-5, rtol: float = 1e-4, where: str = "output") -> "str | None":
    """``None`` if ``ours`` matches ``ref`` (tensors, arrays, numbers, sequences, dicts), else why not."""
    ref_t = _as_tensor(ref)
    if ref_t is not None:
        ours_t = _as_tensor(ours)
        if ours_t is None or torch.is_tensor(ours) != torch.is_tensor(ref):      # a numpy array is not a tensor
            kind = "torch.Tensor" if torch.is_tensor(ref) else "numpy array"
            return f"{where}: expected a {kind} of shape {tuple(ref_t.shape)}, got {type(ours).__name__}"
        if tuple(ours_t.shape) != tuple(ref_t.shape):
            return f"{where}: shape {tuple(ours_t.shape)}, expected {tuple(ref_t.shape)}"
        if ours_t.dtype != ref_t.dtype:
            return f"{where}: dtype {ours_t.dtype}, expected {ref_t.dtype}"
        a = ours_t.detach().cpu()
        b = ref_t.detach().cpu()
        if a.dtype == torch.bool or not (a.is_floating_point() or a.is_complex()):
            bad = a != b
        else:
            a64, b64 = a.double(), b.double()
            nan_mismatch = torch.isnan(a64) != torch.isnan(b64)
            close = torch.isclose(a64, b64, atol=atol, rtol=rtol, equal_nan=True)
            bad = ~close | nan_mismatch
        if not bool(bad.any()):
            return None
        if a.is_floating_point() or a.is_complex():
            broken = ~torch.isfinite(a) & torch.isfinite(b)          # NaN/inf where the reference is finite
            if bool(broken.any()):
                idx = tuple(int(i) for i in torch.nonzero(broken)[0].tolist()) if broken.dim() else ()
                return (f"{where}: {int(broken.sum())} of {broken.numel()} values are NaN/inf where the reference is "
                        f"finite; first at index {idx}: got {_fmt(a[idx].item())}, expected {_fmt(b[idx].item())}")
        idx = tuple(int(i) for i in torch.nonzero(bad)[0].tolist()) if bad.dim() else ()
        va, vb = a[idx].item(), b[idx].item()
        msg = f"{where}: {int(bad.sum())} of {bad.numel()} values differ; first at index {idx}: got {_fmt(va)}, expected {_fmt(vb)}"
        if a.is_floating_point():
            finite = torch.isfinite(a.double()) & torch.isfinite(b.double())
            if finite.any():
                err = (a.double() - b.double()).abs()[finite].max().item()
                msg += f" (max abs error {err:.3g})"
        return msg
    if isinstance(ref, bool) or ref is None or isinstance(ref, str):
        return None if ours == ref else f"{where}: got {_fmt(ours)}, expected {_fmt(ref)}"
    if isinstance(ref, (int, float, np.floating, np.integer)):
        if _as_tensor(ours) is not None and _as_tensor(ours).numel() == 1:  # a 0-d tensor for a number
            ours = _as_tensor(ours).item()
        if not isinstance(ours, (int, float, np.floating, np.integer)):
            return f"{where}: expected a number, got {type(ours).__name__}"
        if math.isnan(float(ref)) and math.isnan(float(ours)):
            return None
        if math.isclose(float(ours), float(ref), rel_tol=rtol, abs_tol=atol):
            return None
        return f"{where}: got {_fmt(float(ours))}, expected {_fmt(float(ref))} (abs error {abs(float(ours) - float(ref)):.3g})"
    if isinstance(ref, (tuple, list)):
        if not isinstance(ours, (tuple, list)) or len(ours) != len(ref):
            got = f"{type(ours).__name__} of length {len(ours)}" if isinstance(ours, (tuple, list)) else type(ours).__name__
            return f"{where}: expected a {type(ref).__name__} of length {len(ref)}, got {got}"
        for i, (o, r) in enumerate(zip(ours, ref)):
            d = describe_difference(o, r, atol=atol, rtol=rtol, where=f"{where}[{i}]")
            if d:
                return d
        return None
    if isinstance(ref, dict):
        if not isinstance(ours, dict) or set(ours) != set(ref):
            return f"{where}: expected a dict with keys {sorted(ref)}, got {sorted(ours) if isinstance(ours, dict) else type(ours).__name__}"
        for k in ref:
            d = describe_difference(ours[k], ref[k], atol=atol, rtol=rtol, where=f"{where}[{k!r}]")
            if d:
                return d
        return None
    return None if ours == ref else f"{where}: got {_fmt(ours)}, expected {_fmt(ref)}"


def cmp(name: str, ours: Any, ref: Any, *, atol: float = 1e-5, rtol: float = 1e-4) -> bool:
    """Print one line, ``name | pass (within atol=…, rtol=…)`` or ``name | MISMATCH: …``; return match.

    The verdict is against the stated tolerance only, never "exact" vs "approximate": bitwise
    equality depends on the CPU, BLAS and thread count, so it is not something a lesson can check.
    The measured maximum difference is not printed for the same reason (it is a raw float).
    """
    diff = describe_difference(ours, ref, atol=atol, rtol=rtol, where=name)
    if diff is None:
        print(f"{name:24s} | pass (within atol={atol:g}, rtol={rtol:g})")
    else:
        print(f"{name:24s} | MISMATCH: {diff}")
    return diff is None
