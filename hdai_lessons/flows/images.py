"""Images without a download: scikit-learn's 8×8 digits, a small classifier reward, a flow on pixels.

- ``load_digits_tensor``: the 1797 bundled digits as ``(N, 64)`` in [−1, 1] with labels ``(N,)``.
- ``DigitClassifier``: a small CNN ``(B, 1, 8, 8) -> (B, 10)`` logits; ``train_digit_classifier``
  fits it in a couple of seconds (test accuracy ≈ 95 %); ``ClassifierLogProb(clf, target,
  flat_shape=(1, 8, 8))`` turns it into the reward r(x) = log p(y = target | x) guidance ascends.
  The classifier is trained on clean digits *plus Gaussian-noised copies* so its gradient stays
  informative near (not only on) the data.
- ``train_digit_flow``: a ``VelocityMLP`` on the 64 pixels by conditional flow matching, and a
  distilled ``FlowMapMLP`` — the same code as the 2-D toy, on images (lesson 04.4).
- ``image_grid``: tile ``(B, 64)`` or ``(B, C, H, W)`` images into one array for ``imshow``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from hdai_lessons.core.progress import progress
from hdai_lessons.core.scale import by_scale


def load_digits_tensor() -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's bundled digits: x ``(1797, 64)`` float32 scaled from [0, 16] to [−1, 1], y ``(1797,)`` int64.

    Lesson 04.4; FMRG "Full-scale lesson options", Option B (self-contained, sklearn's 8×8 digits and a small
    classifier reward).
    """
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.data, dtype=torch.float32) / 8.0 - 1.0  # (N, 64)
    y = torch.tensor(d.target, dtype=torch.int64)
    return x, y


def split(n: int, test_frac: float = 0.2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed random train/test split of ``range(n)``: (train_idx, test_idx).

    Lesson 04.4; FMRG "Full-scale lesson options", Option B (self-contained, sklearn's 8×8 digits and a small
    classifier reward).
    """
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    k = int(round(n * test_frac))
    return perm[k:], perm[:k]


class DigitClassifier(nn.Module):
    """A small CNN on 8×8 digits: ``(B, 1, 8, 8)`` (or ``(B, 64)``) → logits ``(B, 10)``.

    Lesson 04.4; FMRG "Full-scale lesson options", Option B (self-contained, sklearn's 8×8 digits and a small
    classifier reward).
    """

    def __init__(self, width: int = 32):
        super().__init__()
        self.width = width
        self.net = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.SiLU(),
            nn.Conv2d(width, width, 3, padding=1, stride=2), nn.SiLU(),   # (B, w, 4, 4)
            nn.Flatten(), nn.Linear(width * 16, 64), nn.SiLU(), nn.Linear(64, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            if x.shape[1] != 64:
                raise ValueError(f"expected (B, 64) or (B, 1, 8, 8) digits, got {tuple(x.shape)}")
            x = x.reshape(-1, 1, 8, 8)  # (B, 1, 8, 8)
        return self.net(x)


@dataclass
class ClassifierConfig:
    """Digit-classifier training settings (the reward of lessons 04.4–04.5; ``train_digit_classifier``).

    Lesson 04.4; FMRG "Full-scale lesson options", Option B (self-contained, sklearn's 8×8 digits and a small
    classifier reward).
    """

    steps: int = 600
    """Adam steps."""
    batch: int = 128
    """Images per step."""
    lr: float = 3e-3
    """Learning rate."""
    noise: float = 0.5
    """Max std of the Gaussian noise added to half of each batch."""
    width: int = 32
    """Conv width."""


def train_digit_classifier(cfg: ClassifierConfig = ClassifierConfig(), seed: int = 0) -> tuple[DigitClassifier, float]:
    """Train ``DigitClassifier`` on the train split; return (frozen classifier, clean test accuracy).

    Lesson 04.4; FMRG "Full-scale lesson options", Option B (self-contained, sklearn's 8×8 digits and a small
    classifier reward).
    """
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    x, y = load_digits_tensor()
    tr, te = split(len(x), seed=0)
    clf = DigitClassifier(cfg.width)
    opt = torch.optim.Adam(clf.parameters(), lr=cfg.lr)
    for _ in progress(range(cfg.steps), desc="classifier"):
        idx = tr[torch.randint(0, len(tr), (cfg.batch,), generator=g)]
        xb = x[idx]
        half = cfg.batch // 2
        sig = cfg.noise * torch.rand(half, 1, generator=g)
        xb = torch.cat([xb[:half], xb[half:2 * half] + sig * torch.randn(half, 64, generator=g)])  # (batch, 64)
        loss = nn.functional.cross_entropy(clf(xb), y[idx][: len(xb)])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    clf.eval().requires_grad_(False)
    with torch.no_grad():
        acc = float((clf(x[te]).argmax(-1) == y[te]).float().mean())
    return clf, acc


@dataclass
class DigitFlowConfig:
    """Flow-matching + flow-map distillation on 8×8 digits (lesson 04.4).

    Lesson 04.4; FMRG "Full-scale lesson options", Option B (self-contained, sklearn's 8×8 digits and a small
    classifier reward).
    """

    hidden: int = 256
    """Width of the velocity and flow-map MLPs."""
    depth: int = 3
    """Hidden layers of both MLPs."""
    cfm_steps: int = 1500
    """Flow-matching steps (``cfm.train_cfm``)."""
    distill_steps: int = 800
    """Distillation steps (``flowmap.distill_flow_map``)."""
    n_traj: int = 2048
    """Teacher trajectories in the distillation bank."""
    grid_steps: int = 32
    """Teacher grid of the distillation bank."""
    batch: int = 256
    """Batch of both training runs."""


@dataclass
class DigitGuidanceLessonConfig:
    """Lesson 04.4's sizes: samples per run, the claim's seeds, and the grid of targets × λ × NFE budgets.

    Lesson 04.4; FMRG "Full-scale lesson options", Option B (FMRG-J/E, DPS and best-of-N at matched NFE).
    """

    n: int = 64
    """Samples (trajectories) per method, setting and seed."""
    n_seeds: int = 8
    """Seeds of the paired claims (seed i = the lesson's base seed + i)."""
    targets: tuple = (3, 8)
    """Digit classes the classifier reward asks for."""
    lams: tuple = (0.3, 1.0)
    """Guidance strengths λ."""
    budgets: tuple = (12, 24)
    """Matched NFE budgets per sample (forward + VJP; ``guidance.matched_steps``)."""

    @classmethod
    def for_scale(cls, scale) -> DigitGuidanceLessonConfig:
        """The rung's sizes: smoke (seconds), toy (a laptop CPU, the default), full (a GPU)."""
        return by_scale(scale, smoke=cls(n=16, n_seeds=2, targets=(3,), lams=(1.0,), budgets=(12,)), toy=cls(),
                        full=cls(n=256, n_seeds=10, targets=tuple(range(10)), lams=(0.3, 1.0, 3.0), budgets=(12, 24, 48)))


def train_digit_flow(cfg: DigitFlowConfig = DigitFlowConfig(), seed: int = 0):
    """Train a velocity field on the 64 pixels and distil its flow map: → (VelocityMLP, FlowMapMLP), both frozen.

    Lesson 04.4; FMRG "Full-scale lesson options", Option B (self-contained, sklearn's 8×8 digits and a small
    classifier reward).
    """
    from hdai_lessons.flows.cfm import CFMConfig, train_cfm
    from hdai_lessons.flows.flowmap import DistillConfig, distill_flow_map
    from hdai_lessons.flows.models import FlowMapMLP, VelocityMLP

    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    x, _ = load_digits_tensor()
    tr, _ = split(len(x), seed=0)
    data = x[tr]

    def sample(n: int, gen: "torch.Generator | None" = None) -> torch.Tensor:
        return data[torch.randint(0, len(data), (n,), generator=gen)]

    v = VelocityMLP(dim=64, hidden=cfg.hidden, depth=cfg.depth)
    train_cfm(v, sample, CFMConfig(steps=cfg.cfm_steps, batch=cfg.batch), generator=g, desc="digits flow")
    v.eval().requires_grad_(False)
    X = FlowMapMLP(dim=64, hidden=cfg.hidden, depth=cfg.depth)
    distill_flow_map(X, v, DistillConfig(n_traj=cfg.n_traj, grid_steps=cfg.grid_steps, steps=cfg.distill_steps,
                                         batch=cfg.batch), generator=g, desc="digits flow map")
    X.eval().requires_grad_(False)
    return v, X


def image_grid(x: torch.Tensor, nrow: int = 8, shape: "tuple[int, int, int]" = (1, 8, 8), pad: int = 1) -> np.ndarray:
    """Tile images into one ``(H', W')`` (grey) or ``(H', W', 3)`` array in [0, 1] for ``plt.imshow``.

    x: ``(B, prod(shape))`` in [−1, 1] or ``(B, C, H, W)``.

    Lessons 04.4–04.5; a helper with no paper counterpart (plotting).
    """
    x = x.detach().float().cpu()
    if x.dim() == 2:
        x = x.reshape(x.shape[0], *shape)  # (B, C, H, W)
    x = ((x + 1) / 2).clamp(0, 1) if x.min() < 0 else x.clamp(0, 1)
    b, c, h, w = x.shape
    ncol = min(nrow, b)
    nr = (b + ncol - 1) // ncol
    out = torch.ones(c, nr * (h + pad) + pad, ncol * (w + pad) + pad)
    for i in range(b):
        r, q = divmod(i, ncol)
        out[:, pad + r * (h + pad): pad + r * (h + pad) + h, pad + q * (w + pad): pad + q * (w + pad) + w] = x[i]
    return out[0].numpy() if c == 1 else out.permute(1, 2, 0).numpy()


DIGIT_CLASSIFIER = "flows-digit-classifier"


def build_classifier_checkpoint(out_path, seed: int) -> None:
    """Generator of ``flows-digit-classifier`` (``hdai-lessons data build flows-digit-classifier``).

    Lesson 04.4; FMRG "Full-scale lesson options", Option B (self-contained, sklearn's 8×8 digits and a small
    classifier reward).
    """
    from safetensors.torch import save_file

    clf, acc = train_digit_classifier(seed=seed)
    save_file({k: v.contiguous() for k, v in clf.state_dict().items()}, str(out_path),
              metadata={"kind": "digit_classifier", "width": str(clf.width), "test_accuracy": f"{acc:.4f}", "seed": str(seed)})


def load_digit_classifier() -> DigitClassifier:
    """The shipped digit classifier (frozen, eval mode); its test accuracy is in the file's metadata.

    Lesson 04.4; FMRG "Full-scale lesson options", Option B (self-contained, sklearn's 8×8 digits and a small
    classifier reward).
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    from hdai_lessons.core.data import data_path

    path = data_path(DIGIT_CLASSIFIER)
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if meta.get("kind") != "digit_classifier":
        raise ValueError(f"{path} is not a digit classifier checkpoint (kind={meta.get('kind')!r})")
    clf = DigitClassifier(int(meta.get("width", 32)))
    clf.load_state_dict(load_file(str(path)))
    return clf.eval().requires_grad_(False)


DIGIT_VELOCITY = "flows-digits-velocity"
DIGIT_FLOWMAP = "flows-digits-flowmap"


def build_digit_flow_checkpoint(out_path, seed: int) -> None:
    """Generator of ``flows-digits-velocity`` *and* ``flows-digits-flowmap`` (one training run writes both;
    ``hdai-lessons data build flows-digits-velocity`` writes both into ``build/data/flows/``).

    Lesson 04.4; FMRG "Full-scale lesson options", Option B (self-contained, sklearn's 8×8 digits and a small
    classifier reward).
    """
    import json
    from pathlib import Path

    from safetensors.torch import save_file

    out_path = Path(out_path)
    other = out_path.parent / ("digits_flowmap.safetensors" if out_path.name.startswith("digits_velocity") else "digits_velocity.safetensors")
    vel_path = out_path if out_path.name.startswith("digits_velocity") else other
    map_path = other if vel_path == out_path else out_path
    if vel_path.exists() and map_path.exists() and out_path == map_path:
        return  # written by the velocity build of the same run
    v, X = train_digit_flow(DigitFlowConfig(), seed=seed)
    for model, path, kind in ((v, vel_path, "digits_velocity"), (X, map_path, "digits_flowmap")):
        save_file({k: t.contiguous() for k, t in model.state_dict().items()}, str(path),
                  metadata={"kind": kind, "config": json.dumps(model.config()), "seed": str(seed)})


def load_digit_flow():
    """The shipped digits flow: (VelocityMLP, FlowMapMLP) on 64 pixels, frozen, eval mode.

    Lesson 04.4; FMRG "Full-scale lesson options", Option B (self-contained, sklearn's 8×8 digits and a small
    classifier reward).
    """
    import json

    from safetensors import safe_open
    from safetensors.torch import load_file

    from hdai_lessons.core.data import data_path
    from hdai_lessons.flows.models import FlowMapMLP, VelocityMLP

    out = []
    for name, cls, kind in ((DIGIT_VELOCITY, VelocityMLP, "digits_velocity"), (DIGIT_FLOWMAP, FlowMapMLP, "digits_flowmap")):
        path = data_path(name)
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        if meta.get("kind") != kind:
            raise ValueError(f"{path} holds {meta.get('kind')!r}, expected {kind!r}")
        m = cls(**json.loads(meta["config"]))
        m.load_state_dict(load_file(str(path)))
        out.append(m.eval().requires_grad_(False))
    return tuple(out)


def classifier_log_prob(classifier, x: torch.Tensor, target: int) -> torch.Tensor:
    """The classifier reward r(x) = log p(y = target | x) = log_softmax(logits)[:, target]: (B, 64) → (B,).

    Lesson 04.4 (exercise 04.4.1); FMRG "Full-scale lesson options", Option B (self-contained, sklearn's 8×8
    digits and a small classifier reward); classifier guidance in FMRG "Related guidance methods".
    """
    logits = classifier(x.reshape(x.shape[0], 1, 8, 8))  # (B, 10)
    return torch.log_softmax(logits, dim=-1)[:, target]
