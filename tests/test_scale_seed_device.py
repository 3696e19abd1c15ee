from __future__ import annotations

import os
import random

import numpy as np
import pytest
import torch

from hdai_lessons import Scale, by_scale, get_scale, seed_everything, setup_lesson
from hdai_lessons.core.device import get_device


def test_scale_resolution_order(monkeypatch):
    monkeypatch.delenv("HDAI_SCALE", raising=False)
    assert get_scale() is Scale.TOY
    monkeypatch.setenv("HDAI_SCALE", "smoke")
    assert get_scale() is Scale.SMOKE
    assert get_scale("full") is Scale.FULL          # the argument beats the environment
    assert get_scale(Scale.TOY) is Scale.TOY
    assert get_scale(" Toy ") is Scale.TOY


def test_unknown_scale_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HDAI_SCALE", "huge")
    with pytest.raises(ValueError, match=r"unknown scale 'huge' \(from \$HDAI_SCALE\); choose one of: smoke, toy, full"):
        get_scale()


def test_by_scale_picks_the_rung():
    assert by_scale("smoke", smoke=1, toy=2, full=3) == 1
    assert by_scale("toy", smoke=1, toy=2, full=3) == 2
    assert by_scale(Scale.FULL, smoke=1, toy=2, full=3) == 3


def test_seed_everything_repeats_all_generators():
    def draw():
        seed_everything(7)
        return random.random(), float(np.random.rand()), torch.rand(3).tolist()

    assert draw() == draw()
    seed_everything(8)
    assert torch.rand(1).item() != (seed_everything(7), torch.rand(1).item())[1]


def test_seed_everything_asks_for_deterministic_kernels_without_loading_the_compiler():
    """Both flags the public call sets: the eager kernels' now, the compiler's when it is imported later; and
    no import of torch._inductor (sympy, ~1 s) on the way. In a fresh interpreter: this one may have loaded it."""
    import subprocess
    import sys

    code = ("import sys, torch\n"
            "from hdai_lessons import seed_everything\n"
            "seed_everything(0)\n"
            "print(torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),\n"
            "      'torch._inductor.config' in sys.modules, 'sympy' in sys.modules)\n"
            "import torch._inductor.config as c\n"
            "print(c.deterministic)\n")
    env = {k: v for k, v in os.environ.items() if k != "TORCHINDUCTOR_DETERMINISTIC"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert out.split() == ["True", "True", "False", "False", "True"]


def test_seed_rejects_bad_values():
    with pytest.raises(ValueError):
        seed_everything(-1)


def test_device_choice_on_cpu_machine(monkeypatch):
    monkeypatch.delenv("HDAI_DEVICE", raising=False)
    expected = "cuda" if torch.cuda.is_available() else ("mps" if torch.backends.mps.is_available() else "cpu")
    assert get_device().type == expected
    assert get_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            get_device("cuda")


def test_setup_lesson_prints_one_line_and_seeds(capsys):
    ctx = setup_lesson("00.1", scale="smoke", seed=3)
    a = torch.rand(2)
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "Lesson 00.1 · scale=smoke" in out
    assert ctx.scale is Scale.SMOKE and ctx.device.type == "cpu"
    setup_lesson("00.1", scale="smoke", seed=3)
    assert torch.equal(a, torch.rand(2))


def test_threads_per_job_splits_the_cores_and_respects_the_override(monkeypatch):
    from hdai_lessons.core import device

    monkeypatch.delenv("HDAI_THREADS", raising=False)
    monkeypatch.setattr(device, "available_cores", lambda: 2)
    assert device.threads_per_job(1) == 2          # a lesson run alone uses both cores
    assert device.threads_per_job(2) == 1          # two at a time: one core each
    assert device.threads_per_job(3) == 1          # never zero
    monkeypatch.setenv("HDAI_THREADS", "3")
    assert device.threads_per_job(2) == 3          # the explicit setting wins
    with pytest.raises(ValueError, match="jobs"):
        device.threads_per_job(0)
