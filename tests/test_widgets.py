"""The notebook helpers: live plot, IID-versus-Dirichlet comparison, explorer, answer checks."""

from __future__ import annotations

from dataclasses import replace

from fltutor import widgets
from fltutor.environment import format_report, report
from fltutor.widgets import (LivePlot, NonIidExplorer, check_answer, compare_partitions,
                             config_table, data_banner)


def test_compare_partitions_shows_the_cost_of_one_class_per_client(mnist_small, tiny_config):
    config = tiny_config(num_clients=10, num_rounds=3, batch_size=20)
    comparison = compare_partitions(config, alpha=0, data=mnist_small, progress=False)
    accuracy = comparison.final_accuracy()
    assert set(accuracy) == {"iid", "alpha=0"}
    assert ((comparison.counts["alpha=0"] > 0).sum(axis=1) == 1).all()  # one class each
    assert (comparison.counts["iid"] > 0).sum(axis=1).min() > 1
    assert accuracy["iid"] > accuracy["alpha=0"] + 0.1


def test_live_plot_gets_one_point_per_round_and_label(mnist_tiny, tiny_config, monkeypatch):
    drawn = []
    monkeypatch.setattr(widgets, "show_in", lambda output, figure: drawn.append(figure))
    live = LivePlot(num_rounds=2)
    comparison = compare_partitions(tiny_config(), alpha=1, data=mnist_tiny, live=live,
                                    progress=False)
    assert [point["round"] for point in live.histories["iid"]] == [1, 2]
    assert [p["test_accuracy"] for p in live.histories["alpha=1"]] == \
        [r["test_accuracy"] for r in comparison.histories["alpha=1"]]
    assert len(drawn) == 4


def test_explorer_button_runs_the_chosen_settings(mnist_tiny, tiny_config, monkeypatch):
    monkeypatch.setattr(widgets, "show_in", lambda output, figure: None)
    explorer = NonIidExplorer(tiny_config(num_rounds=1), mnist_tiny)
    explorer.alpha.value, explorer.num_clients.value = 0.1, 4
    comparison = explorer.run()
    assert comparison.counts["alpha=0.1"].shape == (4, 10)
    assert not explorer.button.disabled


def test_check_answer_never_raises():
    assert check_answer(4, lambda answer: answer == 4)
    assert not check_answer(..., lambda answer: answer == 4)
    verdict = check_answer(None, lambda answer: answer.num_clients == 4, hint="a FedConfig")
    assert not verdict and "a FedConfig" in repr(verdict) and "AttributeError" in repr(verdict)


def test_banner_and_table_say_what_matters(mnist_tiny, tiny_config):
    assert "Real data" in data_banner(mnist_tiny).data
    table = config_table(a=tiny_config(), b=tiny_config(num_rounds=7)).data
    assert table.count("background:#fff3b0") == 1  # only num_rounds differs
    assert "<td><code>aggregator</code></td><td>mean</td>" in table  # a part by its name


def test_the_table_shows_each_setting_of_a_part_in_a_row_of_its_own():
    from fltutor.recipes.crpa import CRPAConfig

    quick = CRPAConfig.from_profile("quick", device="cpu")
    table = config_table(quick=quick, fewer_steps=quick.replace(gan=replace(quick.gan, steps=5)))
    assert table.data.count("background:#fff3b0") == 1
    assert '<tr style="background:#fff3b0"><td><code>gan.steps</code></td><td>30</td><td>5</td>' \
        in table.data


def test_environment_report_names_the_device_and_the_data(mnist_small):
    lines = report()
    assert lines["mnist"] == "present" and lines["default profile"] in ("quick", "paper")
    assert "device:" in format_report(lines)


def test_explorer_counts_both_runs_rounds_and_stops_on_an_interrupt(mnist_tiny, tiny_config,
                                                                    monkeypatch):
    calls = []

    def interrupt_in_the_third_round(output, figure):
        calls.append(figure)
        if len(calls) == 4:  # the partitions, then the curve of rounds 1, 2 and 3
            raise KeyboardInterrupt

    monkeypatch.setattr(widgets, "show_in", interrupt_in_the_third_round)
    explorer = NonIidExplorer(tiny_config(num_rounds=2), mnist_tiny)
    assert explorer.run() is None
    assert explorer.status.value == "interrupted after round 2 of 4"
    assert not explorer.button.disabled
    calls.clear()
    monkeypatch.setattr(widgets, "show_in", lambda output, figure: calls.append(figure))
    assert explorer.run() is not None
    assert explorer.status.value.startswith("done: 4 rounds in ")
    assert list(explorer.live.histories) == ["iid", "alpha=0"]  # the interrupted run is gone
