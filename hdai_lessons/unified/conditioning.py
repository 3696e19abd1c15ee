"""The interface between understanding and generation: the MLLM's last hidden states as the condition.

Lesson 05.3 (``WordConditioner``: lesson 05.2). JoyAI-Image digest § "MLLM → MMDiT interface".

JoyAI-Image wraps the prompt in a chat template (system message "Describe the image by detailing the
color, shape, size, …"), runs the MLLM with the source image(s) inserted in the user turn, hooks the
*pre-norm* output of the last decoder layer, drops the first 34 template tokens and hands the rest
(image tokens + prompt tokens) to the MMDiT as its condition sequence. There is no pooled vector.

``MLLMConditioner`` does the same with the tiny MLLM; ``WordConditioner`` is the plain text
encoder lesson 05.2 starts from (learned word + position embeddings), with the same interface:
``conditioner(prompt (B, L), images or None) → (cond (B, T, cond_dim), mask (B, T))``.
"""
from __future__ import annotations

import torch
from torch import nn

from hdai_lessons.unified.mllm import TinyMLLM
from hdai_lessons.unified.shapes import ANS, PAD, VOCAB


def condition_from_hidden(hidden: torch.Tensor, mask: torch.Tensor, drop: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Drop the first ``drop`` *real* tokens of every row and re-pack the rest, left-aligned.

    Lesson 05.3 (exercise 05.3.1). JoyAI-Image digest § "MLLM → MMDiT interface" ("the first 34 template
    tokens are dropped"; the paper states no equation).

    Mirrors ``JoyImageEditPipeline._get_qwen_prompt_embeds``: select each row's real tokens
    (``mask == 1``, any padding side), drop the template prefix, zero-pad to the longest row.

    Args:
        hidden: ``(B, S, d)`` last-layer hidden states; mask: ``(B, S)`` {0, 1}; drop: template length.
    Returns:
        ``cond (B, T, d)`` and ``cond_mask (B, T)`` (long), ``T`` = longest remaining row.
    """
    rows = [h[m.bool()][drop:] for h, m in zip(hidden, mask)]  # each (n_b − drop, d)
    T = max(1, max(r.shape[0] for r in rows))
    cond = hidden.new_zeros(len(rows), T, hidden.shape[-1])
    out_mask = torch.zeros(len(rows), T, dtype=torch.long, device=hidden.device)
    for b, r in enumerate(rows):
        cond[b, : r.shape[0]] = r
        out_mask[b, : r.shape[0]] = 1
    return cond, out_mask


def prompt_with_end(prompt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``prompt <ans>`` per row (right-padded) and its mask: the ``<ans>`` plays JoyImage's
    "<|im_end|> <|im_start|>assistant" suffix, so even an empty prompt leaves one token.

    Lesson 05.3; the chat-template wrapping of JoyAI-Image digest § "MLLM → MMDiT interface".
    """
    rows = [[t for t in p.tolist() if t != PAD] + [ANS] for p in prompt]
    L = max(len(r) for r in rows)
    ids = torch.full((len(rows), L), PAD, dtype=torch.long, device=prompt.device)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
    return ids, (ids != PAD).long()


class WordConditioner(nn.Module):
    """A plain text encoder: learned word + position embeddings (lesson 05.2's condition).

    Lesson 05.2; a stand-in for the MLLM states of JoyAI-Image digest § "MLLM → MMDiT interface", with
    the same interface as ``MLLMConditioner``.
    """

    def __init__(self, cond_dim: int = 64, max_len: int = 24):
        super().__init__()
        self.emb = nn.Embedding(len(VOCAB), cond_dim)
        self.pos = nn.Parameter(torch.randn(max_len, cond_dim) * 0.1)

    def forward(self, prompt: torch.Tensor, images: "torch.Tensor | None" = None) -> tuple[torch.Tensor, torch.Tensor]:
        if images is not None:
            raise ValueError("WordConditioner reads text only; use MLLMConditioner to condition on images")
        ids, mask = prompt_with_end(prompt)
        return self.emb(ids) + self.pos[: ids.shape[1]], mask


class MLLMConditioner(nn.Module):
    """The MLLM's last-layer (pre-norm) hidden states of ``[template][image][prompt <ans>]``, template dropped.

    Lesson 05.3. JoyAI-Image digest § "MLLM → MMDiT interface" (last-layer states, template dropped,
    source images in the user turn) and § "Editing / source-image conditioning" (the source seen twice).
    With ``images`` (editing) the condition starts with the image's tokens, as in JoyImage where the
    source image is inserted into the user turn; ``freeze=True`` runs the MLLM without gradients.
    """

    def __init__(self, mllm: TinyMLLM, freeze: bool = True):
        super().__init__()
        self.mllm = mllm
        self.freeze = freeze

    def forward(self, prompt: torch.Tensor, images: "torch.Tensor | None" = None) -> tuple[torch.Tensor, torch.Tensor]:
        ids, text_mask = prompt_with_end(prompt)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze):
            _, hidden = self.mllm(images, ids)  # (B, K + N + L, d)
        K = self.mllm.n_template
        N = 0 if images is None else hidden.shape[1] - K - ids.shape[1]
        full_mask = torch.cat([torch.ones(ids.shape[0], K + N, dtype=torch.long, device=ids.device), text_mask], 1)
        return condition_from_hidden(hidden, full_mask, drop=K)
