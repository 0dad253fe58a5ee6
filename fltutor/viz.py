"""Matplotlib figures used by the notebooks, the command line and the docs.

Every function draws onto an ``ax`` (made for you when omitted) and returns the figure, so a
notebook can lay several side by side and the CLI can save them.
"""

from __future__ import annotations

from typing import Sequence

import matplotlib

if not matplotlib.get_backend():  # headless CLI runs
    matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


def _axes(ax=None, size=(5, 3.5)):
    if ax is None:
        fig, ax = plt.subplots(figsize=size, layout="constrained")
    return ax.figure, ax


def partition_heatmap(counts: np.ndarray, class_names: Sequence[str] | None = None, ax=None,
                      title: str = "samples per client and class"):
    """The client-by-class table as a heatmap, with the counts written in the cells."""
    fig, ax = _axes(ax, size=(6, 0.35 * len(counts) + 1.5))
    image = ax.imshow(counts, cmap="Blues", aspect="auto")
    num_clients, num_classes = counts.shape
    ax.set_xticks(range(num_classes), class_names or range(num_classes),
                  rotation=45 if class_names and max(map(len, class_names)) > 2 else 0)
    ax.set_yticks(range(num_clients))
    ax.set_xlabel("class")
    ax.set_ylabel("client")
    ax.set_title(title)
    if counts.size <= 400:
        threshold = counts.max() / 2
        for (k, c), value in np.ndenumerate(counts):
            ax.text(c, k, str(value), ha="center", va="center", fontsize=7,
                    color="white" if value > threshold else "black")
    fig.colorbar(image, ax=ax)
    return fig


def metric_curves(histories: dict[str, list[dict]], metric: str = "test_accuracy", ax=None,
                  title: str | None = None):
    """One line per run: ``metric`` against the round number."""
    fig, ax = _axes(ax)
    for label, history in histories.items():
        ax.plot([r["round"] for r in history], [r[metric] for r in history], marker="o",
                markersize=3, label=label)
    ax.set_xlabel("round")
    ax.set_ylabel(metric.replace("_", " "))
    if metric.endswith("accuracy"):
        ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(title or metric.replace("_", " "))
    return fig
