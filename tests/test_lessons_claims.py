from __future__ import annotations

import json

import pytest

from hdai_lessons import report_claim
from hdai_lessons.lessons import all_lessons, get_lesson


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
    report_claim("01.2", "LPO keeps more modes", True, {"lpo": 3.14159265, "grpo": 1.0})
    report_claim("01.2", "pointwise collapses", None, {"x": 0.5})
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "[01.2] claim HOLDS: LPO keeps more modes (lpo=3.142, grpo=1)"
    assert "claim MIXED" in out[1]
    records = [json.loads(l) for l in path.read_text().splitlines()]
    assert records[0] == {"lesson": "01.2", "claim": "LPO keeps more modes", "held": True, "numbers": {"lpo": 3.142, "grpo": 1.0}}


def test_report_claim_rejects_truthy_non_bools():
    import numpy as np

    with pytest.raises(TypeError, match="Python bool"):
        report_claim("01.2", "x", np.float64(1.0), {})
    report_claim("01.2", "numpy bools are fine", np.bool_(True), {})
