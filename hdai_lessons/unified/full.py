"""Full scale: the published JoyAI-Image through diffusers' ``JoyImageEditPipeline`` (lesson 05.4).

JoyAI-Image digest § "Full-scale lesson options" (option A), § "Sampling" and § "Official code & related
libraries" (diffusers PR #13444).

- ``load_edit_pipeline(scale)``: at ``full`` the real ``jdopensource/JoyAI-Image-Edit-Diffusers``
  (Qwen3-VL-8B text encoder, 16B MMDiT, Wan 2.1 VAE; bf16, ~59 GiB); at ``toy``/``smoke`` a pipeline of
  the same classes with tiny random weights built in memory (no download), so the code path runs in CI.
- ``ImageTextProcessor``: the part of ``Qwen3VLProcessor`` the pipeline and understanding use (image
  patches + ``<|image_pad|>`` expansion + ``mm_token_type_ids``), without the video processor (which
  needs torchvision).
- ``edit`` / ``generate``: one call of the pipeline; ``ask``: understanding with the same Qwen3-VL (the
  pipeline's text encoder is JoyAI-Image's MLLM) by greedy generation.
- ``to_diffusers_transformer``: our toy MMDiT's weights inside a ``JoyImageEditTransformer3DModel``;
  ``diffusers_edit_with_toy``: drive it with diffusers' ``FlowMatchEulerDiscreteScheduler`` after
  converting conventions (diffusers: σ = 1 at noise, v = ε − x, timestep 1000σ; the course: t = 1 at data,
  v = x − ε), which must reproduce our own sampler.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hdai_lessons.core.assets import registered_asset, require
from hdai_lessons.core.scale import Scale, by_scale, get_scale

EDIT_REPO = "jdopensource/JoyAI-Image-Edit-Diffusers"
LESSON = "05.4"
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                  "<|image_pad|>", "<|video_pad|>", "<unk>"]


# ---------------------------------------------------------------------------- conventions (exercises)
def sigma_to_course_time(sigma: torch.Tensor) -> torch.Tensor:
    """diffusers' σ (1 = noise, 0 = data) → the course's t (0 = noise, 1 = data): t = 1 − σ.

    Lesson 05.4; the x_σ = (1−σ)x + σε convention of JoyAI-Image digest § "Losses".
    """
    return 1.0 - sigma


def diffusers_velocity(v_course: torch.Tensor) -> torch.Tensor:
    """The course's velocity d/dt x_t = x₁ − x₀ → diffusers' ``noise − data`` = −(x₁ − x₀).

    Lesson 05.4; the "predict v = ε − x" of JoyAI-Image digest § "Losses".
    """
    return -v_course


def euler_step_sigma(x: torch.Tensor, v: torch.Tensor, sigma: float, sigma_next: float) -> torch.Tensor:
    """One ``FlowMatchEulerDiscreteScheduler.step``: x + (σ_next − σ)·v, with v = noise − data.

    Lesson 05.4 (exercise 05.4.1). JoyAI-Image digest § "Sampling" (flow-matching Euler over σ from 1 to 0).

    Args:
        x: ``(B, ...)`` the current sample at σ; v: ``(B, ...)`` the model's velocity; σ → σ_next (decreasing).
    """
    return x + (sigma_next - sigma) * v


def pack_edit_items(source: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """JoyImage's multi-item layout: ``(B, C, T, H, W)`` source and target → ``(B, 2, C, T, H, W)``,
    references first and the noisy target LAST (the transformer moves it to item 0 internally).

    Lesson 05.4 (exercise 05.4.2). JoyAI-Image digest § "Editing / source-image conditioning" (latent
    tensor (b, n_items, c, t, h, w) = [VAE(refs), noise_target]).
    """
    if source.shape != noise.shape:
        raise ValueError(f"source {tuple(source.shape)} and target {tuple(noise.shape)} latents must have the same shape")
    return torch.stack([source, noise], dim=1)


def joyimage_guidance(noise_pred: torch.Tensor, noise_uncond: torch.Tensor, w: float) -> torch.Tensor:
    """The pipeline's CFG with rescaling on ``(B, n, C, T, H, W)`` latents: norms over the channel axis (dim 2).

    Lesson 05.4 (exercise 05.4.3). JoyAI-Image digest § "Sampling": v = v_u + w(v_c − v_u), then
    v ← v·‖v_c‖/‖v‖ (norm over channels).
    """
    from hdai_lessons.unified.guidance import cfg_rescaled

    return cfg_rescaled(noise_pred, noise_uncond, w, dim=2)


# ---------------------------------------------------------------------------- processor and tiny parts
class ImageTextProcessor:
    """``processor(text=[...], images=[...], padding=True, return_tensors="pt")`` as ``Qwen3VLProcessor``
    answers it for images: each ``<|image_pad|>`` is expanded to ``t·h·w / merge²`` tokens and
    ``mm_token_type_ids`` (1 on image tokens) is returned for Qwen3-VL's M-RoPE.

    Lesson 05.4; the MLLM input of JoyAI-Image digest § "MLLM → MMDiT interface" (source images as
    ``<|vision_start|><|image_pad|><|vision_end|>`` in the user turn).
    """

    def __init__(self, image_processor, tokenizer):
        self.image_processor, self.tokenizer = image_processor, tokenizer
        self.image_token = "<|image_pad|>"

    def __call__(self, text, images=None, padding=True, return_tensors="pt", **kwargs):
        from transformers import BatchFeature

        text = [text] if isinstance(text, str) else list(text)
        feats: dict = {}
        if images is not None:
            images = images if isinstance(images, list) else [images]
            out = self.image_processor(images=images, return_tensors="pt")
            feats.update(out)
            merge = self.image_processor.merge_size ** 2
            i, expanded = 0, []
            for t in text:
                parts = t.split(self.image_token)
                if len(parts) - 1 > len(images) - i:
                    raise ValueError(f"{len(parts) - 1} image placeholders in a prompt but only {len(images) - i} images left")
                s = parts[0]
                for p in parts[1:]:
                    s += self.image_token * (int(out["image_grid_thw"][i].prod()) // merge) + p
                    i += 1
                expanded.append(s)
            text = expanded
        enc = self.tokenizer(text, padding=padding, return_tensors=return_tensors)
        enc["mm_token_type_ids"] = (enc["input_ids"] == self.tokenizer.convert_tokens_to_ids(self.image_token)).long()
        return BatchFeature({**enc, **feats})


def tiny_tokenizer():
    """A character-level tokenizer built in memory, with Qwen's chat and vision special tokens.

    Lesson 05.4 at smoke/toy scale (the tiny pipeline); stands in for the Qwen3-VL tokenizer of
    JoyAI-Image digest § "MLLM".
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    chars = [chr(i) for i in range(32, 127)] + ["\n"]
    vocab = {t: i for i, t in enumerate(SPECIAL_TOKENS + chars)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<|endoftext|>", eos_token="<|im_end|>",
                                   unk_token="<unk>", additional_special_tokens=SPECIAL_TOKENS[1:7],
                                   model_input_names=["input_ids", "attention_mask"])


def tiny_mllm(tokenizer, hidden: int = 32):
    """A randomly initialised ``Qwen3VLForConditionalGeneration`` (2 text layers, 2 vision layers).

    Lesson 05.4 at smoke/toy scale; the architecture of JoyAI-Image digest § "MLLM", shrunk.
    """
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

    ids = {k: tokenizer.convert_tokens_to_ids(t) for k, t in (("image_token_id", "<|image_pad|>"), ("video_token_id", "<|video_pad|>"),
                                                              ("vision_start_token_id", "<|vision_start|>"), ("vision_end_token_id", "<|vision_end|>"))}
    cfg = Qwen3VLConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=hidden // 4, max_position_embeddings=4096,
                         rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 1, 1], "mrope_interleaved": True},
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id),
        vision_config=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=hidden, patch_size=16,
                           spatial_merge_size=2, temporal_patch_size=2, deepstack_visual_indexes=[0], num_position_embeddings=64),
        **ids)
    return Qwen3VLForConditionalGeneration(cfg).eval()


def tiny_image_processor():
    """A small ``Qwen2VLImageProcessorPil`` (patch 16, merge 2, at most 256 × 256 px) for the tiny pipeline.

    Lesson 05.4 at smoke/toy scale; JoyAI-Image digest § "MLLM" (ViT patch 16, spatial merge 2 × 2).
    """
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    return Qwen2VLImageProcessorPil(patch_size=16, temporal_patch_size=2, merge_size=2, min_pixels=32 * 32, max_pixels=256 * 256)


class _AnySizeImageProcessor:
    """Replaces the pipeline's 1024-px bucket choice by the requested size (tiny CI pipeline only)."""

    def __init__(self, inner):
        self.inner = inner

    def get_default_height_width(self, image, height=None, width=None):
        if height is None or width is None:
            w, h = (image[0] if isinstance(image, list) else image).size if image is not None else (64, 64)
            height, width = height or h, width or w
        return (height // 16) * 16, (width // 16) * 16

    def __getattr__(self, name):
        return getattr(self.inner, name)


def tiny_edit_pipeline(seed: int = 0):
    """``JoyImageEditPipeline`` with tiny random components of the real classes (no download).

    Lesson 05.4 at smoke/toy scale. JoyAI-Image digest § "Official code & related libraries" (the
    diffusers classes) and § "Sampling" (``FlowMatchEulerDiscreteScheduler``, shift 1.5).

    Transformer: ``JoyImageEditTransformer3DModel`` (1 block, d = 32, 16 latent channels); VAE:
    ``AutoencoderKLWan`` (base dim 8, 8× spatial); text encoder: a tiny ``Qwen3VLForConditionalGeneration``.
    Image size is free (multiples of 16) instead of the 1024-px buckets, so it runs in seconds.
    """
    from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, JoyImageEditPipeline, JoyImageEditTransformer3DModel

    torch.manual_seed(seed)
    tokenizer = tiny_tokenizer()
    te = tiny_mllm(tokenizer)
    vae = AutoencoderKLWan(base_dim=8, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True]).eval()
    tr = JoyImageEditTransformer3DModel(patch_size=[1, 2, 2], in_channels=16, hidden_size=32, num_attention_heads=2,
                                        text_dim=te.config.text_config.hidden_size, num_layers=1, rope_dim_list=[4, 6, 6]).eval()
    sch = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.5)
    pipe = JoyImageEditPipeline(scheduler=sch, vae=vae, text_encoder=te, tokenizer=tokenizer, transformer=tr,
                                processor=ImageTextProcessor(tiny_image_processor(), tokenizer))
    pipe.vae_image_processor = _AnySizeImageProcessor(pipe.vae_image_processor)
    pipe.set_progress_bar_config(disable=True)
    return pipe


# ---------------------------------------------------------------------------- loading by scale
@dataclass(frozen=True)
class FullConfig:
    """Lesson 05.4's settings: the pipeline's sampling (JoyAI-Image: 40 steps, CFG 4, 1024-px buckets;
    digest § "Sampling") and the sizes of the lesson's runs."""

    steps: int = 4
    """Euler steps of the pipeline (the published model: 40)."""
    guidance: float = 4.0
    """CFG scale w of the pipeline (the published model: 4.0)."""
    size: "int | None" = 64
    """Image side for the tiny pipeline; ``None`` = the pipeline's own buckets (1024 px)."""
    dtype: torch.dtype = torch.float32
    """The pipeline's weights' dtype (bf16 at full scale, ~59 GiB)."""
    n_seeds: int = 3
    """Paired seeds of the toy-weights-in-diffusers comparison: ``ctx.seed``, ``ctx.seed + 1``, …"""
    toy_edits: int = 16
    """Recolour edits per seed in that comparison."""
    toy_steps: int = 20
    """Euler steps of the toy edits (ours and diffusers')."""
    n_real: int = 2
    """Edits run through the pipeline itself."""
    max_new_tokens: int = 8
    """Answer length limit of the MLLM's question about an edited image."""

    @classmethod
    def for_scale(cls, scale: "Scale | str | None") -> "FullConfig":
        """The rung's settings: a tiny random pipeline at smoke/toy, the published model at full."""
        return by_scale(scale, smoke=cls(steps=2, n_seeds=1, toy_edits=4, toy_steps=2, n_real=1, max_new_tokens=4),
                        toy=cls(),
                        full=cls(steps=40, size=None, dtype=torch.bfloat16, toy_edits=32, toy_steps=50, n_real=8,
                                 max_new_tokens=32))


#: Fields of the published transformer's config the course relies on (JoyAI-Image digest § "MMDiT").
#: A snapshot whose ``transformer/config.json`` uses the original code's key names loads with
#: diffusers' defaults instead (θ = 256, 20 layers), silently; this check turns that into an error.
PUBLISHED_TRANSFORMER = {"num_layers": 40, "num_attention_heads": 32, "theta": 10000}
COMPONENTS = ("scheduler", "vae", "text_encoder", "tokenizer", "transformer", "processor")


def load_edit_pipeline_from(path: "str | Path", dtype: torch.dtype = torch.bfloat16,
                            expect: "dict | None" = None) -> Any:
    """``JoyImageEditPipeline`` from a folder in the hub's layout (one subfolder per component).

    Each component is loaded from its subfolder with its own class and the pipeline is built with
    its constructor: ``JoyImageEditPipeline.from_pretrained(path, processor=…)`` rejects the
    processor (diffusers checks each passed component's type against ``ProcessorMixin``).
    ``expect``: config fields the transformer must have (default ``PUBLISHED_TRANSFORMER``); a
    mismatch raises ``ValueError`` naming the file and the refetch command.

    Lesson 05.4; JoyAI-Image digest § "Full-scale lesson options", option A.
    """
    from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, JoyImageEditPipeline, JoyImageEditTransformer3DModel
    from transformers import AutoTokenizer, Qwen3VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    path = Path(path)
    missing = [c for c in COMPONENTS if not (path / c).is_dir()]
    if missing:
        raise FileNotFoundError(f"{path} lacks the component folders {missing}; fetch it again with "
                                f"`hdai-lessons fetch {LESSON}`")
    transformer = JoyImageEditTransformer3DModel.from_pretrained(path, subfolder="transformer", torch_dtype=dtype)
    expect = PUBLISHED_TRANSFORMER if expect is None else expect
    wrong = {k: transformer.config.get(k) for k, v in expect.items() if transformer.config.get(k) != v}
    if wrong:
        raise ValueError(f"{path / 'transformer' / 'config.json'} gives {wrong}, expected "
                         f"{ {k: expect[k] for k in wrong} } (another revision, or the original code's key names); "
                         f"fetch the diffusers revision again with `hdai-lessons fetch {LESSON}`")
    tokenizer = AutoTokenizer.from_pretrained(path, subfolder="tokenizer")
    return JoyImageEditPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler.from_pretrained(path, subfolder="scheduler"),
        vae=AutoencoderKLWan.from_pretrained(path, subfolder="vae", torch_dtype=dtype),
        text_encoder=Qwen3VLForConditionalGeneration.from_pretrained(path, subfolder="text_encoder", dtype=dtype),
        tokenizer=tokenizer, transformer=transformer,
        processor=ImageTextProcessor(Qwen2VLImageProcessorPil.from_pretrained(path, subfolder="processor"), tokenizer))


def load_edit_pipeline(scale: "Scale | str | None" = None, device: "str | torch.device | None" = None):
    """The JoyAI-Image pipeline for ``scale``: the published weights at ``full`` (needs
    ``hdai-lessons fetch 05.4``; offline and absent → ``MissingAssetError`` naming that command),
    else ``tiny_edit_pipeline()``.

    Lesson 05.4; JoyAI-Image digest § "Full-scale lesson options", option A (bf16, ~59 GiB).
    """
    s = get_scale(scale)
    if s is not Scale.FULL:
        return tiny_edit_pipeline()
    pipe = load_edit_pipeline_from(require(registered_asset(LESSON, EDIT_REPO), LESSON), dtype=torch.bfloat16)
    return pipe.to(device or ("cuda" if torch.cuda.is_available() else "cpu"))


def edit(pipe, image, prompt: str, cfg: FullConfig, seed: int = 0) -> torch.Tensor:
    """One instruction-guided edit (``image`` a PIL image, or ``None`` for text → image); ``(3, H, W)`` in [0, 1].

    Lesson 05.4; inference for editing as JoyAI-Image digest § "Algorithm (pseudo-code)" ends it
    (Euler from σ = 1 to 0, refs clean, CFG with rescale, VAE decode).
    """
    kw = {} if cfg.size is None else {"height": cfg.size, "width": cfg.size}
    torch.manual_seed(seed)  # the pipeline samples the source's VAE posterior from the global RNG
    out = pipe(image=image, prompt=prompt, num_inference_steps=cfg.steps, guidance_scale=cfg.guidance,
               generator=torch.Generator().manual_seed(seed), output_type="pt", **kw)
    return out.images[0].float().cpu()


@torch.no_grad()
def ask(text_encoder, processor, image, question: str, max_new_tokens: int = 32) -> str:
    """Understanding with JoyAI-Image's MLLM (Qwen3-VL): greedy answer to ``question`` about ``image``.

    Lesson 05.4; JoyAI-Image digest § "MLLM" (understanding is plain autoregressive generation) and
    § "Full-scale lesson options" (pair an edit with a question).
    """
    prompt = (f"<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>{question}<|im_end|>\n"
              "<|im_start|>assistant\n")
    inputs = processor(text=[prompt], images=[image], return_tensors="pt").to(text_encoder.device)
    out = text_encoder.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    return processor.tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)


def to_pil(image: torch.Tensor):
    """``(3, H, W)`` in [0, 1] → a PIL RGB image (lesson 05.4: the pipeline takes PIL images)."""
    from PIL import Image

    return Image.fromarray((image.clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))


# ---------------------------------------------------------------------------- the toy model inside diffusers
def to_diffusers_transformer(model):
    """A ``JoyImageEditTransformer3DModel`` holding our toy ``MMDiT``'s weights (inverse of
    ``mmdit.load_diffusers_weights``).

    Lesson 05.4; the diffusers transformer of JoyAI-Image digest § "MMDiT".
    """
    from diffusers import JoyImageEditTransformer3DModel

    from hdai_lessons.unified.mmdit import diffusers_key_map

    c = model.cfg
    theirs = JoyImageEditTransformer3DModel(patch_size=[1, c.patch, c.patch], in_channels=c.channels, hidden_size=c.dim,
                                            num_attention_heads=c.heads, text_dim=c.cond_dim, mlp_width_ratio=c.mlp_ratio,
                                            num_layers=c.layers, rope_dim_list=list(c.rope_axes), theta=int(c.theta))
    ours = model.state_dict()
    target = theirs.state_dict()
    new = {}
    for k, dk in diffusers_key_map(c.layers).items():
        v = ours[k]
        new[dk] = v.reshape(target[dk].shape) if k == "img_in.weight" else v
    theirs.load_state_dict(new)
    return theirs.eval()


@torch.no_grad()
def diffusers_edit_with_toy(transformer, conditioner, prompt: torch.Tensor, source: torch.Tensor, g: torch.Generator,
                            steps: int = 20, guidance: float = 4.0) -> torch.Tensor:
    """Edit with our toy weights in diffusers' transformer and diffusers' Euler scheduler.

    Lesson 05.4. JoyAI-Image digest § "Sampling" and § "Editing / source-image conditioning" (refs
    packed first and kept clean, only the target updated by the scheduler).

    The toy was trained in the course convention (timestep 1000·t, output x₁ − x₀); diffusers' scheduler
    runs σ from 1 to 0 and expects noise − data. So the timestep fed is ``1000·(1 − σ)`` and the output is
    negated; the items are packed reference-first, target-last; CFG is the pipeline's rescaled guidance on
    ``(B, n, C, T, H, W)``. The result must equal ``train.sample`` with the same noise (a test checks).
    Returns ``(B, 3, H, W)`` in [0, 1].
    """
    from diffusers import FlowMatchEulerDiscreteScheduler

    from hdai_lessons.unified.train import to_model, to_pixels

    sch = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0)
    sch.set_timesteps(sigmas=list(np.linspace(1.0, 0.0, steps + 1)[:-1]))
    cond, mask = conditioner(prompt, source)
    ucond, umask = conditioner(torch.zeros_like(prompt), source)
    if not (bool(mask.all()) and bool(umask.all())):
        raise ValueError("diffusers' JoyImage transformer takes no attention mask: pass prompts of equal length")
    ref = to_model(source).unsqueeze(2)  # (B, C, T=1, H, W)
    x = torch.randn(source.shape, generator=g).unsqueeze(2)  # the target's noise at σ = 1 (course t = 0)
    for i, sigma in enumerate(sch.sigmas[:-1]):
        items = pack_edit_items(ref, x)  # (B, 2, C, 1, H, W)
        t = sigma_to_course_time(sigma).repeat(x.shape[0]) * 1000
        vc = diffusers_velocity(transformer(hidden_states=items, timestep=t, encoder_hidden_states=cond).sample)
        vu = diffusers_velocity(transformer(hidden_states=items, timestep=t, encoder_hidden_states=ucond).sample)
        v = joyimage_guidance(vc, vu, guidance)[:, -1]  # the target item
        x = euler_step_sigma(x, v, float(sigma), float(sch.sigmas[i + 1]))
    return to_pixels(x.squeeze(2))
