"""Notebook building blocks for the curious client (notebook 06, part 2): runs kept by their
poisoning, their reconstructions round by round, and an explorer with poisoning on and off.

As in ``fltutor.widgets``, the widgets only call plain functions and classes (``run_curious_live``,
``CuriousRun``, the figures in ``viz``), so a test or a notebook run without a frontend (nbval)
gets the same numbers by calling those directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import ipywidgets as widgets

from .attacks.curious import CuriousObserver, RoundReconstruction, poisoning_attacks
from .checks import check, check_choice, is_int
from .data import Data
from .federation import Federation, RoundRecord
from .recipes.curious import (FIGURE_PAIRS, CuriousConfig, curious_observer,
                              reconstruction_rounds)
from .viz import reconstruction_pairs
from .widgets import LivePlot, RoundProgress, show_history, show_in


@dataclass
class CuriousRun:
    """A finished curious-client run: its history, its reconstructions by round (beside the
    true images of each round's gradient), and its observer."""

    config: CuriousConfig
    history: list[dict]
    reconstructions: dict[int, RoundReconstruction] = field(default_factory=dict)
    observer: CuriousObserver | None = None

    @property
    def rmse(self) -> list[float]:
        """The curious client's RMSE in each round it reconstructed in, in order."""
        return [r["curious_rmse"] for r in self.history if "curious_rmse" in r]

    def reconstruction(self, round_index: int) -> RoundReconstruction:
        """The reconstructions of round ``round_index`` (one the client reconstructed in)."""
        check(is_int(round_index) and round_index in self.reconstructions, "round_index",
              round_index, f"a round this run reconstructed in: "
              f"{', '.join(map(str, sorted(self.reconstructions)))}")
        return self.reconstructions[round_index]

    def figure(self, round_index: int):
        """That round's true images (top, with their labels) above the reconstructions paired
        with them (with the labels the attacker counted), at most ``FIGURE_PAIRS`` pairs."""
        shown = self.reconstruction(round_index)
        pairs = slice(0, FIGURE_PAIRS)
        return reconstruction_pairs(
            shown.originals[pairs], shown.images[pairs], shown.true_labels[pairs].tolist(),
            shown.labels[pairs].tolist(),
            title=f"{poison_label(self.config)}, round {round_index}: RMSE "
                  f"{shown.scores['rmse']:.3f} (best guess without the gradient "
                  f"{shown.scores['control_rmse']:.3f})")


def poison_label(config: CuriousConfig) -> str:
    """``curious, poisons: sign-flip`` or ``curious, honest``: a run's name in a legend.

    >>> poison_label(CuriousConfig(poison="sign-flip"))
    'curious, poisons: sign-flip'
    """
    return "curious, honest" if config.poison == "none" else f"curious, poisons: {config.poison}"


def run_curious_live(config: CuriousConfig, data: Data, plot: LivePlot | None = None,
                     pictures: widgets.Image | None = None, rounds: RoundProgress | None = None,
                     progress: bool = True) -> CuriousRun:
    """Run ``config`` on ``data`` and keep every round's reconstructions.

    ``plot`` (a ``LivePlot`` of ``curious_rmse``, with its control) gets the run's curve round by round,
    ``pictures`` shows each round's reconstructions as they come, ``rounds`` counts the rounds.
    """
    federation = Federation.build(config, data)
    reconstructions: dict[int, RoundReconstruction] = {}
    watched = curious_observer(federation)

    def keep(record: RoundRecord) -> None:
        latest = watched.latest
        if latest is not None and latest.round == record.round:
            reconstructions[record.round] = latest
            if pictures is not None:
                show_in(pictures, CuriousRun(config, [], reconstructions).figure(record.round))

    federation.observers.append(keep)
    if plot is not None:
        federation.observers.append(plot.observer(poison_label(config)))
    if rounds is not None:
        federation.observers.append(rounds.observer(f"{poison_label(config)}: "))
    return CuriousRun(config, federation.run(progress=progress), reconstructions, watched)


class CuriousExplorer:
    """Poisoning on or off, live: the curious client's RMSE over rounds and its reconstructions.

    Why: the study's claim is that early rounds leak most and that poisoning, by slowing the
    training, keeps the model leaky for longer. The dropdown picks the poisoning (choices from
    ``poisoning_attacks()``); the button trains that run once (runs are kept by poisoning, so
    switching back costs nothing) and adds its RMSE curve beside those run before; the slider
    shows any round's reconstructions under the true images of that round's gradient.
    """

    def __init__(self, config: CuriousConfig, data: Data,
                 runs: dict[str, CuriousRun] | None = None):
        self.config, self.data = config, data
        self.runs: dict[str, CuriousRun] = dict(runs or {})
        self.poison = widgets.Dropdown(options=poisoning_attacks(), value=config.poison,
                                       description="poison")
        self.round = widgets.SelectionSlider(options=reconstruction_rounds(config), value=1,
                                             description="round")
        self.button = widgets.Button(description="run", button_style="primary")
        self.status = widgets.Label()
        self.plot = LivePlot("curious_rmse", num_rounds=config.num_rounds,
                             title="RMSE to the round's true images (lower: more leaked)")
        self.pictures = widgets.Image(format="png")
        self.button.on_click(lambda _: self.run())
        self.poison.observe(lambda _: self.show(), names="value")
        self.round.observe(lambda _: self.show(), names="value")
        for run in self.runs.values():
            show_history(self.plot, poison_label(run.config), run.history)
        self.widget = widgets.VBox([widgets.HBox([self.poison, self.button, self.status]),
                                    self.round, self.plot.output, self.pictures])
        self.show()

    def run(self) -> CuriousRun:
        """Train the chosen poisoning's run unless it has run before; show it."""
        check_choice("poison", self.poison.value, poisoning_attacks())
        if self.poison.value not in self.runs:
            config = self.config.replace(poison=self.poison.value)
            rounds = RoundProgress(self.status, config.num_rounds)
            self.runs[self.poison.value] = run_curious_live(config, self.data, self.plot,
                                                            self.pictures, rounds, progress=False)
            self.status.value = rounds.finished()
        self.show()
        return self.runs[self.poison.value]

    def show(self) -> None:
        """The chosen run's reconstructions at the chosen round, if it has run."""
        run = self.runs.get(self.poison.value)
        if run is None:
            self.status.value = "press run to train this one"
        elif self.round.value in run.reconstructions:
            show_in(self.pictures, run.figure(self.round.value))
