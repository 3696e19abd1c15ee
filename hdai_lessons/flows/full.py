"""Guidance on a real diffusers flow model: FLUX.1-schnell or SD3.5 at full scale, tiny configs in CI.

FMRG's methods (``guidance.guide``) work on flat ``(B, D)`` states and need two callables: a velocity
``b(x, t)`` and a flow map ``X(x, s, t)``, in the paper's convention (t = 0 noise, t = 1 data). This
module adapts a diffusers flow transformer to that interface, so the *same* ``guide`` runs on image
latents:

- diffusers runs σ from 1 (noise) to 0 (data) and the transformer predicts v_d = noise − x_0 = dx/dσ
  (``FlowMatchEulerDiscreteScheduler``). With t = 1 − σ, the paper's velocity is b_t(x) = −v_d(x, σ),
  and DPS's denoiser x + (1 − t) b_t(x) is diffusers' x̂_0 = x − σ v_d.
- ``DiffusersVelocity`` wraps ``SD3Transformer2DModel`` (latents ``(B, C, H, W)``, timestep = 1000σ)
  or ``FluxTransformer2DModel`` (2×2-packed tokens ``(B, HW/4, 4C)``, timestep = σ, ``img_ids``
  [0, row, col], ``txt_ids`` zeros) around fixed prompt embeddings.
- Flow maps: ``OneStepFlowMap`` X_{s,t}(x) = x + (t − s) b_s(x) — exact for a perfectly straight
  flow and the approximation a timestep-distilled model such as FLUX.1-schnell is trained for
  (FMRG digest, "Ungated alternatives"); or ``flowmap.TeacherFlowMap(b, k)`` (k Euler sub-steps, k NFE); or,
  on the digits rung, the shipped ``flows-digits-sd3-flowmap``, a ``FlowMapMLP`` distilled from the SD3-digits
  velocity by lesson 04.4's recipe (``distill_digits_sd3_flow_map``; 1 NFE per call).
- ``LatentDecoder`` maps latents to images in [0, 1] through the VAE (``(z / scaling) + shift``);
  ``CLIPReward`` scores decoded images by cosine similarity with a text prompt's CLIP embedding —
  a differentiable reward, so ∇_x r flows through decoder and (for J / DPS) the transformer.

``build_tiny`` builds every piece from tiny random configs in memory (CI; no network);
``load_full`` loads the real pipeline and CLIP from the local Hugging Face cache
(``hdai-lessons fetch 04.5`` downloads them) and raises ``MissingAssetError`` offline.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from hdai_lessons.core.scale import by_scale

KINDS = ("sd3", "flux")
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


# ------------------------------------------------------------------------------ packing (FLUX)
def pack_latents(lat: torch.Tensor) -> torch.Tensor:
    """FLUX's 2×2 packing: (B, C, H, W) → (B, (H/2)(W/2), 4C) (as ``FluxPipeline._pack_latents``).

    Lesson 04.5 (exercise 04.5.2); FLUX's packing, which the FMRG code calls from the FLUX pipeline (FMRG
    "Related libraries").
    """
    b, c, h, w = lat.shape
    if h % 2 or w % 2:
        raise ValueError(f"FLUX latents need even height and width, got {(h, w)}")
    x = lat.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5)  # (B, H/2, W/2, C, 2, 2)
    return x.reshape(b, (h // 2) * (w // 2), c * 4)


def unpack_latents(tok: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Inverse of ``pack_latents``: (B, (H/2)(W/2), 4C) → (B, C, H, W).

    Lesson 04.5; FLUX's packing (FMRG "Related libraries").
    """
    b, n, d = tok.shape
    x = tok.reshape(b, h // 2, w // 2, d // 4, 2, 2).permute(0, 3, 1, 4, 2, 5)  # (B, C, H/2, 2, W/2, 2)
    return x.reshape(b, d // 4, h, w)


def latent_image_ids(h: int, w: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """FLUX positional ids of the packed tokens: ((H/2)(W/2), 3) rows [0, row, col].

    Lesson 04.5; FLUX's token ids (FMRG "Related libraries").
    """
    ids = torch.zeros(h // 2, w // 2, 3)
    ids[..., 1] = torch.arange(h // 2)[:, None]
    ids[..., 2] = torch.arange(w // 2)[None, :]
    return ids.reshape(-1, 3).to(device=device, dtype=dtype)


# ------------------------------------------------------------------------------ the velocity
@dataclass
class PromptEmbeddings:
    """Text conditioning for one prompt (batch 1, expanded to B inside the velocity).

    prompt_embeds: (1, T, joint_attention_dim); pooled: (1, pooled_projection_dim);
    text_ids: (T, 3) for FLUX (zeros), unused for SD3.

    Lesson 04.5; FMRG "Full-scale lesson options", Option A ("Ungated alternatives": FLUX.1-schnell, SD3.5).
    """

    prompt_embeds: torch.Tensor
    pooled: torch.Tensor
    text_ids: "torch.Tensor | None" = None


class DiffusersVelocity(nn.Module):
    """The paper-convention velocity b_t(x) = −v_d(x, σ = 1 − t) of a diffusers flow transformer.

    ``forward(x (B, D), t (B,)) -> (B, D)`` with D = C·H·W of ``latent_shape``; differentiable in x.
    The transformer runs in its own dtype (bf16 at full scale); x and the output stay float32.

    Lesson 04.5; FMRG "Conventions" (the code's t is 1 − the paper's t) and FMRG "Full-scale lesson options",
    Option A ("Ungated alternatives": FLUX.1-schnell, SD3.5).
    """

    def __init__(self, transformer: nn.Module, kind: str, latent_shape: "tuple[int, int, int]",
                 cond: PromptEmbeddings, guidance_scale: "float | None" = None):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        self.transformer, self.kind, self.latent_shape, self.cond = transformer, kind, tuple(latent_shape), cond
        self.guidance_scale = guidance_scale
        self.dim = latent_shape[0] * latent_shape[1] * latent_shape[2]

    @property
    def _dtype(self) -> torch.dtype:
        return next(self.transformer.parameters()).dtype

    def velocity_diffusers(self, lat: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """The transformer's own prediction v_d = dx/dσ: lat (B, C, H, W), σ (B,) → (B, C, H, W).

        Runs on the transformer's device and dtype; the result comes back float32 on ``lat``'s device
        (so guidance can keep its small states on the CPU while the model sits on a GPU).
        """
        b = lat.shape[0]
        p = next(self.transformer.parameters())
        dev, dt = p.device, p.dtype
        enc = self.cond.prompt_embeds.to(dev, dt).expand(b, -1, -1)   # (B, T, J)
        pooled = self.cond.pooled.to(dev, dt).expand(b, -1)           # (B, P)
        sig = sigma.to(dev)
        if self.kind == "sd3":
            out = self.transformer(hidden_states=lat.to(dev, dt), encoder_hidden_states=enc, pooled_projections=pooled,
                                   timestep=(sig * 1000).to(dt), return_dict=False)[0]
            return out.float().to(lat.device)
        _, c, h, w = lat.shape
        guidance = None
        if getattr(self.transformer.config, "guidance_embeds", False):
            guidance = torch.full((b,), float(self.guidance_scale or 3.5), device=dev, dtype=dt)
        txt_ids = self.cond.text_ids if self.cond.text_ids is not None else torch.zeros(enc.shape[1], 3)
        out = self.transformer(hidden_states=pack_latents(lat).to(dev, dt), encoder_hidden_states=enc,
                               pooled_projections=pooled, timestep=sig.to(dt), guidance=guidance,
                               img_ids=latent_image_ids(h, w, dev, dt), txt_ids=txt_ids.to(dev, dt),
                               return_dict=False)[0]
        return unpack_latents(out.float().to(lat.device), h, w)

    def forward(self, x: torch.Tensor, t: "float | torch.Tensor") -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != self.dim:
            raise ValueError(f"expected flat latents (B, {self.dim}) for latent shape {self.latent_shape}, got {tuple(x.shape)}")
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device).reshape(-1).expand(x.shape[0])
        lat = x.reshape(x.shape[0], *self.latent_shape)              # (B, C, H, W)
        return -self.velocity_diffusers(lat, 1.0 - t).reshape(x.shape[0], -1)  # b_t = −v_d, (B, D)


class OneStepFlowMap(nn.Module):
    """X_{s,t}(x) = x + (t − s) b_s(x): the one-jump flow map of a (nearly) straight flow. 1 NFE per call.

    For s → 1 it is DPS's denoiser, so FMRG with this map differs from DPS only in its base dynamics
    (jumps vs Euler steps); a better map (``TeacherFlowMap`` or a distilled flow-map model) separates them.

    Lesson 04.5; FMRG "Full-scale lesson options", Option A ("Ungated alternatives": FLUX.1-schnell, SD3.5): a
    one-step prediction as an approximate X_{t,1}.
    """

    nfe_per_call = 1

    def __init__(self, velocity: Callable):
        super().__init__()
        self.velocity = velocity
        self.dim = getattr(velocity, "dim", None)

    def forward(self, x: torch.Tensor, s: "float | torch.Tensor", t: "float | torch.Tensor") -> torch.Tensor:
        s_ = torch.as_tensor(s, dtype=x.dtype, device=x.device).reshape(-1).expand(x.shape[0])
        t_ = torch.as_tensor(t, dtype=x.dtype, device=x.device).reshape(-1).expand(x.shape[0])
        return x + (t_ - s_)[:, None] * self.velocity(x, s_)


# ------------------------------------------------------------------------------ decoder and reward
class LatentDecoder(nn.Module):
    """Flat latents (B, D) → images (B, 3, H, W) in [0, 1] through a diffusers ``AutoencoderKL``.

    z_vae = z / scaling_factor + shift_factor (the pipelines' convention); with ``vae=None`` the
    latents *are* the pixels (in [−1, 1]), as in the toy.

    Lesson 04.5; FMRG "Full-scale lesson options", Option A ("Ungated alternatives": FLUX.1-schnell, SD3.5); the
    reward is taken on decoded images (FMRG "Code-level details").
    """

    def __init__(self, vae: "nn.Module | None", latent_shape: "tuple[int, int, int]"):
        super().__init__()
        self.vae, self.latent_shape = vae, tuple(latent_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lat = x.reshape(x.shape[0], *self.latent_shape)  # (B, C, h, w)
        if self.vae is None:
            img = lat
        else:
            cfg = self.vae.config
            p = next(self.vae.parameters())
            z = lat / cfg.scaling_factor + (getattr(cfg, "shift_factor", None) or 0.0)
            img = self.vae.decode(z.to(p.device, p.dtype), return_dict=False)[0].float()  # on the VAE's device
        if img.shape[1] == 1:
            img = img.expand(-1, 3, -1, -1)
        return ((img + 1) / 2).clamp(0, 1)


def clip_preprocess(img: torch.Tensor, size: int) -> torch.Tensor:
    """CLIP's preprocessing, differentiable: bilinear resize to ``size``², then (img − mean)/std per channel.

    img: (B, 3, H, W) in [0, 1] → (B, 3, size, size). (CLIP's own processor uses PIL: no gradients.)

    Lesson 04.5 (exercise 04.5.3); the CLIP preprocessing of the reward ensemble, FMRG "Code-level details".
    """
    img = nn.functional.interpolate(img, size=(size, size), mode="bilinear", align_corners=False)
    mean = torch.tensor(CLIP_MEAN, device=img.device, dtype=img.dtype).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, device=img.device, dtype=img.dtype).view(1, 3, 1, 1)
    return (img - mean) / std


def diffusers_denoiser(x: torch.Tensor, sigma: torch.Tensor, v_d: torch.Tensor) -> torch.Tensor:
    """DPS's endpoint in diffusers' convention: x̂_0 = x − σ·v_d (= x + (1 − t) b_t(x) with t = 1 − σ).

    x, v_d: (B, ...) ; sigma: (B,) → (B, ...).

    Lesson 04.5 (exercise 04.5.1); x̂_0 = x − σ v of FMRG "Full-scale lesson options", Option A ("Ungated
    alternatives": FLUX.1-schnell, SD3.5), the denoiser of FMRG "Base flow and flow map".
    """
    return x - sigma.reshape(-1, *([1] * (x.dim() - 1))) * v_d


class CLIPReward:
    """r(x) = scale · cos(CLIP_image(decode(x)), text_features): (B, D) → (B,), differentiable in x.

    Preprocessing is CLIP's, written with differentiable ops: bilinear resize to the vision model's
    image size, then normalisation by CLIP's mean/std (no PIL, so gradients pass).

    Lesson 04.5; the CLIP term (scale·cos) of the reward ensemble, FMRG "Code-level details".
    """

    def __init__(self, clip_model: nn.Module, text_features: torch.Tensor, decoder: Callable, scale: float = 100.0):
        self.clip = clip_model.eval().requires_grad_(False)
        self.text = nn.functional.normalize(text_features.detach().float().reshape(1, -1), dim=-1)  # (1, E)
        self.decoder, self.scale = decoder, float(scale)
        self.size = int(clip_model.config.vision_config.image_size)

    def image_features(self, img: torch.Tensor) -> torch.Tensor:
        """img (B, 3, H, W) in [0, 1] → normalised CLIP embeddings (B, E)."""
        dt = next(self.clip.parameters()).dtype
        out = self.clip.get_image_features(pixel_values=clip_preprocess(img, self.size).to(dt))
        feats = out if torch.is_tensor(out) else out.pooler_output
        return nn.functional.normalize(feats.float(), dim=-1)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, D) flat latents → (B,) on x's device."""
        img = self.decoder(x).to(next(self.clip.parameters()).device)
        feats = self.image_features(img)                                   # (B, E)
        return (self.scale * (feats @ self.text.to(feats.device).T)[:, 0]).to(x.device)


def clip_text_features(clip_model: nn.Module, tokenizer, prompt: str) -> torch.Tensor:
    """CLIP text embedding of ``prompt``: (1, E).

    Lesson 04.5; the CLIP term of the reward ensemble, FMRG "Code-level details".
    """
    ids = tokenizer([prompt], padding=True, return_tensors="pt")
    with torch.no_grad():
        out = clip_model.get_text_features(**{k: v.to(clip_model.device) for k, v in ids.items()})
    return out if torch.is_tensor(out) else out.pooler_output


# ------------------------------------------------------------------------------ setups
@dataclass
class FlowSetup:
    """Everything ``guide`` needs for one prompt on a latent flow model.

    Lesson 04.5; FMRG "Full-scale lesson options", Option A ("Ungated alternatives": FLUX.1-schnell, SD3.5).
    """

    velocity: DiffusersVelocity
    flow_map: nn.Module
    reward: Callable
    decode: LatentDecoder
    latent_shape: tuple
    kind: str

    @property
    def dim(self) -> int:
        return self.velocity.dim

    @property
    def vae_is_none(self) -> bool:
        """True when the latents are the pixels (the toy rung)."""
        return self.decode.vae is None


def tiny_transformer(kind: str, seed: int = 0) -> nn.Module:
    """A tiny randomly initialised ``SD3Transformer2DModel`` / ``FluxTransformer2DModel`` (CI configs).

    Lesson 04.5 (the CI check of the wiring); FMRG "Full-scale lesson options", Option A ("Ungated
    alternatives": FLUX.1-schnell, SD3.5), in tiny random configs.
    """
    from diffusers import FluxTransformer2DModel, SD3Transformer2DModel

    torch.manual_seed(seed)
    if kind == "sd3":
        return SD3Transformer2DModel(sample_size=8, patch_size=2, in_channels=4, out_channels=4, num_layers=2,
                                     attention_head_dim=16, num_attention_heads=2, joint_attention_dim=32,
                                     caption_projection_dim=32, pooled_projection_dim=32, pos_embed_max_size=16)
    if kind == "flux":
        return FluxTransformer2DModel(patch_size=1, in_channels=16, num_layers=1, num_single_layers=1,
                                      attention_head_dim=16, num_attention_heads=2, joint_attention_dim=32,
                                      pooled_projection_dim=32, guidance_embeds=False, axes_dims_rope=(4, 6, 6))
    raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")


def tiny_vae(latent_channels: int = 4, seed: int = 0) -> nn.Module:
    """A tiny randomly initialised ``AutoencoderKL`` (one down block: 2× spatial compression).

    Lesson 04.5 (the CI check of the wiring); FMRG "Full-scale lesson options", Option A ("Ungated
    alternatives": FLUX.1-schnell, SD3.5), in tiny random configs.
    """
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    return AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
                         up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"), block_out_channels=(8, 16),
                         layers_per_block=1, latent_channels=latent_channels, norm_num_groups=4, sample_size=16)


def tiny_clip(seed: int = 0, image_size: int = 32) -> nn.Module:
    """A tiny randomly initialised ``CLIPModel`` (vision + text towers) built in memory.

    Lesson 04.5 (the CI check of the wiring); FMRG "Full-scale lesson options", Option A ("Ungated
    alternatives": FLUX.1-schnell, SD3.5), in tiny random configs.
    """
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(seed)
    cfg = CLIPConfig(text_config=dict(vocab_size=99, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                                      num_attention_heads=4, max_position_embeddings=32,
                                      bos_token_id=0, eos_token_id=1, pad_token_id=1),
                     vision_config=dict(image_size=image_size, patch_size=8, hidden_size=32, intermediate_size=37,
                                        num_hidden_layers=2, num_attention_heads=4),
                     projection_dim=16)
    return CLIPModel(cfg).eval()


def build_tiny(kind: str = "sd3", seed: int = 0, flow_map: str = "one_step", teacher_substeps: int = 4) -> FlowSetup:
    """Tiny random transformer + VAE + CLIP, wired exactly as ``load_full`` wires the real ones.

    Latents are (4, 8, 8) for both (FLUX packs them into 16 tokens of 16 channels); the VAE decodes to 16×16 images.
    ``flow_map``: "one_step" (``OneStepFlowMap``) or "teacher" (``TeacherFlowMap``, ``teacher_substeps``).

    Lesson 04.5; FMRG "Full-scale lesson options", Option A ("Ungated alternatives": FLUX.1-schnell, SD3.5), in
    tiny random configs.
    """
    from hdai_lessons.flows.flowmap import TeacherFlowMap

    g = torch.Generator().manual_seed(seed)
    tr = tiny_transformer(kind, seed)
    c = 4  # SD3: in_channels 4; FLUX: in_channels 16 = 4 latent channels × 2×2 packing
    shape = (c, 8, 8)
    cond = PromptEmbeddings(torch.randn(1, 6, 32, generator=g), torch.randn(1, 32, generator=g),
                            torch.zeros(6, 3) if kind == "flux" else None)
    vel = DiffusersVelocity(tr.eval().requires_grad_(False), kind, shape, cond)
    dec = LatentDecoder(tiny_vae(c, seed).eval().requires_grad_(False), shape)
    clip = tiny_clip(seed)
    reward = CLIPReward(clip, torch.randn(1, clip.config.projection_dim, generator=g), dec)
    X = OneStepFlowMap(vel) if flow_map == "one_step" else TeacherFlowMap(vel, teacher_substeps)
    return FlowSetup(vel, X, reward, dec, shape, kind)


@dataclass(frozen=True)
class FullModel:
    """A full-scale model choice: the hub repo, its kind, latent channels and the VAE's downsampling.

    Lesson 04.5; FMRG "Full-scale lesson options", Option A ("Ungated alternatives": FLUX.1-schnell, SD3.5).
    """

    repo_id: str
    kind: str
    latent_channels: int
    vae_scale: int = 8


FULL_MODELS = {
    "flux-schnell": FullModel("black-forest-labs/FLUX.1-schnell", "flux", 16),
    "sd3.5-medium": FullModel("stabilityai/stable-diffusion-3.5-medium", "sd3", 16),
}
CLIP_REPO = "openai/clip-vit-large-patch14"


def check_latent_layout(transformer: nn.Module, vae: nn.Module, spec: FullModel) -> None:
    """Raise ``ValueError`` unless the loaded transformer and VAE have the latent layout the course's
    packing and ``FULL_MODELS`` assume (a hub folder can change under a branch name).

    FLUX: ``in_channels`` = 4 × the VAE's latent channels (2×2 packing, ``pack_latents``); SD3:
    ``in_channels`` = latent channels. Either way the VAE must have ``spec.latent_channels``.

    Lesson 04.5; FMRG "Full-scale lesson options", Option A ("Ungated alternatives": FLUX.1-schnell, SD3.5).
    """
    want = spec.latent_channels * (4 if spec.kind == "flux" else 1)
    got_t, got_v = transformer.config.in_channels, getattr(vae.config, "latent_channels", None)
    if got_t != want or got_v != spec.latent_channels:
        raise ValueError(f"{spec.repo_id}: transformer in_channels={got_t}, VAE latent_channels={got_v}; the course "
                         f"expects {want} and {spec.latent_channels} ({spec.kind} latents). The hub folder is not the "
                         "model the lesson was written for: fetch the pinned revision again (hdai-lessons fetch 04.5)")


def load_full(model: str = "flux-schnell", prompt: str = "a photo of a cat", reward_prompt: str = "a watercolor painting",
              height: int = 512, width: int = 512, device: "str | torch.device" = "cuda",
              dtype: torch.dtype = torch.bfloat16, flow_map: str = "one_step", teacher_substeps: int = 4,
              lesson_id: str = "04.5", max_sequence_length: int = 256,
              gradient_checkpointing: bool = True) -> FlowSetup:
    """Load a real diffusers flow pipeline and CLIP from the local cache and wire them for ``guide``.

    Raises ``hdai_lessons.core.assets.MissingAssetError`` naming ``hdai-lessons fetch 04.5`` when the
    weights are not downloaded. The text encoders run once (prompt embeddings), then are freed.
    ``gradient_checkpointing`` recomputes each transformer block in the guidance VJP instead of
    keeping its activations (``hdai-lessons gpu-check --plan``: without it FLUX does not fit 80 GB).

    Lesson 04.5 (full scale); FMRG "Full-scale lesson options", Option A ("Ungated alternatives":
    FLUX.1-schnell, SD3.5).
    """
    from transformers import CLIPModel, CLIPTokenizer

    from hdai_lessons.core.assets import registered_asset, require
    from hdai_lessons.flows.flowmap import TeacherFlowMap

    if model not in FULL_MODELS:
        raise ValueError(f"model must be one of {sorted(FULL_MODELS)}, got {model!r}")
    spec = FULL_MODELS[model]
    pipe_dir = require(registered_asset(lesson_id, spec.repo_id), lesson_id)   # the pinned commit
    clip_dir = require(registered_asset(lesson_id, CLIP_REPO), lesson_id)
    if spec.kind == "flux":
        from diffusers import FluxPipeline

        pipe = FluxPipeline.from_pretrained(pipe_dir, torch_dtype=dtype).to(device)
        with torch.no_grad():
            pe, pooled, text_ids = pipe.encode_prompt(prompt=prompt, prompt_2=None, device=device, num_images_per_prompt=1,
                                                      max_sequence_length=max_sequence_length)
        cond = PromptEmbeddings(pe, pooled, text_ids)
    else:
        from diffusers import StableDiffusion3Pipeline

        pipe = StableDiffusion3Pipeline.from_pretrained(pipe_dir, torch_dtype=dtype).to(device)
        with torch.no_grad():
            pe, _, pooled, _ = pipe.encode_prompt(prompt=prompt, prompt_2=None, prompt_3=None, device=device,
                                                  num_images_per_prompt=1, do_classifier_free_guidance=False)
        cond = PromptEmbeddings(pe, pooled)
    for name in ("text_encoder", "text_encoder_2", "text_encoder_3"):
        if getattr(pipe, name, None) is not None:
            setattr(pipe, name, None)  # free memory: prompts are encoded
    shape = (spec.latent_channels, height // spec.vae_scale, width // spec.vae_scale)
    check_latent_layout(pipe.transformer, pipe.vae, spec)
    if gradient_checkpointing:
        pipe.transformer.enable_gradient_checkpointing()
    vel = DiffusersVelocity(pipe.transformer.requires_grad_(False), spec.kind, shape, cond)
    dec = LatentDecoder(pipe.vae.requires_grad_(False), shape)
    clip = CLIPModel.from_pretrained(clip_dir, dtype=dtype).to(device)
    tok = CLIPTokenizer.from_pretrained(clip_dir)
    reward = CLIPReward(clip, clip_text_features(clip, tok, reward_prompt), dec)
    X = OneStepFlowMap(vel) if flow_map == "one_step" else TeacherFlowMap(vel, teacher_substeps)
    return FlowSetup(vel, X, reward, dec, shape, spec.kind)


def euler_sample_scheduler(velocity: DiffusersVelocity, x0: torch.Tensor, steps: int) -> torch.Tensor:
    """Unguided sampling with diffusers' own ``FlowMatchEulerDiscreteScheduler`` (shift 1), for parity tests.

    x0: (B, D) noise → (B, D) latents. Equals ``guide("unguided", ...)`` with Euler steps on t = 1 − σ.

    Lesson 04.5; diffusers' FlowMatchEulerDiscreteScheduler, FMRG "Related libraries".
    """
    from diffusers import FlowMatchEulerDiscreteScheduler

    sched = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0)
    sched.set_timesteps(sigmas=[1.0 - k / steps for k in range(steps)])
    lat = x0.reshape(x0.shape[0], *velocity.latent_shape)
    with torch.no_grad():
        for t in sched.timesteps:
            sigma = torch.full((x0.shape[0],), float(t) / 1000.0)
            lat = sched.step(velocity.velocity_diffusers(lat, sigma), t, lat, return_dict=False)[0]
    return lat.reshape(x0.shape[0], -1)


# ------------------------------------------------------------------------------ the toy rung: SD3 on digits
DIGITS_SD3 = "flows-digits-sd3"
DIGITS_SHAPE = (1, 8, 8)


def digits_sd3_transformer(seed: int = 0) -> nn.Module:
    """The toy rung's model: a small ``SD3Transformer2DModel`` on 8×8 single-channel pixels (16 tokens).

    Lesson 04.5 (toy rung); FMRG "Full-scale lesson options", Option B (self-contained, sklearn's 8×8 digits and
    a small classifier reward).
    """
    from diffusers import SD3Transformer2DModel

    torch.manual_seed(seed)
    return SD3Transformer2DModel(sample_size=8, patch_size=2, in_channels=1, out_channels=1, num_layers=2,
                                 attention_head_dim=16, num_attention_heads=2, joint_attention_dim=16,
                                 caption_projection_dim=32, pooled_projection_dim=16, pos_embed_max_size=8)


def _null_cond() -> PromptEmbeddings:
    """The unconditional model's fixed "prompt": zeros, one token (1, 1, 16) and pooled (1, 16)."""
    return PromptEmbeddings(torch.zeros(1, 1, 16), torch.zeros(1, 16))


def train_digits_sd3(steps: int = 2500, batch: int = 64, lr: float = 2e-3, seed: int = 0) -> tuple[nn.Module, list]:
    """Rectified-flow training of ``digits_sd3_transformer`` in diffusers' convention.

    x_σ = ``FlowMatchEulerDiscreteScheduler.scale_noise``-style σ·ε + (1 − σ)·x_0, target v_d = ε − x_0,
    σ ~ logit-normal (SD3's training distribution). Returns (frozen model, losses).

    Lesson 04.5 (toy rung); FMRG "Full-scale lesson options", Option B (self-contained, sklearn's 8×8 digits and
    a small classifier reward).
    """
    from hdai_lessons.core.progress import progress
    from hdai_lessons.flows.images import load_digits_tensor, split

    g = torch.Generator().manual_seed(seed)
    x, _ = load_digits_tensor()
    tr, _ = split(len(x), seed=0)
    data = x[tr].reshape(-1, *DIGITS_SHAPE)  # (N, 1, 8, 8) in [−1, 1]
    model = digits_sd3_transformer(seed)
    vel = DiffusersVelocity(model, "sd3", DIGITS_SHAPE, _null_cond())
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    losses = []
    for _ in progress(range(steps), desc="SD3 on digits"):
        x0 = data[torch.randint(0, len(data), (batch,), generator=g)]
        eps = torch.randn(x0.shape, generator=g)
        sigma = torch.sigmoid(torch.randn(batch, generator=g))
        s4 = sigma.view(-1, 1, 1, 1)
        loss = (vel.velocity_diffusers(s4 * eps + (1 - s4) * x0, sigma) - (eps - x0)).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
    return model.eval().requires_grad_(False), losses


def build_digits_sd3_checkpoint(out_path, seed: int) -> None:
    """Generator of ``flows-digits-sd3`` (``hdai-lessons data build flows-digits-sd3``).

    Lesson 04.5 (toy rung); FMRG "Full-scale lesson options", Option B (self-contained, sklearn's 8×8 digits and
    a small classifier reward).
    """
    from safetensors.torch import save_file

    model, losses = train_digits_sd3(seed=seed)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out_path),
              metadata={"kind": "digits_sd3", "final_loss": f"{sum(losses[-100:]) / 100:.4f}", "seed": str(seed)})


def load_digits_setup(target: int = 3, flow_map: str = "teacher", teacher_substeps: int = 4) -> FlowSetup:
    """The toy rung of lesson 04.5: the shipped SD3-on-digits model, pixels as latents, the shipped
    digit classifier's log p(target | x) as the reward. Same ``FlowSetup`` as ``load_full``.

    ``flow_map``: "distilled" (the shipped ``flows-digits-sd3-flowmap``, 1 NFE per call), "one_step"
    (``OneStepFlowMap``) or "teacher" (``TeacherFlowMap``, ``teacher_substeps`` NFE per call).

    Lesson 04.5 (toy rung); FMRG "Full-scale lesson options", Option B (self-contained, sklearn's 8×8 digits and
    a small classifier reward).
    """
    from safetensors.torch import load_file

    from hdai_lessons.core.data import data_path
    from hdai_lessons.flows.flowmap import TeacherFlowMap
    from hdai_lessons.flows.images import load_digit_classifier
    from hdai_lessons.flows.rewards import ClassifierLogProb

    model = digits_sd3_transformer(0)
    model.load_state_dict(load_file(str(data_path(DIGITS_SD3))))
    model.eval().requires_grad_(False)
    vel = DiffusersVelocity(model, "sd3", DIGITS_SHAPE, _null_cond())
    dec = LatentDecoder(None, DIGITS_SHAPE)
    reward = ClassifierLogProb(load_digit_classifier(), target, flat_shape=DIGITS_SHAPE)
    if flow_map == "distilled":
        X = load_digits_sd3_flowmap()
    elif flow_map == "one_step":
        X = OneStepFlowMap(vel)
    elif flow_map == "teacher":
        X = TeacherFlowMap(vel, teacher_substeps)
    else:
        raise ValueError(f"flow_map must be 'distilled', 'one_step' or 'teacher', got {flow_map!r}")
    return FlowSetup(vel, X, reward, dec, DIGITS_SHAPE, "sd3")


# ------------------------------------------------------------------------------ the toy rung's distilled flow map
DIGITS_SD3_FLOWMAP = "flows-digits-sd3-flowmap"
#: The student of the SD3-digits velocity: the 04.4 digits flow map's architecture, FlowMapMLP(64, 256, 3).
DIGITS_SD3_FLOWMAP_ARCH = {"dim": 64, "hidden": 256, "depth": 3}


def digits_sd3_distill_config():
    """The distillation run of ``flows-digits-sd3-flowmap``: the 04.4 recipe (2048 teacher paths on a 32-step
    Euler grid, 800 Adam steps of batch 256), with the SD3-digits velocity as the teacher.

    Lesson 04.5 (toy rung); FMRG digest § Toy experiment for the course ("Flow map" (b))
    and § Full-scale lesson options (Option B).
    """
    from hdai_lessons.flows.flowmap import DistillConfig

    return DistillConfig(n_traj=2048, grid_steps=32, steps=800, batch=256, lr=2e-3)


def load_digits_sd3_velocity() -> DiffusersVelocity:
    """The shipped SD3-on-digits model as the paper-convention velocity b_t on flat (B, 64) pixels (frozen).

    Lesson 04.5 (toy rung); FMRG digest § Full-scale lesson options (Option B: self-contained,
    sklearn's 8×8 digits and a small classifier reward).
    """
    from safetensors.torch import load_file

    from hdai_lessons.core.data import data_path

    model = digits_sd3_transformer(0)
    model.load_state_dict(load_file(str(data_path(DIGITS_SD3))))
    model.eval().requires_grad_(False)
    return DiffusersVelocity(model, "sd3", DIGITS_SHAPE, _null_cond())


def distill_digits_sd3_flow_map(seed: int = 0, velocity: "DiffusersVelocity | None" = None, cfg=None):
    """Distil the SD3-digits velocity's flow map into a ``FlowMapMLP``: → (frozen map, losses per step).

    The same code as lessons 04.2/04.4 (``flowmap.distill_flow_map``: a bank of teacher paths, then average
    velocities regressed by ``cfm.adam_cosine_fit``); the teacher is the diffusers transformer in t = 1 − σ.
    One call of the result is one network evaluation (1 NFE) whatever the jump, so FMRG's X_{t,1} costs what
    DPS's denoiser costs.

    Lesson 04.5 (toy rung); FMRG digest § Toy experiment for the course ("Flow map" (b)),
    § Full-scale lesson options (Option B) and § Base flow and flow map (the distilled map).
    """
    from hdai_lessons.flows.flowmap import distill_flow_map
    from hdai_lessons.flows.models import FlowMapMLP

    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    v = velocity if velocity is not None else load_digits_sd3_velocity()
    X = FlowMapMLP(**DIGITS_SD3_FLOWMAP_ARCH)
    losses = distill_flow_map(X, v, cfg or digits_sd3_distill_config(), generator=g, desc="SD3-digits flow map")
    return X.eval().requires_grad_(False), losses


def build_digits_sd3_flowmap_checkpoint(out_path, seed: int) -> None:
    """Generator of ``flows-digits-sd3-flowmap`` (``hdai-lessons data build flows-digits-sd3-flowmap``).

    Metadata: one key ``"hdai"`` holding sorted JSON (kind, config, distillation settings, seed, final loss),
    so a rebuild on the same float path reproduces the checksum.

    Lesson 04.5 (toy rung); FMRG digest § Toy experiment for the course ("Flow map" (b))
    and § Full-scale lesson options (Option B).
    """
    import dataclasses
    import json

    from safetensors.torch import save_file

    cfg = digits_sd3_distill_config()
    X, losses = distill_digits_sd3_flow_map(seed=seed, cfg=cfg)
    meta = {"kind": "digits_sd3_flowmap", "config": X.config(), "distill": dataclasses.asdict(cfg), "seed": seed,
            "teacher": DIGITS_SD3, "final_loss": f"{sum(losses[-100:]) / 100:.4f}"}
    save_file({k: t.detach().contiguous() for k, t in X.state_dict().items()}, str(out_path),
              metadata={"hdai": json.dumps(meta, sort_keys=True)})


def load_digits_sd3_flowmap(path=None):
    """The shipped distilled flow map of the SD3-digits velocity: ``FlowMapMLP`` X(x (B, 64), s, t), frozen, 1 NFE
    per call. Loading verifies the file's checksum (``core.data.data_path``).

    Lesson 04.5 (toy rung); FMRG digest § Toy experiment for the course ("Flow map" (b))
    and § Full-scale lesson options (Option B).
    """
    import json
    from pathlib import Path

    from safetensors import safe_open
    from safetensors.torch import load_file

    from hdai_lessons.core.data import data_path
    from hdai_lessons.flows.models import FlowMapMLP

    path = Path(path) if path else data_path(DIGITS_SD3_FLOWMAP)
    with safe_open(str(path), framework="pt") as f:
        meta = json.loads((f.metadata() or {}).get("hdai", "{}"))
    if meta.get("kind") != "digits_sd3_flowmap":
        raise ValueError(f"{path} holds {meta.get('kind')!r}, expected 'digits_sd3_flowmap'")
    X = FlowMapMLP(**meta["config"])
    X.load_state_dict(load_file(str(path)))
    return X.eval().requires_grad_(False)


# ------------------------------------------------------------------------------ matched-NFE comparison
def matched_nfe_specs(setup: FlowSetup, lam: float, budget: int = 12, teacher_substeps: int = 2,
                      flow_map: "nn.Module | None" = None) -> list:
    """(label, method, cfg, flow_map) at a total budget of ``budget`` NFE (forward + VJP) per sample.

    FMRG's map is ``flow_map`` when given (e.g. the distilled ``setup.flow_map``, k = its ``nfe_per_call``,
    1 for a distilled map), else the ``teacher_substeps``-step teacher (k = ``teacher_substeps``).
    DPS: N = budget/3 Euler steps (2N forwards + N VJPs). FMRG-J: N = budget/(3k). FMRG-E: N = budget/(2k).
    Best-of-n: n = budget/4 samples of 4 Euler steps.

    Lesson 04.5; the matched-NFE comparisons of FMRG "Experimental setup & headline results" (GenEval), costs as
    FMRG "Cost (NFE), from the code".
    """
    from hdai_lessons.flows.flowmap import TeacherFlowMap

    teacher = flow_map if flow_map is not None else TeacherFlowMap(setup.velocity, teacher_substeps)
    k = int(getattr(teacher, "nfe_per_call", 1))
    unit = math.lcm(12, 6 * k)   # best-of-n: 4 | budget; DPS: 3; FMRG-E: 2k; FMRG-J: 3k
    if budget % unit:
        raise ValueError(f"budget must be a multiple of {unit} to match every method exactly with a {k}-NFE map, got {budget}")
    one = OneStepFlowMap(setup.velocity)
    from hdai_lessons.flows.guidance import GuidanceConfig

    return [
        (f"best-of-{budget // 4}", "best_of_n", GuidanceConfig(steps=4, n_particles=budget // 4), one),
        (f"DPS N={budget // 3}", "dps", GuidanceConfig(steps=budget // 3, lam=lam), one),
        (f"FMRG-E N={budget // (2 * k)}", "fmrg_e", GuidanceConfig(steps=budget // (2 * k), lam=lam), teacher),
        (f"FMRG-J N={budget // (3 * k)}", "fmrg_j", GuidanceConfig(steps=budget // (3 * k), lam=lam), teacher),
    ]


def run_matched(setup: FlowSetup, specs: list, seeds: "list[int]", n: int,
                metrics: "dict[str, Callable[[torch.Tensor], float]] | None" = None) -> tuple[list, dict]:
    """``guidance.run_specs`` on a ``FlowSetup``: (rows, first-seed samples per label).

    Lesson 04.5; the matched-NFE comparisons of FMRG "Experimental setup & headline results".
    """
    from hdai_lessons.flows.guidance import run_specs

    return run_specs(specs, setup.reward, setup.velocity, seeds, n, setup.dim, metrics)


@dataclass
class FullScaleLessonConfig:
    """Lesson 04.5's rung: which flow model is guided, which flow map FMRG uses, and the sizes of the
    matched-NFE comparison.

    Lesson 04.5; FMRG digest § Full-scale lesson options (Option A: FLUX.1-schnell, full scale; Option B:
    digits) and § Cost (NFE), from the code (matched NFE).
    """

    model: str = "digits"
    """``"digits"`` (the shipped SD3-on-digits model, ``load_digits_setup``) or a ``FULL_MODELS`` key (``load_full``)."""
    prompt: str = "a photo of a cat"
    """The text prompt of a real model (unused on digits)."""
    reward_prompt: str = "a watercolor painting"
    """The CLIP reward's text (unused on digits: the reward is the classifier's log p(target | x))."""
    target: int = 3
    """The digit class the classifier reward asks for (digits only)."""
    flow_map: str = "distilled"
    """FMRG's X_{t,1}: ``"distilled"`` (the shipped ``flows-digits-sd3-flowmap``, 1 NFE per call; digits only),
    ``"teacher"`` (``TeacherFlowMap``, ``teacher_substeps`` NFE per call) or ``"one_step"`` (x + (1 − t) b_t)."""
    teacher_substeps: int = 2
    """Euler sub-steps of the teacher map when ``flow_map == "teacher"``."""
    n: int = 64
    """Samples (trajectories) per method and seed."""
    n_seeds: int = 8
    """Seeds of the paired claims (seed i = the lesson's base seed + i)."""
    budgets: tuple = (12, 24)
    """Matched NFE budgets per sample (forward + VJP; ``matched_nfe_specs``)."""
    lam: float = 1.0
    """Guidance strength λ of the claims."""
    large_lams: tuple = (3.0,)
    """Larger λ at which DPS and FMRG-J are also run (first budget only): where reward hacking shows."""
    height: int = 512
    """Image height in pixels of a real model (unused on digits)."""
    width: int = 512
    """Image width in pixels of a real model (unused on digits)."""
    max_sequence_length: int = 256
    """T5 prompt tokens of a real FLUX model (unused on digits)."""
    gradient_checkpointing: bool = True
    """Recompute each transformer block in the guidance VJP (a real model only; ``gpu-check --plan``)."""

    @property
    def on_digits(self) -> bool:
        """True on the digits model (its samples can be classified and compared with real digits)."""
        return self.model == "digits"

    def load_setup(self, device: str | torch.device = "cuda") -> FlowSetup:
        """The ``FlowSetup`` this rung guides (``load_digits_setup`` or ``load_full`` on ``device``)."""
        if self.on_digits:
            return load_digits_setup(target=self.target, flow_map=self.flow_map, teacher_substeps=self.teacher_substeps)
        return load_full(self.model, prompt=self.prompt, reward_prompt=self.reward_prompt, device=device,
                         flow_map=self.flow_map, teacher_substeps=self.teacher_substeps, height=self.height,
                         width=self.width, max_sequence_length=self.max_sequence_length,
                         gradient_checkpointing=self.gradient_checkpointing)

    @classmethod
    def for_scale(cls, scale) -> FullScaleLessonConfig:
        """Smoke and toy: the digits model and its distilled flow map on a CPU; full: FLUX.1-schnell on a GPU with
        the 2-step teacher map (no distilled map ships for it), a few samples."""
        return by_scale(scale, smoke=cls(n=8, n_seeds=2, budgets=(12,)), toy=cls(),
                        full=cls(model="flux-schnell", flow_map="teacher", n=2, n_seeds=2, budgets=(12,), large_lams=()))
