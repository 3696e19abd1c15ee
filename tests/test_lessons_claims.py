from __future__ import annotations

import json

import pytest

import numpy as np

from hdai_lessons import paired_verdict, report_claim
from hdai_lessons.course.catalogue import all_lessons, get_lesson


def test_lessons_are_discovered_in_order():
    ids = [l.id for l in all_lessons()]
    assert ids[0] == "00.1"
    key = lambda i: tuple(int(p) for p in i.split("."))  # noqa: E731
    assert ids == sorted(ids, key=key) and len(set(ids)) == len(ids)


def test_lesson_ids_are_normalised():
    assert get_lesson("0.1").id == "00.1"
    assert get_lesson("00.01").id == "00.1"


def test_unknown_lesson_lists_valid_ones():
    with pytest.raises(KeyError, match="unknown lesson 'nosuch'; valid lessons: 00.1"):
        get_lesson("nosuch")


def test_report_claim_prints_and_records(tmp_path, monkeypatch, capsys):
    path = tmp_path / "claims.jsonl"
    monkeypatch.setenv("HDAI_CLAIMS_FILE", str(path))
    monkeypatch.setenv("HDAI_SCALE", "toy")
    report_claim("01.2", "LPO keeps more modes", True, {"lpo": 3.14159265, "grpo": 1.0})
    report_claim("01.2", "pointwise collapses", None, {"x": 0.5})
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "[01.2] claim HOLDS: LPO keeps more modes"
    assert out[1] == "    numbers: lpo=3.142, grpo=1"
    assert "claim NOT RESOLVED" in out[2]
    records = [json.loads(l) for l in path.read_text().splitlines()]
    assert records[0]["held"] is True and records[0]["numbers"] == {"lpo": 3.142, "grpo": 1.0}
    assert records[0]["evidence"] is None and records[0]["smoke"] is False


def test_report_claim_rejects_truthy_non_bools():
    import numpy as np

    with pytest.raises(TypeError, match="Python bool"):
        report_claim("01.2", "x", np.float64(1.0), {})
    report_claim("01.2", "numpy bools are fine", np.bool_(True), {})


# ---- the uncertainty rule -------------------------------------------------------------------

def test_paired_verdict_follows_the_two_standard_error_rule():
    a = [1.0, 1.1, 0.9, 1.05, 0.95]
    held = paired_verdict(a, [0.0] * 5)
    assert held.held is True and held.n == 5 and held.n_in_direction == 5
    assert held.mean_diff == pytest.approx(1.0) and held.se == pytest.approx(np.std(a, ddof=1) / np.sqrt(5))
    assert paired_verdict([0.0] * 5, a).held is False                   # beyond noise the other way
    assert paired_verdict(a, [0.0] * 5, direction="less").held is False
    noisy = paired_verdict([0.3, -0.2, 0.25, -0.1], [0.0] * 4)          # d̄ = 0.0625, SE ≈ 0.13
    assert noisy.held is None and noisy.n == 4


def test_paired_verdict_pairs_by_seed_not_by_pooled_spread():
    # the arms' spread across seeds is large, the paired difference is small but consistent
    base = np.array([0.1, 0.5, 0.9, 0.3, 0.7])
    assert paired_verdict(base + 0.01, base).held is True
    # an unpaired rule would call this noise; a wrong rule that pools must not be what we use
    unpaired_se = np.sqrt(base.var(ddof=1) * 2 / 5)
    assert 0.01 < 2 * unpaired_se


def test_paired_verdict_margin_scalar_reference_and_small_n():
    v = paired_verdict([0.5, 0.52, 0.49], 0.3, margin=0.1)
    assert v.held is True and v.margin == 0.1
    assert paired_verdict([0.5, 0.52, 0.49], 0.3, margin=0.25).held is False
    assert paired_verdict([1.0], [0.0]).held is None                    # one seed never resolves
    assert paired_verdict([0.2, 0.2], [0.1, 0.1]).held is True          # SE = 0: the sign decides
    assert paired_verdict([0.1, 0.1], [0.1, 0.1]).held is None


def test_paired_verdict_rejects_bad_input():
    with pytest.raises(ValueError, match="pair seed by seed"):
        paired_verdict([1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="non-finite"):
        paired_verdict([1.0, float("nan")], [0.0, 0.0])
    with pytest.raises(ValueError, match="one value per seed"):
        paired_verdict([[1.0, 2.0]], [[0.0, 0.0]])
    with pytest.raises(ValueError, match="direction"):
        paired_verdict([1.0, 2.0], 0.0, direction="up")


def test_report_claim_prints_the_rule_and_marks_smoke(monkeypatch, capsys):
    import torch

    monkeypatch.setenv("HDAI_SCALE", "toy")
    v = paired_verdict(torch.tensor([0.3, -0.2, 0.25, -0.1]), torch.zeros(4))
    assert v.held is None
    report_claim("01.3", "x beats y", v)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "[01.3] claim NOT RESOLVED at 4 seeds: x beats y"
    assert out[1].startswith("    evidence: mean diff=+0.0625, SE=") and "N=4" in out[1] and "2 SE" in out[1]
    monkeypatch.setenv("HDAI_SCALE", "smoke")
    report_claim("01.3", "x beats y", True)
    assert "not tested at smoke scale" in capsys.readouterr().out


def test_sanitizer_masks_measured_numbers_but_not_verdicts():
    import configparser
    import re
    from pathlib import Path

    cfg = configparser.ConfigParser()
    cfg.read(Path(__file__).parent / "nbval_sanitize.cfg")
    text = "[01.3] claim HOLDS: a\n    evidence: mean diff=+0.0625, SE=0.1, N=4\n    numbers: x=1\nok 3\n"
    for section in cfg.sections():
        text = re.sub(cfg[section]["regex"], cfg[section]["replace"], text)
    assert text == "[01.3] claim HOLDS: a\n    evidence: <MEASURED>\n    numbers: <MEASURED>\nok 3\n"


def test_seed_comes_from_the_environment(monkeypatch):
    from hdai_lessons.core.context import seed_from_env

    monkeypatch.delenv("HDAI_SEED", raising=False)
    assert seed_from_env(0) == 0
    monkeypatch.setenv("HDAI_SEED", "7")
    assert seed_from_env(0) == 7
    monkeypatch.setenv("HDAI_SEED", "-1")
    with pytest.raises(ValueError, match="non-negative integer"):
        seed_from_env(0)
