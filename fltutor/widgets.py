"""Notebook building blocks: live plots, explorers, tables and answer checks.

Every widget here only calls plain functions that compute and return results
(``compare_partitions``, ``run_attack``, the figures in ``viz``), so a test, a script or a
notebook run without a frontend (nbval) gets the same numbers by calling those functions directly.
"""

from __future__ import annotations

import dataclasses
import html
import io
import json
import time
from dataclasses import dataclass
from typing import Any, Callable

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import HTML

from .aggregators import AGGREGATORS
from .attacks.crpa import Reconstruction
from .checks import check_choice
from .config import FedConfig, resolve_device
from .data import DATASETS, Data, load
from .federation import Federation, Observer, RoundRecord
from .partition import STUDY_ALPHAS
from .parts import ATTACKS, Defense, Part
from .recipes.byzantine import (BYZANTINE_ATTACKS, BYZANTINE_PROFILES, ByzantineConfig,
                                history_summary)
from .recipes.crpa import CRPA_ATTACKS, GAN_ATTACKS, CRPAConfig, generated_samples
from .viz import (kept_grid, metric_curves, pair_name, partition_comparison, partition_heatmap,
                  samples_over_rounds)


class LivePlot:
    """Metric curves in an image widget (``output``), redrawn after every round of every federation.

    Why: a federation takes seconds to minutes; watching accuracy climb (or stall) round by round
    is the point of the exercise. Attach one observer per federation, each with its own label:

        live = LivePlot(num_rounds=5)
        display(live.output)
        federation.observers.append(live.observer("iid"))

    A label already in use gets a number ("iid #2"): every run keeps a line of its own, and the
    points of two runs are never joined into one.
    """

    def __init__(self, metric: str = "test_accuracy", num_rounds: int | None = None,
                 title: str | None = None):
        self.metric = metric
        self.num_rounds = num_rounds
        self.title = title
        self.histories: dict[str, list[dict]] = {}
        self.output = widgets.Image(format="png")

    def observer(self, label: str) -> Observer:
        """An observer that adds each round's ``metric`` to a new curve called ``label``."""
        label = unique_label(label, self.histories)
        history = self.histories[label] = []

        def observe(record: RoundRecord) -> None:
            value = record.to_json().get(self.metric)
            if value is None:  # not measured in this round (a curious client's off rounds)
                return
            history.append({"round": record.round, self.metric: value})
            self.redraw()

        return observe

    def reset(self) -> None:
        """Forget all curves (before a new set of runs)."""
        self.histories.clear()
        self.output.value = b""

    def redraw(self) -> None:
        """Draw every curve so far, on a round axis fixed to ``num_rounds`` when given."""
        figure = metric_curves(self.histories, self.metric, title=self.title)
        if self.num_rounds:
            figure.axes[0].set_xlim(0.5, self.num_rounds + 0.5)
        show_in(self.output, figure)


def unique_label(label: str, taken) -> str:
    """``label``, or ``label #2``, ``#3``, ... if it is taken already.

    >>> unique_label("crpa", {"crpa": [], "crpa #2": []})
    'crpa #3'
    """
    number = 1
    unique = label
    while unique in taken:
        number += 1
        unique = f"{label} #{number}"
    return unique


def show_in(image: widgets.Image, figure) -> None:
    """Show ``figure`` in ``image`` as a PNG, in place of what it showed, then release the figure.

    Why an image widget and not an ``Output`` redrawn with ``clear_output(wait=True)`` and
    ``display``: that takes two messages, which the browser files under whichever ``Output``
    claims the running cell, and with several live views redrawn in turn from one cell (a plot
    per metric, the samples) it is where the blank and half-drawn views were seen. An image's
    new value is one update that replaces the whole picture, from a cell or a button alike.
    """
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    plt.close(figure)
    image.value = buffer.getvalue()


class RoundProgress:
    """"round k of R, about N s left" in a label, updated every round by an observer.

    Why: an explorer's run takes minutes; the line says how far it is and how long the rest
    will take, estimated from the mean time of the rounds so far (drawing included). One
    ``RoundProgress`` follows all the rounds of one button press (``total_rounds``), over one or
    more federations; after an interrupt ``interrupted()`` says where it stopped.
    """

    def __init__(self, label: widgets.Label, total_rounds: int,
                 clock: Callable[[], float] = time.perf_counter):
        self.label = label
        self.total_rounds = total_rounds
        self.clock = clock
        self.rounds_done = 0
        self.started = clock()

    def observer(self, prefix: str = "") -> Observer:
        """An observer that counts a finished round and rewrites the label."""

        def observe(record: RoundRecord) -> None:
            self.rounds_done += 1
            seconds_per_round = (self.clock() - self.started) / self.rounds_done
            left = seconds_per_round * (self.total_rounds - self.rounds_done)
            self.label.value = (f"{prefix}round {self.rounds_done} of {self.total_rounds}, "
                                f"about {left:.0f} s left")

        return observe

    def finished(self) -> str:
        return f"done: {self.rounds_done} rounds in {self.clock() - self.started:.0f} s"

    def interrupted(self) -> str:
        return f"interrupted after round {self.rounds_done} of {self.total_rounds}"


@dataclass
class PartitionComparison:
    """Two runs of the same federation, one on an IID split and one on a Dirichlet split."""

    counts: dict[str, np.ndarray]
    histories: dict[str, list[dict]]
    class_names: tuple[str, ...]

    def final_accuracy(self) -> dict[str, float]:
        """Test accuracy of each run's global model after its last round."""
        return {label: history[-1]["test_accuracy"] for label, history in self.histories.items()}

    def figure(self):
        """Both client-by-class heatmaps and the accuracy curves, side by side."""
        return partition_comparison(self.counts, self.histories, list(self.class_names))


def partition_configs(config: FedConfig, alpha: float) -> dict[str, FedConfig]:
    """``config`` on an IID split and on a Dirichlet(``alpha``) split, labelled for plots."""
    return {"iid": config.replace(partition="iid"),
            f"alpha={alpha:g}": config.replace(partition="dirichlet", alpha=alpha)}


def compare_partitions(config: FedConfig, alpha: float, data: Data | None = None,
                       live: LivePlot | None = None, progress: bool = True,
                       rounds: RoundProgress | None = None) -> PartitionComparison:
    """Run ``config`` once with IID clients and once with Dirichlet(``alpha``) clients.

    Why: non-IID data is what slows FedAvg down and what the CRPA attack feeds on; the gap
    between the two curves is the cost of heterogeneity. Each client draws its class mix from
    Dir(alpha) (Hsu et al. 2019); alpha = 0 gives every client a single class. ``live`` draws
    the curves as they grow, ``rounds`` counts the rounds of both runs in one line.
    """
    counts, histories = {}, {}
    for label, run_config in partition_configs(config, alpha).items():
        federation = Federation.build(run_config, data)
        if live is not None:
            federation.observers.append(live.observer(label))
        if rounds is not None:
            federation.observers.append(rounds.observer(f"{label}: "))
        counts[label] = federation.class_counts()
        histories[label] = federation.run(progress=progress)
        data = federation.data  # loaded once, by the first run if the caller gave none
    return PartitionComparison(counts, histories, federation.data.class_names)


class NonIidExplorer:
    """Sliders for ``alpha`` and ``num_clients``; the heatmaps follow them, a button runs both.

    Moving a slider only re-draws the partitions (instant); "run federations" trains the IID and
    the Dirichlet federation with ``compare_partitions`` and plots their accuracy live.
    """

    def __init__(self, config: FedConfig, data: Data, alpha: float = 0):
        self.config = config
        self.data = data
        self.alpha = widgets.SelectionSlider(
            options=[(f"{a:g}", a) for a in STUDY_ALPHAS], value=alpha, description="alpha")
        self.num_clients = widgets.IntSlider(config.num_clients, min=2, max=20,
                                             description="num_clients")
        self.button = widgets.Button(description="run federations", button_style="primary")
        self.status = widgets.Label()
        self.messages = widgets.Output()  # an unexpected error shows here instead of vanishing
        self.partitions = widgets.Image(format="png")
        self.live = LivePlot(num_rounds=config.num_rounds, title="test accuracy, live")
        self.alpha.observe(self.draw_partitions, names="value")
        self.num_clients.observe(self.draw_partitions, names="value")
        self.button.on_click(self.run)
        self.widget = widgets.VBox([
            widgets.HBox([self.alpha, self.num_clients, self.button]),
            self.status,
            self.messages,
            self.partitions,
            self.live.output,
        ])
        self.draw_partitions()

    def chosen_config(self) -> FedConfig:
        """The explorer's config with the slider's ``num_clients``."""
        return self.config.replace(num_clients=self.num_clients.value)

    def draw_partitions(self, _change=None) -> None:
        """Heatmaps of the IID and the Dirichlet split that a run would use."""
        configs = partition_configs(self.chosen_config(), self.alpha.value)
        figure, axes = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
        for ax, (label, config) in zip(axes, configs.items()):
            counts = Federation.build(config, self.data).class_counts()
            partition_heatmap(counts, list(self.data.class_names), ax=ax, title=label)
        show_in(self.partitions, figure)

    def run(self, _button=None) -> PartitionComparison | None:
        """Train both federations for the chosen settings, with live curves (the button).

        The status line counts the rounds of both runs; an interrupt (the stop button) ends
        the runs and says after which round.
        """
        self.button.disabled = True
        self.live.reset()
        self.messages.clear_output()
        config = self.chosen_config()
        rounds = RoundProgress(self.status, 2 * config.num_rounds)
        self.status.value = f"running 2 federations of {config.num_rounds} rounds ..."
        with self.messages:
            try:
                comparison = compare_partitions(config, self.alpha.value, self.data,
                                                live=self.live, progress=False, rounds=rounds)
                self.status.value = rounds.finished()
                return comparison
            except KeyboardInterrupt:
                self.status.value = rounds.interrupted()
            finally:
                self.button.disabled = False
        return None

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


def real_images(data: Data, class_index: int, count: int = 8):
    """The first ``count`` *test* images of a class: held by no client, so no attacker saw them."""
    return data.test_x[data.test_y == class_index][:count]


class LiveSamples:
    """The GAN attacker's generated samples in an image widget (``output``), redrawn every round.

    Why: the attacker never holds an image of class G, yet round by round its samples come to
    look like G. Below them sits a row of real test images of G, which no client holds, to judge
    them by eye. Attach it to a federation whose attacker trains a GAN (``GAN_ATTACKS``):

        samples = LiveSamples()
        display(samples.output)
        federation.observers.append(samples.observer(federation))
    """

    def __init__(self, num_rounds_shown: int = 6, num_real: int = 8):
        self.num_rounds_shown = num_rounds_shown
        self.num_real = num_real
        self.output = widgets.Image(format="png")

    def reset(self) -> None:
        """Show nothing until the next run's first samples."""
        self.output.value = b""

    def observer(self, federation: Federation) -> Observer:
        """An observer that shows the attacker's previews so far (``generated_samples``)."""
        g = federation.config.generate_class
        name = federation.data.class_names[g]
        real = real_images(federation.data, g, self.num_real).cpu()
        title = f"the attacker's samples of class {name}, round by round"

        def observe(record: RoundRecord) -> None:
            previews = generated_samples(federation)
            if previews:
                show_in(self.output, samples_over_rounds(previews, self.num_rounds_shown, title,
                                                         real=real, real_label=f"real {name}"))

        return observe


#: Attacks without a target class: they reconstruct G and poison nothing (labelled "fake").
UNTARGETED_ATTACKS = tuple(name for name in ATTACKS.names()
                           if issubclass(ATTACKS[name], Reconstruction))

#: The registry name of DP-SGD on every client (``fltutor.defenses.dp.DPConfig``), the defense
#: the explorers offer. Named here so that a label can say "DP" without importing Opacus.
DP_DEFENSE = "record-dp"


def has_dp(config: FedConfig) -> bool:
    """Whether ``config``'s clients train with DP-SGD (a ``DPConfig`` among its defenses)."""
    return any(defense.name == DP_DEFENSE for defense in config.defenses)


def run_label(config: CRPAConfig, class_names) -> str:
    """A name for a run in a legend, made of every setting the explorers offer.

    e.g. ``crpa 4→9 alpha=0 20 poisoned DP``; an attack without a target names G only
    (``reconstruction of 4 alpha=0 20 fakes``), and the control run, which poisons nothing,
    names the pair its attack accuracy is measured on (``none 4→9 alpha=0``). Each defense adds
    its registry name, DP-SGD the short ``DP``.
    """
    if config.attack in UNTARGETED_ATTACKS:
        what = f"of {class_names[config.generate_class]}"
        images = f" {config.poison_count} fakes"
    else:
        what = pair_name((config.generate_class, config.target_class), class_names)
        images = f" {config.poison_count} poisoned" if config.attack != "none" else ""
    defenses = "".join(" DP" if defense.name == DP_DEFENSE else f" {defense.name}"
                       for defense in config.defenses)
    return f"{config.attack} {what} alpha={config.alpha:g}{images}{defenses}"


def run_attack(config: CRPAConfig, data: Data | None = None, plots: tuple[LivePlot, ...] = (),
               samples: LiveSamples | None = None, label: str | None = None,
               progress: bool = True, rounds: RoundProgress | None = None) -> Federation:
    """Run ``config``'s federation with its attacker (``Federation.build``), shown live; return it.

    Why: one call for every attack notebook and its explorer. Each ``LivePlot`` gets a curve
    called ``label`` (default: ``run_label``); ``samples`` shows a GAN attacker's images;
    ``rounds`` counts the rounds in a status line. The returned federation holds the
    ``history`` (with ``attack_accuracy`` every round) and the attacker
    (``generated_samples(federation)``).
    """
    federation = Federation.build(config, data)
    label = label or run_label(config, federation.data.class_names)
    for plot in plots:
        federation.observers.append(plot.observer(label))
    if samples is not None and config.attack in GAN_ATTACKS:
        federation.observers.append(samples.observer(federation))
    if rounds is not None:
        federation.observers.append(rounds.observer())
    federation.run(progress=progress)
    return federation


class AttackExplorer:
    """Controls for an attack's settings and a run button; the runs show live and pile up.

    Why: moving one setting and comparing the curve with the last run's is how one learns what
    an attack depends on. ``attacks`` are the choices (names in ``CRPA_ATTACKS``), ``controls``
    the settings offered, a subset of ``CONTROLS``; everything else comes from ``config``. Each
    control is the config field of its name, but for ``dp``: DP-SGD on every client, on or off
    (a ``DPConfig`` among ``config.defenses``). ``metrics`` are the curves drawn; a GAN attack
    also shows its samples. The button calls ``run_attack`` with the chosen config
    (``chosen_config``).
    """

    CONTROLS = ("dataset", "generate_class", "target_class", "alpha", "poison_count", "dp")

    def __init__(self, config: CRPAConfig, data: Data, attacks=("crpa", "none"),
                 controls=CONTROLS, metrics=("attack_accuracy", "test_accuracy")):
        for name in controls:
            if name not in self.CONTROLS:
                raise ValueError(f"control={name!r} is not allowed: it must be one of "
                                 + ", ".join(self.CONTROLS))
        for name in attacks:
            check_choice("attack", name, CRPA_ATTACKS)
        self.config = config
        self.datasets = {data.name: data}
        self.attack = widgets.Dropdown(options=list(attacks), value=attacks[0],
                                       description="attack")
        self.controls = {name: self.make_control(name) for name in controls}
        if "dataset" in self.controls:
            self.controls["dataset"].observe(self.relabel_classes, names="value")
        self.button = widgets.Button(description="run attack", button_style="danger")
        self.clear = widgets.Button(description="clear curves")
        self.status = widgets.Label()
        self.messages = widgets.Output()  # an unexpected error shows here instead of vanishing
        self.plots = tuple(LivePlot(metric, config.num_rounds, metric.replace("_", " ") + ", live")
                           for metric in metrics)
        self.samples = LiveSamples()
        self.button.on_click(self.run)
        self.clear.on_click(self.clear_curves)
        choices = [self.attack] if len(attacks) > 1 else []
        self.widget = widgets.VBox([
            widgets.HBox(choices + list(self.controls.values())[:3]),
            widgets.HBox(list(self.controls.values())[3:] + [self.button, self.clear]),
            self.status,
            self.messages,
            widgets.HBox([plot.output for plot in self.plots]),
            self.samples.output,
        ])

    def class_options(self, dataset: str) -> list[tuple[str, int]]:
        return [(f"{c}: {name}", c) for c, name in enumerate(DATASETS[dataset].class_names)]

    def make_control(self, name: str) -> widgets.Widget:
        """The widget for one setting, starting at ``config``'s value."""
        if name == "dp":
            return widgets.Checkbox(value=has_dp(self.config), description="DP-SGD")
        value = getattr(self.config, name)
        if name == "dataset":
            return widgets.Dropdown(options=DATASETS.names(), value=value, description=name)
        if name in ("generate_class", "target_class"):
            return widgets.Dropdown(options=self.class_options(self.config.dataset), value=value,
                                    description="G" if name == "generate_class" else "T")
        if name == "alpha":
            return widgets.SelectionSlider(options=[(f"{a:g}", a) for a in STUDY_ALPHAS],
                                           value=value, description=name)
        most = self.images_per_class()  # poison_count, the one control left
        return widgets.IntSlider(min(value, most), min=1, max=most, description="poisoned")

    def images_per_class(self) -> int:
        """The most poisoned images worth offering: as many as the data holds of each class.

        A label flipper draws its poison from the real training images of G, so it can have no
        more; and a client at alpha = 0 holds one class, as many images as that.
        """
        return min(int(np.bincount(data.train_y.cpu().numpy()).min())
                   for data in self.datasets.values())

    def relabel_classes(self, change) -> None:
        """Show the new dataset's class names in the G and T menus (the indices stay)."""
        for name in ("generate_class", "target_class"):
            if name in self.controls:
                menu = self.controls[name]
                value = menu.value
                menu.options = self.class_options(change["new"])
                menu.value = value

    def chosen_config(self) -> CRPAConfig:
        """``config`` with the chosen attack and settings (validated like any config)."""
        values = {name: control.value for name, control in self.controls.items()}
        g = values.get("generate_class", self.config.generate_class)
        if "target_class" not in values and g == self.config.target_class:
            # Without a T menu (a reconstruction has no target) T only keeps one more class
            # away from the attacker; it must still differ from G.
            values["target_class"] = (g + 1) % self.config.num_classes
        if "dp" in values:
            values["defenses"] = self.defenses_with_dp(values.pop("dp"))
        return self.config.replace(attack=self.attack.value, **values)

    def defenses_with_dp(self, on: bool) -> tuple[Defense, ...]:
        """``config``'s defenses with DP-SGD on every client (its own ``DPConfig`` if it has
        one, else the study's) or without it."""
        others = tuple(d for d in self.config.defenses if d.name != DP_DEFENSE)
        if not on:
            return others
        own = [d for d in self.config.defenses if d.name == DP_DEFENSE]
        if not own:
            from .defenses.dp import DPConfig  # Opacus takes seconds to import: only when asked

            own = [DPConfig()]
        return (*others, *own)

    def clear_curves(self, _button=None) -> None:
        """Forget the runs shown so far (the "clear curves" button)."""
        for plot in self.plots:
            plot.reset()
        self.samples.reset()
        self.status.value = ""

    def data_for(self, config: CRPAConfig) -> Data:
        """The dataset the config names, loaded once with the config's sizes and kept."""
        if config.dataset not in self.datasets:
            self.datasets[config.dataset] = load(
                config.dataset, config.data_root, max_per_class=config.max_per_class,
                max_test=config.max_test, device=resolve_device(config.device),
                allow_fallback=config.allow_fallback)
        return self.datasets[config.dataset]

    def run(self, _button=None) -> Federation | None:
        """Run the chosen attack with live curves (the button); a bad setting prints one line.

        The status line says "round k of R, about N s left" while it runs; an interrupt (the
        stop button) ends the run and says after which round. Any other error shows its
        traceback below the buttons.
        """
        self.button.disabled = True
        self.messages.clear_output()
        self.status.value = ""
        with self.messages:
            try:
                config = self.chosen_config()
                rounds = RoundProgress(self.status, config.num_rounds)
                self.status.value = f"running {config.num_rounds} rounds ..."
                federation = run_attack(config, self.data_for(config), self.plots, self.samples,
                                        progress=False, rounds=rounds)
                self.status.value = rounds.finished()
                return federation
            except ValueError as error:
                print(f"ValueError: {error}")
            except KeyboardInterrupt:
                self.status.value = rounds.interrupted()
            finally:
                self.button.disabled = False
        return None

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


def data_banner(data: Data) -> HTML:
    """A coloured box saying where ``data`` came from; loud orange when it is the fallback."""
    if data.is_fallback:
        colour, text = "#fde3c8", (f"<b>Warning: this is NOT {html.escape(data.name)}.</b> "
                                   "It is the embedded fallback dataset, because the real one "
                                   "could not be found or downloaded. The notebooks still run, "
                                   "but numbers differ from the course text. ")
    else:
        colour, text = "#dff0d8", f"<b>Real data: {html.escape(data.name)}.</b> "
    detail = (f"{len(data.train_y)} training and {len(data.test_y)} test images; "
              f"source: {html.escape(data.source)}")
    return HTML(f'<div style="background:{colour};padding:8px;border-radius:4px">'
                f"{text}{detail}</div>")


def config_table(**configs: FedConfig) -> HTML:
    """Configs side by side, one column each; rows whose values differ are highlighted.

    The rows are ``table_rows``: a part of the run by its name, its settings in rows below it.
    """
    columns = {name: table_rows(config) for name, config in configs.items()}
    fields = list(dict.fromkeys(field for column in columns.values() for field in column))
    header = "".join(f"<th>{html.escape(name)}</th>" for name in columns)
    rows = []
    for field in fields:
        values = [column.get(field, "") for column in columns.values()]
        style = ' style="background:#fff3b0"' if len(set(values)) > 1 else ""
        cells = "".join(f"<td>{html.escape(v)}</td>" for v in values)
        rows.append(f"<tr{style}><td><code>{field}</code></td>{cells}</tr>")
    return HTML(f"<table><tr><th>field</th>{header}</tr>{''.join(rows)}</table>")


def table_rows(config: FedConfig) -> dict[str, str]:
    """``config.to_dict()`` as text, one row per setting, for ``config_table``.

    A part of the run (``fltutor.parts``: the aggregator, the CRPA study's GAN settings) shows
    its registry name, and each of its settings in a row of its own below it (``gan.steps``), so
    that the one setting two configs differ in is the row highlighted. A tuple of parts (the
    ``attackers``, ``defenses``, ``observations``) is one row: each part with its settings.

    >>> rows = table_rows(FedConfig(num_rounds=3))
    >>> rows["num_rounds"], rows["aggregator"], rows["defenses"]
    ('3', 'mean', '()')
    """
    rows = {}
    for field, value in config.to_dict().items():
        if isinstance(getattr(config, field), Part):  # one part, written as its dict
            settings = {key: item for key, item in value.items() if key != "name"}
            if "name" in value:
                rows[field] = value["name"]
            rows.update({f"{field}.{key}": repr(item) for key, item in settings.items()})
        elif isinstance(value, list):  # a tuple of parts, each written as its dict
            rows[field] = ", ".join(part_text(part) for part in value)
        else:
            rows[field] = repr(value)
    return rows


def part_text(part: dict) -> str:
    """A part's dict as one line: ``record-dp(noise_multiplier=0.3, ...)``."""
    settings = ", ".join(f"{key}={item!r}" for key, item in part.items() if key != "name")
    return f"{part.get('name', '')}({settings})"


@dataclass(frozen=True)
class Check:
    """The verdict on an exercise's answer: true when correct; shows as a coloured line."""

    correct: bool
    message: str

    def __bool__(self) -> bool:
        return self.correct

    def __repr__(self) -> str:
        return self.message

    def _repr_html_(self) -> str:
        colour = "#1a7f37" if self.correct else "#b35900"
        return f'<b style="color:{colour}">{html.escape(self.message)}</b>'


def check_answer(answer: Any, is_correct: Callable[[Any], bool], hint: str = "") -> Check:
    """Whether an exercise's ``answer`` passes ``is_correct``, with ``hint`` when it does not.

    It never raises, so a notebook run top to bottom (nbval, "Run all") passes over exercises;
    an answer left as ``...`` counts as not answered yet.

    >>> check_answer(4, lambda answer: answer == 2 + 2)
    Correct!
    >>> check_answer("four", lambda answer: answer + 1 == 5, hint="a number, please")
    Not yet. a number, please (TypeError: can only concatenate str (not "int") to str)
    """
    if answer is ...:
        return Check(False, "Not answered yet: replace the ... with your answer, run both cells.")
    try:
        correct = bool(is_correct(answer))
    except Exception as error:  # an answer of the wrong kind is a wrong answer, not a crash
        correct, hint = False, f"{hint} ({type(error).__name__}: {error})"
    return Check(True, "Correct!") if correct else Check(False, f"Not yet. {hint}".strip())


# ----------------------------------------------------------------------------------------------
# Robust aggregation (notebook 05): Byzantine runs kept by their settings, and their explorer.

#: What a run without attackers ignores: two such runs that differ only here are the same run.
ATTACK_SETTINGS = ("attack", "malicious", "attack_options", "collude")


def byzantine_label(config: ByzantineConfig) -> str:
    """A name for a run in a legend: ``krum vs 3 x sign-flip, iid``, ``mean, no attack, alpha=0.5``.

    >>> byzantine_label(ByzantineConfig(aggregator=AGGREGATORS["median"](), attack="alie"))
    'median vs 3 x alie, iid'
    """
    data = f"alpha={config.alpha:g}" if config.partition == "dirichlet" else config.partition
    if not config.malicious_clients:
        return f"{config.aggregator.name}, no attack, {data}"
    return f"{config.aggregator.name} vs {config.malicious} x {config.attack}, {data}"


def without_attack(config: ByzantineConfig) -> ByzantineConfig:
    """``config``'s control: the same rule (its options as they are) and data, every client honest."""
    return config.replace(attack="none", attack_options={})


def run_key(config: FedConfig) -> str:
    """What makes two configs the same run: their settings, less the attack's when none attacks."""
    settings = config.to_dict()
    if not config.malicious_clients:
        settings = {name: value for name, value in settings.items() if name not in ATTACK_SETTINGS}
    return json.dumps(settings, sort_keys=True, default=repr)


class LiveKept:
    """Who the aggregator kept (``viz.kept_grid``) in an image widget, redrawn every round.

    Why: a robust rule decides every round whose update to use; watching the grid fill in shows
    whether it leaves out the attackers (their client numbers in red), honest clients, or both.
    """

    def __init__(self):
        self.output = widgets.Image(format="png")

    def show(self, history: list[dict], config: FedConfig, title: str) -> None:
        show_in(self.output, kept_grid(history, config.num_clients, config.malicious_clients,
                                       title=title))

    def observer(self, config: FedConfig, label: str) -> Observer:
        """An observer that redraws the grid of run ``label`` with every round so far."""
        history: list[dict] = []

        def observe(record: RoundRecord) -> None:
            history.append(record.to_json())
            self.show(history, config, f"kept: {label}")

        return observe


def show_history(plot: LivePlot, label: str, history: list[dict]) -> None:
    """Add a finished run's curve to ``plot`` under ``label``, as if it had been run live."""
    name = unique_label(label, plot.histories)
    plot.histories[name] = [{"round": r["round"], plot.metric: r[plot.metric]} for r in history
                            if r.get(plot.metric) is not None]
    plot.redraw()


class ByzantineRuns:
    """Byzantine runs by their settings: each config is trained once, then looked up.

    Why: the scenarios of notebook 05 compare with a few shared controls (the same rule and data
    without attack), and the explorer draws its run's control beside every run; a config that
    has run before (``run_key``) is not trained again. The data are loaded once, by the caller:

        runs = ByzantineRuns(data)
        histories = runs.run({"control": config, "attacked": config.replace(attack="alie")})
    """

    def __init__(self, data: Data):
        self.data = data
        self.histories: dict[str, list[dict]] = {}  # run_key(config) -> the run's history

    def pending(self, configs) -> list[FedConfig]:
        """The configs among ``configs`` that have not run yet (each once)."""
        todo = {run_key(config): config for config in configs}
        return [config for key, config in todo.items() if key not in self.histories]

    def run(self, configs: dict[str, FedConfig], plots: tuple[LivePlot, ...] = (),
            kept: LiveKept | None = None, rounds: RoundProgress | None = None,
            progress: bool = True) -> dict[str, list[dict]]:
        """The history of every config, by label; those not run before are trained now.

        Each ``LivePlot`` gets a curve per label (a run looked up is drawn whole at once),
        ``kept`` shows the grid of the run in progress, ``rounds`` counts the rounds trained.
        """
        histories = {}
        for label, config in configs.items():
            key = run_key(config)
            if key in self.histories:
                for plot in plots:
                    show_history(plot, label, self.histories[key])
                if kept is not None:
                    kept.show(self.histories[key], config, f"kept: {label}")
            else:
                federation = Federation.build(config, self.data)
                federation.observers += [plot.observer(label) for plot in plots]
                if kept is not None:
                    federation.observers.append(kept.observer(config, label))
                if rounds is not None:
                    federation.observers.append(rounds.observer(f"{label}: "))
                self.histories[key] = federation.run(progress=progress)
            histories[label] = self.histories[key]
        return histories


def kept_grids(histories: dict[str, list[dict]], configs: dict[str, FedConfig]):
    """The kept grids of several runs side by side, one per label (attackers' numbers in red)."""
    figure, axes = plt.subplots(1, len(histories), squeeze=False, layout="constrained",
                                figsize=(4.2 * len(histories), 3.6))
    for ax, (label, history) in zip(axes[0], histories.items()):
        config = configs[label]
        kept_grid(history, config.num_clients, config.malicious_clients, ax=ax, title=label)
    return figure


class ByzantineExplorer:
    """Pick an attack, an aggregator, the number of attackers and alpha; run; compare.

    Why: which rule resists which attack, on which data, is best learnt by trying. The button
    trains the chosen run and its control (the same rule and data, no attack; ``without_attack``)
    through ``ByzantineRuns``, so a setting tried before is looked up, not trained again. The
    accuracy curves of both grow live, beside the kept grid of the attacked run; a line below
    sums the run up (``history_summary``). ``aggregator_options`` and ``attack_options`` give
    the options of each rule and attack by name (e.g. ``{"trimmed-mean": {"trim_fraction": 0.3}}``);
    a rule's ``num_malicious`` is the number of attackers, as in ``ByzantineConfig.from_profile``.
    """

    #: The data choices: IID, or Dirichlet with these alphas (0 is one class per client).
    ALPHAS = (("iid", None), ("10", 10.0), ("1", 1.0), ("0.5", 0.5), ("0.1", 0.1))

    def __init__(self, config: ByzantineConfig, data: Data, runs: ByzantineRuns | None = None,
                 aggregator_options: dict[str, dict] | None = None,
                 attack_options: dict[str, dict] | None = None):
        self.config = config
        self.runs = runs if runs is not None else ByzantineRuns(data)
        self.aggregator_options = dict(aggregator_options or {})
        self.attack_options = dict(attack_options or {})
        self.attack = widgets.Dropdown(options=list(BYZANTINE_ATTACKS), description="attack",
                                       value=config.attack if config.attack in BYZANTINE_ATTACKS
                                       else "none")
        self.aggregator = widgets.Dropdown(options=AGGREGATORS.names(), description="aggregator",
                                           value=config.aggregator.name)
        self.malicious = widgets.IntSlider(config.malicious, min=0, max=config.num_clients - 1,
                                           description="attackers")
        self.alpha = widgets.Dropdown(options=list(self.ALPHAS), description="alpha",
                                      value=None if config.partition == "iid" else config.alpha)
        self.button = widgets.Button(description="run", button_style="danger")
        self.status = widgets.Label()
        self.summary = widgets.Label()
        self.messages = widgets.Output()  # a bad setting's one line, or an unexpected traceback
        self.live = LivePlot(num_rounds=config.num_rounds, title="test accuracy, live")
        self.kept = LiveKept()
        self.button.on_click(self.run)
        self.widget = widgets.VBox([
            widgets.HBox([self.attack, self.aggregator]),
            widgets.HBox([self.malicious, self.alpha, self.button]),
            self.status,
            self.summary,
            self.messages,
            widgets.HBox([self.live.output, self.kept.output]),
        ])

    def chosen_config(self) -> ByzantineConfig:
        """``config`` with the chosen attack, rule, attackers and data, validated as any config."""
        attack, rule, alpha = self.attack.value, self.aggregator.value, self.alpha.value
        settings = {f.name: getattr(self.config, f.name) for f in dataclasses.fields(self.config)
                    if f.name not in ("aggregator", "profile")}
        settings.update(attack=attack, malicious=self.malicious.value, aggregator=rule,
                        aggregator_options=self.aggregator_options.get(rule, {}),
                        attack_options=self.attack_options.get(attack, {}) if attack != "none"
                        else {})
        if alpha is None:
            settings["partition"] = "iid"
        else:
            settings.update(partition="dirichlet", alpha=alpha)
        profile = self.config.profile if self.config.profile in BYZANTINE_PROFILES else "quick"
        return ByzantineConfig.from_profile(profile, **settings)

    def run(self, _button=None) -> dict[str, list[dict]] | None:
        """Train the chosen run and its control, live (the button); a bad setting prints one line.

        Returns both histories by label. The status line counts the rounds trained; an
        interrupt (the stop button) ends the runs and says after which round.
        """
        self.button.disabled = True
        self.messages.clear_output()
        self.status.value = self.summary.value = ""
        rounds = None
        with self.messages:
            try:
                config = self.chosen_config()
                configs = {byzantine_label(c): c for c in (without_attack(config), config)}
                todo = len(self.runs.pending(configs.values()))
                rounds = RoundProgress(self.status, max(todo, 1) * config.num_rounds)
                self.live.reset()
                histories = self.runs.run(configs, plots=(self.live,), kept=self.kept,
                                          rounds=rounds, progress=False)
                self.status.value = rounds.finished() if todo else "looked up: run before"
                self.summary.value = self.summary_line(histories)
                return histories
            except ValueError as error:
                print(f"ValueError: {error}")
            except KeyboardInterrupt:
                self.status.value = rounds.interrupted() if rounds else "interrupted"
            finally:
                self.button.disabled = False
        return None

    @staticmethod
    def summary_line(histories: dict[str, list[dict]]) -> str:
        """Each run's final accuracy; for the attacked run its detection rates and backdoor."""
        parts = []
        for label, history in histories.items():
            summary = history_summary(history)
            text = f"{label}: accuracy {summary['final_test_accuracy']:.2f}"
            if summary["mean_detection_tpr"] is not None:
                text += (f", attackers left out {summary['mean_detection_tpr']:.0%}, honest "
                         f"left out {summary['mean_detection_fpr']:.0%} (means over rounds)")
            if "final_backdoor_success" in summary:
                text += f", backdoor success {summary['final_backdoor_success']:.2f} at the end"
            parts.append(text)
        return " | ".join(parts)

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)
