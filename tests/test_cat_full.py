"""Lesson 02.4's full-scale path, exercised with the tiny Qwen2 of the same class (no network)."""
from __future__ import annotations

import json

import pytest

from hdai_lessons.core.assets import MissingAssetError, assets_for
from hdai_lessons.cat.full import FULL_ARMS, CATEvalConfig, build_cat_run, evaluate_run, make_trainer
from hdai_lessons.cat.rl import answer_ids
from hdai_lessons.cat.launch import main
from hdai_lessons.tasks import extract_gsm8k_answer


def test_assets_registered_for_02_4():
    kinds = {a.kind: a.repo_id for a in assets_for("02.4")}
    assert kinds == {"model": "Qwen/Qwen2.5-0.5B-Instruct", "dataset": "openai/gsm8k"}


def test_full_scale_offline_names_the_fetch_command(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(MissingAssetError, match="hdai-lessons fetch"):
        build_cat_run("full")


def test_gsm8k_answers_group_for_majority():
    ids = answer_ids([["x = 3\n#### 12", "so 12", "#### 12.0", "no idea"]], extract_gsm8k_answer)
    assert ids.tolist() == [[0, 0, 0, 1]]                       # "12", "12", "12.0" → 12; unparsable alone


@pytest.mark.parametrize("arm", sorted(FULL_ARMS))
def test_each_arm_runs_on_the_tiny_qwen(arm):
    run = build_cat_run("smoke", seed=0, steps=1)
    tr = make_trainer(run, arm)
    tr.train(1)
    out = evaluate_run(tr, run, CATEvalConfig.for_scale("smoke"))
    assert {"pass@1", "maj@1", "pass@2", "maj@2"} <= set(out)


def test_cli_trains_checkpoints_and_resumes(tmp_path):
    run_dir = tmp_path / "run"
    main(["--scale", "smoke", "--arm", "cat-pass8", "--run-dir", str(run_dir), "--steps", "1"])
    main(["--scale", "smoke", "--arm", "cat-pass8", "--run-dir", str(run_dir), "--steps", "2"])
    steps = [json.loads(l)["step"] for l in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1.0, 2.0]                                   # the second call resumed at step 1
    assert json.loads((run_dir / "eval.json").read_text()).keys() >= {"pass@1", "maj@1"}


def test_toy_run_evaluates_on_more_held_out_problems_with_the_same_training_set():
    from hdai_lessons.cat.full import TOY_HELDOUT
    from hdai_lessons.rlvr.full import build_run

    base = build_run("toy", loss="grpo", seed=3)
    run = build_cat_run("toy", seed=3)
    assert [p.prompt for p in run.train] == [p.prompt for p in base.train]
    assert len(run.held_out) == TOY_HELDOUT > len(base.held_out)
    assert [p.prompt for p in run.held_out[:len(base.held_out)]] == [p.prompt for p in base.held_out]
    assert len(build_cat_run("smoke", seed=3).held_out) == len(build_run("smoke", loss="grpo", seed=3).held_out)
