"""The attack notebooks' helpers: live runs, the attack explorer, and the CRPA study's figures.

The figures are checked against numbers worked out by hand from a few made-up sweep results;
the live helpers against the federation's own history.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.container import BarContainer

from fltutor import widgets
from fltutor.attacks.gan import GANSettings
from fltutor.recipes.crpa import CRPAConfig
from fltutor.viz import (aaa_histogram, aaa_matrix, alpha_trend, dp_comparison, mean_std_by,
                         samples_over_rounds)
from fltutor.data import DATASETS
from fltutor.widgets import (AttackExplorer, LivePlot, LiveSamples, RoundProgress, real_images,
                             run_attack, run_label, show_in)


@pytest.fixture
def tiny_crpa():
    """A factory of CRPA configs small enough for a test: 3 one-class clients, 2 rounds."""

    def make(**overrides) -> CRPAConfig:
        fields = dict(num_clients=3, num_rounds=2, batch_size=20, max_per_class=20,
                      max_test=100, device="cpu", generate_class=4, target_class=9,
                      poison_count=8, gan=GANSettings(steps=1, batch_size=8, preview_count=3))
        return CRPAConfig(**{**fields, **overrides})

    return make


@pytest.fixture
def drawn(monkeypatch):
    """The figures the live views would show, collected instead of displayed."""
    figures = []
    monkeypatch.setattr(widgets, "show_in", lambda output, figure: figures.append(figure))
    yield figures
    plt.close("all")


def result(g, t, alpha, dp, seed, aaa, accuracy=0.9):
    return {"generate_class": g, "target_class": t, "alpha": alpha, "dp": dp, "seed": seed,
            "aaa": aaa, "final_test_accuracy": accuracy, "epsilon": 3.0 if dp else None}


# A made-up sweep: pair 4->9 with two seeds at alpha 0 and 10, with and without DP; pair 1->7
# with one seed at alpha 0.
RESULTS = [result(4, 9, 0.0, False, 0, 0.5, 0.88), result(4, 9, 0.0, False, 1, 0.3, 0.86),
           result(4, 9, 0.0, True, 0, 0.05, 0.45), result(4, 9, 0.0, True, 1, 0.07, 0.47),
           result(4, 9, 10.0, False, 0, 0.02, 0.99), result(4, 9, 10.0, False, 1, 0.04, 0.97),
           result(4, 9, 10.0, True, 0, 0.01, 0.89), result(4, 9, 10.0, True, 1, 0.01, 0.89),
           result(1, 7, 0.0, False, 0, 0.2)]


def test_mean_std_by_groups_over_seeds_and_filters():
    stats = mean_std_by(RESULTS, ["generate_class", "target_class", "alpha"], "aaa", dp=False)
    assert stats[(4, 9, 0.0)] == pytest.approx((0.4, 0.1))
    assert stats[(1, 7, 0.0)] == (0.2, 0.0)
    assert len(stats) == 3


def test_aaa_matrix_puts_each_pair_in_row_g_column_t():
    figure = aaa_matrix(RESULTS)
    table = figure.axes[0].images[0].get_array()
    assert table[4, 9] == pytest.approx(0.4)  # alpha 0, no DP, mean over the two seeds
    assert table[1, 7] == pytest.approx(0.2)
    assert np.ma.count(table) == 2  # every other cell, the diagonal included, is left blank
    assert {text.get_text() for text in figure.axes[0].texts} == {"0.40", "0.20"}


def test_aaa_matrix_and_histogram_take_a_plain_dict_too():
    figure = aaa_matrix({(0, 1): 0.3}, class_names=list("abcdefghij"))
    assert figure.axes[0].images[0].get_array()[0, 1] == pytest.approx(0.3)
    histogram = aaa_histogram({(0, 1): 0.3, (1, 0): 0.1})
    counts = [patch.get_height() for patch in histogram.axes[0].patches]
    assert sum(counts) == 2


def test_alpha_trend_draws_mean_and_std_per_pair():
    axis = alpha_trend(RESULTS).axes[0]
    curves = {curve.get_label(): curve.lines[0] for curve in axis.containers}
    assert set(curves) == {"4→9", "1→7"}
    assert curves["4→9"].get_ydata().tolist() == pytest.approx([0.4, 0.03])
    assert curves["1→7"].get_ydata().tolist() == pytest.approx([0.2])
    assert [t.get_text() for t in axis.get_xticklabels()] == ["0", "10"]


def test_dp_comparison_bars_are_the_means_with_and_without_dp():
    aaa_axis, accuracy_axis = dp_comparison(RESULTS).axes[:2]
    heights = {bars.get_label(): [bar.get_height() for bar in bars]
               for bars in aaa_axis.containers if isinstance(bars, BarContainer)}
    # groups in order: 1->7 alpha 0, 4->9 alpha 0, 4->9 alpha 10; 1->7 has no DP run
    assert heights["no DP"] == pytest.approx([0.2, 0.4, 0.03])
    assert heights["DP-SGD"][1:] == pytest.approx([0.06, 0.01])
    assert math.isnan(heights["DP-SGD"][0])
    accuracy = [bars for bars in accuracy_axis.containers if isinstance(bars, BarContainer)]
    assert accuracy[0][1].get_height() == pytest.approx(0.87)


def test_samples_over_rounds_adds_a_row_of_real_images():
    previews = [{"round": r, "images": torch.zeros(3, 1, 28, 28)} for r in (1, 2)]
    figure = samples_over_rounds(previews, real=torch.ones(4, 1, 28, 28), real_label="real 4")
    labels = [ax.get_ylabel() for ax in figure.axes if ax.get_ylabel()]
    assert labels == ["round 1", "round 2", "real 4"]
    assert figure.axes[-1].images[0].get_array().shape == (28, 4 * 28 + 3 * 2)  # 4 images, 3 gaps


def test_run_attack_records_attack_accuracy_and_shows_it_live(mnist_tiny, tiny_crpa, drawn):
    plot = LivePlot("attack_accuracy", num_rounds=2)
    federation = run_attack(tiny_crpa(), mnist_tiny, plots=(plot,), samples=LiveSamples(),
                            progress=False)
    history = federation.history
    assert [r["round"] for r in history] == [1, 2]
    assert [p["attack_accuracy"] for p in plot.histories["crpa 4→9 alpha=0 8 poisoned"]] == \
        [r["attack_accuracy"] for r in history]
    assert len(drawn) == 4  # the curve and the samples, every round
    samples_rows = [ax.get_ylabel() for ax in drawn[-1].axes if ax.get_ylabel()]
    assert samples_rows == ["round 1", "round 2", "real 4"]


def test_real_images_are_test_images_of_the_class(mnist_tiny):
    images = real_images(mnist_tiny, 4, count=3)
    expected = mnist_tiny.test_x[mnist_tiny.test_y == 4][:3]
    assert torch.equal(images, expected) and len(images) == 3


def test_explorer_runs_the_chosen_attack_and_settings(mnist_tiny, tiny_crpa, drawn):
    explorer = AttackExplorer(tiny_crpa(num_rounds=1), mnist_tiny, attacks=("label-flip", "none"),
                              controls=("generate_class", "target_class", "poison_count", "dp"))
    explorer.attack.value = "label-flip"
    explorer.controls["generate_class"].value = 1
    explorer.controls["target_class"].value = 7
    explorer.controls["dp"].value = True
    federation = explorer.run()
    assert (federation.config.attack, federation.config.generate_class,
            federation.config.target_class) == ("label-flip", 1, 7)
    assert [defense.name for defense in federation.config.defenses] == ["record-dp"]
    assert math.isfinite(federation.history[0]["epsilon"])
    assert not explorer.button.disabled
    assert list(explorer.plots[0].histories) == ["label-flip 1→7 alpha=0 8 poisoned DP"]
    explorer.controls["dp"].value = False
    assert explorer.chosen_config().defenses == ()


def test_explorer_reports_a_bad_choice_in_one_line(mnist_tiny, tiny_crpa, drawn):
    explorer = AttackExplorer(tiny_crpa(), mnist_tiny, controls=("generate_class", "target_class"))
    explorer.controls["target_class"].value = explorer.controls["generate_class"].value
    assert explorer.run() is None
    assert not explorer.button.disabled and not drawn


def test_explorer_refuses_an_unknown_control_or_attack(mnist_tiny, tiny_crpa):
    with pytest.raises(ValueError, match="control='rounds' is not allowed"):
        AttackExplorer(tiny_crpa(), mnist_tiny, controls=("rounds",))
    with pytest.raises(ValueError, match="attack='krum' is not allowed: it must be one of none, "):
        AttackExplorer(tiny_crpa(), mnist_tiny, attacks=("crpa", "krum"))


def test_explorer_without_a_target_menu_keeps_t_away_from_the_chosen_g(mnist_tiny, tiny_crpa):
    explorer = AttackExplorer(tiny_crpa(attack="reconstruction"), mnist_tiny,
                              attacks=("reconstruction",), controls=("dataset", "generate_class"))
    explorer.controls["generate_class"].value = 9  # the config's T
    config = explorer.chosen_config()
    assert (config.generate_class, config.target_class) == (9, 0)
    explorer.controls["dataset"].value = "fashion-mnist"
    assert explorer.controls["generate_class"].label == "9: Ankle boot"


def test_confusion_heatmap_shows_row_shares_and_the_fake_column():
    from fltutor.viz import confusion_heatmap

    axis = confusion_heatmap(torch.tensor([[6, 2, 0], [0, 4, 4]])).axes[0]
    assert axis.images[0].get_array().tolist() == [[0.75, 0.25, 0.0], [0.0, 0.5, 0.5]]
    assert [t.get_text() for t in axis.get_xticklabels()] == ["0", "1", "fake"]


def test_two_runs_with_one_label_get_a_line_each(mnist_tiny, tiny_crpa, drawn):
    plot = LivePlot("attack_accuracy", num_rounds=2)
    for _ in range(2):
        run_attack(tiny_crpa(), mnist_tiny, plots=(plot,), label="crpa", progress=False)
    assert list(plot.histories) == ["crpa", "crpa #2"]
    lines = drawn[-1].axes[0].get_lines()
    assert [line.get_label() for line in lines] == ["crpa", "crpa #2"]
    assert [line.get_xdata().tolist() for line in lines] == [[1, 2], [1, 2]]  # no zig-zag


def test_the_explorer_labels_each_run_by_its_settings(mnist_tiny, tiny_crpa, drawn):
    explorer = AttackExplorer(tiny_crpa(num_rounds=1), mnist_tiny,
                              controls=("generate_class", "poison_count", "dp"))
    explorer.run()
    explorer.controls["poison_count"].value = 4
    explorer.run()
    explorer.run()  # the same settings again: a line of its own
    assert list(explorer.plots[0].histories) == [
        "crpa 4→9 alpha=0 8 poisoned", "crpa 4→9 alpha=0 4 poisoned",
        "crpa 4→9 alpha=0 4 poisoned #2"]


def test_a_reconstruction_names_no_target_class(mnist_tiny, tiny_crpa, drawn):
    fashion = DATASETS["fashion-mnist"].class_names
    config = tiny_crpa(dataset="fashion-mnist", attack="reconstruction", generate_class=7)
    assert run_label(config, fashion) == "reconstruction of Sneaker alpha=0 8 fakes"
    assert run_label(config.replace(attack="crpa"), fashion) == \
        "crpa Sneaker→Ankle boot alpha=0 8 poisoned"
    assert run_label(config.replace(attack="none"), fashion) == "none Sneaker→Ankle boot alpha=0"
    explorer = AttackExplorer(tiny_crpa(num_rounds=1, attack="reconstruction"), mnist_tiny,
                              attacks=("reconstruction",), controls=("generate_class",),
                              metrics=("test_accuracy",))
    explorer.run()
    assert list(explorer.plots[0].histories) == ["reconstruction of 4 alpha=0 8 fakes"]


def test_show_in_puts_the_whole_figure_into_the_image_and_closes_it():
    figure, ax = plt.subplots()
    ax.plot([1, 2], [0.5, 0.7])
    image = LiveSamples().output
    show_in(image, figure)
    png = bytes(image.value)
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000
    assert not plt.fignum_exists(figure.number)


def test_round_progress_estimates_the_time_left_from_the_mean_round():
    label = widgets.widgets.Label()
    ticks = iter([100.0, 110.0, 130.0])  # start; round 1 took 10 s, round 2 took 20 s
    progress = RoundProgress(label, total_rounds=5, clock=lambda: next(ticks))
    observe = progress.observer()
    observe(None)
    assert label.value == "round 1 of 5, about 40 s left"
    observe(None)
    assert label.value == "round 2 of 5, about 45 s left"  # 15 s a round, 3 rounds to go
    assert progress.interrupted() == "interrupted after round 2 of 5"


def test_the_explorer_counts_rounds_while_it_runs(mnist_tiny, tiny_crpa, drawn):
    explorer = AttackExplorer(tiny_crpa(num_rounds=2), mnist_tiny, controls=("generate_class",))
    shown = []
    explorer.status.observe(lambda change: shown.append(change["new"]), names="value")
    explorer.run()
    assert shown[0] == "running 2 rounds ..."
    assert shown[1].startswith("round 1 of 2, about ") and shown[1].endswith(" s left")
    assert shown[2].startswith("round 2 of 2, about 0 s left")
    assert shown[-1].startswith("done: 2 rounds in ")


def test_an_interrupted_run_says_after_which_round(mnist_tiny, tiny_crpa, monkeypatch):
    calls = []

    def interrupt_in_round_2(output, figure):
        plt.close(figure)
        calls.append(figure)
        if len(calls) == 3:  # round 1: the curve and the samples; round 2: the curve
            raise KeyboardInterrupt

    monkeypatch.setattr(widgets, "show_in", interrupt_in_round_2)
    explorer = AttackExplorer(tiny_crpa(num_rounds=3), mnist_tiny, controls=("generate_class",),
                              metrics=("attack_accuracy",))
    assert explorer.run() is None
    assert explorer.status.value == "interrupted after round 1 of 3"
    assert not explorer.button.disabled


def test_the_poison_slider_offers_no_more_images_than_a_class_has(mnist_tiny, tiny_crpa):
    explorer = AttackExplorer(tiny_crpa(poison_count=500), mnist_tiny,
                              controls=("poison_count",))
    slider = explorer.controls["poison_count"]
    assert (slider.min, slider.max, slider.value) == (1, 20, 20)  # mnist_tiny: 20 a class
    assert explorer.chosen_config().poison_count == 20
