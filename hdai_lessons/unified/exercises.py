"""Module 05's exercises (ids "05.L.E"): the pieces of a unified MLLM + MMDiT model."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from hdai_lessons.course.checkers import Case, Exercise, Mistake, register
from hdai_lessons.unified.conditioning import condition_from_hidden
from hdai_lessons.unified.guidance import cfg_combine, cfg_rescaled
from hdai_lessons.unified.mllm import answer_loss, causal_self_attention, patchify
from hdai_lessons.unified.mmdit import (adaln_modulate, apply_rope, joint_attention, rope_frequencies, rope_positions,
                                        same_position_attention)
from hdai_lessons.unified.editing import edit_loss


def _g(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------------------- lesson 05.1
def _patchify_cases() -> list[Case]:
    g = _g(0)
    return [
        Case((torch.arange(2 * 3 * 4 * 4, dtype=torch.float64).reshape(2, 3, 4, 4), 2), label="counting image, p=2"),
        Case((torch.randn(3, 3, 6, 12, generator=g, dtype=torch.float64), 3), label="non-square image, p=3"),
        Case((torch.randn(1, 2, 8, 8, generator=g, dtype=torch.float64), 4), label="2 channels, p=4"),
    ]


def _patchify_channels_last(images, p):
    B, C, H, W = images.shape
    return images.reshape(B, C, H // p, p, W // p, p).permute(0, 2, 4, 3, 5, 1).reshape(B, -1, C * p * p)


def _patchify_column_major(images, p):
    B, C, H, W = images.shape
    return images.reshape(B, C, H // p, p, W // p, p).permute(0, 4, 2, 1, 3, 5).reshape(B, -1, C * p * p)


register(Exercise(
    id="05.1.1", title="cut an image into patch tokens (patchify)", reference=patchify, cases=_patchify_cases,
    difficulty=2, importance=3, minutes=10,
    mistakes=[
        Mistake("channels last inside a patch", _patchify_channels_last,
                "flatten each patch as (C, p, p), channel first — the order a Conv patch embedding's kernel uses."),
        Mistake("column-major patch order", _patchify_column_major,
                "patches go row by row: patch n = i·(W/p) + j, so permute the row-block axis before the column-block axis."),
        Mistake("reshape without permute", lambda images, p: images.reshape(images.shape[0], -1, images.shape[1] * p * p),
                "a plain reshape mixes pixels of different patches: split H and W into blocks, then permute."),
    ],
))


def _attn_cases() -> list[Case]:
    g = _g(1)
    return [
        Case(tuple(torch.randn(2, 3, 5, 4, generator=g, dtype=torch.float64) for _ in range(3)), label="B=2, h=3, T=5, d=4"),
        Case(tuple(torch.randn(1, 1, 7, 8, generator=g, dtype=torch.float64) * 3 for _ in range(3)), label="one head, T=7"),
    ]


def _attn_no_mask(q, k, v):
    return (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).softmax(-1) @ v


def _attn_no_scale(q, k, v):
    T = q.shape[-2]
    s = (q @ k.transpose(-2, -1)).masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
    return s.softmax(-1) @ v


def _attn_wrong_axis(q, k, v):
    T = q.shape[-2]
    s = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
    return torch.nan_to_num(s.softmax(-2)) @ v


def _attn_mask_past(q, k, v):
    T = q.shape[-2]
    s = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).masked_fill(torch.ones(T, T, dtype=torch.bool).tril(-1), float("-inf"))
    return s.softmax(-1) @ v


register(Exercise(
    id="05.1.2", title="causal self-attention written out", reference=causal_self_attention, cases=_attn_cases,
    grad_wrt=(0, 1, 2), difficulty=2, importance=3, minutes=12,
    mistakes=[
        Mistake("no causal mask", _attn_no_mask, "position i must not see positions j > i: set those scores to −inf before the softmax."),
        Mistake("no 1/√d scaling", _attn_no_scale, "divide the scores by √d (the head dimension) before the softmax."),
        Mistake("softmax over queries", _attn_wrong_axis, "normalise over the keys (the last axis), so each query's weights sum to 1."),
        Mistake("masked the past instead of the future", _attn_mask_past, "mask j > i (above the diagonal: triu(1)), not j < i."),
    ],
))


def _loss_cases() -> list[Case]:
    g = _g(2)
    logits = torch.randn(3, 6, 11, generator=g, dtype=torch.float64)
    tokens = torch.randint(0, 11, (3, 6), generator=g)
    mask = torch.tensor([[0, 0, 0, 1, 1, 0], [0, 0, 1, 1, 1, 1], [0, 0, 0, 0, 1, 0]], dtype=torch.float64)
    mask2 = torch.tensor([[0, 1, 1, 1, 0, 0], [0, 0, 0, 0, 0, 1], [0, 0, 1, 0, 0, 0]], dtype=torch.float64)
    return [Case((logits, tokens, mask), label="answers of different lengths"),
            Case((logits * 4, tokens, mask2), label="sharper logits")]


def _loss_no_shift(logits, tokens, mask):
    nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens.reshape(-1), reduction="none").reshape(tokens.shape)
    return (nll * mask).sum() / mask.sum().clamp_min(1)


def _loss_no_mask(logits, tokens, mask):
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1))


def _loss_mask_unshifted(logits, tokens, mask):
    nll = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1), reduction="none").reshape(tokens[:, 1:].shape)
    m = mask[:, :-1]
    return (nll * m).sum() / m.sum().clamp_min(1)


def _loss_mean_all(logits, tokens, mask):
    nll = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1), reduction="none").reshape(tokens[:, 1:].shape)
    return (nll * mask[:, 1:]).mean()


register(Exercise(
    id="05.1.3", title="next-token loss on answer tokens only", reference=answer_loss, cases=_loss_cases,
    grad_wrt=(0,), difficulty=2, importance=3, minutes=12,
    mistakes=[
        Mistake("no shift (off by one)", _loss_no_shift, "the logit at position i predicts token i+1: score logits[:, :-1] against tokens[:, 1:]."),
        Mistake("loss on every token", _loss_no_mask, "only answer tokens count: the question and padding are given, not predicted."),
        Mistake("mask not shifted with the targets", _loss_mask_unshifted, "the mask marks tokens, so shift it like the targets: loss_mask[:, 1:]."),
        Mistake("mean over all positions", _loss_mean_all, "divide by the number of answer tokens (the mask's sum), not by B·(L−1)."),
    ],
))


# ---------------------------------------------------------------------------- lesson 05.2
def _joint_cases() -> list[Case]:
    g = _g(3)

    def r(*s):
        return torch.randn(*s, generator=g, dtype=torch.float64)
    img = [r(2, 2, 4, 8) for _ in range(3)]
    txt = [r(2, 2, 3, 8) for _ in range(3)]
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    return [Case((*img, *txt), label="no padding"),
            Case((*img, *txt, mask), label="padded text keys"),
            Case((*(x * 2 for x in img[:1]), *img[1:], *txt), label="larger image queries")]


def _joint_separate(qi, ki, vi, qt, kt, vt, txt_mask=None):
    oi = F.scaled_dot_product_attention(qi, ki, vi)
    mask = None if txt_mask is None else txt_mask.bool()[:, None, None, :]
    return oi, F.scaled_dot_product_attention(qt, kt, vt, attn_mask=mask)


def _joint_ignore_mask(qi, ki, vi, qt, kt, vt, txt_mask=None):
    return joint_attention(qi, ki, vi, qt, kt, vt, None)


def _joint_no_scale(qi, ki, vi, qt, kt, vt, txt_mask=None):
    q, k, v = (torch.cat(p, 2) for p in ((qi, qt), (ki, kt), (vi, vt)))
    s = q @ k.transpose(-2, -1)
    if txt_mask is not None:
        keep = torch.cat([torch.ones(txt_mask.shape[0], qi.shape[2], dtype=torch.bool), txt_mask.bool()], 1)
        s = s.masked_fill(~keep[:, None, None, :], float("-inf"))
    o = s.softmax(-1) @ v
    return o[:, :, : qi.shape[2]], o[:, :, qi.shape[2]:]


register(Exercise(
    id="05.2.1", title="joint attention over image and text tokens", reference=joint_attention, cases=_joint_cases,
    difficulty=2, importance=3, minutes=15,
    mistakes=[
        Mistake("two separate attentions", _joint_separate,
                "MMDiT's point is ONE softmax over [image; text]: concatenate queries, keys and values along the sequence."),
        Mistake("ignored the text padding mask", _joint_ignore_mask, "padded text tokens must not be attended to: mask their keys (−inf)."),
        Mistake("no 1/√d scaling", _joint_no_scale, "scale the scores by 1/√d (or use F.scaled_dot_product_attention)."),
    ],
))


def _rope_cases() -> list[Case]:
    g = _g(4)
    cos, sin = rope_frequencies(rope_positions(2, 2, 3), (4, 6, 6), 10000.0)
    cos2, sin2 = rope_frequencies(rope_positions(1, 3, 3) * 2, (2, 4, 2), 100.0)
    return [Case((torch.randn(2, 2, 12, 16, generator=g, dtype=torch.float64), cos.double(), sin.double()), label="2 items of 2×3 tokens"),
            Case((torch.randn(1, 3, 9, 8, generator=g, dtype=torch.float64), cos2.double(), sin2.double()), label="θ = 100, head dim 8")]


def _rope_rotate_half(x, cos, sin):
    x0, x1 = x.chunk(2, dim=-1)
    return x * cos + torch.cat([-x1, x0], -1) * sin


def _rope_sign(x, cos, sin):
    x0, x1 = x.reshape(*x.shape[:-1], -1, 2).unbind(-1)
    return x * cos + torch.stack([x1, -x0], -1).flatten(-2) * sin


register(Exercise(
    id="05.2.2", title="rotary position embedding on interleaved pairs", reference=apply_rope, cases=_rope_cases,
    grad_wrt=(0,), difficulty=2, importance=2, minutes=12,
    mistakes=[
        Mistake("rotate-half convention", _rope_rotate_half,
                "JoyImage pairs ADJACENT channels (x₀, x₁), (x₂, x₃), … — not the first half with the second half."),
        Mistake("rotation in the wrong direction", _rope_sign, "the rotated pair is (−x₁, x₀): (x₀ cos − x₁ sin, x₁ cos + x₀ sin)."),
        Mistake("cos only", lambda x, cos, sin: x * cos, "a rotation mixes the pair: add rot(x)·sin."),
    ],
))


def _adaln_cases() -> list[Case]:
    g = _g(5)

    def r(*s, scale=1.0):
        return torch.randn(*s, generator=g, dtype=torch.float64) * scale
    return [Case((r(2, 5, 8, scale=3.0) + 1, r(2, 8), r(2, 8)), label="B=2, N=5, D=8"),
            Case((r(3, 1, 4), r(3, 4), r(3, 4, scale=0.1)), label="one token per sample")]


def _ln(x):
    return F.layer_norm(x, (x.shape[-1],), eps=1e-6)


register(Exercise(
    id="05.2.3", title="adaLN modulation: LN(x)·(1 + scale) + shift", reference=adaln_modulate, cases=_adaln_cases,
    grad_wrt=(0, 1, 2), difficulty=1, importance=3, minutes=8,
    mistakes=[
        Mistake("scale without the 1 +", lambda x, sh, sc, eps=1e-6: _ln(x) * sc.unsqueeze(1) + sh.unsqueeze(1),
                "modulation is (1 + scale) so that scale = 0 (adaLN-zero's start) leaves the normalised input unchanged."),
        Mistake("no LayerNorm", lambda x, sh, sc, eps=1e-6: x * (1 + sc.unsqueeze(1)) + sh.unsqueeze(1),
                "normalise x over its features first (LayerNorm without affine weights)."),
        Mistake("normalised over tokens", lambda x, sh, sc, eps=1e-6: ((x - x.mean(1, keepdim=True)) / (x.var(1, unbiased=False, keepdim=True) + eps).sqrt()) * (1 + sc.unsqueeze(1)) + sh.unsqueeze(1),
                "LayerNorm normalises each token over its D features (the last axis), not over the tokens."),
        Mistake("shift and scale swapped", lambda x, sh, sc, eps=1e-6: _ln(x) * (1 + sh.unsqueeze(1)) + sc.unsqueeze(1),
                "the vectors come as (shift, scale, gate): multiply by 1 + scale, add shift."),
    ],
))


def _spa_cases() -> list[Case]:
    g = _g(11)
    u = torch.randn(16, generator=g, dtype=torch.float64)
    return [Case((u, 3, (4, 6, 6), 10000.0), label="3×3 grid, θ = 10000"),
            Case((u * 3, 4, (4, 6, 6), 10.0), label="4×4 grid, θ = 10, larger content"),
            Case((torch.randn(8, generator=g, dtype=torch.float64) * 2, 5, (2, 2, 4), 100.0), label="5×5 grid, other axes")]


def _spa_parts(u, grid, axes, theta):
    d = u.shape[-1]
    cos, sin = rope_frequencies(rope_positions(2, grid, grid), axes, theta)
    r = apply_rope(u.expand(1, 1, 2 * grid * grid, d), cos, sin)[0, 0]
    return r[: grid * grid], r[grid * grid:], u.expand(grid * grid, d), d


def _spa_rotate_half(u, grid, axes, theta):
    d = u.shape[-1]
    cos, sin = rope_frequencies(rope_positions(2, grid, grid), axes, theta)
    x = u.expand(2 * grid * grid, d)
    r = x * cos + torch.cat([-x[:, d // 2:], x[:, : d // 2]], -1) * sin
    q, k = r[: grid * grid], r[grid * grid:]
    return torch.softmax(q @ k.T / math.sqrt(d), -1).diagonal()


register(Exercise(
    id="05.2.4", title="copy attention: the weight a target token puts on the source token at its own position",
    reference=same_position_attention, cases=_spa_cases, difficulty=2, importance=2, minutes=12,
    mistakes=[
        Mistake("keys not rotated", lambda u, g, a, t: (lambda q, k, u0, d: torch.softmax(q @ u0.T / math.sqrt(d), -1).diagonal())(*_spa_parts(u, g, a, t)),
                "rotate the keys too: RoPE acts on q AND k, so the score depends on the offset between them."),
        Mistake("no 1/√d", lambda u, g, a, t: (lambda q, k, u0, d: torch.softmax(q @ k.T, -1).diagonal())(*_spa_parts(u, g, a, t)),
                "scaled dot-product attention divides the scores by √d (d = the head dim)."),
        Mistake("rotate-half pairs", _spa_rotate_half,
                "JoyImage's RoPE rotates ADJACENT channel pairs (x₂ᵢ, x₂ᵢ₊₁) (interleaved, `apply_rope`), not (xᵢ, xᵢ₊d/₂)."),
    ],
))


# ---------------------------------------------------------------------------- lesson 05.3
def _cond_cases() -> list[Case]:
    g = _g(6)
    h = torch.randn(3, 7, 4, generator=g, dtype=torch.float64)
    right = torch.tensor([[1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 0, 0]])
    left = torch.tensor([[1, 1, 1, 1, 1, 1, 1], [0, 0, 0, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1, 1]])
    return [Case((h, right, 2), label="right-padded rows, drop 2"),
            Case((h, left, 2), label="left-padded rows, drop 2"),
            Case((h, right, 3), label="drop 3")]


def _cond_slice(hidden, mask, drop):
    return hidden[:, drop:] * mask[:, drop:, None], mask[:, drop:].long()


def _cond_no_drop(hidden, mask, drop):
    return condition_from_hidden(hidden, mask, 0)


def _cond_drop_end(hidden, mask, drop):
    rows = [h[m.bool()] for h, m in zip(hidden, mask)]
    rows = [r[: r.shape[0] - drop] for r in rows]
    T = max(r.shape[0] for r in rows)
    out = hidden.new_zeros(len(rows), T, hidden.shape[-1])
    om = torch.zeros(len(rows), T, dtype=torch.long)
    for b, r in enumerate(rows):
        out[b, : r.shape[0]], om[b, : r.shape[0]] = r, 1
    return out, om


register(Exercise(
    id="05.3.1", title="MLLM hidden states → condition sequence (drop the template, re-pack)",
    reference=condition_from_hidden, cases=_cond_cases, difficulty=2, importance=3, minutes=15,
    mistakes=[
        Mistake("sliced the padded tensor", _cond_slice,
                "with left padding the template does not start at index 0: select each row's real tokens (mask == 1) first, then drop."),
        Mistake("kept the template", _cond_no_drop, "drop the first `drop` real tokens: the system template is the same for every prompt and carries no content."),
        Mistake("dropped from the end", _cond_drop_end, "the template is a PREFIX: drop the first tokens, keep the prompt's."),
    ],
))


def _edit_loss_cases() -> list[Case]:
    g = _g(7)
    x1h, tgt, src = (torch.randn(4, 3, 4, 4, generator=g, dtype=torch.float64) for _ in range(3))
    return [Case((x1h, tgt, src, torch.tensor([False, True, False, True])), label="two of four instructions dropped"),
            Case((x1h, tgt, src, torch.tensor([True, False, False, False])), label="one dropped"),
            Case((x1h[:2] * 2, tgt[:2], src[:2], torch.tensor([False, False])), label="none dropped")]


register(Exercise(
    id="05.3.2", title="the editing loss: image space, and a dropped instruction means keep the image",
    reference=edit_loss, cases=_edit_loss_cases, grad_wrt=(0,), difficulty=1, importance=3, minutes=8,
    mistakes=[
        Mistake("dropped rows still trained on the target",
                lambda x1h, tgt, src, d: (x1h - tgt).pow(2).flatten(1).sum(-1).mean(),
                "with the instruction dropped, the only thing the model can be asked to do is keep the image: "
                "the row's target is the SOURCE. Otherwise the unconditional branch means 'some edit' and CFG pushes away from edits."),
        Mistake("dropped rows left out of the loss",
                lambda x1h, tgt, src, d: ((x1h - tgt).pow(2).flatten(1).sum(-1) * (~d)).sum() / (~d).sum().clamp_min(1),
                "keep the dropped rows in the loss (their target is the source): they are what trains the unconditional branch."),
        Mistake("mean over values instead of sum",
                lambda x1h, tgt, src, d: (x1h - torch.where(d.view(-1, 1, 1, 1), src, tgt)).pow(2).mean(),
                "the course's losses sum the squared error over an image's values, then average over the batch."),
        Mistake("source and target swapped",
                lambda x1h, tgt, src, d: (x1h - torch.where(d.view(-1, 1, 1, 1), tgt, src)).pow(2).flatten(1).sum(-1).mean(),
                "rows WITH an instruction are trained towards the edited target; only dropped rows towards the source."),
    ],
))


def _cfg_cases() -> list[Case]:
    g = _g(8)
    vc = torch.randn(2, 3, 4, 4, generator=g, dtype=torch.float64)
    vu = torch.randn(2, 3, 4, 4, generator=g, dtype=torch.float64)
    return [Case((vc, vu, 4.0), label="w = 4"), Case((vc, vu, 1.5), label="w = 1.5"), Case((vc * 3, vu, 7.0), label="w = 7")]


register(Exercise(
    id="05.3.3", title="classifier-free guidance with norm rescaling", reference=cfg_rescaled, cases=_cfg_cases,
    grad_wrt=(0, 1), difficulty=2, importance=3, minutes=10,
    mistakes=[
        Mistake("no rescaling", lambda vc, vu, w, dim=1, eps=1e-6: cfg_combine(vc, vu, w),
                "after combining, rescale to the conditional norm: v · ‖v_c‖ / ‖v‖."),
        Mistake("one norm per sample", lambda vc, vu, w, dim=1, eps=1e-6: cfg_combine(vc, vu, w) * (vc.flatten(1).norm(dim=1) / cfg_combine(vc, vu, w).flatten(1).norm(dim=1))[:, None, None, None],
                "JoyImage rescales per pixel: the norm is over the channel axis only (dim=1 here, dim=2 on diffusers' latents)."),
        Mistake("cond and uncond swapped", lambda vc, vu, w, dim=1, eps=1e-6: cfg_rescaled(vu, vc, w),
                "guidance pushes AWAY from the unconditional: v_u + w (v_c − v_u), rescaled to ‖v_c‖."),
        Mistake("rescaled to the unconditional norm", lambda vc, vu, w, dim=1, eps=1e-6: cfg_combine(vc, vu, w) * vu.norm(dim=1, keepdim=True) / cfg_combine(vc, vu, w).norm(dim=1, keepdim=True),
                "match the CONDITIONAL prediction's norm, ‖v_c‖."),
    ],
))


# ---------------------------------------------------------------------------- lesson 05.4
from hdai_lessons.unified.full import euler_step_sigma, joyimage_guidance, pack_edit_items  # noqa: E402


def _euler_cases() -> list[Case]:
    g = _g(9)
    x, v = torch.randn(2, 16, 1, 4, 4, generator=g, dtype=torch.float64), torch.randn(2, 16, 1, 4, 4, generator=g, dtype=torch.float64)
    return [Case((x, v, 1.0, 0.9), label="first step, σ 1 → 0.9"), Case((x, v * 2, 0.35, 0.0), label="last step, σ 0.35 → 0")]


register(Exercise(
    id="05.4.1", title="one FlowMatchEulerDiscreteScheduler step by hand", reference=euler_step_sigma, cases=_euler_cases,
    grad_wrt=(0, 1), difficulty=1, importance=2, minutes=6,
    mistakes=[
        Mistake("sign error", lambda x, v, s, sn: x + (s - sn) * v,
                "σ decreases from 1 (noise) to 0 (data) and v = noise − data, so the step is x + (σ_next − σ)·v."),
        Mistake("jumped to the denoised estimate", lambda x, v, s, sn: x - s * v,
                "x − σ·v is the model's guess of the clean image (a full jump to σ = 0), not one step to σ_next."),
        Mistake("absolute σ instead of the difference", lambda x, v, s, sn: x + sn * v, "multiply v by the step Δσ = σ_next − σ."),
    ],
))


def _pack_cases() -> list[Case]:
    g = _g(10)
    return [Case((torch.randn(2, 4, 1, 3, 3, generator=g, dtype=torch.float64), torch.randn(2, 4, 1, 3, 3, generator=g, dtype=torch.float64)),
                 label="B=2, C=4, T=1, 3×3 latents"),
            Case((torch.randn(1, 16, 1, 2, 4, generator=g, dtype=torch.float64), torch.randn(1, 16, 1, 2, 4, generator=g, dtype=torch.float64)),
                 label="16 channels")]


register(Exercise(
    id="05.4.2", title="pack source and target latents as JoyImage items", reference=pack_edit_items, cases=_pack_cases,
    grad_wrt=(0, 1), difficulty=1, importance=2, minutes=5,
    mistakes=[
        Mistake("target first", lambda s, n: torch.stack([n, s], dim=1),
                "the pipeline puts references first and the noisy target LAST; the transformer rotates it to the front itself."),
        Mistake("concatenated on channels", lambda s, n: torch.cat([s, n], dim=1),
                "items are a new axis (B, n, C, T, H, W), not extra channels: they get their own RoPE item index."),
        Mistake("concatenated on time", lambda s, n: torch.cat([s, n], dim=2),
                "stack along a new item axis (dim 1); the transformer flattens items into its time axis itself."),
    ],
))


def _jg_cases() -> list[Case]:
    g = _g(11)
    vc = torch.randn(2, 2, 4, 1, 3, 3, generator=g, dtype=torch.float64)
    vu = torch.randn(2, 2, 4, 1, 3, 3, generator=g, dtype=torch.float64)
    return [Case((vc, vu, 4.0), label="w = 4, two items"), Case((vc * 0.5, vu, 2.5), label="w = 2.5")]


register(Exercise(
    id="05.4.3", title="the pipeline's rescaled CFG on (B, items, C, T, H, W) latents", reference=joyimage_guidance,
    cases=_jg_cases, grad_wrt=(0, 1), difficulty=1, importance=2, minutes=6,
    mistakes=[
        Mistake("norm over the items axis", lambda vc, vu, w: cfg_rescaled(vc, vu, w, dim=1),
                "the channel axis of diffusers' latents is dim 2 (dim 1 counts items)."),
        Mistake("no rescaling", lambda vc, vu, w: cfg_combine(vc, vu, w), "rescale to ‖v_c‖ over channels after combining."),
        Mistake("one norm per sample", lambda vc, vu, w: cfg_combine(vc, vu, w) * vc.flatten(1).norm(dim=1)[:, None, None, None, None, None]
                / cfg_combine(vc, vu, w).flatten(1).norm(dim=1)[:, None, None, None, None, None],
                "the pipeline's torch.norm(noise_pred, dim=2, keepdim=True) is per position, over channels only."),
    ],
))
