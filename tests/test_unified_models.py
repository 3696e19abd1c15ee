"""Module 05's models: attention and RoPE identities, parity with diffusers' JoyImage MMDiT, training."""
import math

import pytest
import torch

from hdai_lessons.unified.conditioning import MLLMConditioner, WordConditioner, condition_from_hidden
from hdai_lessons.unified.guidance import cfg_rescaled
from hdai_lessons.unified.mllm import MLLMConfig, TinyMLLM, causal_self_attention
from hdai_lessons.unified.mmdit import (DoubleStreamBlock, MMDiT, MMDiTConfig, apply_rope, joint_attention,
                                        load_diffusers_block, load_diffusers_weights, rope_frequencies, rope_positions)
from hdai_lessons.unified.shapes import ShapesWorld
from hdai_lessons.unified.train import (GenerationConfig, UnderstandingConfig, evaluate_editing, sample, train_generation,
                                        train_understanding)


def _g(s):
    return torch.Generator().manual_seed(s)


def test_joint_attention_equals_naive_per_token():
    g = _g(0)
    qi, ki, vi = (torch.randn(2, 2, 4, 8, generator=g, dtype=torch.float64) for _ in range(3))
    qt, kt, vt = (torch.randn(2, 2, 3, 8, generator=g, dtype=torch.float64) for _ in range(3))
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    oi, ot = joint_attention(qi, ki, vi, qt, kt, vt, mask)
    q, k, v = torch.cat([qi, qt], 2), torch.cat([ki, kt], 2), torch.cat([vi, vt], 2)
    for b in range(2):
        for h in range(2):
            for i in range(7):
                w = [math.exp(float(q[b, h, i] @ k[b, h, j]) / math.sqrt(8)) if (j < 4 or mask[b, j - 4]) else 0.0 for j in range(7)]
                ref = sum(wj * v[b, h, j] for j, wj in enumerate(w)) / sum(w)
                got = oi[b, h, i] if i < 4 else ot[b, h, i - 4]
                assert torch.allclose(got, ref, atol=1e-10)


def test_causal_attention_matches_sdpa():
    g = _g(1)
    q, k, v = (torch.randn(2, 3, 6, 4, generator=g) for _ in range(3))
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    assert torch.allclose(causal_self_attention(q, k, v), ref, atol=1e-6)


def test_rope_scores_depend_only_on_relative_positions():
    g = _g(2)
    q, k = torch.randn(1, 1, 1, 16, generator=g, dtype=torch.float64), torch.randn(1, 1, 1, 16, generator=g, dtype=torch.float64)
    axes = (4, 6, 6)

    def score(pq, pk):
        cq, sq = rope_frequencies(torch.tensor([pq], dtype=torch.float64), axes, 10000.0)
        ck, sk = rope_frequencies(torch.tensor([pk], dtype=torch.float64), axes, 10000.0)
        return float((apply_rope(q, cq.double(), sq.double()) * apply_rope(k, ck.double(), sk.double())).sum())
    a = score([0, 1, 2], [1, 3, 0])
    b = score([2, 4, 5], [3, 6, 3])  # both shifted by (2, 3, 3)
    c = score([0, 1, 2], [1, 3, 1])  # a different offset
    assert abs(a - b) < 1e-5 and abs(a - c) > 1e-3
    cos, sin = rope_frequencies(rope_positions(2, 3, 3), axes, 10000.0)  # rotations preserve norms
    x = torch.randn(1, 2, 18, 16, generator=g)
    assert torch.allclose(apply_rope(x, cos, sin).norm(dim=-1), x.norm(dim=-1), atol=1e-5)


def _perturbed(module, scale, seed):
    g = _g(seed)
    module.load_state_dict({k: v + scale * torch.randn(v.shape, generator=g) for k, v in module.state_dict().items()})
    return module


def test_block_parity_with_diffusers_joyimage_block():
    from diffusers.models.transformers.transformer_joyimage import JoyImageTransformerBlock

    torch.manual_seed(0)
    theirs = _perturbed(JoyImageTransformerBlock(48, 2, 24), 0.1, 3)  # non-zero tables and norms
    ours = DoubleStreamBlock(48, 2)
    load_diffusers_block(ours, theirs.state_dict())
    g = _g(4)
    img, txt, vec = torch.randn(2, 16, 48, generator=g), torch.randn(2, 5, 48, generator=g), torch.randn(2, 6, 48, generator=g)
    rope = rope_frequencies(rope_positions(1, 4, 4), (4, 10, 10), 10000.0)
    a = ours(img, txt, vec, rope)
    b = theirs(img, txt, vec, (rope, None))
    assert torch.allclose(a[0], b[0], atol=1e-5) and torch.allclose(a[1], b[1], atol=1e-5)


def test_model_parity_with_diffusers_joyimage_transformer_t2i_and_edit():
    from diffusers import JoyImageEditTransformer3DModel

    torch.manual_seed(0)
    theirs = JoyImageEditTransformer3DModel(patch_size=[1, 4, 4], in_channels=3, hidden_size=48, num_attention_heads=2,
                                            text_dim=32, num_layers=2, rope_dim_list=[4, 10, 10], theta=10000)
    _perturbed(theirs, 0.05, 5)
    ours = MMDiT(MMDiTConfig(image_size=16, patch=4, dim=48, heads=2, layers=2, cond_dim=32, rope_axes=(4, 10, 10)))
    load_diffusers_weights(ours, theirs.state_dict())
    g = _g(6)
    x, c, src = torch.randn(2, 3, 16, 16, generator=g), torch.randn(2, 5, 32, generator=g), torch.randn(2, 3, 16, 16, generator=g)
    t = torch.tensor([100.0, 700.0])
    ref = theirs(hidden_states=x.unsqueeze(2), timestep=t, encoder_hidden_states=c).sample.squeeze(2)
    assert torch.allclose(ours(x, t, c), ref, atol=1e-5)
    items = torch.stack([src, x], 1).unsqueeze(3)  # (B, n, C, T, H, W): diffusers puts the target LAST
    ref = theirs(hidden_states=items, timestep=t, encoder_hidden_states=c).sample[:, -1].squeeze(2)
    assert torch.allclose(ours(x, t, c, refs=src.unsqueeze(1)), ref, atol=1e-5)
    with pytest.raises(KeyError):
        load_diffusers_weights(MMDiT(MMDiTConfig(image_size=16, patch=4, dim=48, heads=2, layers=3, cond_dim=32, rope_axes=(4, 10, 10))), theirs.state_dict())


def test_adaln_zero_blocks_start_as_identity_and_bad_input_is_explained():
    m = MMDiT(MMDiTConfig())
    x = torch.randn(2, 3, 24, 24)
    c = torch.randn(2, 4, 64)
    out1 = m(x, torch.tensor([0.0, 500.0]), c)
    out2 = m(x, torch.tensor([0.0, 500.0]), torch.randn(2, 4, 64))
    assert torch.allclose(out1, out2)  # gates are zero: the condition cannot reach the image yet
    with pytest.raises(ValueError, match="x must be"):
        m(torch.randn(2, 3, 16, 16), torch.zeros(2), c)


def test_condition_from_hidden_and_cfg_rescale():
    h = torch.arange(2 * 5 * 1, dtype=torch.float32).reshape(2, 5, 1)
    c, m = condition_from_hidden(h, torch.tensor([[0, 1, 1, 1, 1], [1, 1, 1, 0, 0]]), 2)
    assert c[:, :, 0].tolist() == [[3.0, 4.0], [7.0, 0.0]] and m.tolist() == [[1, 1], [1, 0]]
    g = _g(7)
    vc, vu = torch.randn(2, 3, 4, 4, generator=g), torch.randn(2, 3, 4, 4, generator=g)
    v = cfg_rescaled(vc, vu, 4.0)
    assert torch.allclose(v.norm(dim=1), vc.norm(dim=1), atol=1e-5)
    assert torch.allclose(cfg_rescaled(vc, vu, 1.0), vc, atol=1e-6)


def test_short_training_runs_lower_each_loss_and_sampling_is_seeded():
    w = ShapesWorld()
    torch.manual_seed(0)
    mllm = TinyMLLM(MLLMConfig(d=32, layers=1))
    ntp = train_understanding(mllm, w, UnderstandingConfig(steps=40, batch=16), _g(0))
    assert sum(ntp[-8:]) / 8 < 0.6 * sum(ntp[:4]) / 4
    model = MMDiT(MMDiTConfig(dim=32, heads=2, layers=1, cond_dim=32, rope_axes=(4, 6, 6)))
    hist = train_generation(model, MLLMConditioner(mllm, freeze=False), w,
                            GenerationConfig(steps=40, batch=16, edit_frac=0.5, alpha_ntp=0.5), _g(1))
    assert sum(hist["fm"][-8:]) / 8 < 0.8 * sum(hist["fm"][:4]) / 4
    wc = WordConditioner(32)
    prompt = torch.tensor([[5, 6, 7]])
    model2 = MMDiT(MMDiTConfig(dim=32, heads=2, layers=1, cond_dim=32, rope_axes=(4, 6, 6)))
    a, b = sample(model2, wc, prompt, _g(3), steps=3), sample(model2, wc, prompt, _g(3), steps=3)
    assert torch.equal(a, b) and a.shape == (1, 3, 24, 24)


def test_a_run_is_the_same_alone_or_beside_other_arms():
    """Every run owns its generators (data, noise, evaluation): training another arm first, or
    consuming the global RNG in between, does not change a run's losses, weights or scores."""
    w = ShapesWorld()

    def run(seed):
        torch.manual_seed(seed)  # this run's initialisation, seeded right before it is built
        mllm = TinyMLLM(MLLMConfig(d=32, layers=1))
        model = MMDiT(MMDiTConfig(dim=32, heads=2, layers=1, cond_dim=32, rope_axes=(4, 6, 6)))
        ntp = train_understanding(mllm, w, UnderstandingConfig(steps=3, batch=4), _g(seed))
        torch.rand(7)  # another arm's use of the global RNG between the stages
        hist = train_generation(model, MLLMConditioner(mllm, freeze=False), w,
                                GenerationConfig(steps=3, batch=4, edit_frac=0.5, alpha_ntp=0.5), _g(seed + 100))
        scores = evaluate_editing(model, MLLMConditioner(mllm), w, n=4, seed=300 + seed, steps=2, guidance=2.0)
        return ntp, hist, scores, [p.detach().clone() for p in model.parameters()]

    alone = run(1)
    run(2)                      # another arm trains first ...
    torch.randn(13)             # ... and leaves the global RNG somewhere else
    beside = run(1)
    assert alone[0] == beside[0] and alone[1] == beside[1] and repr(alone[2]) == repr(beside[2])  # repr: NaN-safe
    assert all(torch.equal(a, b) for a, b in zip(alone[3], beside[3]))


def test_lesson_configs_document_every_field_and_grow_with_the_scale():
    """Module 05's lesson sizes come from configs (the notebooks never spell a scale choice)."""
    from dataclasses import fields

    from hdai_lessons.core.config import field_docs
    from hdai_lessons.unified.full import FullConfig
    from hdai_lessons.unified.train import TextToImageLessonConfig, UnderstandingLessonConfig, UnifiedLessonConfig

    from hdai_lessons.unified.shapes import WorldConfig

    from hdai_lessons.unified.editing import EditorConfig

    for cls in (WorldConfig, UnderstandingConfig, GenerationConfig, MMDiTConfig, MLLMConfig, UnderstandingLessonConfig,
                TextToImageLessonConfig, UnifiedLessonConfig, FullConfig, EditorConfig):
        assert {f.name for f in fields(cls)} == set(field_docs(cls)), cls.__name__
    for cls in (UnderstandingLessonConfig, TextToImageLessonConfig, UnifiedLessonConfig):
        assert cls.for_scale("toy") == cls()
    assert UnderstandingLessonConfig.for_scale("smoke").stage1.steps < UnderstandingLessonConfig.for_scale("toy").stage1.steps
    assert TextToImageLessonConfig.for_scale("smoke").n_eval < TextToImageLessonConfig.for_scale("toy").n_eval
    u = UnifiedLessonConfig.for_scale("toy")
    assert (u.ablation_arm("joint").alpha_ntp, u.ablation_arm("frozen").alpha_ntp) == (0.5, 0.0)
    assert u.ablation_arm("joint").steps == u.ablation.steps and u.ablation.alpha_ntp == 0.0
    with pytest.raises(ValueError, match="ablation arm"):
        u.ablation_arm("both")
    assert FullConfig.for_scale("full").size is None and FullConfig.for_scale("toy") == FullConfig()


def _tiny_editor(seed=0):
    from hdai_lessons.unified.editing import ResidualEditor

    torch.manual_seed(seed)
    mllm = TinyMLLM(MLLMConfig(d=32, layers=1))
    model = MMDiT(MMDiTConfig(dim=32, heads=2, layers=1, cond_dim=32, rope_axes=(4, 6, 6)))
    return ResidualEditor(model), mllm


def test_residual_editor_starts_as_an_exact_copy_and_keeps_text_to_image():
    """Zero-initialised residual head: x̂₁ = source, so Euler sampling returns the source (any w); without
    references the editor is the plain MMDiT; v = (x̂₁ − x_t)/(1 − t) on the linear path."""
    from hdai_lessons.unified.train import sample_gen_batch, to_model

    ed, mllm = _tiny_editor()
    w = ShapesWorld()
    b = sample_gen_batch(w, 3, _g(0), edit=True)
    cond = MLLMConditioner(mllm)
    for guidance in (1.0, 4.0):
        out = sample(ed, cond, b.prompt, _g(1), source=b.source, steps=4, guidance=guidance)
        assert torch.allclose(out, b.source, atol=1e-5)
    x, t = torch.randn(3, 3, 24, 24, generator=_g(2)), torch.tensor([0.1, 0.5, 0.9])
    c, m = cond(b.prompt, b.source)
    refs = to_model(b.source).unsqueeze(1)
    v = ed(x, 1000 * t, c, m, refs)
    assert torch.allclose(x + (1 - t).view(-1, 1, 1, 1) * v, refs[:, 0], atol=1e-5)  # Euler to t = 1 lands on x̂₁
    c2, m2 = cond(b.prompt)
    assert torch.equal(ed(x, 1000 * t, c2, m2), ed.mmdit(x, 1000 * t, c2, m2))


def test_edit_loss_trains_dropped_rows_towards_the_source_and_joint_training_reaches_the_mllm():
    from hdai_lessons.unified.editing import EditorConfig, edit_loss, train_editor

    g = _g(3)
    x1h, tgt, src = (torch.randn(4, 3, 4, 4, generator=g) for _ in range(3))
    dropped = torch.tensor([True, False, True, False])
    per_row = torch.stack([((x1h[i] - (src[i] if dropped[i] else tgt[i])) ** 2).sum() for i in range(4)])
    assert torch.allclose(edit_loss(x1h, tgt, src, dropped), per_row.mean())
    assert torch.allclose(edit_loss(src, tgt, src, torch.ones(4, dtype=torch.bool)), torch.tensor(0.0))
    ed, mllm = _tiny_editor(1)
    hist = train_editor(ed, MLLMConditioner(mllm, freeze=False), ShapesWorld(),
                        EditorConfig(steps=40, batch=8, edit_frac=1.0, alpha_ntp=0.5), _g(4))
    assert len(hist["edit"]) == 40 and len(hist["ntp"]) == 40 and hist["t2i"] == []
    assert all(math.isfinite(v) for v in hist["edit"] + hist["ntp"])
    assert any(p.grad is not None for p in mllm.parameters())  # joint: the MLLM was trained too
