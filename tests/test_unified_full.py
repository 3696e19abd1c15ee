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


def test_full_scale_loader_loads_the_hub_layout(tmp_path):
    """Issue 12: tiny components saved in the real hub layout load through the lesson's own loader."""
    from hdai_lessons.unified.full import COMPONENTS, load_edit_pipeline_from, tiny_edit_pipeline

    pipe = tiny_edit_pipeline(seed=0)
    for name in COMPONENTS:
        component = pipe.processor.image_processor if name == "processor" else getattr(pipe, name)
        component.save_pretrained(tmp_path / name)
    tiny = {"num_layers": 1, "num_attention_heads": 2, "theta": pipe.transformer.config.theta}
    loaded = load_edit_pipeline_from(tmp_path, dtype=torch.float32, expect=tiny)
    for name in ("transformer", "vae", "text_encoder"):
        for (k, a), (_, b) in zip(getattr(pipe, name).state_dict().items(), getattr(loaded, name).state_dict().items()):
            assert torch.equal(a, b), f"{name}.{k} changed on the way through the hub layout"
    assert type(loaded.processor).__name__ == "ImageTextProcessor"
    assert loaded.tokenizer("abc")["input_ids"] == pipe.tokenizer("abc")["input_ids"]


def test_full_scale_loader_rejects_a_transformer_config_that_is_not_the_published_one(tmp_path):
    from hdai_lessons.unified.full import COMPONENTS, load_edit_pipeline_from, tiny_edit_pipeline

    pipe = tiny_edit_pipeline(seed=0)
    for name in COMPONENTS:
        component = pipe.processor.image_processor if name == "processor" else getattr(pipe, name)
        component.save_pretrained(tmp_path / name)
    with pytest.raises(ValueError, match=r"transformer/config.json gives \{'num_layers': 1.*hdai-lessons fetch 05.4"):
        load_edit_pipeline_from(tmp_path, dtype=torch.float32)               # the published: 40 layers, 32 heads
    (tmp_path / "vae").rename(tmp_path / "vae_gone")
    with pytest.raises(FileNotFoundError, match=r"lacks the component folders \['vae'\]"):
        load_edit_pipeline_from(tmp_path, dtype=torch.float32)
