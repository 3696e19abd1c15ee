"""The toy's editor: the edit predicted as a residual on the source image (lesson 05.3).

A **toy-only device**, not JoyAI-Image's recipe. JoyAI-Image (digest § "Editing / source-image
conditioning") edits with the plain MMDiT: the source is a clean reference item on its own RoPE t-index,
the network predicts the flow velocity of the target from noise, and the loss is flow matching on the
target tokens only. At its scale (a 16B MMDiT that can already draw, millions of edit pairs) the network
learns to copy what must stay from the reference tokens through attention. Our 2-block, 64-wide MMDiT
trained for a few thousand steps does not: attention from a target token to the source token at the same
position stays near uniform, and the untouched cells come back blurred (lesson 05.3 measures it).

So the toy editor hard-wires the copy: on edit inputs it predicts the clean target as

    x̂₁ = source + r_θ(x_t, t, c, source),

with ``r_θ`` a new output head (``edit_out``) on the MMDiT's final target tokens, **zero-initialised**,
so an untrained editor returns the source exactly. Sampling stays the course's rectified-flow Euler
sampler: the velocity is read off the predicted endpoint, v = (x̂₁ − x_t)/(1 − t) (the linear path
x_t = (1 − t) x₀ + t x₁ of ``flows.cfm``). Training uses an image-space loss ‖x̂₁ − y‖², and the
classifier-free-guidance dropout of an edit drops the instruction **and** sets y = source
("no instruction → keep the image"), so the unconditional branch means "copy" and guidance pushes
from the copy towards the edit (``edit_loss``, exercise 05.3.2). Text → image batches keep the plain
velocity head and flow-matching loss, as in stage 2.
"""
from __future__ import annotations

import torch
from torch import nn

from hdai_lessons.core.progress import progress
from hdai_lessons.flows.cfm import linear_path, sample_times
from hdai_lessons.unified.mmdit import MMDiT
from hdai_lessons.unified.shapes import ShapesWorld
from hdai_lessons.unified.train import (EditorConfig, GenerationConfig, drop_prompts, flow_step_loss, joint_update,
                                        sample_gen_batch, to_model)


class ResidualEditor(nn.Module):
    """An MMDiT whose edits are residuals on the source: ``x̂₁ = source + edit_out(features)`` (toy only).

    Lesson 05.3. Without references it *is* the MMDiT (velocity head ``proj_out``, text → image);
    with references (``refs (B, R, C, H, W)``, the source first) it returns the velocity
    v = (x̂₁ − x_t)/(1 − t) of the predicted endpoint, so ``train.sample`` and CFG work unchanged.
    ``timestep`` is t·1000 as in ``MMDiT.forward``. See the module docstring for why this is a toy device.
    """

    def __init__(self, mmdit: MMDiT, min_gap: float = 1e-3):
        super().__init__()
        self.mmdit, self.cfg, self.min_gap = mmdit, mmdit.cfg, min_gap
        p, c = mmdit.cfg.patch, mmdit.cfg.channels
        self.edit_out = nn.Linear(mmdit.cfg.dim, p * p * c)
        nn.init.zeros_(self.edit_out.weight)  # zero-initialised: an untrained editor copies the source
        nn.init.zeros_(self.edit_out.bias)

    def predict_clean(self, x: torch.Tensor, timestep: torch.Tensor, cond: torch.Tensor,
                      cond_mask: "torch.Tensor | None", refs: torch.Tensor) -> torch.Tensor:
        """x̂₁ = source + r_θ: the predicted edited image, model space ``(B, C, H, W)``."""
        feats = self.mmdit.target_features(x, timestep, cond, cond_mask, refs)  # (B, g², d)
        return refs[:, 0] + self.mmdit.unpatchify(self.edit_out(feats))

    def forward(self, x: torch.Tensor, timestep: torch.Tensor, cond: torch.Tensor,
                cond_mask: "torch.Tensor | None" = None, refs: "torch.Tensor | None" = None) -> torch.Tensor:
        if refs is None:
            return self.mmdit(x, timestep, cond, cond_mask)
        t = (timestep.float() / 1000).view(-1, 1, 1, 1)
        return (self.predict_clean(x, timestep, cond, cond_mask, refs) - x) / (1 - t).clamp_min(self.min_gap)


def edit_loss(x1_hat: torch.Tensor, target: torch.Tensor, source: torch.Tensor, dropped: torch.Tensor) -> torch.Tensor:
    """Image-space editing loss with "no instruction → keep the image": the squared error of each row's
    predicted image, summed over its values and averaged over the batch, against the edited target —
    or against the **source** for the rows whose instruction was dropped (CFG dropout).

    Lesson 05.3 (exercise 05.3.2). The toy editor's loss (``ResidualEditor``; a toy-only device — JoyAI-Image
    uses flow matching on the target tokens, digest § "Losses"). Training the dropped rows towards the
    target instead makes the unconditional branch mean "some edit", and guidance then pushes *away*
    from the edit the instruction asks for.

    Args:
        x1_hat, target, source: ``(B, C, H, W)``; dropped: ``(B,)`` bool (the instruction was dropped).
    Returns:
        a scalar.
    """
    y = torch.where(dropped.view(-1, 1, 1, 1), source, target)  # (B, C, H, W)
    return (x1_hat - y).pow(2).flatten(1).sum(-1).mean()


def edit_step_loss(editor: ResidualEditor, conditioner, b, g: torch.Generator, p_uncond: float,
                   loss_fn=edit_loss, t_dist: str = "uniform") -> torch.Tensor:
    """The loss of one editing batch ``b`` (``train.GenBatch`` with sources): noisy target x_t on the
    linear path, instruction dropped with probability ``p_uncond``, x̂₁ from the editor, ``loss_fn``.

    Lesson 05.3; the edit part of the training step of JoyAI-Image digest § "Algorithm (pseudo-code)",
    with the toy's residual parameterisation (see the module docstring).
    """
    x1, src = to_model(b.target), to_model(b.source)  # (B, 3, H, W)
    x0 = torch.randn(x1.shape, generator=g)
    t = sample_times(x1.shape[0], g, t_dist)
    prompt = drop_prompts(b.prompt, p_uncond, g)
    dropped = (prompt == 0).all(1)  # PAD = 0: the row's instruction was dropped
    cond, mask = conditioner(prompt, b.source)
    x1_hat = editor.predict_clean(linear_path(x0, x1, t), 1000 * t, cond, mask, src.unsqueeze(1))
    return loss_fn(x1_hat, x1, src, dropped)


def train_editor(editor: ResidualEditor, conditioner, world: ShapesWorld, cfg: EditorConfig, generator: torch.Generator,
                 loss_fn=edit_loss, desc: str = "stage 3: editing (residual)") -> dict:
    """Train the toy editor on the stage-3 mix: editing batches with ``edit_step_loss``, text → image
    batches with the plain flow-matching loss (``train.flow_step_loss``). If the conditioner's MLLM is not
    frozen and ``cfg.alpha_ntp > 0``, the MLLM is fine-tuned jointly and keeps its understanding loss
    (L = L_edit or L_FM, + α L_NTP on a QA batch of half the size), as ``train.train_generation`` does.

    Lesson 05.3; JoyAI-Image digest § "Training stages" (3) and § "Algorithm (pseudo-code)" (L = L_gen + α L_und),
    with the toy-only residual editor. Returns per-step losses ``{"edit": [...], "t2i": [...], "ntp": [...]}``.
    """
    joint = cfg.alpha_ntp > 0 and not getattr(conditioner, "freeze", True) and hasattr(conditioner, "mllm")
    params = [p for p in editor.parameters() if p.requires_grad]
    if joint:
        params += [p for p in conditioner.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, cfg.steps))
    gen_cfg = GenerationConfig(p_uncond=cfg.p_uncond)
    hist = {"edit": [], "t2i": [], "ntp": []}
    editor.train()
    for _ in progress(range(cfg.steps), desc=desc):
        edit = float(torch.rand(1, generator=generator)) < cfg.edit_frac
        b = sample_gen_batch(world, cfg.batch, generator, edit, cfg.etypes)
        if edit:
            loss = edit_step_loss(editor, conditioner, b, generator, cfg.p_uncond, loss_fn)
        else:
            loss = flow_step_loss(editor.mmdit, conditioner, b, generator, gen_cfg)
        hist["edit" if edit else "t2i"].append(float(loss.detach()))
        joint_update(loss, conditioner, world, generator, cfg.batch // 2, cfg.alpha_ntp if joint else 0.0, hist,
                     opt, sched, params)
    editor.eval()
    return hist


@torch.no_grad()
def unconditional_copy_psnr(editor: ResidualEditor, conditioner, world: ShapesWorld, n: int, seed: int,
                            steps: int = 20) -> list[float]:
    """PSNR (dB, whole image) between the editor's output with the instruction **dropped** and the source,
    for ``n`` seeded edits: how well the unconditional branch means "keep the image".

    Lesson 05.3 (the effect of exercise 05.3.2); the CFG negative of JoyAI-Image digest § "Sampling"
    (an empty prompt encoded with the source image). Returns one value per edit.
    """
    from hdai_lessons.unified.evaluate import psnr
    from hdai_lessons.unified.train import sample

    g = torch.Generator().manual_seed(seed)
    b = sample_gen_batch(world, n, g, edit=True)
    out = sample(editor, conditioner, torch.zeros_like(b.prompt), g, source=b.source, steps=steps)
    return [psnr(o, s) for o, s in zip(out, b.source)]

__all__ = ["EditorConfig", "ResidualEditor", "edit_loss", "edit_step_loss", "train_editor", "unconditional_copy_psnr"]
