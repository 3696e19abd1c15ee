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


# ------------------------------------------------------------------ failure modes (issue 15, "State")
from hdai_lessons.core.checkpoint import CheckpointError, checkpoint_extra, verify_checkpoint  # noqa: E402


def test_interrupt_while_resaving_a_step_puts_the_old_folder_back(tmp_path, monkeypatch):
    """An exception between moving the old step-2 aside and renaming the new one in."""
    import hdai_lessons.core.checkpoint as ck
    from pathlib import Path

    model, opt = _setup()
    save_checkpoint(tmp_path, 1, model, opt)
    save_checkpoint(tmp_path, 2, model, opt)
    real_replace = ck.os.replace

    def interrupted(src, dst):
        if Path(src).name.startswith(".tmp-step-") and Path(dst).name == "step-00000002":
            raise KeyboardInterrupt
        return real_replace(src, dst)

    monkeypatch.setattr(ck.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path, 2, model, opt)
    monkeypatch.setattr(ck.os, "replace", real_replace)
    assert latest_checkpoint(tmp_path).name == "step-00000002"
    verify_checkpoint(tmp_path / "step-00000002")


def test_kill_while_resaving_a_step_resumes_from_the_newest_complete_checkpoint(tmp_path):
    """A SIGKILL at the same instant runs no handler: step-2 is aside, latest.json still names it."""
    import shutil

    model, opt = _setup()
    save_checkpoint(tmp_path, 1, model, opt)
    save_checkpoint(tmp_path, 2, model, opt)
    (tmp_path / ".old-step-00000002-x").mkdir()
    shutil.move(str(tmp_path / "step-00000002"), str(tmp_path / ".old-step-00000002-x" / "step-00000002"))
    (tmp_path / ".tmp-step-00000002-y").mkdir()                 # the half-renamed new one
    with pytest.warns(UserWarning, match="incomplete"):
        assert latest_checkpoint(tmp_path).name == "step-00000001"
    model2, opt2 = _setup(seed=5)
    with pytest.warns(UserWarning):
        assert load_checkpoint(tmp_path, model2, opt2)["step"] == 1
    save_checkpoint(tmp_path, 3, model, opt)                    # the next save cleans the leftovers
    assert not list(tmp_path.glob(".tmp-step-*")) and not list(tmp_path.glob(".old-step-*"))


def test_resaving_the_same_step_never_leaves_it_missing(tmp_path):
    model, opt = _setup()
    save_checkpoint(tmp_path, 4, model, opt)
    save_checkpoint(tmp_path, 4, model, opt)
    assert latest_checkpoint(tmp_path).name == "step-00000004"
    assert not list(tmp_path.glob(".old-step-*"))


@pytest.mark.parametrize("pointer", ["../victim/step-00000001", "/tmp/step-00000001", "step-1", "model.safetensors"])
def test_latest_json_outside_the_run_folder_is_refused(tmp_path, pointer):
    victim = tmp_path / "victim"
    model, opt = _setup()
    save_checkpoint(victim, 1, model, opt)
    run = tmp_path / "run"
    save_checkpoint(run, 1, model, opt)
    (run / "latest.json").write_text(json.dumps({"dir": pointer, "step": 1}))
    with pytest.raises(CheckpointError, match="refusing"):
        latest_checkpoint(run)


def test_saving_an_older_step_never_prunes_the_one_just_written(tmp_path):
    model, opt = _setup()
    for step in (200, 300):
        save_checkpoint(tmp_path, step, model, opt, keep=2)
    final = save_checkpoint(tmp_path, 100, model, opt, keep=2)
    assert final.is_dir() and latest_checkpoint(tmp_path) == final


def test_a_flipped_byte_is_caught_and_the_intact_earlier_checkpoint_named(tmp_path):
    model, opt = _setup()
    save_checkpoint(tmp_path, 1, model, opt)
    ckpt = save_checkpoint(tmp_path, 2, model, opt)
    data = bytearray((ckpt / "model.safetensors").read_bytes())
    data[-3] ^= 0x01                               # inside the tensor data, not the header
    (ckpt / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"model.safetensors is damaged.*step-00000001 is complete"):
        load_checkpoint(tmp_path, *_setup(seed=3))
    data[-3] ^= 0x01                               # repair it, then truncate the other file
    (ckpt / "model.safetensors").write_bytes(bytes(data))
    (ckpt / "optimizer.safetensors").write_bytes(b"")  # truncated
    with pytest.raises(CheckpointError, match="optimizer.safetensors"):
        verify_checkpoint(ckpt)


def test_malformed_state_and_pointer_are_clear_errors(tmp_path):
    model, opt = _setup()
    ckpt = save_checkpoint(tmp_path, 1, model, opt)
    (ckpt / "state.json").write_text('{"step": 1}')
    with pytest.raises(CheckpointError, match=r"state.json lacks the fields \['extra', 'rng'\]"):
        load_checkpoint(tmp_path, model, opt)
    (ckpt / "state.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="state.json is unreadable"):
        checkpoint_extra(tmp_path)
    (tmp_path / "latest.json").write_text("[]")
    with pytest.raises(CheckpointError, match="latest.json is malformed"):
        latest_checkpoint(tmp_path)
