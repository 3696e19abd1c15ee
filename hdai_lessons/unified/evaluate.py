"""Analytic evaluators for the shapes world: no learned judge, so every score is exact.

Lessons 05.1 (the detector checked on renderer images), 05.2 (generation) and 05.3 (editing); the
evaluation of JoyAI-Image digest § "Toy experiment for the course" (the paper uses benchmarks instead).

- ``detect(world, image)``: the objects in an image (colour by nearest palette colour per pixel,
  cell by where the pixels are, shape and size by the best-IoU template).
- ``generation_scores``: does a generated image show what the prompt asked for (per attribute
  and the whole scene)? — a GenEval-like check.
- ``edit_scores``: edit success (the detected scene equals the target) and PSNR on the region
  the edit must leave untouched.
- ``qa_accuracy``: exact-match accuracy of answers, by question type.
- ``qa_breakdown``: accuracy by question type *and* by the scene's number of objects, each group with
  its chance levels (``answer_space``, ``unbound_answers``): the binding test of lesson 05.1.
"""
from __future__ import annotations

import math

import torch

from hdai_lessons.unified.shapes import COLOURS, NUMBER_WORDS, RGB, SHAPES, SIZES, Obj, Scene, ShapesWorld

PALETTE = torch.tensor([(0.0, 0.0, 0.0)] + [RGB[k] for k in COLOURS])  # (5, 3): background + colours


def colour_map(image: torch.Tensor, max_dist: float = 0.45) -> torch.Tensor:
    """Per-pixel palette index: 0 background, 1..4 = ``COLOURS``, -1 = no palette colour close.

    Lesson 05.1; the "colour clustering" step of the analytic detector in JoyAI-Image digest § "Toy
    experiment for the course".

    Args:
        image: ``(3, H, W)`` or ``(B, 3, H, W)`` in [0, 1].
    Returns:
        ``(H, W)`` or ``(B, H, W)`` long.
    """
    if image.dim() not in (3, 4) or image.shape[-3] != 3:
        raise ValueError(f"expected images of shape (3, H, W) or (B, 3, H, W), got {tuple(image.shape)}")
    px = image.movedim(-3, -1).clamp(0, 1).float()  # (..., H, W, 3)
    d = ((px.unsqueeze(-2) - PALETTE) ** 2).sum(-1)  # (..., H, W, 5)
    dist, idx = d.min(dim=-1)
    idx[dist > max_dist ** 2] = -1
    return idx


def detect_batch(world: ShapesWorld, images: torch.Tensor, min_pixels: int = 8) -> "list[Scene]":
    """The scene each image shows, read off analytically (vectorised over the batch).

    Lesson 05.1; the analytic detector of JoyAI-Image digest § "Toy experiment for the course".

    For every cell, the most frequent palette colour with at least ``min_pixels`` pixels there is one
    object; its shape and size are the template (``world.masks``) with the highest IoU against
    that colour's pixels.

    Args:
        images: ``(B, 3, H, W)`` in [0, 1] (renderer images or model samples mapped to [0, 1]).
    """
    cfg = world.cfg
    if images.dim() != 4 or tuple(images.shape[2:]) != (cfg.size, cfg.size):
        raise ValueError(f"images are {tuple(images.shape)}, expected (B, 3, {cfg.size}, {cfg.size})")
    B, G, C = images.shape[0], cfg.grid, cfg.cell
    cmap = colour_map(images)  # (B, H, W)
    cells = cmap.reshape(B, G, C, G, C).permute(0, 1, 3, 2, 4)  # (B, G, G, cell, cell)
    onehot = torch.stack([cells == k + 1 for k in range(len(COLOURS))], dim=3)  # (B, G, G, 4, cell, cell)
    counts = onehot.flatten(-2).sum(-1)  # (B, G, G, 4)
    best_k = counts.argmax(-1)  # (B, G, G)
    present = counts.gather(-1, best_k.unsqueeze(-1)).squeeze(-1) >= min_pixels
    m = onehot.gather(3, best_k[..., None, None, None].expand(-1, -1, -1, 1, C, C)).squeeze(3)  # (B, G, G, cell, cell)
    keys = list(world.masks)
    tmpl = torch.stack([world.masks[k] for k in keys])  # (T, cell, cell)
    inter = (m.unsqueeze(3) & tmpl).flatten(-2).sum(-1).float()  # (B, G, G, T)
    union = (m.unsqueeze(3) | tmpl).flatten(-2).sum(-1).float()
    best_t = (inter / union).argmax(-1)  # (B, G, G)
    out = []
    for b in range(B):
        objs = []
        for r in range(G):
            for c in range(G):
                if present[b, r, c]:
                    s, z = keys[int(best_t[b, r, c])]
                    objs.append(Obj(s, COLOURS[int(best_k[b, r, c])], z, r, c))
        out.append(Scene(tuple(objs)))
    return out


def detect(world: ShapesWorld, image: torch.Tensor, min_pixels: int = 8) -> Scene:
    """The scene one image ``(3, H, W)`` shows (see ``detect_batch``; lesson 05.1)."""
    return detect_batch(world, image.unsqueeze(0), min_pixels)[0]


def _key(o: Obj, with_size: bool) -> tuple:
    return (o.shape, o.colour, o.row, o.col) + ((o.size,) if with_size else ())


def scene_match(pred: Scene, target: Scene, with_size: bool = True) -> bool:
    """Exactly the same objects (shape, colour, cell, and size unless ``with_size=False``).

    Lessons 05.1–05.3: the "scene" score of generation and the success of an edit (JoyAI-Image digest
    § "Toy experiment for the course").
    """
    return sorted(_key(o, with_size) for o in pred.objects) == sorted(_key(o, with_size) for o in target.objects)


def generation_scores(world: ShapesWorld, images: torch.Tensor, scenes: "list[Scene]") -> dict:
    """Adherence of generated images to their prompts' scenes (fractions in [0, 1]).

    Lessons 05.1 (renderer vs noise) and 05.2 (the MMDiT's samples); the "GenEval-like generation checks"
    of JoyAI-Image digest § "Toy experiment for the course".

    Returns ``{"colour", "shape", "position", "size"}``: per prompt object, is there a detected object
    in its cell with that colour / shape / size (position: any object in its cell)? ``"object"``:
    colour, shape and cell all right. ``"scene"``: the detected scene equals the prompt's exactly
    (no missing or extra objects, sizes included).

    Args:
        images: ``(B, 3, H, W)`` in [0, 1]; scenes: the ``B`` prompt scenes.
    """
    if len(images) != len(scenes):
        raise ValueError(f"{len(images)} images but {len(scenes)} scenes")
    tot = {"colour": 0, "shape": 0, "size": 0, "position": 0, "object": 0}
    n_obj, n_scene = 0, 0
    for det, sc in zip(detect_batch(world, images), scenes):
        by_cell = {(o.row, o.col): o for o in det.objects}
        for o in sc.objects:
            n_obj += 1
            d = by_cell.get((o.row, o.col))
            if d is None:
                continue
            tot["position"] += 1
            tot["colour"] += d.colour == o.colour
            tot["shape"] += d.shape == o.shape
            tot["size"] += d.size == o.size
            tot["object"] += (d.colour == o.colour) and (d.shape == o.shape)
        n_scene += scene_match(det, sc)
    out = {k: v / max(1, n_obj) for k, v in tot.items()}
    out["scene"] = n_scene / max(1, len(scenes))
    return out


def psnr(a: torch.Tensor, b: torch.Tensor, mask: "torch.Tensor | None" = None, max_db: float = 60.0) -> float:
    """Peak signal-to-noise ratio in dB for images in [0, 1], over ``mask`` pixels (capped at ``max_db``).

    Lesson 05.3; "PSNR on the unedited region", JoyAI-Image digest § "Toy experiment for the course".

    Args:
        a, b: ``(3, H, W)``; mask: ``(H, W)`` bool or ``None`` (all pixels).
    """
    diff2 = (a.clamp(0, 1) - b.clamp(0, 1)) ** 2  # (3, H, W)
    if mask is not None:
        if not bool(mask.any()):
            return max_db
        diff2 = diff2[:, mask]
    mse = float(diff2.mean())
    return max_db if mse <= 10 ** (-max_db / 10) else min(max_db, -10 * math.log10(mse))


def edit_scores(world: ShapesWorld, edited: torch.Tensor, sources: torch.Tensor,
                targets: "list[Scene]", touched: "list[set]") -> dict:
    """Edit success and fidelity of the untouched region.

    Lessons 05.3 and 05.4; "edit success plus PSNR on the unedited region", JoyAI-Image digest § "Toy
    experiment for the course".

    ``success``: the detected scene of the edited image equals the target scene exactly.
    ``psnr_untouched``: mean PSNR (dB, capped at 60) between edited and source images over the
    cells the instruction does not touch (an edit must leave them as they were).

    Args:
        edited, sources: ``(B, 3, H, W)`` in [0, 1]; targets: ``B`` target scenes; touched: ``B`` sets
        of (row, col) cells the edit may change.
    """
    succ, ps = [], []
    for det, e, s, t, cells in zip(detect_batch(world, edited), edited, sources, targets, touched):
        succ.append(float(scene_match(det, t)))
        ps.append(psnr(e, s, ~world.cell_mask(cells)))
    n = max(1, len(succ))
    return {"success": sum(succ) / n, "psnr_untouched": sum(ps) / n}


def qa_accuracy(predicted: "list[list[str]]", answers: "list[list[str]]", qtypes: "list[str]") -> dict:
    """Exact-match accuracy overall and per question type: ``{"all": .., "colour": .., ...}``.

    Lessons 05.1 and 05.3; the toy's "QA accuracy" (JoyAI-Image digest § "Toy experiment for the course").
    """
    if not (len(predicted) == len(answers) == len(qtypes)):
        raise ValueError("predicted, answers and qtypes must have the same length")
    out: dict = {}
    for t in sorted(set(qtypes)):
        idx = [i for i, q in enumerate(qtypes) if q == t]
        out[t] = sum(predicted[i] == answers[i] for i in idx) / len(idx)
    out["all"] = sum(p == a for p, a in zip(predicted, answers)) / max(1, len(answers))
    return out


ATTRIBUTE_QUESTIONS = ("colour", "shape")
"""Question types that name one object by one attribute and ask for another ("what colour is the circle ?"):
on a scene of two objects, answering them needs *binding* (lesson 05.1)."""


def answer_space(world: ShapesWorld, qtype: str) -> "list[list[str]]":
    """Every answer a question of type ``qtype`` can have in ``world``, as word lists.

    Lesson 05.1; the chance level of the toy's "QA accuracy" (JoyAI-Image digest § "Toy experiment for the
    course"): a guesser that ignores the image and picks uniformly from this list is right
    ``1 / len(answer_space)`` of the time.
    """
    cfg = world.cfg
    spaces = {"colour": [[k] for k in COLOURS], "shape": [[s] for s in SHAPES],
              "count": [[NUMBER_WORDS[n]] for n in range(cfg.min_objects, cfg.max_objects + 1)],
              "position": [["yes"], ["no"]]}
    if qtype not in spaces:
        raise ValueError(f"unknown question type {qtype!r}; choose from {tuple(spaces)}")
    return spaces[qtype]


def unbound_answers(scene: Scene, qtype: str) -> "list[list[str]]":
    """The answers a model that sees *which* colours and shapes a scene contains, but not which object
    carries which, cannot tell apart: for an attribute question, the scene's values of the asked attribute.

    Lesson 05.1 (the binding test; JoyAI-Image digest § "Toy experiment for the course", QA on colour and
    shape). On a one-object scene this is the one right answer; on a two-object scene a model without
    binding picks one of two and is right half of the time.
    """
    if qtype not in ATTRIBUTE_QUESTIONS:
        raise ValueError(f"binding chance is defined for attribute questions {ATTRIBUTE_QUESTIONS}, not {qtype!r}")
    return [[v] for v in sorted({getattr(o, qtype) for o in scene.objects})]


def qa_breakdown(world: ShapesWorld, predicted: "list[list[str]]", answers: "list[list[str]]",
                 qtypes: "list[str]", scenes: "list[Scene]") -> dict:
    """Exact-match accuracy by question type and by the scene's number of objects, with chance levels.

    Lesson 05.1; the toy's "QA accuracy" (JoyAI-Image digest § "Toy experiment for the course") split so
    that an aggregate cannot hide a failure on one kind of scene.

    Returns ``{(qtype, n_objects): row}`` for every question type, ``"attribute"`` (colour and shape
    questions pooled) and ``"all"`` (every question pooled), and every
    object count present and ``"any"`` (pooled); each ``row`` has ``"n"`` (questions), ``"correct"``,
    ``"accuracy"``, ``"chance"`` (the mean over the group's questions of ``1 / len(answer_space)``: a
    uniform guess that ignores the image), and, for groups of attribute questions only,
    ``"chance_unbound"`` (the mean of ``1 / len(unbound_answers)``: a guess among the values the scene
    shows, i.e. perception without binding).
    """
    if not (len(predicted) == len(answers) == len(qtypes) == len(scenes)):
        raise ValueError("predicted, answers, qtypes and scenes must have the same length")
    rows = []
    for p, a, t, sc in zip(predicted, answers, qtypes, scenes):
        rows.append({"t": t, "k": len(sc.objects), "ok": list(p) == list(a),
                     "chance": 1.0 / len(answer_space(world, t)),
                     "unbound": 1.0 / len(unbound_answers(sc, t)) if t in ATTRIBUTE_QUESTIONS else None})

    def in_group(t: str, r: dict) -> bool:
        return t in ("all", r["t"]) or (t == "attribute" and r["t"] in ATTRIBUTE_QUESTIONS)

    out: dict = {}
    types = sorted({r["t"] for r in rows})
    for t in types + (["attribute"] if set(types) & set(ATTRIBUTE_QUESTIONS) else []) + ["all"]:
        for k in sorted({r["k"] for r in rows}) + ["any"]:
            grp = [r for r in rows if in_group(t, r) and k in ("any", r["k"])]
            if not grp:
                continue
            row = {"n": len(grp), "correct": sum(r["ok"] for r in grp)}
            row["accuracy"] = row["correct"] / row["n"]
            row["chance"] = sum(r["chance"] for r in grp) / row["n"]
            if all(r["unbound"] is not None for r in grp):
                row["chance_unbound"] = sum(r["unbound"] for r in grp) / row["n"]
            out[(t, k)] = row
    return out


__all__ = ["ATTRIBUTE_QUESTIONS", "PALETTE", "answer_space", "colour_map", "detect", "detect_batch", "edit_scores",
           "generation_scores", "psnr", "qa_accuracy", "qa_breakdown", "scene_match", "unbound_answers", "SHAPES", "SIZES"]
