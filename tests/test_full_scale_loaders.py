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


# ------------------------------------------------------------------------------------------ 04.5 FLUX
LETTERS = "abcdefghijklmnopqrstuvwxyz"


def _clip_tokenizer(folder: Path):
    """A character-level CLIP BPE tokenizer written as the hub's vocab.json + merges.txt."""
    from transformers import CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in LETTERS:
        vocab[c] = len(vocab)
        vocab[c + "</w>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77)


def _t5_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import T5TokenizerFast

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -1.0)] + [(c, -2.0) for c in LETTERS]
    tk = Tokenizer(models.Unigram(pieces, unk_id=2))
    tk.pre_tokenizer = pre_tokenizers.Metaspace()
    tk.decoder = decoders.Metaspace()
    return T5TokenizerFast(tokenizer_object=tk, eos_token="</s>", pad_token="<pad>", unk_token="<unk>", extra_ids=0,
                           model_max_length=512)


def _flux_snapshot(root: Path) -> Path:
    """A tiny FLUX pipeline saved as ``black-forest-labs/FLUX.1-schnell`` is laid out on the hub:
    model_index.json, scheduler/, text_encoder/ (CLIP-L), tokenizer/, text_encoder_2/ (T5),
    tokenizer_2/, transformer/, vae/ (16 latent channels, 8× downsampling)."""
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    torch.manual_seed(0)
    text = CLIPTextModel(CLIPTextConfig(vocab_size=2 + 2 * len(LETTERS), hidden_size=32, intermediate_size=37,
                                        num_hidden_layers=1, num_attention_heads=4, max_position_embeddings=77,
                                        bos_token_id=0, eos_token_id=1, pad_token_id=1, projection_dim=16))
    t5 = T5EncoderModel(T5Config(vocab_size=4 + len(LETTERS), d_model=32, d_kv=8, d_ff=37, num_layers=1, num_heads=4))
    transformer = FluxTransformer2DModel(patch_size=1, in_channels=64, num_layers=1, num_single_layers=1,
                                         attention_head_dim=16, num_attention_heads=2, joint_attention_dim=32,
                                         pooled_projection_dim=32, guidance_embeds=False, axes_dims_rope=(4, 6, 6))
    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
                        up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(8, 8, 8, 8), layers_per_block=1,
                        latent_channels=16, norm_num_groups=4, sample_size=32)
    pipe = FluxPipeline(scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae, text_encoder=text,
                        tokenizer=_clip_tokenizer(root / "_tok"), text_encoder_2=t5, tokenizer_2=_t5_tokenizer(),
                        transformer=transformer)
    pipe.save_pretrained(root / "flux")
    for sub in ("scheduler", "text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2", "transformer", "vae"):
        assert (root / "flux" / sub).is_dir(), sub
    return root / "flux"


def _clip_snapshot(root: Path) -> Path:
    from hdai_lessons.flows.full import tiny_clip

    clip = tiny_clip(seed=0, image_size=32)
    folder = root / "clip"
    clip.save_pretrained(folder)
    _clip_tokenizer(folder).save_pretrained(folder)
    return folder


def test_flux_guidance_loads_the_hub_layout_through_load_full(tmp_path, monkeypatch):
    from hdai_lessons.flows.full import load_full

    flux, clip = _flux_snapshot(tmp_path), _clip_snapshot(tmp_path)
    _fake_cache(monkeypatch, {"black-forest-labs/FLUX.1-schnell": flux, "openai/clip-vit-large-patch14": clip})
    setup = load_full("flux-schnell", prompt="a photo of a cat", reward_prompt="a watercolor painting", height=64,
                      width=64, device="cpu", dtype=torch.float32, max_sequence_length=16)
    assert setup.latent_shape == (16, 8, 8) and setup.velocity.transformer.gradient_checkpointing
    x = torch.randn(2, setup.dim, requires_grad=True)
    (g,) = torch.autograd.grad(setup.reward(setup.flow_map(x, 0.2, 1.0)).sum(), x)   # the FMRG-J VJP runs
    assert g.shape == x.shape and torch.isfinite(g).all() and g.abs().sum() > 0


def test_flux_folder_with_the_wrong_latent_layout_is_rejected(tmp_path, monkeypatch):
    from diffusers import FluxTransformer2DModel

    from hdai_lessons.flows.full import load_full

    flux, clip = _flux_snapshot(tmp_path), _clip_snapshot(tmp_path)
    FluxTransformer2DModel(patch_size=1, in_channels=16, num_layers=1, num_single_layers=1, attention_head_dim=16,
                           num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32,
                           guidance_embeds=False, axes_dims_rope=(4, 6, 6)).save_pretrained(flux / "transformer")
    _fake_cache(monkeypatch, {"black-forest-labs/FLUX.1-schnell": flux, "openai/clip-vit-large-patch14": clip})
    with pytest.raises(ValueError, match="in_channels"):
        load_full("flux-schnell", height=64, width=64, device="cpu", dtype=torch.float32, max_sequence_length=16)


# ------------------------------------------------------------------------------------------ 03.4 Minari
def test_sope_prior_data_loads_a_minari_dataset_from_minaris_own_storage(tmp_path, monkeypatch):
    """A dataset recorded with Minari's DataCollector and stored in Minari's layout loads through the
    lesson's ``load_prior`` as D4RL transitions ``(o_t, a_t, r_t, o_{t+1})``. (Pendulum stands in for
    MuJoCo Hopper: the storage layout does not depend on the environment.)"""
    minari = pytest.importorskip("minari")
    import gymnasium as gym
    import numpy as np

    from hdai_lessons.sope.benchmark import Task, load_prior

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    from minari.data_collector import EpisodeBuffer

    env = gym.make("Pendulum-v1", max_episode_steps=7)
    rng = np.random.default_rng(0)
    buffers = []
    for ep in range(3):
        obs, _ = env.reset(seed=ep)
        o, a, r, te, tr = [obs], [], [], [], []
        done = False
        while not done:
            act = rng.uniform(-2, 2, size=1).astype(np.float32)
            obs, rew, term, trunc, _ = env.step(act)
            o.append(obs), a.append(act), r.append(rew), te.append(term), tr.append(trunc)
            done = term or trunc
        buffers.append(EpisodeBuffer(id=ep, seed=ep, observations=np.stack(o), actions=np.stack(a),
                                     rewards=np.asarray(r), terminations=np.asarray(te), truncations=np.asarray(tr),
                                     infos={}))
    minari.create_dataset_from_buffers("hdai/pendulum/test-v0", buffers, env=env, algorithm_name="uniform random",
                                       author="hdai-lessons", author_email="course@example.org",
                                       code_permalink="https://example.org", description="test")
    data = load_prior(Task(env_id="Pendulum-v1", dataset="hdai/pendulum/test-v0"))
    ds = minari.load_dataset("hdai/pendulum/test-v0")
    first = next(iter(ds.iterate_episodes()))
    assert len(data["rewards"]) == 3 * 7
    np.testing.assert_allclose(data["observations"][:7], first.observations[:-1], rtol=1e-6)
    np.testing.assert_allclose(data["next_observations"][:7], first.observations[1:], rtol=1e-6)
    np.testing.assert_allclose(data["actions"][:7], first.actions, rtol=1e-6)
    with pytest.raises(FileNotFoundError, match="hdai-lessons fetch 03.4"):
        load_prior(Task(env_id="Pendulum-v1", dataset="mujoco/hopper/expert-v0"))
