"""The training stages of the unified model, at toy scale (lessons 05.1–05.3).

JoyAI-Image's recipe (digest § "Training stages", per the paperslantern summary the digest cites):
(1) fine-tune the MLLM for understanding; (2) train the MMDiT from scratch for generation,
conditioned on the MLLM's states; (3) train jointly for editing. Here:

- ``train_understanding``: stage 1, next-token loss on answers and captions (``mllm.answer_loss``).
- ``train_generation``: stages 2 and 3, rectified flow matching (``hdai_lessons.flows.cfm``'s
  linear path and target, t = 0 noise → t = 1 data) on target tokens only, with a condition from
  any ``Conditioner`` (word embeddings in lesson 05.2, MLLM states in 05.3), edit examples mixed
  in with the source image as clean reference tokens, 10 % condition dropout for CFG, and
  optionally the MLLM fine-tuned jointly (L = L_FM + α L_NTP).
- ``sample``: Euler integration with ``hdai_lessons.flows.sampling.integrate`` and CFG with norm
  rescaling (``guidance.py``).

Each lesson's own sizes (seeds, evaluation sizes, Euler steps) are a ``<Topic>LessonConfig`` below,
resolved once per scale by its ``for_scale``: ``UnderstandingLessonConfig`` (05.1),
``TextToImageLessonConfig`` (05.2), ``UnifiedLessonConfig`` (05.3).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
from torch import nn

from hdai_lessons.flows.cfm import cfm_target, linear_path, sample_times
from hdai_lessons.flows.sampling import integrate
from hdai_lessons.core.progress import progress
from hdai_lessons.core.scale import Scale, by_scale
from hdai_lessons.unified.evaluate import edit_scores, generation_scores, qa_accuracy, qa_breakdown
from hdai_lessons.unified.mllm import TinyMLLM, mllm_step_loss
from hdai_lessons.unified.shapes import EDIT_TYPES, QUESTION_TYPES, ShapesWorld, decode, qa_eval_set, sample_qa_batch


# ---------------------------------------------------------------------------- stage 1: understanding
@dataclass
class UnderstandingConfig:
    """Stage-1 settings (next-token loss on answers and captions); lesson 05.1 trains with it."""

    steps: int = 600
    """Optimiser steps."""
    batch: int = 64
    """Examples per step."""
    lr: float = 3e-3
    """AdamW learning rate (cosine-decayed)."""
    caption_frac: float = 0.25
    """Fraction of "describe the image" examples (the rest are questions)."""
    qtypes: tuple = QUESTION_TYPES
    """Question types trained on, drawn uniformly from this tuple (a type listed twice is asked twice as often)."""


def train_understanding(model: TinyMLLM, world: ShapesWorld, cfg: UnderstandingConfig, generator: torch.Generator,
                        loss_fn=None, desc: str = "stage 1: understanding") -> list[float]:
    """Stage 1: train the MLLM on QA and captions with next-token loss; returns per-step losses.

    Lesson 05.1. Minimises L_NTP = −Σ_i log p(y_i | y_<i, image, prompt) (JoyAI-Image digest § "Losses",
    an inferred standard form; the paper states no equation) — stage 1 of § "Training stages".
    """
    from hdai_lessons.unified.mllm import answer_loss

    loss_fn = loss_fn or answer_loss
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01, foreach=True)   # bit-identical to the per-tensor loop, fewer ops
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, cfg.steps))
    losses = []
    model.train()
    for _ in progress(range(cfg.steps), desc=desc):
        b = sample_qa_batch(world, cfg.batch, generator, cfg.qtypes, cfg.caption_frac)
        loss = mllm_step_loss(model, b.images, b.question, b.answer, loss_fn)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
    model.eval()
    return losses


def evaluate_understanding(model: TinyMLLM, world: ShapesWorld, per_type: int = 100, seed: int = 777) -> dict:
    """QA accuracy by question type on a fixed, seeded evaluation set (``qa_eval_set``).

    Lessons 05.1 and 05.3; the toy's "QA accuracy" evaluation (JoyAI-Image digest § "Toy experiment for
    the course"; the paper reports understanding benchmarks instead).
    """
    ev = qa_eval_set(world, per_type, seed)
    model.eval()
    pred = model.answer(ev.images, ev.question)
    gold = [decode(a) for a in ev.answer]
    return qa_accuracy(pred, gold, ev.qtypes)


def evaluate_understanding_breakdown(model: TinyMLLM, world: ShapesWorld, per_type: int = 100, seed: int = 777) -> dict:
    """QA accuracy by question type and by the scene's number of objects, with chance levels
    (``evaluate.qa_breakdown``), on the same seeded evaluation set as ``evaluate_understanding``.

    Lesson 05.1; JoyAI-Image digest § "Toy experiment for the course" (QA accuracy), split so that the
    two-object (binding) questions are seen apart from the one-object ones. ``out[(t, "any")]["accuracy"]``
    equals ``evaluate_understanding(...)[t]`` and ``out[("all", "any")]["accuracy"]`` its ``"all"``.
    """
    ev = qa_eval_set(world, per_type, seed)
    model.eval()
    pred = model.answer(ev.images, ev.question)
    gold = [decode(a) for a in ev.answer]
    return qa_breakdown(world, pred, gold, ev.qtypes, ev.scenes)


@dataclass
class UnderstandingLessonConfig:
    """Lesson 05.1's sizes: the live stage-1 runs and the evaluation sets that score them."""

    stage1: UnderstandingConfig = field(default_factory=lambda: UnderstandingConfig(steps=500, batch=32))
    """The live runs' stage-1 settings (the shipped ``unified-mllm``: ``pretrained.MLLM_STEPS`` steps at batch 64, colour- and position-heavy mix ``pretrained.MLLM_QTYPES``)."""
    n_seeds: int = 4
    """Live runs, paired by seed: the lesson uses ``ctx.seed``, ``ctx.seed + 1``, …"""
    per_type: int = 200
    """Evaluation questions per question type, for each seed's own evaluation set."""
    eval_seed: int = 777
    """Seed of run ``s``'s evaluation set is ``eval_seed + s``."""

    @classmethod
    def for_scale(cls, scale: "Scale | str | None") -> "UnderstandingLessonConfig":
        """The rung's sizes (smoke: seconds; toy: about a minute on a CPU; full: a GPU)."""
        return by_scale(scale, smoke=cls(stage1=UnderstandingConfig(steps=4, batch=8), n_seeds=1, per_type=10),
                        toy=cls(),
                        full=cls(stage1=UnderstandingConfig(steps=3000, batch=128), n_seeds=5, per_type=300))


# ---------------------------------------------------------------------------- stages 2-3: generation and editing
def to_model(images: torch.Tensor) -> torch.Tensor:
    """Pixels in [0, 1] → model space [−1, 1] (lessons 05.2–05.4; the toy's pixels stand in for the
    VAE latents of JoyAI-Image digest § "VAE")."""
    return images * 2 - 1


def to_pixels(x: torch.Tensor) -> torch.Tensor:
    """Model space → pixels in [0, 1] (clamped); lessons 05.2–05.4, the inverse of ``to_model``."""
    return ((x + 1) / 2).clamp(0, 1)


def masked_flow_loss(v_pred: torch.Tensor, v_target: torch.Tensor, is_target: torch.Tensor) -> torch.Tensor:
    """Flow-matching loss on target items only (the editing loss mask), a scalar.

    Lesson 05.3 (exercise 05.3.2). L_FM of JoyAI-Image digest § "Losses" restricted to the target
    item, as § "Editing / source-image conditioning" infers ("the loss applies to target tokens only");
    the paper states no equation. Squared error summed over each item's values, averaged over the
    items with ``is_target == 1`` (reference items carry clean tokens; predicting them is not the task
    and must not be trained).

    Args:
        v_pred, v_target: ``(B, n, C, H, W)``; is_target: ``(B, n)`` {0, 1}.
    """
    per_item = (v_pred - v_target).pow(2).flatten(2).sum(-1)  # (B, n)
    m = is_target.to(per_item.dtype)
    return (per_item * m).sum() / m.sum().clamp_min(1.0)


@dataclass
class GenerationConfig:
    """Stage-2/3 settings (rectified flow on target tokens); lessons 05.2 and 05.3 train with it."""

    steps: int = 800
    """Optimiser steps."""
    batch: int = 64
    """Examples per step."""
    lr: float = 2e-3
    """AdamW learning rate (cosine-decayed)."""
    edit_frac: float = 0.0
    """Probability that a step is an editing batch (stage 3)."""
    p_uncond: float = 0.1
    """Condition dropout for classifier-free guidance (the rate is not known for JoyAI-Image; 10 % is the
    toy's choice)."""
    t_dist: str = "uniform"
    """Training-time distribution (``flows.cfm.sample_times``)."""
    etypes: tuple = EDIT_TYPES
    """Edit types trained on."""
    alpha_ntp: float = 0.0
    """Weight of L_NTP when the MLLM is fine-tuned jointly (L = L_FM + α L_NTP)."""


@dataclass
class GenBatch:
    """A generation or editing batch: prompts, target images, optional clean sources (all in [0, 1]).

    Lessons 05.2–05.3; the t2i and edit parts of the training mixture in JoyAI-Image digest
    § "Algorithm (pseudo-code)".
    """

    prompt: torch.Tensor                  # (B, L) token ids
    target: torch.Tensor                  # (B, 3, H, W)
    source: "torch.Tensor | None" = None  # (B, 3, H, W) for editing
    scenes: list = field(default_factory=list)   # target scenes
    touched: list = field(default_factory=list)  # cells an edit may change
    etypes: list = field(default_factory=list)


def sample_gen_batch(world: ShapesWorld, batch: int, g: torch.Generator, edit: bool = False,
                     etypes: tuple = EDIT_TYPES) -> GenBatch:
    """A text-to-image batch (caption → image) or an editing batch (instruction + source → target).

    Lessons 05.2–05.3; ``sample_mixture`` of JoyAI-Image digest § "Algorithm (pseudo-code)" for the
    t2i and edit parts.
    """
    from hdai_lessons.unified.shapes import encode, pad_rows

    if not edit:
        scenes = [world.sample_scene(g) for _ in range(batch)]
        return GenBatch(pad_rows([encode(world.caption(s)) for s in scenes]), world.render_batch(scenes), None, scenes)
    eds = [world.sample_edit(g, etypes) for _ in range(batch)]
    return GenBatch(pad_rows([encode(e[2]) for e in eds]), world.render_batch([e[3] for e in eds]),
                    world.render_batch([e[0] for e in eds]), [e[3] for e in eds], [e[4] for e in eds], [e[1] for e in eds])


def drop_prompts(prompt: torch.Tensor, p: float, g: torch.Generator) -> torch.Tensor:
    """Replace each row by the empty prompt with probability ``p`` (CFG condition dropout).

    Lesson 05.2; the ``if rand() < p_drop: c = MLLM_states("")`` line of JoyAI-Image digest
    § "Algorithm (pseudo-code)" (rate not known; the toy uses 10 %).
    """
    from hdai_lessons.unified.shapes import PAD

    drop = torch.rand(prompt.shape[0], generator=g) < p
    return prompt.masked_fill(drop[:, None], PAD)


def flow_step_loss(model, conditioner, b: GenBatch, g: torch.Generator, cfg: GenerationConfig,
                   loss_fn=masked_flow_loss) -> torch.Tensor:
    """L_FM of one batch: x_t = (1 − t) x₀ + t x₁ on the target, clean source tokens as item 1.

    Lessons 05.2 and 05.3. JoyAI-Image digest § "Losses" (x_σ = (1−σ)x + σε, v = ε − x; the course's
    t = 1 − σ, so v = x₁ − x₀) and the generation half of § "Algorithm (pseudo-code)".
    """
    x1 = to_model(b.target)  # (B, 3, H, W)
    x0 = torch.randn(x1.shape, generator=g)
    t = sample_times(x1.shape[0], g, cfg.t_dist)
    xt = linear_path(x0, x1, t)
    prompt = drop_prompts(b.prompt, cfg.p_uncond, g)
    cond, mask = conditioner(prompt, b.source)
    refs = None if b.source is None else to_model(b.source).unsqueeze(1)  # (B, 1, 3, H, W)
    v = model(xt, 1000 * t, cond, mask, refs)  # (B, 3, H, W), the target item only
    return loss_fn(v.unsqueeze(1), cfm_target(x0, x1).unsqueeze(1), torch.ones(x1.shape[0], 1))


def train_generation(model, conditioner, world: ShapesWorld, cfg: GenerationConfig, generator: torch.Generator,
                     desc: str = "stage 2/3: generation") -> dict:
    """Stages 2–3: train ``model`` (and the conditioner's trainable parameters) by flow matching.

    Lessons 05.2 (text → image) and 05.3 (editing, joint fine-tuning). JoyAI-Image digest
    § "Training stages" 2–3 and the training step of § "Algorithm (pseudo-code)" (L = L_gen + α L_und).
    If the conditioner wraps an MLLM that is not frozen and ``cfg.alpha_ntp > 0``, the MLLM keeps
    its understanding loss as well: L = L_FM + α L_NTP (joint fine-tuning). Returns per-step losses
    ``{"fm": [...], "ntp": [...]}``.
    """
    params = [p for p in list(model.parameters()) + list(conditioner.parameters()) if p.requires_grad]
    if isinstance(conditioner, nn.Module) and getattr(conditioner, "freeze", False):
        params = [p for p in model.parameters()]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, cfg.steps))
    joint = cfg.alpha_ntp > 0 and not getattr(conditioner, "freeze", True) and hasattr(conditioner, "mllm")
    hist = {"fm": [], "ntp": []}
    model.train()
    for _ in progress(range(cfg.steps), desc=desc):
        edit = cfg.edit_frac > 0 and float(torch.rand(1, generator=generator)) < cfg.edit_frac
        b = sample_gen_batch(world, cfg.batch, generator, edit, cfg.etypes)
        loss = flow_step_loss(model, conditioner, b, generator, cfg)
        hist["fm"].append(float(loss.detach()))
        joint_update(loss, conditioner, world, generator, cfg.batch // 2, cfg.alpha_ntp if joint else 0.0, hist,
                     opt, sched, params)
    model.eval()
    return hist


def joint_update(loss: torch.Tensor, conditioner, world: ShapesWorld, generator: torch.Generator, qa_batch: int,
                 alpha_ntp: float, hist: dict, opt: torch.optim.Optimizer, sched, params: list) -> None:
    """One optimiser step on ``loss`` (+ ``alpha_ntp`` × the MLLM's next-token loss on a fresh QA batch of
    ``qa_batch`` examples when ``alpha_ntp > 0``: stage-3 joint training), gradient norm clipped to 1.

    Lesson 05.3; JoyAI-Image digest § "Training stages" (stage 3: the MLLM keeps its understanding loss while
    the generator trains on its states).
    """
    if alpha_ntp > 0:
        qa = sample_qa_batch(world, qa_batch, generator)
        ntp = mllm_step_loss(conditioner.mllm, qa.images, qa.question, qa.answer)
        loss = loss + alpha_ntp * ntp
        hist["ntp"].append(float(ntp.detach()))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    sched.step()


@torch.no_grad()
def sample(model, conditioner, prompt: torch.Tensor, g: torch.Generator, source: "torch.Tensor | None" = None,
           steps: int = 20, guidance: float = 1.0, rescale: bool = True) -> torch.Tensor:
    """Generate (or edit) images: Euler from noise (t = 0) to data (t = 1), CFG against the empty prompt.

    Lessons 05.2 and 05.3. JoyAI-Image digest § "Sampling" (flow-matching Euler, CFG with an empty
    negative prompt and norm rescaling) and § "Editing / source-image conditioning" (references kept clean).
    The source image, if any, stays clean on its own item axis at every step (JoyImage resets the
    reference latents each step; here they are simply never integrated). Returns ``(B, 3, H, W)`` in [0, 1].
    """
    from hdai_lessons.unified.guidance import cfg_combine, cfg_rescaled

    model.eval()
    B = prompt.shape[0]
    cond, mask = conditioner(prompt, source)
    if guidance != 1.0:
        ucond, umask = conditioner(torch.zeros_like(prompt), source)
    refs = None if source is None else to_model(source).unsqueeze(1)
    size = model.cfg.image_size

    def v(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        vc = model(x, 1000 * t, cond, mask, refs)
        if guidance == 1.0:
            return vc
        vu = model(x, 1000 * t, ucond, umask, refs)
        return cfg_rescaled(vc, vu, guidance) if rescale else cfg_combine(vc, vu, guidance)

    x0 = torch.randn(B, model.cfg.channels, size, size, generator=g)
    return to_pixels(integrate(v, x0, 0.0, 1.0, steps, "euler"))


def evaluate_generation(model, conditioner, world: ShapesWorld, n: int = 64, seed: int = 99, steps: int = 20,
                        guidance: float = 1.0) -> dict:
    """Text → image adherence on ``n`` seeded captions (``evaluate.generation_scores``).

    Lesson 05.3; the toy's "GenEval-like generation checks" (JoyAI-Image digest § "Toy experiment for
    the course").
    """
    g = torch.Generator().manual_seed(seed)
    b = sample_gen_batch(world, n, g)
    imgs = sample(model, conditioner, b.prompt, g, steps=steps, guidance=guidance)
    return generation_scores(world, imgs, b.scenes)


def evaluate_editing(model, conditioner, world: ShapesWorld, n: int = 64, seed: int = 98, steps: int = 20,
                     guidance: float = 1.0) -> dict:
    """Edit success and PSNR of the untouched cells on ``n`` seeded edits (``evaluate.edit_scores``).

    Lesson 05.3; the toy's "edit success plus PSNR on the unedited region" (JoyAI-Image digest § "Toy
    experiment for the course").
    """
    g = torch.Generator().manual_seed(seed)
    b = sample_gen_batch(world, n, g, edit=True)
    imgs = sample(model, conditioner, b.prompt, g, source=b.source, steps=steps, guidance=guidance)
    out = edit_scores(world, imgs, b.source, b.scenes, b.touched)
    for et in EDIT_TYPES:  # success by edit type
        idx = [i for i, e in enumerate(b.etypes) if e == et]
        out[et] = float("nan")  # no edit of this type in a small batch
        if idx:
            out[et] = edit_scores(world, imgs[idx], b.source[idx], [b.scenes[i] for i in idx], [b.touched[i] for i in idx])["success"]
    return out


# ---------------------------------------------------------------------------- lesson sizes
@dataclass
class TextToImageLessonConfig:
    """Lesson 05.2's sizes: a short live text → image run, then the shipped model's paired evaluation."""

    live: GenerationConfig = field(default_factory=lambda: GenerationConfig(steps=300, batch=32))
    """The live run's stage-2 settings (the shipped ``unified-mmdit-t2i`` saw 2500 steps at batch 64)."""
    euler_steps: int = 20
    """Euler steps per sample."""
    n_eval: int = 128
    """Captions per sampling seed in the guidance comparison."""
    n_eval_seeds: int = 10
    """Paired sampling seeds: the lesson uses ``ctx.seed``, ``ctx.seed + 1``, …"""
    n_weak: int = 64
    """Captions per sampling seed in the guidance comparison on the weak live model."""
    n_weak_seeds: int = 3
    """Paired sampling seeds of that comparison."""

    @classmethod
    def for_scale(cls, scale: "Scale | str | None") -> "TextToImageLessonConfig":
        """The rung's sizes (smoke: seconds; toy: a few minutes on a CPU; full: a GPU)."""
        return by_scale(scale, smoke=cls(live=GenerationConfig(steps=3, batch=8), euler_steps=2, n_eval=8, n_eval_seeds=1, n_weak=8, n_weak_seeds=2),
                        toy=cls(),
                        full=cls(live=GenerationConfig(steps=20_000, batch=256), euler_steps=50, n_eval=512))


@dataclass
class EditorConfig:
    """Settings of the toy editor's training (``editing.train_editor``; lesson 05.3, ``pretrained.build_editor``)."""

    steps: int = 1500
    """Optimiser steps."""
    batch: int = 32
    """Examples per step."""
    lr: float = 1e-3
    """AdamW learning rate (cosine-decayed)."""
    edit_frac: float = 0.6
    """Probability that a step is an editing batch (the rest: text → image, to keep generation)."""
    p_uncond: float = 0.1
    """Instruction / caption dropout for classifier-free guidance."""
    etypes: tuple = EDIT_TYPES
    """Edit types trained on."""
    alpha_ntp: float = 0.0
    """Weight of L_NTP when the conditioner's MLLM is not frozen (joint fine-tuning, L = L + α L_NTP)."""


@dataclass
class UnifiedLessonConfig:
    """Lesson 05.3's sizes: the live editing-loss runs, the shipped models' evaluation, the frozen-vs-joint ablation."""

    demo: EditorConfig = field(default_factory=lambda: EditorConfig(steps=30, batch=16, lr=1e-3, edit_frac=1.0, p_uncond=0.5))
    """Each of the two live stage-3 runs (your editing loss; the "dropped rows still trained on the target"
    mistake) from the base MMDiT with a fresh zero-initialised residual head (half the instructions dropped,
    so the unconditional branch is trained within a few steps)."""
    n_demo: int = 32
    """Edits on which the live runs' unconditional branch ("no instruction") is compared with the source."""
    n_eval: int = 48
    """Captions (and edits) per sampling seed in the evaluation of the shipped models."""
    n_eval_seeds: int = 4
    """Paired sampling seeds of that evaluation: ``ctx.seed``, ``ctx.seed + 1``, …"""
    euler_steps: int = 20
    """Euler steps per sample."""
    per_type: int = 100
    """QA evaluation questions per question type and seed."""
    edit_guidance: float = 1.0
    """The guidance scale the lesson recommends for the toy editor (JoyAI-Image samples with 4; the lesson
    reports both)."""
    gen_guidance: float = 4.0
    """The guidance scale of text → image (JoyAI-Image's 4)."""
    ablation: EditorConfig = field(default_factory=lambda: EditorConfig(steps=40, batch=16, lr=5e-4, edit_frac=0.7, p_uncond=0.15))
    """Each ablation arm's training from the shipped editor (the stage-3 mix: 70 % editing, 30 % text → image)."""
    joint_alpha_ntp: float = 0.5
    """α of the "joint" arm (L = L_edit/FM + α L_NTP); the "frozen" arm has α = 0 and a frozen MLLM."""
    n_abl_seeds: int = 3
    """Training seeds per ablation arm: ``ctx.seed``, ``ctx.seed + 1``, …"""
    n_abl: int = 40
    """Captions (and edits) per seed in the ablation's evaluation."""

    def ablation_arm(self, arm: str) -> "EditorConfig":
        """The training settings of ablation arm ``"frozen"`` or ``"joint"``."""
        if arm not in ("frozen", "joint"):
            raise ValueError(f"unknown ablation arm {arm!r}; choose 'frozen' or 'joint'")
        return replace(self.ablation, alpha_ntp=self.joint_alpha_ntp if arm == "joint" else 0.0)

    @classmethod
    def for_scale(cls, scale: "Scale | str | None") -> "UnifiedLessonConfig":
        """The rung's sizes (smoke: seconds; toy: about a minute on a CPU; full: a GPU)."""
        return by_scale(
            scale,
            smoke=cls(demo=EditorConfig(steps=2, batch=4, edit_frac=1.0, p_uncond=0.5), n_demo=4, n_eval=6, n_eval_seeds=2,
                      euler_steps=2, per_type=8, ablation=EditorConfig(steps=2, batch=4, lr=5e-4, edit_frac=0.7),
                      n_abl_seeds=2, n_abl=6),
            toy=cls(),
            full=cls(demo=EditorConfig(steps=500, batch=64, edit_frac=1.0, p_uncond=0.5), n_demo=256, n_eval=512, euler_steps=50,
                     per_type=300, ablation=EditorConfig(steps=3000, batch=128, lr=5e-4, edit_frac=0.7), n_abl_seeds=5, n_abl=256),
        )
