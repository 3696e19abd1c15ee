"""Small checkpoints the later lessons load instead of retraining (shipped in ``data/unified/``).

The three stages of JoyAI-Image digest § "Training stages", run once at toy scale.

Each ``build_*`` is a manifest generator ``fn(out_path, seed)``; rebuild with
``hdai-lessons data build NAME``. Each ``load_*`` verifies the file (``data.data_path``) and returns
ready modules.

- ``unified-mllm``: the tiny MLLM after stage 1 (understanding).
- ``unified-mmdit-t2i``: an MMDiT (6×6 patches) + word conditioner trained for text → image (lesson 05.2).
- ``unified-mmdit``: an MMDiT trained on the frozen stage-1 MLLM's states for text → image and
  editing (stages 2–3; lessons 05.3–05.4), with JoyAI-Image's plain flow-matching editing.
- ``unified-editor``: ``unified-mmdit`` fine-tuned as the toy's residual editor (``editing.ResidualEditor``,
  a toy-only device; lesson 05.3).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors.torch import load_file, save_file

from hdai_lessons.core.data import data_path
from hdai_lessons.core.seeding import seed_everything
from hdai_lessons.unified.conditioning import MLLMConditioner, WordConditioner
from hdai_lessons.unified.mllm import MLLMConfig, TinyMLLM
from hdai_lessons.unified.mmdit import MMDiT, MMDiTConfig
from hdai_lessons.unified.shapes import ShapesWorld, WorldConfig
from hdai_lessons.unified.train import (EditorConfig, GenerationConfig, UnderstandingConfig, train_generation,
                                        train_understanding)

if TYPE_CHECKING:
    from hdai_lessons.unified.editing import ResidualEditor

MLLM_STEPS = 6000
MLLM_QTYPES = ("colour", "colour", "colour", "shape", "count", "position", "position")
"""The shipped MLLM's question mix (a type listed k times is drawn k times as often). Under the uniform mix
the colour of a named shape on a two-object scene stays at the binding chance (0.5) after 3500 steps:
finding *which* patches hold "the circle" is the hardest thing the toy asks, and only ~9 % of uniform
examples ask it. Three times as many colour questions (and twice as many position questions) bind it."""
T2I_STEPS = 2500
UNIFIED_STEPS = 2500
UNIFIED_BATCH = 48
UNIFIED_PHASE2_STEPS = 3500
EDITOR_STEPS = 20000
EDITOR_EDIT_FRAC = 0.6
# Lesson 05.2's shipped model keeps 6×6 patches (108 values per 64-wide token): it follows the text but its
# samples keep some noise — the token-width bottleneck that lesson discusses. 05.3's model uses 4×4 patches.
T2I_CONFIG = MMDiTConfig(patch=6)


def _save(out_path: Path, modules: dict) -> None:
    state = {f"{name}.{k}": v.detach().contiguous().clone() for name, m in modules.items() for k, v in m.state_dict().items()}
    save_file(state, str(out_path))


def _load(path: Path, modules: dict) -> None:
    state = load_file(str(path))
    for name, m in modules.items():
        sub = {k[len(name) + 1:]: v for k, v in state.items() if k.startswith(name + ".")}
        m.load_state_dict(sub)
        m.eval()


def build_mllm(out_path: Path, seed: int) -> None:
    """Stage 1: train the tiny MLLM on QA + captions (``MLLM_STEPS`` steps at batch 64, question mix
    ``MLLM_QTYPES``).

    Builds lesson 05.1's shipped checkpoint; JoyAI-Image digest § "Training stages" (1).
    """
    g = seed_everything(seed)
    mllm = TinyMLLM(MLLMConfig())
    train_understanding(mllm, ShapesWorld(WorldConfig()), UnderstandingConfig(steps=MLLM_STEPS, batch=64, qtypes=MLLM_QTYPES), g)
    _save(out_path, {"mllm": mllm})


def load_mllm() -> TinyMLLM:
    """The stage-1 MLLM (``unified-mllm``); lessons 05.1 and 05.3 (JoyAI-Image digest § "Training stages" (1))."""
    mllm = TinyMLLM(MLLMConfig())
    _load(data_path("unified-mllm"), {"mllm": mllm})
    return mllm


def build_t2i(out_path: Path, seed: int) -> None:
    """Lesson 05.2's model: MMDiT + word conditioner, text → image (``T2I_STEPS`` steps).

    JoyAI-Image digest § "Training stages" (2), with word embeddings in place of the MLLM's states.
    """
    g = seed_everything(seed)
    model, cond = MMDiT(T2I_CONFIG), WordConditioner(T2I_CONFIG.cond_dim)
    train_generation(model, cond, ShapesWorld(WorldConfig()), GenerationConfig(steps=T2I_STEPS, batch=64, t_dist="logit_normal"), g)
    _save(out_path, {"mmdit": model, "cond": cond})


def load_t2i() -> tuple[MMDiT, WordConditioner]:
    """The shipped text → image MMDiT and its word conditioner (``unified-mmdit-t2i``); lesson 05.2."""
    model, cond = MMDiT(T2I_CONFIG), WordConditioner(T2I_CONFIG.cond_dim)
    _load(data_path("unified-mmdit-t2i"), {"mmdit": model, "cond": cond})
    return model, cond


def _unified_phase2(model: MMDiT, cond: MLLMConditioner, seed: int) -> None:
    """Phase 2 of ``build_unified``: more editing (70 %), a fresh cosine schedule at half the rate,
    its own generator (so it can be resumed from a saved phase-1 model bit for bit)."""
    cfg = GenerationConfig(steps=UNIFIED_PHASE2_STEPS, batch=UNIFIED_BATCH, edit_frac=0.7, lr=1e-3)
    train_generation(model, cond, ShapesWorld(WorldConfig()), cfg, torch.Generator().manual_seed(seed + 1), desc="stage 3 (phase 2)")


def build_unified(out_path: Path, seed: int) -> None:
    """Stages 2–3: MMDiT on the frozen stage-1 MLLM's states, text → image mixed with editing
    (phase 1: ``UNIFIED_STEPS`` at 50 % editing; phase 2: ``UNIFIED_PHASE2_STEPS`` at 70 %).

    Builds lessons 05.3–05.4's shipped model; JoyAI-Image digest § "Training stages" (2–3).
    """
    g = seed_everything(seed)
    cond = MLLMConditioner(load_mllm(), freeze=True)
    model = MMDiT(MMDiTConfig(cond_dim=MLLMConfig().d))
    train_generation(model, cond, ShapesWorld(WorldConfig()), GenerationConfig(steps=UNIFIED_STEPS, batch=UNIFIED_BATCH, edit_frac=0.5), g)
    _unified_phase2(model, cond, seed)
    _save(out_path, {"mmdit": model})


def load_unified() -> tuple[MMDiT, MLLMConditioner]:
    """The shipped unified model: the MMDiT and a frozen ``MLLMConditioner`` around the stage-1 MLLM.

    Lessons 05.3 and 05.4; JoyAI-Image digest § "Core idea" (one MLLM coupled with one MMDiT).
    """
    model = MMDiT(MMDiTConfig(cond_dim=MLLMConfig().d))
    _load(data_path("unified-mmdit"), {"mmdit": model})
    return model, MLLMConditioner(load_mllm(), freeze=True)


def editor_config() -> EditorConfig:
    """The settings ``build_editor`` trains with (lesson 05.3 quotes them)."""
    return EditorConfig(steps=EDITOR_STEPS, batch=32, lr=1e-3, edit_frac=EDITOR_EDIT_FRAC, p_uncond=0.15)


def build_editor(out_path: Path, seed: int) -> None:
    """The toy's residual editor: ``unified-mmdit`` + a zero-initialised residual head, fine-tuned on the
    stage-3 mix (``EDITOR_STEPS`` steps, ``EDITOR_EDIT_FRAC`` = 60 % editing with the image-space loss and "no instruction → keep
    the image"; text → image with plain flow matching), MLLM frozen.

    Builds lesson 05.3's shipped editor; JoyAI-Image digest § "Training stages" (3) with the toy-only
    device of ``editing.ResidualEditor``. Needs ``unified-mllm`` and ``unified-mmdit`` in place.
    """
    from hdai_lessons.unified.editing import ResidualEditor, train_editor

    g = seed_everything(seed)
    model, cond = load_unified()
    editor = ResidualEditor(model)
    train_editor(editor, cond, ShapesWorld(WorldConfig()), editor_config(), g)
    _save(out_path, {"editor": editor})


def load_editor() -> tuple["ResidualEditor", MLLMConditioner]:
    """The shipped toy editor (``unified-editor``) and a frozen ``MLLMConditioner`` around the stage-1 MLLM.

    Lesson 05.3; the toy-only residual editor of ``editing.ResidualEditor`` on JoyAI-Image's interface
    (digest § "Core idea").
    """
    from hdai_lessons.unified.editing import ResidualEditor

    editor = ResidualEditor(MMDiT(MMDiTConfig(cond_dim=MLLMConfig().d)))
    _load(data_path("unified-editor"), {"editor": editor})
    return editor, MLLMConditioner(load_mllm(), freeze=True)
