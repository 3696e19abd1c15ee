"""Figures for module 05 (lessons 05.1–05.4): image grids with captions, bars by question type.

Plotting only: no paper equation or section behind these.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import torch


def show_grid(images: torch.Tensor, titles: "list[str] | None" = None, ncols: int = 6, size: float = 1.6, suptitle: str = ""):
    """Show ``(B, 3, H, W)`` images in [0, 1] in a grid with optional small titles; returns the figure.

    Lessons 05.1–05.4 (plotting only).
    """
    B = images.shape[0]
    nrows = (B + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows * (1.25 if titles else 1.0)), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < B:
            ax.imshow(images[i].permute(1, 2, 0).clamp(0, 1).cpu().numpy(), interpolation="nearest")
            if titles:
                ax.set_title(titles[i], fontsize=6.5)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    return fig


def wrap(words: "list[str]", width: int = 22) -> str:
    """Join words into lines of at most ``width`` characters (for figure titles); lessons 05.1–05.4."""
    lines, cur = [], ""
    for w in words:
        if cur and len(cur) + 1 + len(w) > width:
            lines.append(cur)
            cur = w
        else:
            cur = f"{cur} {w}".strip()
    return "\n".join(lines + [cur])


def bars_by_type(results: "dict[str, dict[str, float]]", chance: "dict[str, float] | None" = None, title: str = ""):
    """Grouped bars: ``results[arm][qtype]`` accuracies, with chance levels as dashes (lesson 05.1)."""
    arms = list(results)
    types = [t for t in next(iter(results.values())) if t != "all"]
    fig, ax = plt.subplots(figsize=(6.0, 3.2))
    width = 0.8 / len(arms)
    for a, arm in enumerate(arms):
        ax.bar([i + a * width for i in range(len(types))], [results[arm][t] for t in types], width, label=arm)
    if chance:
        for i, t in enumerate(types):
            ax.hlines(chance[t], i - width / 2, i + width * (len(arms) - 0.5), colors="k", linestyles="--", lw=1)
    ax.set_xticks([i + width * (len(arms) - 1) / 2 for i in range(len(types))], types)
    ax.set(ylim=(0, 1.05), ylabel="accuracy", title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
