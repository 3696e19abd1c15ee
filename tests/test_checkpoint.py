"""Atomic save/resume: a resumed run continues bit for bit; a crash mid-save loses nothing."""
from __future__ import annotations

import json

import pytest
import torch

from hdai_lessons.core.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint


def _setup(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    return model, opt


def _train(model, opt, steps):
    for _ in range(steps):
        x = torch.randn(16, 4)                  # draws from the global RNG, which must be restored too
        loss = (model(x) - x.sum(1, keepdim=True)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return loss.item()


def test_resume_is_bit_exact(tmp_path):
    model, opt = _setup()
    _train(model, opt, 5)
    save_checkpoint(tmp_path, 5, model, opt, extra={"history": [1.0, 0.5]})
    final_straight = _train(model, opt, 5)
    weights_straight = [p.detach().clone() for p in model.parameters()]

    model2, opt2 = _setup(seed=123)            # a fresh process would start from other weights
    state = load_checkpoint(tmp_path, model2, opt2)
    assert state == {"step": 5, "extra": {"history": [1.0, 0.5]}}
    final_resumed = _train(model2, opt2, 5)
    assert final_resumed == final_straight
    for a, b in zip(weights_straight, model2.parameters()):
        assert torch.equal(a, b)


def test_no_checkpoint_returns_none(tmp_path):
    model, opt = _setup()
    assert load_checkpoint(tmp_path / "empty", model, opt) is None


def test_keep_prunes_old_and_latest_points_at_newest(tmp_path):
    model, opt = _setup()
    for step in (1, 2, 3):
        save_checkpoint(tmp_path, step, model, opt, keep=2)
    dirs = sorted(p.name for p in tmp_path.glob("step-*"))
    assert dirs == ["step-00000002", "step-00000003"]
    assert latest_checkpoint(tmp_path).name == "step-00000003"


def test_crash_during_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    model, opt = _setup()
    save_checkpoint(tmp_path, 1, model, opt)
    import hdai_lessons.core.checkpoint as ck

    def exploding_save(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(ck, "save_file", exploding_save)
    with pytest.raises(OSError):
        save_checkpoint(tmp_path, 2, model, opt)
    assert latest_checkpoint(tmp_path).name == "step-00000001"
    assert not list(tmp_path.glob(".tmp-*")), "temporary directory left behind"
    assert json.loads((tmp_path / "latest.json").read_text())["step"] == 1


def test_mismatched_model_is_a_clear_error(tmp_path):
    model, opt = _setup()
    save_checkpoint(tmp_path, 1, model, opt)
    other = torch.nn.Linear(3, 3)
    with pytest.raises(RuntimeError, match="does not fit this model"):
        load_checkpoint(tmp_path, other)


def test_tied_weights_roundtrip(tmp_path):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    cfg = Qwen2Config(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=True)
    torch.manual_seed(0)
    m1 = Qwen2ForCausalLM(cfg)
    save_checkpoint(tmp_path, 1, m1)
    torch.manual_seed(1)
    m2 = Qwen2ForCausalLM(cfg)
    load_checkpoint(tmp_path, m2)
    ids = torch.tensor([[1, 2, 3]])
    assert torch.equal(m1(ids).logits, m2(ids).logits)
