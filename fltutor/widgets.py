"""Notebook building blocks: a live accuracy plot, the non-IID explorer, tables and answer checks.

Every widget here only calls plain functions that compute and return results
(``compare_partitions``, the figures in ``viz``), so a test, a script or a notebook run without a
frontend (nbval) gets the same numbers by calling those functions directly.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any, Callable

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import HTML, clear_output, display

from .config import FedConfig
from .data import Data
from .federation import Federation, Observer, RoundRecord
from .viz import metric_curves, partition_comparison, partition_heatmap

#: The Dirichlet concentrations of the CRPA study (Becker et al. 2025, Sec. 4.3); 0 = one class each.
STUDY_ALPHAS = (0, 0.05, 0.1, 0.2, 0.5, 1, 10)


class LivePlot:
    """Metric curves in an ipywidgets ``Output``, redrawn after every round of every federation.

    Why: a federation takes seconds to minutes; watching accuracy climb (or stall) round by round
    is the point of the exercise. Attach one observer per federation, each with its own label:

        live = LivePlot(num_rounds=5)
        display(live.output)
        federation.observers.append(live.observer("iid"))
    """

    def __init__(self, metric: str = "test_accuracy", num_rounds: int | None = None,
                 title: str | None = None):
        self.metric = metric
        self.num_rounds = num_rounds
        self.title = title
        self.histories: dict[str, list[dict]] = {}
        self.output = widgets.Output()

    def observer(self, label: str) -> Observer:
        """An observer that adds each round's ``metric`` to the curve called ``label``."""
        history = self.histories.setdefault(label, [])

        def observe(record: RoundRecord) -> None:
            history.append({"round": record.round, self.metric: record.to_json()[self.metric]})
            self.redraw()

        return observe

    def reset(self) -> None:
        """Forget all curves (before a new set of runs)."""
        self.histories.clear()
        self.output.clear_output()

    def redraw(self) -> None:
        """Draw every curve so far, on a round axis fixed to ``num_rounds`` when given."""
        figure = metric_curves(self.histories, self.metric, title=self.title)
        if self.num_rounds:
            figure.axes[0].set_xlim(0.5, self.num_rounds + 0.5)
        show_in(self.output, figure)


def show_in(output: widgets.Output, figure) -> None:
    """Replace what ``output`` shows with ``figure``, then release the figure."""
    with output:
        clear_output(wait=True)
        display(figure)
    plt.close(figure)


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
                       live: LivePlot | None = None, progress: bool = True) -> PartitionComparison:
    """Run ``config`` once with IID clients and once with Dirichlet(``alpha``) clients.

    Why: non-IID data is what slows FedAvg down and what the CRPA attack feeds on; the gap
    between the two curves is the cost of heterogeneity. Each client draws its class mix from
    Dir(alpha) (Hsu et al. 2019); alpha = 0 gives every client a single class.
    """
    counts, histories = {}, {}
    for label, run_config in partition_configs(config, alpha).items():
        federation = Federation.build(run_config, data)
        if live is not None:
            federation.observers.append(live.observer(label))
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
        self.partitions = widgets.Output()
        self.live = LivePlot(num_rounds=config.num_rounds, title="test accuracy, live")
        self.alpha.observe(self.draw_partitions, names="value")
        self.num_clients.observe(self.draw_partitions, names="value")
        self.button.on_click(self.run)
        self.widget = widgets.VBox([
            widgets.HBox([self.alpha, self.num_clients, self.button]),
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

    def run(self, _button=None) -> PartitionComparison:
        """Train both federations for the chosen settings, with live curves (the button)."""
        self.button.disabled = True
        self.live.reset()
        try:
            with self.live.output:  # an error shows here instead of vanishing
                return compare_partitions(self.chosen_config(), self.alpha.value, self.data,
                                          live=self.live, progress=False)
        finally:
            self.button.disabled = False

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
    """Configs side by side, one column each; rows whose values differ are highlighted."""
    columns = {name: config.to_dict() for name, config in configs.items()}
    fields = list(next(iter(columns.values())))
    header = "".join(f"<th>{html.escape(name)}</th>" for name in columns)
    rows = []
    for field in fields:
        values = [repr(column[field]) for column in columns.values()]
        style = ' style="background:#fff3b0"' if len(set(values)) > 1 else ""
        cells = "".join(f"<td>{html.escape(v)}</td>" for v in values)
        rows.append(f"<tr{style}><td><code>{field}</code></td>{cells}</tr>")
    return HTML(f"<table><tr><th>field</th>{header}</tr>{''.join(rows)}</table>")


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
