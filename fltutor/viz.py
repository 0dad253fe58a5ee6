"""Matplotlib figures used by the notebooks, the command line and the docs.

Every function draws onto an ``ax`` (made for you when omitted) and returns the figure, so a
notebook can lay several side by side and the CLI can save them.

The figures of the CRPA study (Becker et al. 2025) take a sweep's results: a list of dicts, one
per finished run, as ``fltutor.sweep`` writes them to ``results.jsonl`` (``generate_class``,
``target_class``, ``alpha``, ``dp``, ``seed``, ``aaa``, ``final_test_accuracy``, ``epsilon``).
``mean_std_by`` turns them into the mean and spread over seeds that every such figure shows.
"""

from __future__ import annotations

from typing import Any, Sequence

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


def samples_over_rounds(previews: list[dict], num_rounds_shown: int = 6, title: str | None = None,
                        real=None, real_label: str = "real"):
    """Generated images at several rounds: one row per round, the same noise in every column.

    ``previews`` is a list of ``{"round": r, "images": [k, 1, 28, 28] in [-1, 1]}`` (what a GAN
    attacker keeps, ``GANReconstruction.previews``); the first and last rounds are always shown.
    ``real`` (images ``[m, 1, 28, 28]``) adds a last row labelled ``real_label`` to compare with:
    what the class really looks like. Each row is one picture, so redrawing it every round of a
    live run stays fast.
    """
    picks = np.unique(np.linspace(0, len(previews) - 1, min(num_rounds_shown, len(previews)))
                      .round().astype(int))
    rows = [(f"round {previews[i]['round']}", previews[i]["images"]) for i in picks]
    if real is not None:
        rows.append((real_label, real))
    return _image_rows(rows, title or "generated samples over the rounds")


def _image_rows(rows: list[tuple[str, Any]], title: str):
    """A figure of labelled rows of images ``[(label, [k, 1, H, W]), ...]``, one picture each."""
    columns = max(len(images) for _, images in rows)
    # tight, not constrained: constrained layout cuts the row labels off fixed-aspect images
    fig, axes = plt.subplots(len(rows), 1, squeeze=False, layout="tight",
                             figsize=(0.9 * columns + 0.8, 0.9 * len(rows) + 0.5))
    for ax, (label, images) in zip(axes[:, 0], rows):
        ax.imshow(_tiled_row(images, columns), cmap="gray", vmin=-1, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_frame_on(False)
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle(title)
    return fig


def _tiled_row(images, columns: int, gap: int = 2) -> np.ndarray:
    """Images ``[k, 1, H, W]`` side by side in one array, ``columns`` slots wide; gaps are blank."""
    images = images.detach().cpu().float().numpy()[:, 0]
    height, width = images.shape[1:]
    row = np.full((height, columns * (width + gap) - gap), np.nan)  # NaN shows as background
    for i, image in enumerate(images[:columns]):
        row[:, i * (width + gap) : i * (width + gap) + width] = image
    return row


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


def confusion_heatmap(confusion, class_names: Sequence[str] | None = None, ax=None,
                      title: str = "confusion: share of each true class per prediction"):
    """A confusion matrix ``[classes, outputs]`` as row shares: row G, column T is what an attack
    on the pair (G, T) raises, its attack accuracy (``fltutor.metrics.attack_accuracy``).

    A model with one output more than classes (the CRPA classifier) gets a last column "fake".
    """
    counts = np.asarray(confusion, dtype=float)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    num_classes, num_outputs = shares.shape
    names = list(class_names) if class_names is not None else [str(c) for c in range(num_classes)]
    fig, ax = _axes(ax, size=(6.2, 5.2))
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(num_outputs), names + ["fake"] * (num_outputs - num_classes),
                  rotation=45 if max(map(len, names)) > 2 else 0)
    ax.set_yticks(range(num_classes), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true class")
    ax.set_title(title)
    for (true, predicted), share in np.ndenumerate(shares):
        if share >= 0.005:
            ax.text(predicted, true, f"{share:.2f}"[1:] if share < 1 else "1", ha="center",
                    va="center", fontsize=6, color="white" if share > 0.5 else "black")
    fig.colorbar(image, ax=ax)
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


# ----------------------------------------------------------------------------------------------
# The CRPA study's figures, from a sweep's results (one dict per run; see the module docstring).


def mean_std_by(results: list[dict], by: Sequence[str], value: str,
                **where) -> dict[tuple, tuple[float, float]]:
    """Mean and standard deviation of ``value`` over the runs that agree on the fields ``by``.

    Why: the study reports every number as mean and spread over seeds (Becker et al. 2025, 3
    runs each). ``where`` keeps only runs with those field values, e.g. ``dp=False``.

    >>> runs = [{"alpha": 0, "dp": False, "seed": s, "aaa": a} for s, a in enumerate([0.25, 0.75])]
    >>> mean_std_by(runs, ["alpha"], "aaa", dp=False)
    {(0,): (0.5, 0.25)}
    """
    groups: dict[tuple, list[float]] = {}
    for result in results:
        if all(result[field] == wanted for field, wanted in where.items()):
            groups.setdefault(tuple(result[field] for field in by), []).append(result[value])
    return {key: (float(np.mean(values)), float(np.std(values))) for key, values in groups.items()}


def pair_aaa(aaa, alpha: float = 0.0) -> dict[tuple[int, int], float]:
    """``{(G, T): AAA}``: given as such, or the mean over seeds of a sweep's runs without DP."""
    if isinstance(aaa, dict):
        return dict(aaa)
    means = mean_std_by(aaa, ["generate_class", "target_class"], "aaa", alpha=alpha, dp=False)
    return {pair: mean for pair, (mean, _) in means.items()}


def pair_name(pair: tuple[int, int], class_names: Sequence[str] | None = None) -> str:
    """``"4→9"``: generate class G, an arrow, target class T."""
    g, t = (class_names[c] if class_names is not None else str(c) for c in pair)
    return f"{g}→{t}"


def aaa_matrix(aaa, class_names: Sequence[str] | None = None, num_classes: int = 10, ax=None,
               title: str = "AAA per class pair (rows: G, columns: T)"):
    """The study's Figure 4 (left): the average attack accuracy of every pair (G, T) as a heatmap.

    Row G, column T holds the AAA of the attack that makes the model call G "T" (Eq. 1: the mean
    over rounds of the share of test images of G predicted as T). ``aaa`` is ``{(G, T): AAA}`` or a
    sweep's results (alpha = 0, without DP, averaged over seeds). Pairs not run stay blank, so a
    few pairs computed in a notebook show where they sit in the full matrix. Why a matrix: the
    attack is much easier for some pairs than for others, and the rows and columns show whether
    that is a property of the class the attacker reconstructs or of the one it lands in.
    """
    values = pair_aaa(aaa)
    names = list(class_names) if class_names is not None else [str(c) for c in range(num_classes)]
    table = np.full((len(names), len(names)), np.nan)
    for (g, t), value in values.items():
        table[g, t] = value
    fig, ax = _axes(ax, size=(6.2, 5.2))
    image = ax.imshow(table, cmap="Reds", vmin=0, vmax=max(0.5, np.nanmax(table, initial=0)))
    ax.set_facecolor("#eeeeee")  # pairs without a value: the diagonal and pairs not run
    ax.set_xticks(range(len(names)), names, rotation=45 if max(map(len, names)) > 2 else 0)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("target class T (the answer the attack wants)")
    ax.set_ylabel("generate class G (the test images)")
    ax.set_title(title)
    threshold = 0.6 * image.norm.vmax
    for (g, t), value in values.items():
        ax.text(t, g, f"{value:.2f}", ha="center", va="center", fontsize=7,
                color="white" if value > threshold else "black")
    fig.colorbar(image, ax=ax, label="AAA")
    return fig


def aaa_histogram(aaa, bins: int = 10, ax=None, title: str = "AAA over class pairs"):
    """The study's Figure 4 (right): how the AAA values of the pairs are distributed.

    ``aaa`` as for ``aaa_matrix``. The dashed line marks the mean over pairs (0.33 on MNIST in the
    study, with most pairs well below the most vulnerable one).
    """
    values = list(pair_aaa(aaa).values())
    fig, ax = _axes(ax)
    ax.hist(values, bins=bins, range=(0, 1), color="tab:red", alpha=0.7, edgecolor="white")
    ax.axvline(float(np.mean(values)), color="black", linestyle="--",
               label=f"mean {np.mean(values):.2f} over {len(values)} pairs")
    ax.set_xlabel("AAA")
    ax.set_ylabel("number of pairs")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend()
    ax.set_title(title)
    return fig


def alpha_trend(results: list[dict], class_names: Sequence[str] | None = None, ax=None,
                title: str = "AAA against the Dirichlet alpha"):
    """The study's Figures 6 and 7: AAA against alpha, one line per pair, mean ± std over seeds.

    Runs without DP only. The alphas sit at equal steps (0, 0.05, ..., 10 span three orders of
    magnitude). Why it matters: the attack needs the attacker's poisoned update to stand out
    from honest ones that hold no G; as alpha grows every client holds some G and T, and the
    honest updates correct the poison (the study's AAA falls below 0.1 already at alpha = 0.05).
    """
    stats = mean_std_by(results, ["generate_class", "target_class", "alpha"], "aaa", dp=False)
    alphas = sorted({alpha for _, _, alpha in stats})
    fig, ax = _axes(ax)
    for pair in sorted({(g, t) for g, t, _ in stats}):
        points = [(alphas.index(a), *stats[(*pair, a)]) for a in alphas if (*pair, a) in stats]
        x, mean, std = map(np.array, zip(*points))
        ax.errorbar(x, mean, yerr=std if std.any() else None, marker="o", capsize=3,
                    label=pair_name(pair, class_names))
    ax.set_xticks(range(len(alphas)), [f"{a:g}" for a in alphas])
    ax.set_xlabel("Dirichlet alpha (0: one class per client; 10: nearly IID)")
    ax.set_ylabel("AAA")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(title="G→T")
    ax.set_title(title)
    return fig


def dp_comparison(results: list[dict], class_names: Sequence[str] | None = None,
                  title: str = "DP-SGD: what it does to the attack, and what it costs"):
    """The study's Figure 8: AAA and final test accuracy without and with DP-SGD, by pair and alpha.

    Two panels of paired bars (mean ± std over seeds). DP-SGD bounds how far any one record can
    move a client's update and drowns it in noise, so the poison barely registers: AAA falls
    (below about 0.1 in the study), and so does accuracy (99% to 89% at alpha = 10, 88% to 45%
    at alpha = 0). Both panels together show what the defense costs.
    """
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
    by = ["generate_class", "target_class", "alpha", "dp"]
    groups = sorted({(r["generate_class"], r["target_class"], r["alpha"]) for r in results})
    labels = [f"{pair_name((g, t), class_names)}\nalpha={a:g}" for g, t, a in groups]
    for ax, value in zip(axes, ("aaa", "final_test_accuracy")):
        stats = mean_std_by(results, by, value)
        for offset, dp in ((-0.2, False), (0.2, True)):
            bars = [stats.get((*group, dp), (np.nan, 0.0)) for group in groups]
            spread = [s for _, s in bars]
            ax.bar(np.arange(len(groups)) + offset, [m for m, _ in bars], width=0.4,
                   yerr=spread if any(spread) else None, capsize=3,
                   label="DP-SGD" if dp else "no DP", color="tab:blue" if dp else "tab:red")
        ax.set_xticks(range(len(groups)), labels)
        ax.set_ylim(0, 1)
        ax.set_ylabel(value.replace("_", " ").replace("aaa", "AAA"))
        ax.grid(alpha=0.3, axis="y")
        ax.legend()
    axes[0].set_title("attack: AAA")
    axes[1].set_title("cost: final test accuracy")
    fig.suptitle(title)
    return fig


def kept_grid(history: list[dict], num_clients: int, malicious: set[int] = frozenset(), ax=None,
              title: str = "clients the aggregator kept"):
    """Rounds down, clients across: dark where a client's update was kept, light where it was
    left out, grey where it did not take part; malicious clients' columns are labelled in red."""
    fig, ax = _axes(ax, size=(max(4.0, 0.35 * num_clients + 1.5), 3.5))
    grid = np.full((len(history), num_clients), 0.5)
    for row, record in enumerate(history):
        grid[row, record["clients"]] = 0.0
        grid[row, record["kept"]] = 1.0
    ax.imshow(grid, cmap="Greys", vmin=0, vmax=1, aspect="auto", interpolation="nearest")
    ax.set_xticks(range(num_clients))
    for client, label in enumerate(ax.get_xticklabels()):
        label.set_color("red" if client in malicious else "black")
    ax.set_yticks(range(len(history)), [str(r["round"]) for r in history])
    ax.set_xlabel("client (red: malicious)\nblack: kept, white: left out, grey: not chosen")
    ax.set_ylabel("round")
    ax.set_title(title)
    return fig


# ----------------------------------------------------------------------------------------------
# Byzantine robustness, from a robustness sweep's results (``fltutor.sweep.run_robustness``).


def robustness_heatmap(results: list[dict], value: str = "final_test_accuracy",
                       title: str = "final test accuracy", cmap: str = "RdYlGn"):
    """Attacks against aggregation rules: ``value`` (mean over seeds) for every combination.

    Rows are an attack and its number of malicious clients, columns the aggregation rules, one
    panel per data split (``alpha`` None is IID). Why a grid: no rule withstands every attack,
    and the rows and columns show which attack beats which rule, and how that changes as the
    attackers grow in number and the honest clients' data grows apart. Only the runs that
    measured ``value`` are shown (backdoor success: the backdoor's runs); combinations not run
    stay grey.
    """
    measured = [r for r in results if r.get(value) is not None]
    rows = list(dict.fromkeys((r["attack"], r["malicious"]) for r in measured))
    columns = list(dict.fromkeys(r["aggregator"] for r in measured))
    alphas = sorted({r["alpha"] for r in measured}, key=lambda a: (a is not None, a or 0.0))
    stats = mean_std_by(measured, ["attack", "malicious", "aggregator", "alpha"], value)
    fig, axes = plt.subplots(1, len(alphas), squeeze=False, layout="constrained",
                             figsize=(1.1 * len(columns) * len(alphas) + 2.5,
                                      0.4 * len(rows) + 1.8))
    for ax, alpha in zip(axes[0], alphas):
        table = np.full((len(rows), len(columns)), np.nan)
        for (attack, malicious, rule, at), (mean, _) in stats.items():
            if at == alpha:
                table[rows.index((attack, malicious)), columns.index(rule)] = mean
        image = ax.imshow(table, cmap=cmap, vmin=0, vmax=1, aspect="auto")
        ax.set_facecolor("#eeeeee")
        ax.set_xticks(range(len(columns)), columns, rotation=45, ha="right")
        ax.set_yticks(range(len(rows)), [f"{attack} x {malicious}" for attack, malicious in rows])
        for (row, column), cell in np.ndenumerate(table):
            if not np.isnan(cell):
                ax.text(column, row, f"{cell:.2f}", ha="center", va="center", fontsize=7)
        ax.set_xlabel("aggregation rule")
        ax.set_title("IID" if alpha is None else f"Dirichlet alpha={alpha:g}")
    axes[0][0].set_ylabel("attack x malicious clients")
    fig.colorbar(image, ax=axes[0].tolist(), label=value.replace("_", " "))
    fig.suptitle(title)
    return fig


def reconstruction_pairs(originals, reconstructions, true_labels: Sequence[int] | None = None,
                         labels: Sequence[int] | None = None, title: str = "reconstructions"):
    """Originals (top row) over the reconstructions paired with them (bottom row), each pair in
    the order of ``fltutor.metrics.matched_pairs``, the pairing its scores use."""
    from .metrics import matched_pairs

    rows, columns = matched_pairs(reconstructions, originals)
    pick = lambda values, index: None if values is None else [values[i] for i in index.tolist()]  # noqa: E731
    figure, axes = plt.subplots(2, 1, figsize=(max(2.4, 1.0 * len(originals)), 2.8))
    image_grid(originals[columns], pick(true_labels, columns), ax=axes[0], title="originals")
    image_grid(reconstructions[rows].clamp(-1, 1), pick(labels, rows), ax=axes[1], title=title)
    figure.tight_layout()
    return figure


def leak_curves(histories: dict[str, list[dict]], title: str | None = None):
    """A curious client's leak over the rounds, one colour per run.

    Left: the RMSE of its reconstructions against the images of each round's gradient (solid,
    ``curious_rmse``) and the RMSE of the best guess that uses no gradient (dashed,
    ``curious_control_rmse``): where the solid line runs below the dashed one, the gradient
    leaked, by the gap. Right: the run's test accuracy, to read the leak against training.
    """
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6), layout="constrained")
    for index, (label, history) in enumerate(histories.items()):
        colour = f"C{index}"
        scored = [r for r in history if "curious_rmse" in r]
        rounds = [r["round"] for r in scored]
        left.plot(rounds, [r["curious_rmse"] for r in scored], marker="o", color=colour,
                  label=f"{label}: attack")
        left.plot(rounds, [r["curious_control_rmse"] for r in scored], linestyle="--",
                  color=colour, label=f"{label}: best guess without the gradient")
        right.plot([r["round"] for r in history], [r["test_accuracy"] for r in history],
                   color=colour, label=label)
    left.set_ylabel("RMSE to the round's true images\n(lower: more leaked)")
    right.set_ylabel("test accuracy")
    right.set_ylim(0, 1)
    for ax in (left, right):
        ax.set_xlabel("round")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    left.legend(fontsize="small")
    right.legend(fontsize="small", loc="lower right")
    figure.suptitle(title or "the curious client's reconstructions against its controls")
    return figure


# ----------------------------------------------------------------------------------------------
# The curious client's backfire sweep (``fltutor.backfire.run_backfire``).


def backfire_curves(results: list[dict]):
    """The curious client's RMSE over rounds per defense, one panel per poisoning setting.

    Each line is the mean over seeds of the runs' per-round RMSE (``curious_rmse`` at the rounds
    ``rmse_rounds``; a seed that skipped a round is left out of it), the band spans the lowest
    to the highest seed. No defense is the thick
    black line: a defense below it made the reconstructions better (the study's "backfire",
    arXiv 2506.11413), one above it protected the peers.
    """
    poisons = list(dict.fromkeys(r["poison"] for r in results))
    defenses = list(dict.fromkeys(r["defense"] for r in results))
    fig, axes = plt.subplots(1, len(poisons), squeeze=False, sharey=True, layout="constrained",
                             figsize=(5.5 * len(poisons) + 1.5, 4))
    for ax, poison in zip(axes[0], poisons):
        for defense in defenses:
            runs = [r for r in results if r["poison"] == poison and r["defense"] == defense]
            if not runs:
                continue
            # runs may skip rounds (Krum can keep the curious client's own update): by round
            rounds = sorted({n for r in runs for n in r["rmse_rounds"]})
            curves = np.full((len(runs), len(rounds)), np.nan)
            for row, r in enumerate(runs):
                for n, value in zip(r["rmse_rounds"], r["curious_rmse"]):
                    curves[row, rounds.index(n)] = value
            baseline = defense == "none"
            line, = ax.plot(rounds, np.nanmean(curves, axis=0), label=defense, marker="o",
                            markersize=3, color="black" if baseline else None,
                            linewidth=2.5 if baseline else 1.2)
            ax.fill_between(rounds, np.nanmin(curves, axis=0), np.nanmax(curves, axis=0),
                            color=line.get_color(), alpha=0.15)
        ax.set_xlabel("round")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.set_title(f"poisoning: {poison}")
    axes[0][0].set_ylabel("curious client's RMSE (lower: more leaked)")
    fig.legend(*axes[0][0].get_legend_handles_labels(), loc="outside right upper", fontsize=8)
    fig.suptitle("RMSE of the curious client's reconstructions over rounds "
                 "(mean over seeds; band: lowest to highest)")
    return fig


def privacy_frontier(means: dict[tuple, dict], labels: dict[str, str], no_dp: str = "none"):
    """Epsilon against utility and against each attack's success, one panel per scenario.

    ``means`` maps (DP kind, sigma, C, scenario) to the mean over seeds of that setting's runs
    (``epsilon``, ``final_test_accuracy``, ``success``; ``fltutor.privacy.mean_by_setting``);
    ``labels`` names each scenario's y axis; a scenario without attack (``success`` None) shows
    its accuracy.
    Each DP kind is a line over its settings, at its run's own epsilon (log scale: more privacy
    to the left); no DP, whose epsilon is infinite, is the dashed black line across. Points of
    zero noise (infinite epsilon) are left out.
    """
    scenarios = list(labels)
    columns = min(3, len(scenarios))
    rows = -(-len(scenarios) // columns)
    fig, axes = plt.subplots(rows, columns, squeeze=False, layout="constrained",
                             figsize=(4.2 * columns + 1.5, 3.3 * rows))
    kinds = list(dict.fromkeys(key[0] for key in means if key[0] != no_dp))

    def shown(value: dict) -> float | None:
        return value["final_test_accuracy"] if value["success"] is None else value["success"]

    for ax, scenario in zip(axes.flat, scenarios):
        references = [shown(v) for key, v in means.items()
                      if key[0] == no_dp and key[3] == scenario]
        if references:
            ax.axhline(references[0], color="black", linestyle="--", label="no DP")
        for kind in kinds:
            points = sorted((value["epsilon"], shown(value)) for key, value in means.items()
                            if key[0] == kind and key[3] == scenario
                            and np.isfinite(value["epsilon"]))
            if points:
                ax.plot(*zip(*points), marker="o", label=kind)
        ax.set_xscale("log")
        ax.set_xlabel("epsilon of the run (log)")
        ax.set_ylabel(labels[scenario], fontsize=8)
        ax.set_title(scenario)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(scenarios):]:
        ax.set_visible(False)
    handles = {label: handle for ax in axes.flat for handle, label in
               zip(*ax.get_legend_handles_labels())}
    fig.legend(handles.values(), handles.keys(), loc="outside right upper", fontsize=8)
    fig.suptitle("what DP buys against each attack: epsilon against its success (mean over seeds)")
    return fig
