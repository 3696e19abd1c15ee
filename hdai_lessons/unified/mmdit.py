"""An MMDiT from scratch, block for block the design of JoyAI-Image's ``JoyImageEditTransformer3DModel``.

Lesson 05.2 builds it (JoyAI-Image digest § "MMDiT" and § "Positional encoding"; the double-stream
block with joint attention is the MM-DiT of SD3: Esser et al. 2024, "Scaling Rectified Flow Transformers
for High-Resolution Image Synthesis", arXiv 2403.03206); lesson 05.3 trains it for editing.

Pieces (each a function or module below, named as in diffusers so weights map one to one):

- **patch embedding**: each ``p × p`` patch of each item → one token (``img_in``; a Conv3d with
  kernel (1, p, p) in diffusers, a Linear on ``patchify`` here).
- **condition embedder**: sinusoidal timestep (256) → MLP → ``temb``; ``time_proj(SiLU(temb))`` →
  one ``(6, d)`` modulation vector shared by all blocks; the condition sequence (MLLM states) →
  PixArt-α projection (Linear → GELU-tanh → Linear). No pooled vector.
- **double-stream block** (``DoubleStreamBlock``): separate image and text weights for LayerNorm,
  modulation, qkv, QK-RMSNorm, out-proj and MLP; **joint attention** — one softmax over
  ``[image tokens; text tokens]``; gated residuals ``x += g₁·Attn(mod(LN(x)))``, ``x += g₂·MLP(mod(LN(x)))``.
- **adaLN modulation** ("Wan" style): each stream adds its own learned table ``(1, 6, d)`` to the
  shared vector and splits it into shift₁, scale₁, gate₁, shift₂, scale₂, gate₂; ``mod(x) =
  x·(1 + scale) + shift``. ``time_proj`` starts at zero (adaLN-zero), so every block starts as the identity.
- **multi-axis RoPE on image tokens only**: axes (item, row, col), per-axis dims summing to the head
  dim; text tokens get no rotation.
- **editing**: the source image is a second *item* of clean tokens (RoPE item index 1; the target
  is item 0), attended to jointly; the loss applies to the target tokens only.

``load_diffusers_weights`` copies a diffusers ``JoyImageEditTransformer3DModel``'s weights in, and the
tests check the outputs agree.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from hdai_lessons.unified.mllm import patchify


# ---------------------------------------------------------------------------- attention and RoPE
def joint_attention(q_img: torch.Tensor, k_img: torch.Tensor, v_img: torch.Tensor,
                    q_txt: torch.Tensor, k_txt: torch.Tensor, v_txt: torch.Tensor,
                    txt_mask: "torch.Tensor | None" = None) -> tuple[torch.Tensor, torch.Tensor]:
    """MMDiT joint attention: one softmax over the concatenation ``[image; text]``, then split back.

    Lesson 05.2 (exercise 05.2.1). JoyAI-Image digest § "MMDiT" ("joint attention over
    concat([img_tokens; txt_tokens]) with one softmax, then split back"); the MM-DiT of SD3 (Esser et
    al. 2024).

    Every image token attends to every image *and* text token and vice versa
    (softmax(QKᵀ/√d)V with Q, K, V the concatenations). Keys of padded text tokens
    (``txt_mask == 0``) are excluded.

    Args:
        q_img, k_img, v_img: ``(B, h, N, d)``; q_txt, k_txt, v_txt: ``(B, h, T, d)``;
        txt_mask: ``(B, T)`` {0, 1} or ``None`` (all real).
    Returns:
        ``(out_img (B, h, N, d), out_txt (B, h, T, d))``.
    """
    N = q_img.shape[2]
    q = torch.cat([q_img, q_txt], dim=2)  # (B, h, N+T, d)
    k = torch.cat([k_img, k_txt], dim=2)
    v = torch.cat([v_img, v_txt], dim=2)
    mask = None
    if txt_mask is not None:
        keep = torch.cat([torch.ones(txt_mask.shape[0], N, dtype=torch.bool, device=txt_mask.device), txt_mask.bool()], 1)
        mask = keep[:, None, None, :]  # (B, 1, 1, N+T), True = attend
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, h, N+T, d)
    return out[:, :, :N], out[:, :, N:]


def rope_positions(n_items: int, h: int, w: int) -> torch.Tensor:
    """Integer positions ``(n_items·h·w, 3)`` = (item, row, col) of image tokens, item-major.

    Lesson 05.2. JoyAI-Image digest § "Positional encoding" (3-D RoPE (t, h, w) on image tokens) and
    § "Editing / source-image conditioning" (items along the temporal axis get distinct t-indices).
    """
    grid = torch.stack(torch.meshgrid(torch.arange(n_items), torch.arange(h), torch.arange(w), indexing="ij"), -1)
    return grid.reshape(-1, 3).float()  # (n·h·w, 3)


def rope_frequencies(positions: torch.Tensor, axes_dims: "tuple[int, ...]", theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Multi-axis RoPE tables: axis a rotates its own ``axes_dims[a]`` channels by pos_a · ω.

    Lesson 05.2. JoyAI-Image digest § "Positional encoding" (axis dims [16, 56, 56], θ = 10000).

    ω_i = θ^(−2i/d_a) for i < d_a/2 (as diffusers' ``get_rotary_pos_embed``); each angle is
    repeated for the two channels of its (interleaved) pair.

    Args:
        positions: ``(N, n_axes)``; axes_dims: even ints summing to the head dim.
    Returns:
        ``(cos, sin)``, each ``(N, Σ axes_dims)``.
    """
    if positions.shape[1] != len(axes_dims):
        raise ValueError(f"positions have {positions.shape[1]} axes, axes_dims has {len(axes_dims)}")
    cos, sin = [], []
    for a, dim in enumerate(axes_dims):
        if dim % 2:
            raise ValueError(f"every RoPE axis needs an even number of channels, got {axes_dims}")
        freqs = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))  # (dim/2,)
        ang = torch.outer(positions[:, a].float(), freqs)  # (N, dim/2)
        cos.append(ang.cos().repeat_interleave(2, dim=1))
        sin.append(ang.sin().repeat_interleave(2, dim=1))
    return torch.cat(cos, 1), torch.cat(sin, 1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate interleaved channel pairs (x₀, x₁) by the angles in ``cos``/``sin``.

    Lesson 05.2 (exercise 05.2.2). JoyAI-Image digest § "Positional encoding" (RoPE on image tokens only).

    (x₀, x₁) ↦ (x₀ cos − x₁ sin, x₁ cos + x₀ sin), i.e. ``x·cos + rot(x)·sin`` with
    ``rot(x)`` = (−x₁, x₀) per pair — the convention of diffusers' JoyImage ``_apply_rotary_emb``.

    Args:
        x: ``(B, h, N, d)``; cos, sin: ``(N, d)``.
    Returns:
        ``(B, h, N, d)``.
    """
    x0, x1 = x.reshape(*x.shape[:-1], -1, 2).unbind(-1)  # (B, h, N, d/2) each
    rot = torch.stack([-x1, x0], dim=-1).flatten(-2)  # (B, h, N, d)
    return x * cos + rot * sin


def same_position_attention(content: torch.Tensor, grid: int, axes_dims: "tuple[int, ...]", theta: float) -> torch.Tensor:
    """How much a target token attends to the source token at its own (row, col) when position is the only cue.

    Lesson 05.2 (exercise 05.2.4); JoyAI-Image digest § "Positional encoding" (3-D RoPE on image tokens) and
    § "Editing / source-image conditioning" (the source is item 1, the target item 0).

    Every query (target item 0) and every key (source item 1) carries the same content vector ``content``,
    as in a flat region of an untouched cell; only RoPE tells the tokens apart. Query i is
    R(0, r_i, c_i)·u, key j is R(1, r_j, c_j)·u (``rope_positions``, ``rope_frequencies``, ``apply_rope``); the
    attention over the g² source keys is softmax_j(q_i·k_j / √d). To *copy* the source, target token i
    should put its weight on key i.

    Args:
        content: ``(d,)`` with d = Σ axes_dims (one head); grid: g (tokens per side); axes_dims, theta: as
        ``rope_frequencies``.
    Returns:
        ``(g²,)``: for each target position i, the attention weight on the source token at the same position.
    """
    d = content.shape[-1]
    cos, sin = rope_frequencies(rope_positions(2, grid, grid), axes_dims, theta)  # (2·g², d): item 0, then item 1
    u = content.expand(1, 1, 2 * grid * grid, d)  # (1, 1, 2g², d)
    rotated = apply_rope(u, cos, sin)[0, 0]  # (2g², d)
    q, k = rotated[: grid * grid], rotated[grid * grid:]  # target queries, source keys
    attn = torch.softmax(q @ k.T / math.sqrt(d), dim=-1)  # (g², g²): rows = target tokens
    return attn.diagonal()


def adaln_modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """adaLN: ``LayerNorm(x)·(1 + scale) + shift`` (LayerNorm without learned affine, over features).

    Lesson 05.2 (exercise 05.2.3). JoyAI-Image digest § "MMDiT" ("wanx" modulation: mod(LN(x)) with
    shift and scale from the timestep vector).

    Args:
        x: ``(B, N, D)``; shift, scale: ``(B, D)`` (one per sample, broadcast over tokens).
    Returns:
        ``(B, N, D)``.
    """
    xn = F.layer_norm(x.float(), (x.shape[-1],), eps=eps).to(x.dtype)
    return xn * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


# ---------------------------------------------------------------------------- embeddings
def timestep_embedding(t: torch.Tensor, dim: int = 256, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding ``[cos(t ω), sin(t ω)]``, ω_i = max_period^(−i/(dim/2)) (diffusers' ``Timesteps``
    with ``flip_sin_to_cos=True, downscale_freq_shift=0``). ``t (B,)`` → ``(B, dim)``.

    Lesson 05.2; the "sinusoid(256)" of JoyAI-Image digest § "MMDiT" (timestep conditioning).
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    ang = t.float()[:, None] * freqs[None]  # (B, half)
    return torch.cat([ang.cos(), ang.sin()], dim=-1)


def _gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    return F.gelu(x, approximate="tanh")


class _TwoLinear(nn.Module):
    """``second(act(first(x)))``: the MMDiT's three small MLPs, which differ only in sizes, activation and
    (to keep diffusers' parameter names, so weights map one to one) the names of the two layers."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, act, names: "tuple[str, str]" = ("linear_1", "linear_2")):
        super().__init__()
        self.act, self.names = act, names
        self.add_module(names[0], nn.Linear(in_dim, hidden))
        self.add_module(names[1], nn.Linear(hidden, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first, second = (getattr(self, n) for n in self.names)
        return second(self.act(first(x)))


class TimestepMLP(_TwoLinear):
    """``linear_1 → SiLU → linear_2`` (diffusers' ``TimestepEmbedding``).

    Lesson 05.2; the "sinusoid(256) → MLP → temb" of JoyAI-Image digest § "MMDiT".
    """

    def __init__(self, in_dim: int, dim: int):
        super().__init__(in_dim, dim, dim, F.silu)


class TextProjection(_TwoLinear):
    """PixArt-α caption projection: ``linear_1 → GELU(tanh) → linear_2`` (condition dim → d).

    Lesson 05.2; JoyAI-Image digest § "MLLM → MMDiT interface" (a PixArt-α text projection maps the
    MLLM states to d_model; no pooled vector).
    """

    def __init__(self, in_dim: int, dim: int):
        super().__init__(in_dim, dim, dim, _gelu_tanh)


class MLP(_TwoLinear):
    """``fc1 → GELU(tanh) → fc2`` (diffusers' ``FeedForward(activation_fn="gelu-approximate")``).

    Lesson 05.2; each stream's MLP in JoyAI-Image digest § "MMDiT" (MLP ratio 4, GELU-tanh).
    """

    def __init__(self, dim: int, hidden: int):
        super().__init__(dim, hidden, dim, _gelu_tanh, names=("fc1", "fc2"))


# ---------------------------------------------------------------------------- the block
class Stream(nn.Module):
    """The per-stream weights of a double-stream block (image or text).

    Lesson 05.2. JoyAI-Image digest § "MMDiT" (separate image and text weights for modulation, qkv,
    QK-RMSNorm, out-proj and MLP; QK-RMSNorm as in SD3, Esser et al. 2024).
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        hd = dim // heads
        self.mod_table = nn.Parameter(torch.zeros(1, 6, dim))  # + shared vector → 6 modulation vectors
        self.qkv = nn.Linear(dim, 3 * dim)
        self.q_norm, self.k_norm = nn.RMSNorm(hd, eps=1e-6), nn.RMSNorm(hd, eps=1e-6)
        self.proj = nn.Linear(dim, dim)
        self.mlp = MLP(dim, int(dim * mlp_ratio))


class DoubleStreamBlock(nn.Module):
    """One MMDiT double-stream block with joint attention (see module docstring).

    Lesson 05.2. JoyAI-Image digest § "MMDiT" (each block SD3/FLUX-style, gated residuals
    x += gate·Attn(mod(LN(x))), x += gate·MLP(mod(LN(x)))); the MM-DiT block of SD3 (Esser et al. 2024).
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.dim, self.heads = dim, heads
        self.img, self.txt = Stream(dim, heads, mlp_ratio), Stream(dim, heads, mlp_ratio)

    def _qkv(self, s: Stream, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        B, N, D = x.shape
        q, k, v = s.qkv(x).chunk(3, dim=-1)  # 3 × (B, N, D)
        q, k, v = (z.view(B, N, self.heads, D // self.heads) for z in (q, k, v))  # (B, N, h, hd)
        q, k = s.q_norm(q), s.k_norm(k)  # QK-RMSNorm per head
        return q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (B, h, N, hd)

    def forward(self, img: torch.Tensor, txt: torch.Tensor, vec: torch.Tensor,
                rope: "tuple[torch.Tensor, torch.Tensor] | None" = None,
                txt_mask: "torch.Tensor | None" = None) -> tuple[torch.Tensor, torch.Tensor]:
        """
        Args:
            img: ``(B, N, D)`` image tokens; txt: ``(B, T, D)`` condition tokens;
            vec: ``(B, 6, D)`` shared modulation vector; rope: ``(cos, sin)`` each ``(N, hd)`` for image
            tokens (text tokens get none); txt_mask: ``(B, T)`` or ``None``.
        Returns:
            updated ``(img, txt)``.
        """
        im = (self.img.mod_table + vec).unbind(1)  # 6 × (B, D): shift1, scale1, gate1, shift2, scale2, gate2
        tm = (self.txt.mod_table + vec).unbind(1)
        qi, ki, vi = self._qkv(self.img, adaln_modulate(img, im[0], im[1]))
        qt, kt, vt = self._qkv(self.txt, adaln_modulate(txt, tm[0], tm[1]))
        if rope is not None:
            qi, ki = apply_rope(qi, *rope), apply_rope(ki, *rope)
        ai, at = joint_attention(qi, ki, vi, qt, kt, vt, txt_mask)  # (B, h, N, hd), (B, h, T, hd)
        ai = ai.transpose(1, 2).flatten(2)  # (B, N, D)
        at = at.transpose(1, 2).flatten(2)  # (B, T, D)
        img = img + im[2].unsqueeze(1) * self.img.proj(ai)
        txt = txt + tm[2].unsqueeze(1) * self.txt.proj(at)
        img = img + im[5].unsqueeze(1) * self.img.mlp(adaln_modulate(img, im[3], im[4]))
        txt = txt + tm[5].unsqueeze(1) * self.txt.mlp(adaln_modulate(txt, tm[3], tm[4]))
        return img, txt


# ---------------------------------------------------------------------------- the model
@dataclass(frozen=True)
class MMDiTConfig:
    """Sizes of the MMDiT (JoyAI-Image: d = 4096, 32 heads, 40 blocks, RoPE axes (16, 56, 56), θ = 10000;
    digest § "MMDiT"). Lesson 05.2."""

    image_size: int = 24
    """Canvas (pixels)."""
    patch: int = 4
    """Patch size (pixels; 4·4·3 = 48 values < d, so noise can pass through a token)."""
    channels: int = 3
    """Image channels (RGB pixels; latents at full scale)."""
    dim: int = 64
    """Model width d."""
    heads: int = 4
    """Attention heads (head dim = dim / heads)."""
    layers: int = 2
    """Double-stream blocks."""
    mlp_ratio: float = 4.0
    """MLP width / d."""
    cond_dim: int = 64
    """Width of the condition sequence (the MLLM's d)."""
    rope_axes: tuple = (4, 6, 6)
    """RoPE channels for (item, row, col); sum = head dim."""
    theta: float = 10000.0
    """RoPE base."""

    def __post_init__(self) -> None:
        if sum(self.rope_axes) != self.dim // self.heads:
            raise ValueError(f"rope_axes {self.rope_axes} must sum to the head dim {self.dim // self.heads}")
        if self.image_size % self.patch:
            raise ValueError(f"image_size {self.image_size} is not divisible by patch {self.patch}")


class MMDiT(nn.Module):
    """The whole denoiser: ``forward(x, timestep, cond, cond_mask, refs) → output (B, C, H, W)``.

    Lesson 05.2 (text → image), lesson 05.3 (editing), lesson 05.4 (inside diffusers). JoyAI-Image
    digest § "MMDiT" (patchify, condition embedder, double-stream blocks, output LayerNorm → Linear →
    unpatchify) and § "Editing / source-image conditioning" (references as extra items, target first).

    ``timestep`` is the raw value fed to the sinusoid (JoyImage passes σ·1000; the toy passes t·1000
    with the course's t = 1 at data). ``refs`` are clean reference images ``(B, R, C, H, W)`` placed
    as items 1..R (editing); the output is the prediction for the target (item 0) only.
    """

    def __init__(self, cfg: MMDiTConfig = MMDiTConfig()):
        super().__init__()
        self.cfg = cfg
        d, p, c = cfg.dim, cfg.patch, cfg.channels
        self.img_in = nn.Linear(c * p * p, d)
        self.time_embedder = TimestepMLP(256, d)
        self.time_proj = nn.Linear(d, 6 * d)
        nn.init.zeros_(self.time_proj.weight)  # adaLN-zero: gates start at 0, each block starts as identity
        nn.init.zeros_(self.time_proj.bias)
        self.text_embedder = TextProjection(cfg.cond_dim, d)
        self.blocks = nn.ModuleList([DoubleStreamBlock(d, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.layers)])
        self.proj_out = nn.Linear(d, p * p * c)

    @property
    def grid(self) -> int:
        return self.cfg.image_size // self.cfg.patch

    def unpatchify(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(B, N, p·p·C)`` with features ordered (p_h, p_w, C) → ``(B, C, H, W)`` (diffusers' order)."""
        B, p, c, g = tokens.shape[0], self.cfg.patch, self.cfg.channels, self.grid
        x = tokens.reshape(B, g, g, p, p, c)  # (B, h, w, ph, pw, C)
        return x.permute(0, 5, 1, 3, 2, 4).reshape(B, c, g * p, g * p)

    def forward(self, x: torch.Tensor, timestep: torch.Tensor, cond: torch.Tensor,
                cond_mask: "torch.Tensor | None" = None, refs: "torch.Tensor | None" = None) -> torch.Tensor:
        """
        Args:
            x: ``(B, C, H, W)`` noisy target; timestep: ``(B,)``; cond: ``(B, T, cond_dim)``;
            cond_mask: ``(B, T)`` or ``None``; refs: ``(B, R, C, H, W)`` clean references or ``None``.
        Returns:
            ``(B, C, H, W)`` the prediction for the target.
        """
        return self.unpatchify(self.proj_out(self.target_features(x, timestep, cond, cond_mask, refs)))

    def target_features(self, x: torch.Tensor, timestep: torch.Tensor, cond: torch.Tensor,
                        cond_mask: "torch.Tensor | None" = None, refs: "torch.Tensor | None" = None) -> torch.Tensor:
        """The target item's final tokens after the output LayerNorm, ``(B, g², d)``: what ``proj_out`` reads.

        Lesson 05.3 (the toy editor's residual head reads them too; ``editing.ResidualEditor``).
        Arguments as ``forward``.
        """
        B = x.shape[0]
        if x.dim() != 4 or x.shape[1:] != (self.cfg.channels, self.cfg.image_size, self.cfg.image_size):
            raise ValueError(f"x must be (B, {self.cfg.channels}, {self.cfg.image_size}, {self.cfg.image_size}), got {tuple(x.shape)}")
        if cond.dim() != 3 or cond.shape[0] != B or cond.shape[2] != self.cfg.cond_dim:
            raise ValueError(f"cond must be (B={B}, T, {self.cfg.cond_dim}), got {tuple(cond.shape)}")
        items = x.unsqueeze(1) if refs is None else torch.cat([x.unsqueeze(1), refs], dim=1)  # (B, n, C, H, W), target first
        n = items.shape[1]
        img = self.img_in(patchify(items.flatten(0, 1), self.cfg.patch))  # (B·n, g², d)
        img = img.reshape(B, n * self.grid ** 2, -1)  # (B, n·g², d), item-major
        temb = self.time_embedder(timestep_embedding(timestep))  # (B, d)
        vec = self.time_proj(F.silu(temb)).unflatten(1, (6, -1))  # (B, 6, d)
        txt = self.text_embedder(cond)  # (B, T, d)
        cos, sin = rope_frequencies(rope_positions(n, self.grid, self.grid), self.cfg.rope_axes, self.cfg.theta)
        rope = (cos.to(x.device), sin.to(x.device))
        for blk in self.blocks:
            img, txt = blk(img, txt, vec, rope, cond_mask)
        return F.layer_norm(img[:, : self.grid ** 2].float(), (img.shape[-1],), eps=1e-6)  # target tokens (B, g², d)


# ---------------------------------------------------------------------------- diffusers interop
def _block_key_map(i: int) -> dict:
    """Our parameter names in block ``i`` → diffusers ``JoyImageEditTransformer3DModel`` names."""
    m = {}
    for ours, theirs in (("img", "img"), ("txt", "txt")):
        b, db = f"blocks.{i}.{ours}", f"double_blocks.{i}"
        m[f"{b}.mod_table"] = f"{db}.{theirs}_mod.modulate_table"
        for w in ("weight", "bias"):
            m[f"{b}.qkv.{w}"] = f"{db}.attn.{theirs}_attn_qkv.{w}"
            m[f"{b}.proj.{w}"] = f"{db}.attn.{theirs}_attn_proj.{w}"
            m[f"{b}.mlp.fc1.{w}"] = f"{db}.{theirs}_mlp.net.0.proj.{w}"
            m[f"{b}.mlp.fc2.{w}"] = f"{db}.{theirs}_mlp.net.2.{w}"
        m[f"{b}.q_norm.weight"] = f"{db}.attn.{theirs}_attn_q_norm.weight"
        m[f"{b}.k_norm.weight"] = f"{db}.attn.{theirs}_attn_k_norm.weight"
    return m


def diffusers_key_map(n_layers: int) -> dict:
    """Every parameter name of ``MMDiT`` → its ``JoyImageEditTransformer3DModel`` name.

    Lessons 05.2 and 05.4; the diffusers class of JoyAI-Image digest § "Official code & related libraries".
    """
    m = {}
    for w in ("weight", "bias"):
        m[f"img_in.{w}"] = f"img_in.{w}"
        m[f"time_embedder.linear_1.{w}"] = f"condition_embedder.time_embedder.linear_1.{w}"
        m[f"time_embedder.linear_2.{w}"] = f"condition_embedder.time_embedder.linear_2.{w}"
        m[f"time_proj.{w}"] = f"condition_embedder.time_proj.{w}"
        m[f"text_embedder.linear_1.{w}"] = f"condition_embedder.text_embedder.linear_1.{w}"
        m[f"text_embedder.linear_2.{w}"] = f"condition_embedder.text_embedder.linear_2.{w}"
        m[f"proj_out.{w}"] = f"proj_out.{w}"
    for i in range(n_layers):
        m.update(_block_key_map(i))
    return m


def load_diffusers_weights(model: MMDiT, diffusers_state: dict) -> None:
    """Copy a ``JoyImageEditTransformer3DModel`` state dict into ``model`` (Conv3d patch kernel → Linear).

    Lesson 05.2 (our MMDiT agrees with diffusers'); JoyAI-Image digest § "MMDiT" (patchify is a Conv3d).

    Raises ``KeyError`` naming the first missing diffusers key and ``ValueError`` on a shape mismatch.
    """
    ours = model.state_dict()
    new = {}
    for k, dk in diffusers_key_map(model.cfg.layers).items():
        if dk not in diffusers_state:
            raise KeyError(f"diffusers state dict has no {dk!r} (needed for {k!r}); is it a JoyImage transformer with {model.cfg.layers} blocks?")
        v = diffusers_state[dk]
        if k == "img_in.weight":
            v = v.reshape(v.shape[0], -1)  # Conv3d (d, C, 1, p, p) → Linear (d, C·p·p)
        if v.shape != ours[k].shape:
            raise ValueError(f"{dk}: shape {tuple(v.shape)} does not fit {k} {tuple(ours[k].shape)}")
        new[k] = v
    model.load_state_dict(new)


def load_diffusers_block(block: DoubleStreamBlock, diffusers_block_state: dict) -> None:
    """Copy one diffusers ``JoyImageTransformerBlock``'s state dict into ``block``.

    Lesson 05.2 (block-level check against diffusers); JoyAI-Image digest § "MMDiT".
    """
    m = {k.split(".", 2)[2]: v.split(".", 2)[2] for k, v in _block_key_map(0).items()}
    block.load_state_dict({k: diffusers_block_state[v] for k, v in m.items()})
