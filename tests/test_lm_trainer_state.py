"""The group-RL trainer's saved state: one save per step, settings checked on resume, metrics never logged twice."""
from __future__ import annotations

import json

import pytest

from hdai_lessons.lm import TinyLMConfig, build_tiny_lm
from hdai_lessons.lm.rl_trainer import RLVRConfig, train_logged
from hdai_lessons.rlvr.losses import LossConfig
from hdai_lessons.rlvr.trainer import RLVRTrainer
from hdai_lessons.tasks import ArithmeticTask, split_problems

TASK = ArithmeticTask(1, 2, "+-")
TRAIN, _ = split_problems(TASK, 64, 8, seed=0)


def _trainer(run_dir, loss="grpo", **kw):
    model, tok = build_tiny_lm(TinyLMConfig.for_scale("smoke"), seed=0)
    cfg = RLVRConfig(**{"prompts_per_step": 4, "K": 4, "lr": 3e-3, "max_new_tokens": 3, "steps": 2, **kw})
    return RLVRTrainer(model, tok, TASK, TRAIN, LossConfig(name=loss), cfg, run_dir=run_dir)


def test_each_step_is_saved_once(tmp_path, monkeypatch):
    import hdai_lessons.lm.rl_trainer as rt

    saved = []
    real = rt.save_checkpoint
    monkeypatch.setattr(rt, "save_checkpoint", lambda run_dir, step, *a, **k: saved.append(step) or real(run_dir, step, *a, **k))
    _trainer(tmp_path, ckpt_every=1).train()
    assert saved == [1, 2]                       # the final step is not saved a second time


def test_resuming_with_other_settings_is_refused(tmp_path):
    _trainer(tmp_path).train()
    with pytest.raises(ValueError, match=r"other settings \(K: saved 4, now 2"):
        _trainer(tmp_path, K=2).train()
    with pytest.raises(ValueError, match="loss_cfg"):
        _trainer(tmp_path, loss="lpo_rev").train()
    assert len(_trainer(tmp_path, steps=3).train()) == 3     # more steps is a legitimate resume


def test_metrics_file_has_each_step_once_after_a_resume(tmp_path):
    trainer = _trainer(tmp_path, steps=2, ckpt_every=1)
    train_logged(trainer, tmp_path / "metrics.jsonl", desc="a")
    with open(tmp_path / "metrics.jsonl", "a") as f:         # a step that ran after the last save, then a kill
        f.write(json.dumps({"step": 3.0}) + "\n")
    train_logged(_trainer(tmp_path, steps=4, ckpt_every=1), tmp_path / "metrics.jsonl", desc="b")
    steps = [json.loads(x)["step"] for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1.0, 2.0, 3.0, 4.0]
