"""The shapes world: scenes of coloured shapes on a small canvas, with exact ground truth.

A scene is a few objects, each a shape × colour × size in one cell of a ``grid × grid`` layout.
The same code renders the image, writes its caption, asks and answers questions about it and
applies edit instructions, so every target is exact (the toy the JoyAI-Image digest proposes in
§ "Toy experiment for the course"). Lesson 05.1 introduces it; lessons 05.2–05.4 draw from it.

Words are from a fixed vocabulary (``VOCAB``); sequences are word lists, encoded with ``encode``.

Example::

    world = ShapesWorld(WorldConfig())
    scene = world.sample_scene(torch.Generator().manual_seed(0))
    img = world.render(scene)                 # (3, 16, 16) in [0, 1]
    world.caption(scene)                      # ['large', 'red', 'circle', 'top', 'left', ...]
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch

SHAPES = ("circle", "square", "triangle")
COLOURS = ("red", "green", "blue", "yellow")
SIZES = ("small", "large")
RGB = {"red": (1.0, 0.0, 0.0), "green": (0.0, 1.0, 0.0), "blue": (0.0, 0.0, 1.0), "yellow": (1.0, 1.0, 0.0)}
ROW_WORDS = {2: ("top", "bottom"), 3: ("top", "middle", "bottom")}
COL_WORDS = {2: ("left", "right"), 3: ("left", "centre", "right")}
NUMBER_WORDS = ("zero", "one", "two", "three")
QUESTION_TYPES = ("colour", "shape", "count", "position")
EDIT_TYPES = ("recolour", "move", "remove", "add")

SPECIALS = ("<pad>", "<bos>", "<eos>", "<ans>", "<sys>")
WORDS = (
    *SHAPES, *COLOURS, *SIZES, "top", "middle", "bottom", "left", "centre", "right", *NUMBER_WORDS,
    "and", "a", "the", "what", "colour", "shape", "is", "how", "many", "shapes", "of", "above", "below",
    "yes", "no", "make", "move", "to", "remove", "add", "at", "describe", "image", "nothing", "?", ":",
)
VOCAB = (*SPECIALS, *WORDS)
TOKEN_ID = {w: i for i, w in enumerate(VOCAB)}
PAD, BOS, EOS, ANS, SYS = (TOKEN_ID[s] for s in SPECIALS)


def encode(words: "list[str]") -> list[int]:
    """Word list → token ids (raises ``KeyError`` naming an unknown word).

    Lesson 05.1; the toy's word-level vocabulary (JoyAI-Image digest § "Toy experiment for the course").
    """
    try:
        return [TOKEN_ID[w] for w in words]
    except KeyError as err:
        raise KeyError(f"word {err.args[0]!r} is not in the shapes-world vocabulary") from None


def decode(ids: "list[int] | torch.Tensor") -> list[str]:
    """Token ids → words (stops at ``<eos>``, skips ``<pad>``); lesson 05.1, the inverse of ``encode``."""
    out = []
    for i in (ids.tolist() if torch.is_tensor(ids) else ids):
        if i == EOS:
            break
        if i != PAD:
            out.append(VOCAB[i])
    return out


@dataclass(frozen=True)
class Obj:
    """One object: a shape of a colour and size in cell (row, col).

    Lesson 05.1; JoyAI-Image digest § "Toy experiment for the course" (shape × colour × cell × size).
    """

    shape: str
    colour: str
    size: str
    row: int
    col: int


@dataclass(frozen=True)
class Scene:
    """A set of objects, at most one per cell, with distinct shapes and distinct colours (so every
    reference like "the circle" or "the red object" is unambiguous). Lesson 05.1; JoyAI-Image digest
    § "Toy experiment for the course"."""

    objects: tuple

    def cells(self) -> set:
        return {(o.row, o.col) for o in self.objects}


@dataclass(frozen=True)
class WorldConfig:
    """Canvas layout and scene statistics (lesson 05.1; JoyAI-Image digest § "Toy experiment for the
    course" proposes a 32-px canvas on a 3 × 3 grid, the lessons use 24 px on 2 × 2)."""

    grid: int = 2
    """Cells per side (2 or 3); positions are named "top left" … "bottom right"."""
    cell: int = 12
    """Pixels per cell side; the canvas is ``grid * cell`` pixels square."""
    min_objects: int = 1
    """Fewest objects per scene."""
    max_objects: int = 2
    """Most objects per scene (≤ 3: shapes are distinct)."""

    @property
    def size(self) -> int:
        return self.grid * self.cell

    def __post_init__(self) -> None:
        if self.grid not in ROW_WORDS:
            raise ValueError(f"grid must be 2 or 3, got {self.grid}")
        if not 1 <= self.min_objects <= self.max_objects <= min(3, self.grid * self.grid):
            raise ValueError(f"need 1 ≤ min_objects ≤ max_objects ≤ 3, got {self.min_objects}, {self.max_objects}")
        if self.cell < 6:
            raise ValueError(f"cell must be at least 6 pixels to tell shapes apart, got {self.cell}")


def shape_mask(shape: str, size: str, cell: int) -> torch.Tensor:
    """Boolean mask ``(cell, cell)`` of a shape centred in its cell (pixel-centre sampling).

    Lesson 05.1 (the renderer and the detector's templates); JoyAI-Image digest § "Toy experiment for
    the course".
    """
    c = (cell - 1) / 2.0
    y, x = torch.meshgrid(torch.arange(cell, dtype=torch.float64), torch.arange(cell, dtype=torch.float64), indexing="ij")
    half = (0.45 if size == "large" else 0.28) * cell  # half extent
    if shape == "circle":
        return (y - c) ** 2 + (x - c) ** 2 <= (half + 0.25) ** 2
    if shape == "square":
        h = half * 0.85
        return ((y - c).abs() <= h) & ((x - c).abs() <= h)
    if shape == "triangle":  # apex up: width grows linearly from the top row to the base
        top, bottom = c - half, c + half
        frac = (y - top) / (bottom - top)
        return (y >= top - 1e-9) & (y <= bottom + 1e-9) & ((x - c).abs() <= frac * half + 0.3)
    raise ValueError(f"unknown shape {shape!r}; choose from {SHAPES}")


class ShapesWorld:
    """Sampler, renderer, captioner, QA and edit generator for one ``WorldConfig``.

    Lesson 05.1 (used by every lesson of module 05): the "data generator" of JoyAI-Image digest § "Toy
    experiment for the course" — captions, QA on colour / shape / count / position, and the edits
    recolour, move, remove, add.
    """

    def __init__(self, cfg: "WorldConfig | None" = None):
        self.cfg = cfg or WorldConfig()
        self.rows = ROW_WORDS[self.cfg.grid]
        self.cols = COL_WORDS[self.cfg.grid]
        self.masks = {(s, z): shape_mask(s, z, self.cfg.cell) for s in SHAPES for z in SIZES}
        # One painted (3, cell, cell) cell per (shape, size, colour), index 0 = an empty cell; render_batch
        # gathers them, so an image costs one indexing op instead of three masked writes per object.
        keys = [(s, z, k) for s in SHAPES for z in SIZES for k in COLOURS]
        self._tile_id = {key: i + 1 for i, key in enumerate(keys)}
        tiles = torch.zeros(len(keys) + 1, 3, self.cfg.cell, self.cfg.cell)
        for i, (s, z, k) in enumerate(keys):
            tiles[i + 1] = torch.tensor(RGB[k])[:, None, None] * self.masks[(s, z)]
        self._tiles = tiles

    # ---------------------------------------------------------------- scenes and images
    def _pick(self, seq, g: torch.Generator):
        return seq[int(torch.randint(len(seq), (1,), generator=g))]

    def _perm(self, seq, g: torch.Generator) -> list:
        return [seq[i] for i in torch.randperm(len(seq), generator=g).tolist()]

    def sample_scene(self, g: torch.Generator, n: "int | None" = None) -> Scene:
        """A random scene with ``n`` objects (default: uniform in [min_objects, max_objects])."""
        cfg = self.cfg
        if n is None:
            n = int(torch.randint(cfg.min_objects, cfg.max_objects + 1, (1,), generator=g))
        cells = self._perm([(r, c) for r in range(cfg.grid) for c in range(cfg.grid)], g)[:n]
        shapes = self._perm(list(SHAPES), g)[:n]
        colours = self._perm(list(COLOURS), g)[:n]
        objs = tuple(sorted((Obj(s, k, self._pick(SIZES, g), r, c) for s, k, (r, c) in zip(shapes, colours, cells)),
                            key=lambda o: (o.row, o.col)))
        return Scene(objs)

    def render(self, scene: Scene) -> torch.Tensor:
        """The image of ``scene``: ``(3, H, W)`` float32 in [0, 1], black background."""
        return self.render_batch([scene])[0]

    def render_batch(self, scenes: "list[Scene]") -> torch.Tensor:
        """``(B, 3, H, W)`` images in [0, 1]: each object's shape mask painted in its colour in its cell.

        A scene has at most one object per cell, so the image is a ``grid × grid`` mosaic of painted cells
        (``self._tiles``); a hand-made scene with two objects in one cell is painted object by object,
        later ones over earlier ones.
        """
        cfg, g, n = self.cfg, self.cfg.grid, self.cfg.cell
        idx = [0] * (len(scenes) * g * g)
        layered = []
        for b, scene in enumerate(scenes):
            for o in scene.objects:
                if not (0 <= o.row < g and 0 <= o.col < g):
                    raise ValueError(f"object {o} lies outside the {g} × {g} grid")
                j = (b * g + o.row) * g + o.col
                if idx[j]:
                    layered.append(b)
                idx[j] = self._tile_id[(o.shape, o.size, o.colour)]
        imgs = (self._tiles[torch.tensor(idx, dtype=torch.long)].view(len(scenes), g, g, 3, n, n)
                .permute(0, 3, 1, 4, 2, 5).reshape(len(scenes), 3, cfg.size, cfg.size))
        for b in set(layered):   # objects sharing a cell: paint them in order
            img = torch.zeros(3, cfg.size, cfg.size)
            for o in scenes[b].objects:
                patch = img[:, o.row * n:(o.row + 1) * n, o.col * n:(o.col + 1) * n]
                m = self.masks[(o.shape, o.size)]
                patch.copy_(torch.where(m, self._tiles[self._tile_id[(o.shape, o.size, o.colour)]], patch))
            imgs[b] = img
        return imgs

    def cell_mask(self, cells: "set | list") -> torch.Tensor:
        """Boolean ``(H, W)`` mask of the given cells."""
        cfg = self.cfg
        m = torch.zeros(cfg.size, cfg.size, dtype=torch.bool)
        for r, c in cells:
            m[r * cfg.cell:(r + 1) * cfg.cell, c * cfg.cell:(c + 1) * cfg.cell] = True
        return m

    # ---------------------------------------------------------------- language
    def position_words(self, row: int, col: int) -> list[str]:
        return [self.rows[row], self.cols[col]]

    def object_words(self, o: Obj) -> list[str]:
        return [o.size, o.colour, o.shape, *self.position_words(o.row, o.col)]

    def caption(self, scene: Scene) -> list[str]:
        """Exact caption, objects in reading order: "large red circle top left and small blue …"."""
        words: list[str] = []
        for i, o in enumerate(scene.objects):
            if i:
                words.append("and")
            words += self.object_words(o)
        return words or ["nothing"]

    def parse_caption(self, words: "list[str]") -> "Scene | None":
        """Inverse of ``caption`` (``None`` if the words are not a well-formed caption)."""
        if words == ["nothing"]:
            return Scene(())
        objs = []
        chunks = " ".join(words).split(" and ")
        for ch in chunks:
            w = ch.split()
            if len(w) != 5 or w[0] not in SIZES or w[1] not in COLOURS or w[2] not in SHAPES \
                    or w[3] not in self.rows or w[4] not in self.cols:
                return None
            objs.append(Obj(w[2], w[1], w[0], self.rows.index(w[3]), self.cols.index(w[4])))
        return Scene(tuple(sorted(objs, key=lambda o: (o.row, o.col))))

    def question(self, scene: Scene, qtype: str, g: torch.Generator) -> tuple[list[str], list[str]]:
        """A question of type ``qtype`` about ``scene`` and its exact answer, as word lists."""
        objs = scene.objects
        if qtype == "colour":
            o = self._pick(objs, g)
            return ["what", "colour", "is", "the", o.shape, "?"], [o.colour]
        if qtype == "shape":
            o = self._pick(objs, g)
            return ["what", "shape", "is", "the", o.colour, "?"], [o.shape]
        if qtype == "count":
            return ["how", "many", "shapes", "?"], [NUMBER_WORDS[len(objs)]]
        if qtype == "position":
            if len(objs) < 2:
                o = objs[0]
                cells = [(r, c) for r in range(self.cfg.grid) for c in range(self.cfg.grid)]
                r, c = (o.row, o.col) if float(torch.rand(1, generator=g)) < 0.5 else self._pick(cells, g)
                return ["is", "the", o.shape, "at", *self.position_words(r, c), "?"], ["yes" if (r, c) == (o.row, o.col) else "no"]
            a, b = self._perm(list(objs), g)[:2]
            rel = self._pick(("left", "right", "above", "below"), g)
            truth = {"left": a.col < b.col, "right": a.col > b.col, "above": a.row < b.row, "below": a.row > b.row}[rel]
            words = ["is", "the", a.shape, *(["left", "of"] if rel == "left" else ["right", "of"] if rel == "right" else [rel]), "the", b.shape, "?"]
            return words, ["yes" if truth else "no"]
        raise ValueError(f"unknown question type {qtype!r}; choose from {QUESTION_TYPES}")

    # ---------------------------------------------------------------- edits
    def edit(self, scene: Scene, etype: str, g: torch.Generator) -> "tuple[list[str], Scene, set] | None":
        """An instruction of type ``etype``, the exact edited scene and the set of touched cells.

        Returns ``None`` when the edit is impossible for this scene (e.g. ``add`` with every shape
        present, ``remove`` on a one-object scene, ``move`` with no free cell).
        """
        cfg = self.cfg
        objs = list(scene.objects)
        free = [(r, c) for r in range(cfg.grid) for c in range(cfg.grid) if (r, c) not in scene.cells()]
        if etype == "recolour":
            o = self._pick(objs, g)
            unused = [k for k in COLOURS if k not in {p.colour for p in objs}]
            if not unused:
                return None
            k = self._pick(unused, g)
            new = [replace(p, colour=k) if p == o else p for p in objs]
            return ["make", "the", o.shape, k], Scene(tuple(new)), {(o.row, o.col)}
        if etype == "move":
            if not free:
                return None
            o = self._pick(objs, g)
            r, c = self._pick(free, g)
            new = sorted([replace(p, row=r, col=c) if p == o else p for p in objs], key=lambda p: (p.row, p.col))
            return ["move", "the", o.shape, "to", *self.position_words(r, c)], Scene(tuple(new)), {(o.row, o.col), (r, c)}
        if etype == "remove":
            if len(objs) < 2:
                return None
            o = self._pick(objs, g)
            return ["remove", "the", o.shape], Scene(tuple(p for p in objs if p != o)), {(o.row, o.col)}
        if etype == "add":
            shapes = [s for s in SHAPES if s not in {p.shape for p in objs}]
            colours = [k for k in COLOURS if k not in {p.colour for p in objs}]
            if not free or not shapes or not colours or len(objs) >= cfg.max_objects + 1:
                return None
            r, c = self._pick(free, g)
            o = Obj(self._pick(shapes, g), self._pick(colours, g), self._pick(SIZES, g), r, c)
            new = sorted(objs + [o], key=lambda p: (p.row, p.col))
            return ["add", "a", *self.object_words(o)], Scene(tuple(new)), {(r, c)}
        raise ValueError(f"unknown edit type {etype!r}; choose from {EDIT_TYPES}")

    def sample_edit(self, g: torch.Generator, etypes=EDIT_TYPES) -> tuple[Scene, str, list[str], Scene, set]:
        """A random (source scene, edit type, instruction, target scene, touched cells)."""
        for _ in range(100):
            scene = self.sample_scene(g)
            etype = self._pick(tuple(etypes), g)
            out = self.edit(scene, etype, g)
            if out is not None:
                return (scene, etype, *out)
        raise RuntimeError(f"could not sample a feasible edit of types {etypes} in this world")


# ---------------------------------------------------------------------------- batches
@dataclass
class QABatch:
    """A batch for the MLLM: images and question/answer token rows (lesson 05.1)."""

    images: torch.Tensor
    """``(B, 3, H, W)`` in [0, 1]."""
    question: torch.Tensor
    """``(B, Lq)`` token ids, right-padded with ``<pad>``."""
    answer: torch.Tensor
    """``(B, La)`` token ids ending in ``<eos>``, right-padded."""
    qtypes: list = field(default_factory=list)
    """The question type of each row."""
    scenes: list = field(default_factory=list)
    """The scene each row's image shows (lesson 05.1 splits accuracy by its number of objects)."""


def pad_rows(rows: "list[list[int]]", length: "int | None" = None) -> torch.Tensor:
    """Right-pad integer rows with ``<pad>`` into a ``(B, L)`` long tensor (lessons 05.1–05.4)."""
    L = length or max(len(r) for r in rows)
    return torch.tensor([list(r[:L]) + [PAD] * (L - len(r[:L])) for r in rows], dtype=torch.long).reshape(len(rows), L)


def sample_qa_batch(world: ShapesWorld, batch: int, g: torch.Generator,
                    qtypes=QUESTION_TYPES, caption_frac: float = 0.25) -> QABatch:
    """``batch`` (image, question, answer) triples; a fraction are "describe the image" → caption.

    Lesson 05.1 (stage-1 training data; joint fine-tuning in 05.3): the understanding part of the
    training mixture in JoyAI-Image digest § "Algorithm (pseudo-code)".
    """
    rows = []
    for _ in range(batch):
        s = world.sample_scene(g)
        if float(torch.rand(1, generator=g)) < caption_frac:
            q, a, t = ["describe", "the", "image", ":"], world.caption(s), "caption"
        else:
            t = world._pick(tuple(qtypes), g)
            q, a = world.question(s, t, g)
        rows.append((s, q, a, t))
    return _qa_batch(world, rows)


def qa_eval_set(world: ShapesWorld, per_type: int, seed: int) -> QABatch:
    """A fixed evaluation set: ``per_type`` questions of each type (no captions), seeded.

    Lessons 05.1 and 05.3 (the QA accuracy of JoyAI-Image digest § "Toy experiment for the course").
    """
    g = torch.Generator().manual_seed(seed)
    rows = []
    for t in QUESTION_TYPES:
        for _ in range(per_type):
            s = world.sample_scene(g)
            rows.append((s, *world.question(s, t, g), t))
    return _qa_batch(world, rows)


def _qa_batch(world: ShapesWorld, rows: "list[tuple[Scene, list[str], list[str], str]]") -> QABatch:
    """(scene, question words, answer words, question type) rows → a ``QABatch`` (answers end in ``<eos>``)."""
    return QABatch(world.render_batch([r[0] for r in rows]), pad_rows([encode(r[1]) for r in rows]),
                   pad_rows([encode(r[2]) + [EOS] for r in rows]), [r[3] for r in rows], [r[0] for r in rows])


def chance_accuracy(world: ShapesWorld) -> dict:
    """Accuracy of always giving the most frequent answer, per question type (estimated, seeded).

    Lessons 05.1 and 05.3: the baseline every question type must beat.
    """
    ev = qa_eval_set(world, 400, seed=12345)
    out = {}
    for t in QUESTION_TYPES:
        answers = [tuple(ev.answer[i].tolist()) for i in range(len(ev.qtypes)) if ev.qtypes[i] == t]
        best = max(answers.count(a) for a in set(answers))
        out[t] = best / len(answers)
    return out


__all__ = [
    "ANS", "BOS", "COLOURS", "EDIT_TYPES", "EOS", "Obj", "PAD", "QABatch", "QUESTION_TYPES", "SHAPES", "SIZES",
    "SYS", "Scene", "ShapesWorld", "VOCAB", "WorldConfig", "chance_accuracy", "decode", "encode", "pad_rows",
    "qa_eval_set", "sample_qa_batch", "shape_mask",
]
