"""Issue 12: each full-scale loader loads tiny components saved in the real hub layout, through the
same function the lesson calls, and rejects a folder that lacks what the course depends on."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from hdai_lessons.lm import TinyLMConfig, build_tiny_lm, save_lm


def _gsm8k_snapshot(root: Path, n: int = 6) -> Path:
    """``openai/gsm8k`` as the hub lays it out: ``main/{train,test}-00000-of-00001.parquet``."""
    import pandas as pd

    (root / "main").mkdir(parents=True)
    for split in ("train", "test"):
        rows = [{"question": f"Ava has {i} apples and buys {i + 2} more. How many apples?",
                 "answer": f"She has {i}+{i + 2}=<<{i}+{i + 2}={2 * i + 2}>>{2 * i + 2} apples.\n#### {2 * i + 2}"}
                for i in range(n)]
        pd.DataFrame(rows).to_parquet(root / "main" / f"{split}-00000-of-00001.parquet")
    return root


@pytest.fixture
def qwen_snapshot(tmp_path):
    """A tiny Qwen2 policy saved as the hub snapshot of Qwen2.5-0.5B-Instruct (config.json,
    model.safetensors, tokenizer.json, tokenizer_config.json with its chat template)."""
    model, tok = build_tiny_lm(TinyLMConfig.for_scale("smoke"), seed=0)
    save_lm(model, tok, tmp_path / "qwen")
    assert (tmp_path / "qwen" / "config.json").exists() and any((tmp_path / "qwen").glob("*.safetensors"))
    return tmp_path / "qwen", model


def _fake_cache(monkeypatch, folders: dict):
    import hdai_lessons.core.assets as assets_mod

    def require(asset, lesson_id):
        return folders[asset.repo_id]

    monkeypatch.setattr(assets_mod, "require", require)


def test_rlvr_full_run_loads_the_hub_layout_through_build_run(tmp_path, qwen_snapshot, monkeypatch):
    from hdai_lessons.rlvr.full import build_run

    folder, model = qwen_snapshot
    _fake_cache(monkeypatch, {"Qwen/Qwen2.5-0.5B-Instruct": folder, "openai/gsm8k": _gsm8k_snapshot(tmp_path / "gsm8k")})
    run = build_run("full")
    assert type(run.model) is type(model) and run.tokenizer.padding_side == "left"
    for a, b in zip(run.model.state_dict().values(), model.state_dict().values()):
        torch.testing.assert_close(a.float(), b.float(), rtol=1e-2, atol=1e-2)     # bf16 at full scale
    assert run.train and run.held_out and run.train[0].answer == "2"
    assert run.task.reward(run.train[0], "so #### 2") == 1.0


def test_a_policy_without_what_the_trainer_needs_is_rejected_at_load(qwen_snapshot):
    from hdai_lessons.lm import load_lm
    from hdai_lessons.lm.requirements import PolicyConfigError, check_policy

    folder, _ = qwen_snapshot
    model, tok = load_lm(folder)
    check_policy(model, tok, chat_template=True)                  # the good folder passes
    tok.chat_template = None
    with pytest.raises(PolicyConfigError, match="no chat template"):
        check_policy(model, tok, chat_template=True)
    check_policy(model, tok, chat_template=False)
    model.config.vocab_size = len(tok) - 1
    with pytest.raises(PolicyConfigError, match="does not belong to this model"):
        check_policy(model, tok, chat_template=False)
