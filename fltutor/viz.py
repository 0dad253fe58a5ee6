"""Matplotlib figures used by the notebooks, the command line and the docs.

Every function draws onto an ``ax`` (made for you when omitted) and returns the figure, so a
notebook can lay several side by side and the CLI can save them.
"""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator


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
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(metric.replace("_", " "))
    if metric.endswith("accuracy"):
        ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(title or metric.replace("_", " "))
    return fig


def samples_over_rounds(previews: list[dict], num_rounds_shown: int = 6, title: str | None = None):
    """Generated images at several rounds: one row per round, the same noise in every column.

    ``previews`` is a list of ``{"round": r, "images": [k, 1, 28, 28] in [-1, 1]}`` (what a GAN
    attacker keeps, ``GANReconstruction.previews``); the first and last rounds are always shown.
    """
    picks = np.unique(np.linspace(0, len(previews) - 1, min(num_rounds_shown, len(previews)))
                      .round().astype(int))
    columns = len(previews[0]["images"])
    fig, axes = plt.subplots(len(picks), columns, squeeze=False, layout="constrained",
                             figsize=(0.9 * columns + 0.8, 0.9 * len(picks) + 0.5))
    for row, index in zip(axes, picks):
        for ax, image in zip(row, previews[index]["images"]):
            ax.imshow(image.squeeze(0).numpy(), cmap="gray", vmin=-1, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        row[0].set_ylabel(f"round {previews[index]['round']}", rotation=0, ha="right",
                          va="center", fontsize=8)
    fig.suptitle(title or "generated samples over the rounds")
    return fig


def image_grid(images, labels: Sequence[int] | None = None,
               class_names: Sequence[str] | None = None, columns: int = 10, ax=None,
               title: str | None = None):
    """Images ``[N, 1, H, W]`` in [-1, 1] tiled into one picture, each with its label if given."""
    images = images.detach().cpu().float().numpy()[:, 0]
    count, height, width = images.shape
    columns = min(columns, count)
    rows = -(-count // columns)
    tiles = np.full((rows * (height + 2), columns * (width + 2)), -1.0)
    for i, image in enumerate(images):
        top, left = (i // columns) * (height + 2) + 1, (i % columns) * (width + 2) + 1
        tiles[top : top + height, left : left + width] = image
    fig, ax = _axes(ax, size=(columns * 0.7, rows * 0.7 + 0.4))
    ax.imshow(tiles, cmap="gray", vmin=-1, vmax=1)
    ax.set_axis_off()
    for i, label in enumerate(labels if labels is not None else []):
        name = class_names[int(label)] if class_names is not None else str(int(label))
        ax.text((i % columns) * (width + 2) + 2, (i // columns) * (height + 2) + 2, name,
                color="yellow", fontsize=7, va="top")
    if title:
        ax.set_title(title)
    return fig


def partition_comparison(counts: dict[str, np.ndarray], histories: dict[str, list[dict]],
                         class_names: Sequence[str] | None = None,
                         metric: str = "test_accuracy"):
    """One heatmap per partition, then their ``metric`` curves, side by side in one figure."""
    fig, axes = plt.subplots(1, len(counts) + 1, figsize=(5 * len(counts) + 5, 4.2),
                             layout="constrained")
    for ax, (label, table) in zip(axes, counts.items()):
        partition_heatmap(table, class_names, ax=ax, title=f"{label}: samples per client and class")
    metric_curves(histories, metric, ax=axes[-1])
    return fig
