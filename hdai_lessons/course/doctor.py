"""``hdai-lessons doctor``: find what stops a laptop from running the course, and say the fix."""
from __future__ import annotations

import importlib
import importlib.util
import shutil
import sys
from dataclasses import dataclass

# (import name, why it is needed) for everything a toy lesson imports.
REQUIRED_PACKAGES = [
    ("torch", "every lesson"), ("numpy", "every lesson"), ("matplotlib", "figures"),
    ("transformers", "tiny LMs and full-scale models"), ("diffusers", "flow models"),
    ("accelerate", "full-scale training"), ("safetensors", "checkpoints"),
    ("gymnasium", "module 03 environments"), ("ipywidgets", "interactive sliders"),
    ("jupyterlab", "the lab"), ("nbclient", "headless runs"), ("tqdm", "progress bars"),
    ("sklearn", "shipped toy datasets"), ("scipy", "numerical checks"),
]
FIX_INSTALL = "run `make setup` (or `pip install -e .[dev]` inside your environment)"
MIN_FREE_GB = 2.0


@dataclass
class Finding:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def check_python() -> Finding:
    ok = sys.version_info >= (3, 10)
    return Finding("python", ok, sys.version.split()[0], "" if ok else "install Python 3.10 or newer (3.11 recommended)")


def check_packages(packages: "list[tuple[str, str]] | None" = None) -> list[Finding]:
    """Import each package (present is not enough: a broken wheel is found but fails to import)."""
    out = []
    for name, why in packages or REQUIRED_PACKAGES:
        pip_name = name if name != "sklearn" else "scikit-learn"
        if importlib.util.find_spec(name) is None:
            out.append(Finding(f"package {name}", False, f"missing (needed for {why})",
                               f"{FIX_INSTALL}; or `pip install {pip_name}`"))
            continue
        try:
            importlib.import_module(name)
        except Exception as err:  # a broken install raises anything from ImportError to OSError
            first = (str(err).strip().splitlines() or [""])[0][:120]
            out.append(Finding(f"package {name}", False, f"installed but fails to import: {type(err).__name__}: {first}",
                               f"reinstall it: `pip install --force-reinstall {pip_name}`"
                               + (" (torch: `pip install --force-reinstall torch==2.13.0`)" if name == "torch" else "")))
            continue
        out.append(Finding(f"package {name}", True, "installed"))
    return out


def check_torch() -> Finding:
    try:
        import torch
    except Exception as err:  # broken wheels raise more than ImportError
        return Finding("torch", False, f"import failed: {err}", "pip install torch==2.13.0 (CPU) before the course package")
    from hdai_lessons.core.device import get_device

    dev = get_device()
    x = torch.randn(64, 64, device=dev)
    ok = bool(torch.isfinite(x @ x).all())
    return Finding("torch", ok, f"{torch.__version__}, device {dev}", "" if ok else "reinstall torch")


def check_kernel() -> Finding:
    try:
        from jupyter_client.kernelspec import KernelSpecManager

        specs = KernelSpecManager().find_kernel_specs()
    except Exception as err:
        return Finding("jupyter kernel", False, f"cannot list kernels: {err}", FIX_INSTALL)
    ok = "python3" in specs
    return Finding("jupyter kernel", ok, "python3 kernel found" if ok else "no python3 kernel",
                   "" if ok else "python -m ipykernel install --user --name python3")


def check_widgets() -> Finding:
    ok = importlib.util.find_spec("ipywidgets") is not None and importlib.util.find_spec("jupyterlab_widgets") is not None
    return Finding("widgets", ok, "ipywidgets + jupyterlab_widgets" if ok else "widget support missing",
                   "" if ok else "pip install ipywidgets jupyterlab_widgets, then restart JupyterLab")


def check_disk(min_free_gb: float = MIN_FREE_GB) -> Finding:
    from hdai_lessons.core.paths import repo_root

    free = shutil.disk_usage(repo_root()).free / 1e9
    ok = free >= min_free_gb
    return Finding("disk", ok, f"{free:.1f} GB free", "" if ok else f"free at least {min_free_gb} GB (checkpoints and executed notebooks)")


def check_data() -> list[Finding]:
    from hdai_lessons.core.data import DataError, load_manifest, verify

    out = []
    try:
        entries = load_manifest()
    except DataError as err:
        return [Finding("data manifest", False, str(err).split(";")[0], str(err).split("; ", 1)[-1])]
    for entry in entries:
        problem = verify(entry["name"])
        out.append(Finding(f"data {entry['name']}", problem is None, "verified" if problem is None else problem.split(";")[0],
                           "" if problem is None else f"hdai-lessons data restore {entry['name']}"))
    return out


def run_doctor(packages: "list[tuple[str, str]] | None" = None) -> list[Finding]:
    """Every check, in the order a person would fix them."""
    findings = [check_python(), *check_packages(packages)]
    if all(f.ok for f in findings if f.name == "package torch"):
        findings.append(check_torch())
    findings += [check_kernel(), check_widgets(), check_disk(), *check_data()]
    return findings


def print_report(findings: list[Finding]) -> int:
    """Print one line per check and a fix per problem; return the number of problems."""
    problems = [f for f in findings if not f.ok]
    for f in findings:
        print(f"{'✔' if f.ok else '✘'} {f.name:28s} {f.detail}")
    if problems:
        print(f"\n{len(problems)} problem(s). Fixes:")
        for f in problems:
            print(f"  - {f.name}: {f.fix}")
    else:
        print("\nAll good: this machine can run every toy lesson.")
    return len(problems)
