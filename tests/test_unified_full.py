"""Module 05's full-scale path, exercised with tiny random components of the real classes (no network)."""
import pytest
import torch

from hdai_lessons.core.assets import MissingAssetError, assets_for
from hdai_lessons.unified import shapes, train
from hdai_lessons.unified.conditioning import MLLMConditioner
from hdai_lessons.unified.full import (FullConfig, ask, diffusers_edit_with_toy, edit, load_edit_pipeline, pack_edit_items,
                                       to_diffusers_transformer, to_pil)
from hdai_lessons.unified.mllm import MLLMConfig, TinyMLLM
from hdai_lessons.unified.mmdit import MMDiT, MMDiTConfig


def test_tiny_pipeline_edits_generates_and_answers():
    pipe = load_edit_pipeline("smoke")
    cfg = FullConfig.for_scale("smoke")
    w = shapes.ShapesWorld()
    src = w.render(w.sample_scene(torch.Generator().manual_seed(0)))
    a = edit(pipe, to_pil(torch.nn.functional.interpolate(src[None], size=64)[0]), "make the circle blue", cfg, seed=1)
    b = edit(pipe, to_pil(torch.nn.functional.interpolate(src[None], size=64)[0]), "make the circle blue", cfg, seed=1)
    assert a.shape == (3, 64, 64) and torch.equal(a, b) and 0 <= float(a.min()) and float(a.max()) <= 1
    assert edit(pipe, None, "a red circle", cfg).shape == (3, 64, 64)
    assert isinstance(ask(pipe.text_encoder, pipe.processor, to_pil(src), "what colour?", 4), str)


def test_full_scale_without_weights_names_the_fetch_command(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert [a.repo_id for a in assets_for("05.4")] == ["jdopensource/JoyAI-Image-Edit-Diffusers"]
    with pytest.raises(MissingAssetError, match="hdai-lessons fetch 05.4"):
        load_edit_pipeline("full")


def test_toy_weights_in_diffusers_reproduce_our_sampler():
    torch.manual_seed(0)
    mllm = TinyMLLM(MLLMConfig(d=32, layers=1))
    model = MMDiT(MMDiTConfig(dim=32, heads=2, layers=1, cond_dim=32, rope_axes=(4, 6, 6)))
    for p in model.parameters():
        p.data += 0.05 * torch.randn_like(p)
    cond = MLLMConditioner(mllm)
    w = shapes.ShapesWorld()
    g = torch.Generator().manual_seed(1)
    eds = [w.sample_edit(g, ("recolour",)) for _ in range(3)]
    prompt = shapes.pad_rows([shapes.encode(e[2]) for e in eds])
    src = w.render_batch([e[0] for e in eds])
    ours = train.sample(model, cond, prompt, torch.Generator().manual_seed(2), source=src, steps=4, guidance=4.0)
    theirs = diffusers_edit_with_toy(to_diffusers_transformer(model), cond, prompt, src, torch.Generator().manual_seed(2), steps=4)
    assert torch.allclose(ours, theirs, atol=1e-5)
    with pytest.raises(ValueError, match="same shape"):
        pack_edit_items(torch.zeros(1, 4, 1, 2, 2), torch.zeros(1, 4, 1, 2, 4))
