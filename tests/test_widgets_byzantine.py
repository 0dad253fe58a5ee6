"""Notebook 05's helpers: Byzantine runs kept by their settings, the kept grids, the explorer.

Every run here is a tiny real federation (5 clients of 20 MNIST images per class, 2 rounds);
what the widgets draw is checked against the runs' own histories.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest

from fltutor import widgets
from fltutor.federation import Federation
from fltutor.recipes.byzantine import ByzantineConfig
from fltutor.recipes.byzantine import BYZANTINE_ATTACKS, history_summary
from fltutor.widgets import (ByzantineExplorer, ByzantineRuns, LivePlot, byzantine_label,
                             kept_grids, run_key, without_attack)


def tiny(**overrides) -> ByzantineConfig:
    """A Byzantine run small enough for a test: 5 IID clients, 2 rounds, LeNet-5 on the CPU."""
    settings = dict(num_clients=5, num_rounds=2, batch_size=20, max_per_class=20,
                    max_test=100, device="cpu", model="lenet5", attack="none", malicious=0)
    return ByzantineConfig.from_profile("quick", **{**settings, **overrides})


@pytest.fixture
def drawn(monkeypatch):
    """The figures the live views would show, collected (with the image they were meant for)."""
    figures = []
    monkeypatch.setattr(widgets, "show_in",
                        lambda output, figure: figures.append((output, figure)))
    yield figures
    plt.close("all")


@pytest.fixture
def builds(monkeypatch):
    """The configs of the federations built (trained) while a test runs."""
    built = []
    build = Federation.build.__func__

    def counting(cls, config, data=None):
        built.append(config)
        return build(cls, config, data)

    monkeypatch.setattr(Federation, "build", classmethod(counting))
    return built


def grid_of(figure) -> np.ndarray:
    """The kept grid's cells: 1 kept, 0 left out, 0.5 absent (``viz.kept_grid``)."""
    return figure.axes[0].images[0].get_array()


def test_the_explorer_offers_the_byzantine_attacks_and_every_rule():
    explorer = ByzantineExplorer(tiny(), data=None)
    assert explorer.attack.options[0] == "none" and "alie" in explorer.attack.options
    assert not {"crpa", "label-flip", "reconstruction"} & set(BYZANTINE_ATTACKS)
    assert set(explorer.aggregator.options) >= {"mean", "krum", "median", "freqfed"}


def test_the_button_runs_the_attack_and_its_control_and_draws_both(mnist_tiny, drawn, builds):
    explorer = ByzantineExplorer(tiny(), mnist_tiny)
    explorer.attack.value, explorer.aggregator.value = "sign-flip", "krum"
    explorer.malicious.value = 1
    explorer.button.click()  # what a student's click does: the button's handler

    attacked, control = "krum vs 1 x sign-flip, iid", "krum, no attack, iid"
    assert [c.attack for c in builds] == ["none", "sign-flip"]
    assert builds[1].aggregator.to_dict() == {"name": "krum", "num_malicious": 1}
    histories = explorer.live.histories
    assert list(histories) == [control, attacked]
    assert all([r["round"] for r in h] == [1, 2] for h in histories.values())
    # the accuracy curves were redrawn every round (2 runs x 2 rounds), the last with both runs
    curves = [figure for output, figure in drawn if output is explorer.live.output]
    assert len(curves) == 4
    assert [line.get_label() for line in curves[-1].axes[0].lines] == [control, attacked]
    # the kept grid drawn last is the attacked run's: Krum kept one client a round, never 0
    run = explorer.runs.histories[run_key(builds[1])]
    grid = grid_of([figure for output, figure in drawn if output is explorer.kept.output][-1])
    assert grid.shape == (2, 5)
    for row, record in zip(grid, run):
        assert len(record["kept"]) == 1 and 0 not in record["kept"]
        assert np.flatnonzero(row == 1.0).tolist() == record["kept"]
    assert "attackers left out 100%" in explorer.summary.value
    assert explorer.status.value.startswith("done: 4 rounds in ")
    assert not explorer.button.disabled


def test_a_setting_run_before_is_looked_up_not_trained(mnist_tiny, drawn, builds):
    explorer = ByzantineExplorer(tiny(attack="sign-flip", malicious=1), mnist_tiny)
    first = explorer.run()
    explorer.attack.value = "gaussian-noise"  # same rule and data: the control is shared
    explorer.run()
    assert len(builds) == 3
    again = explorer.run()  # all of it run before
    assert len(builds) == 3 and explorer.status.value == "looked up: run before"
    assert again["mean, no attack, iid"] is first["mean, no attack, iid"]
    assert len(explorer.live.histories["mean, no attack, iid"]) == 2  # drawn from the history


def test_runs_without_attackers_are_one_run_whatever_the_attack_settings_say(mnist_tiny,
                                                                             builds):
    runs = ByzantineRuns(mnist_tiny)
    plain = tiny()
    histories = runs.run({"a": plain, "b": without_attack(tiny(attack="alie", malicious=2)),
                          "c": tiny(attack="ipm", malicious=0)}, progress=False)
    assert len(builds) == 1
    assert histories["a"] is histories["b"] is histories["c"]
    assert runs.pending([plain, tiny(attack="ipm", malicious=1)]) == [
        tiny(attack="ipm", malicious=1)]


def test_a_finished_run_is_drawn_whole_into_a_live_plot(mnist_tiny, drawn):
    runs = ByzantineRuns(mnist_tiny)
    history = runs.run({"run": tiny()}, progress=False)["run"]
    plot = LivePlot()
    runs.run({"run": tiny()}, plots=(plot,))
    assert plot.histories["run"] == [{"round": r["round"], "test_accuracy": r["test_accuracy"]}
                                     for r in history]


def test_the_explorer_reports_a_setting_the_rule_cannot_take_in_one_line(mnist_tiny, drawn,
                                                                         builds, capsys):
    explorer = ByzantineExplorer(tiny(), mnist_tiny)
    explorer.attack.value, explorer.aggregator.value = "sign-flip", "krum"
    explorer.malicious.value = 2  # Krum needs num_clients > 2 f + 2: at most 1 of 5
    assert explorer.run() is None
    # (outside a notebook, clearing the messages writes a terminal's erase-line code)
    printed = [line for line in capsys.readouterr().out.replace("\x1b[2K", "").splitlines()
               if line.strip()]
    assert len(printed) == 1 and printed[0].startswith("ValueError: num_malicious=2 is not")
    assert not builds and not drawn and not explorer.button.disabled


def test_the_explorer_runs_non_iid_data_with_the_chosen_alpha_and_options(mnist_tiny, drawn):
    explorer = ByzantineExplorer(tiny(), mnist_tiny,
                                 aggregator_options={"trimmed-mean": {"trim_fraction": 0.2}},
                                 attack_options={"scaling": {"factor": 3.0}})
    explorer.attack.value, explorer.aggregator.value = "scaling", "trimmed-mean"
    explorer.malicious.value, explorer.alpha.value = 1, 0.5
    config = explorer.chosen_config()
    assert (config.partition, config.alpha) == ("dirichlet", 0.5)
    assert config.aggregator.to_dict() == {"name": "trimmed-mean", "trim_fraction": 0.2}
    assert config.attack_parts()[0].factor == 3.0
    assert byzantine_label(config) == "trimmed-mean vs 1 x scaling, alpha=0.5"
    assert list(explorer.run()) == ["trimmed-mean, no attack, alpha=0.5", byzantine_label(config)]


def test_history_summary_and_kept_grids_follow_the_runs(mnist_tiny):
    runs = ByzantineRuns(mnist_tiny)
    configs = {"krum": tiny(attack="sign-flip", malicious=1, aggregator="krum"),
               "mean": tiny(attack="sign-flip", malicious=1)}
    histories = runs.run(configs, progress=False)
    assert history_summary(histories["krum"])["mean_detection_tpr"] == 1.0
    assert history_summary(histories["mean"])["mean_detection_tpr"] == 0.0
    figure = kept_grids(histories, configs)
    assert [ax.get_title() for ax in figure.axes] == ["krum", "mean"]
    assert grid_of(figure).shape == (2, 5)
    assert [label.get_color() for label in figure.axes[1].get_xticklabels()][:2] == ["red",
                                                                                   "black"]
    plt.close(figure)
