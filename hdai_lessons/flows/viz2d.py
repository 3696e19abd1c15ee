"""Figures for the 2-D flow lessons: samples over a density, trajectories, a scalar field on a grid."""
from __future__ import annotations

import matplotlib.pyplot as plt
import torch


def grid(lim: float = 5.0, n: int = 120) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A square grid: ``xx, yy (n, n)`` and the flattened points ``(n·n, 2)``.

    Lessons 04.1–04.3; a helper with no paper counterpart (plotting).
    """
    lin = torch.linspace(-lim, lim, n)
    xx, yy = torch.meshgrid(lin, lin, indexing="xy")
    return xx, yy, torch.stack([xx.flatten(), yy.flatten()], -1)


def plot_density(ax, log_prob, lim: float = 5.0, n: int = 120, cmap: str = "Greys", alpha: float = 0.6):
    """Filled contours of ``exp(log_prob(x))`` on ``[-lim, lim]²``.

    Lessons 04.1–04.3; a helper with no paper counterpart (plotting).
    """
    xx, yy, pts = grid(lim, n)
    with torch.no_grad():
        dens = log_prob(pts).exp().reshape(n, n)
    ax.contourf(xx, yy, dens, levels=12, cmap=cmap, alpha=alpha)
    return ax


def plot_samples(ax, x: torch.Tensor, data=None, title: str = "", lim: float = 5.0, s: float = 2.0, color: str = "C0"):
    """Scatter ``x (n, 2)``, over the data density if ``data`` has ``log_prob``.

    Lessons 04.1–04.3; a helper with no paper counterpart (plotting).
    """
    if data is not None and hasattr(data, "log_prob"):
        plot_density(ax, data.log_prob, lim)
    x = x.detach()
    ax.scatter(x[:, 0], x[:, 1], s=s, color=color, alpha=0.6, linewidths=0)
    ax.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal", title=title, xticks=[], yticks=[])
    return ax


def plot_paths(ax, path: torch.Tensor, n_show: int = 40, color: str = "C1"):
    """Trajectories ``path (T, B, 2)``: lines for the first ``n_show`` rows, dots at their ends.

    Lessons 04.1–04.3; a helper with no paper counterpart (plotting).
    """
    p = path[:, :n_show].detach()
    ax.plot(p[:, :, 0], p[:, :, 1], color=color, lw=0.7, alpha=0.6)
    ax.scatter(p[0, :, 0], p[0, :, 1], s=6, color="k", zorder=3)
    ax.scatter(p[-1, :, 0], p[-1, :, 1], s=8, color=color, zorder=3)
    return ax


def small_multiples(n: int, size: float = 2.4):
    """A row of ``n`` square axes.

    Lessons 04.1–04.3; a helper with no paper counterpart (plotting).
    """
    fig, axes = plt.subplots(1, n, figsize=(size * n, size + 0.3))
    return fig, list(axes) if n > 1 else [axes]
