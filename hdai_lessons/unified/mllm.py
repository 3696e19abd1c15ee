"""A tiny multimodal LLM: image patches and words in one causal transformer, trained by next-token loss.

Lesson 05.1 builds and trains it; 05.3 reads its hidden states as the MMDiT's condition.

The JoyAI-Image MLLM is Qwen3-VL-8B (a ViT feeding a causal LM). The toy keeps the idea and drops
the scale: an image is cut into ``p × p`` patches, each patch is one token (a linear *patch
embedding* plus a learned 2-D position), and the words follow. One sequence::

    [template: <bos> <sys> describe colour shape :] [image tokens (N)] [question] <ans> [answer] <eos>

Understanding is next-token prediction of the answer (the loss form the digest infers for the
paper: L_NTP = −Σ_i log p(y_i | y_<i, image, prompt)). The *same* forward pass, run on an
instruction, yields the last-layer hidden states that condition the MMDiT (``conditioning.py``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from hdai_lessons.unified.shapes import ANS, BOS, EOS, PAD, SYS, TOKEN_ID, VOCAB, decode

TEMPLATE = [BOS, SYS, TOKEN_ID["describe"], TOKEN_ID["colour"], TOKEN_ID["shape"], TOKEN_ID[":"]]


def patchify(images: torch.Tensor, p: int) -> torch.Tensor:
    """Cut images into non-overlapping ``p × p`` patches, row-major, each flattened as (C, p, p).

    Lesson 05.1 (exercise 05.1.1); the MMDiT reuses it for its patch embedding (lesson 05.2). JoyAI-Image
    digest § "MLLM" (ViT patch 16) and § "MMDiT" (patchify: Conv3d, patch (1, 2, 2)); the toy's
    "image as patches → tokens" of § "Toy experiment for the course".

    Args:
        images: ``(B, C, H, W)`` with ``H, W`` divisible by ``p``.
    Returns:
        ``(B, N, C·p·p)`` with ``N = (H/p)·(W/p)``; patch ``n = i·(W/p) + j`` covers rows
        ``i·p … i·p+p−1`` and columns ``j·p … j·p+p−1`` (the order a Conv2d/Conv3d patch embedding uses).
    """
    B, C, H, W = images.shape
    if H % p or W % p:
        raise ValueError(f"image size {(H, W)} is not divisible by the patch size {p}")
    x = images.reshape(B, C, H // p, p, W // p, p)  # (B, C, h, p, w, p)
    x = x.permute(0, 2, 4, 1, 3, 5)  # (B, h, w, C, p, p)
    return x.reshape(B, (H // p) * (W // p), C * p * p)  # (B, N, C·p·p)


def causal_self_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Scaled dot-product attention where position i sees positions ≤ i (written out, no fused kernel).

    Lesson 05.1 (exercise 05.1.2); the causal LM of JoyAI-Image digest § "MLLM" (understanding is plain
    autoregressive generation).

    softmax(q kᵀ / √d + M) v with M_ij = −∞ for j > i.

    Args:
        q, k, v: ``(B, h, T, d)``.
    Returns:
        ``(B, h, T, d)``.
    """
    T = q.shape[-2]
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, h, T, T)
    future = torch.ones(T, T, dtype=torch.bool, device=q.device).triu(1)  # True above the diagonal
    scores = scores.masked_fill(future, float("-inf"))
    return scores.softmax(dim=-1) @ v


def answer_loss(logits: torch.Tensor, tokens: torch.Tensor, loss_mask: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy on answer tokens only (L_NTP of the digest), a scalar.

    Lesson 05.1 (exercise 05.1.3). L_NTP = −Σ_i log p(y_i | y_<i, image, prompt), JoyAI-Image digest
    § "Losses" (an inferred standard form; the paper states no equation).

    The logit at position i predicts token i+1, so logits ``[:, :-1]`` are scored against tokens
    ``[:, 1:]``; ``loss_mask[:, i] = 1`` marks tokens ``i`` that belong to the answer (their loss
    counts). The mean is over counted tokens.

    Args:
        logits: ``(B, L, V)``; tokens: ``(B, L)`` long; loss_mask: ``(B, L)`` {0, 1}.
    """
    pred = logits[:, :-1]  # (B, L-1, V) predicts tokens[:, 1:]
    target = tokens[:, 1:]
    m = loss_mask[:, 1:].to(pred.dtype)
    nll = F.cross_entropy(pred.reshape(-1, pred.shape[-1]), target.reshape(-1), reduction="none").reshape(target.shape)
    return (nll * m).sum() / m.sum().clamp_min(1.0)


@dataclass(frozen=True)
class MLLMConfig:
    """Sizes of the tiny MLLM (lesson 05.1; the full-scale one is Qwen3-VL-8B: 36 layers, d = 4096,
    JoyAI-Image digest § "MLLM")."""

    d: int = 64
    """Model width."""
    layers: int = 2
    """Transformer blocks."""
    heads: int = 4
    """Attention heads."""
    patch: int = 6
    """Image patch size (pixels)."""
    image_size: int = 24
    """Canvas size (pixels)."""
    max_text: int = 40
    """Longest text (template + words) in tokens."""
    vocab: int = len(VOCAB)
    """Vocabulary size (the shapes world's words and specials)."""

    @property
    def n_patches(self) -> int:
        return (self.image_size // self.patch) ** 2


class Block(nn.Module):
    """Pre-LN causal transformer block: x + Attn(LN(x)), then x + MLP(LN(x)).

    Lesson 05.1; a small stand-in for a Qwen3-VL decoder layer (JoyAI-Image digest § "MLLM").
    """

    def __init__(self, d: int, heads: int):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, D = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(D, dim=-1)  # 3 × (B, T, D)
        q, k, v = (z.view(B, T, self.heads, D // self.heads).transpose(1, 2) for z in (q, k, v))  # (B, h, T, hd)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # = causal_self_attention(q, k, v)
        x = x + self.proj(a.transpose(1, 2).reshape(B, T, D))
        return x + self.mlp(self.ln2(x))


class TinyMLLM(nn.Module):
    """Patch embedding + word embedding + causal transformer + LM head.

    Lesson 05.1 trains it (stage 1); lesson 05.3 conditions the MMDiT on its hidden states.
    JoyAI-Image digest § "MLLM" (scaled down as § "Toy experiment for the course" proposes).

    ``forward(images, text)`` returns ``(logits over the text positions, last-layer hidden states
    of the whole sequence)``. Image tokens carry a learned 2-D position; text tokens a learned 1-D
    position counted over text only, so a prompt without an image sees the same positions.
    """

    def __init__(self, cfg: MLLMConfig = MLLMConfig()):
        super().__init__()
        self.cfg = cfg
        self.tok = nn.Embedding(cfg.vocab, cfg.d)
        self.patch_embed = nn.Linear(3 * cfg.patch * cfg.patch, cfg.d)
        self.img_pos = nn.Parameter(torch.randn(cfg.n_patches, cfg.d) * 0.02)
        self.txt_pos = nn.Parameter(torch.randn(cfg.max_text, cfg.d) * 0.02)
        self.blocks = nn.ModuleList([Block(cfg.d, cfg.heads) for _ in range(cfg.layers)])
        self.ln_f = nn.LayerNorm(cfg.d)
        self.head = nn.Linear(cfg.d, cfg.vocab, bias=False)

    @property
    def n_template(self) -> int:
        return len(TEMPLATE)

    def embed(self, images: "torch.Tensor | None", text: torch.Tensor) -> torch.Tensor:
        """Token embeddings of ``[template][image][text]``: ``(B, K + N + L, d)`` (N = 0 without image).

        Args:
            images: ``(B, 3, H, W)`` in [0, 1] or ``None``; text: ``(B, L)`` ids (no template).
        """
        B, L = text.shape
        K = len(TEMPLATE)
        if K + L > self.cfg.max_text:
            raise ValueError(f"text of {L} tokens + template {K} exceeds max_text={self.cfg.max_text}")
        tmpl = torch.tensor(TEMPLATE, device=text.device).expand(B, K)
        words = torch.cat([tmpl, text], dim=1)  # (B, K + L)
        w = self.tok(words) + self.txt_pos[: K + L]  # (B, K + L, d)
        if images is None:
            return w
        if images.shape[0] != B:
            raise ValueError(f"{images.shape[0]} images for {B} text rows")
        img = self.patch_embed(patchify(images * 2 - 1, self.cfg.patch)) + self.img_pos  # (B, N, d)
        return torch.cat([w[:, :K], img, w[:, K:]], dim=1)

    def forward(self, images: "torch.Tensor | None", text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns ``logits (B, L, V)`` at the text positions and ``hidden (B, K + N + L, d)``, the
        *pre-norm* output of the last block (what JoyImage's pipeline hooks out of Qwen3-VL)."""
        x = self.embed(images, text)
        for blk in self.blocks:
            x = blk(x)
        L = text.shape[1]
        logits = self.head(self.ln_f(x[:, -L:]))  # (B, L, V)
        return logits, x

    @torch.no_grad()
    def answer(self, images: "torch.Tensor | None", question: torch.Tensor, max_new: int = 12) -> list[list[str]]:
        """Greedy decoding of answers to right-padded questions ``(B, Lq)``; returns word lists."""
        rows = [[t for t in q.tolist() if t != PAD] + [ANS] for q in question]
        lengths = [len(r) for r in rows]
        buf = torch.full((len(rows), max(lengths) + max_new), PAD, dtype=torch.long, device=question.device)
        for i, r in enumerate(rows):
            buf[i, :len(r)] = torch.tensor(r)
        done = [False] * len(rows)
        out: list[list[int]] = [[] for _ in rows]
        for _ in range(max_new):
            L = max(lengths)
            logits, _ = self(images, buf[:, :L])  # causal: padding after a row's end does not matter
            for i in range(len(rows)):
                if done[i]:
                    continue
                nxt = int(logits[i, lengths[i] - 1].argmax())
                out[i].append(nxt)
                buf[i, lengths[i]] = nxt
                lengths[i] += 1
                done[i] = nxt == EOS
            if all(done):
                break
        return [decode(o) for o in out]


def build_qa_text(question: torch.Tensor, answer: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pack right-padded questions and answers into ``question <ans> answer`` rows.

    Lesson 05.1; the answer positions that L_NTP scores (JoyAI-Image digest § "Algorithm (pseudo-code)":
    ``CE(logits[answer positions], answer)``).

    Args:
        question: ``(B, Lq)``; answer: ``(B, La)`` (ending in ``<eos>``), both right-padded.
    Returns:
        ``tokens (B, L)`` right-padded and ``loss_mask (B, L)``: 1 on the answer tokens.
    """
    # Non-pad tokens keep their order: question token k of a row goes to slot k, <ans> follows the
    # question, answer token k to slot (question length + 1 + k).
    qk, ak = question != PAD, answer != PAD
    qlen = qk.sum(1)
    B, L = question.shape[0], int((qlen + 1 + ak.sum(1)).max())
    dev = question.device
    tokens = torch.full((B, L), PAD, dtype=torch.long, device=dev)
    mask = torch.zeros(B, L, device=dev)
    rows = torch.arange(B, device=dev)[:, None]
    tokens[rows.expand_as(question)[qk], (qk.cumsum(1) - 1)[qk]] = question[qk].long()
    tokens[rows[:, 0], qlen] = ANS
    a_rows, a_pos = rows.expand_as(answer)[ak], (qlen[:, None] + ak.cumsum(1))[ak]
    tokens[a_rows, a_pos] = answer[ak].long()
    mask[a_rows, a_pos] = 1.0
    return tokens, mask


def mllm_step_loss(model: TinyMLLM, images: torch.Tensor, question: torch.Tensor, answer: torch.Tensor,
                   loss_fn=answer_loss) -> torch.Tensor:
    """The understanding loss of one batch: L_NTP on answers given image + question.

    Lessons 05.1 (stage 1) and 05.3 (the α L_NTP term of joint fine-tuning); JoyAI-Image digest
    § "Losses" and § "Algorithm (pseudo-code)".
    """
    tokens, mask = build_qa_text(question, answer)
    tokens, mask = tokens.to(images.device), mask.to(images.device)
    logits, _ = model(images, tokens)
    return loss_fn(logits, tokens, mask)
