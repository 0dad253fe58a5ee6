"""The curious client's notebook pieces: a run keeps every round's reconstructions beside the true
images of that round's gradient, a round it did not reconstruct in is refused in one line, and the
explorer offers only the reconstruction rounds and trains a poisoning once."""

from __future__ import annotations

import pytest

from fltutor.curious_widgets import CuriousExplorer, poison_label, run_curious_live
from fltutor.recipes.curious import CuriousConfig

CHEAP = dict(autoencoder_epochs=2, iterations=2, max_dummies=4)


@pytest.fixture
def config():
    return CuriousConfig(dataset="mnist", num_clients=3, num_rounds=3, batch_size=20,
                         max_per_class=20, max_test=100, device="cpu",
                         curious_options=dict(CHEAP, every=2))


def test_a_live_run_keeps_the_reconstructions_of_the_rounds_it_reconstructed_in(config,
                                                                                 mnist_tiny):
    run = run_curious_live(config, mnist_tiny, progress=False)
    assert sorted(run.reconstructions) == [1, 3]  # every=2
    assert run.rmse == [run.reconstructions[r].scores["rmse"] for r in (1, 3)]
    shown = run.reconstruction(3)
    assert shown.images.shape == shown.originals.shape == (4, 1, 28, 28)
    assert shown.labels.shape == shown.true_labels.shape == (4,)
    top, bottom = run.figure(1).axes  # the true images above the reconstructions
    assert top.get_title() == "originals" and "RMSE" in bottom.get_title()
    assert "best guess without the gradient" in bottom.get_title()


def test_the_explorers_slider_offers_exactly_the_reconstruction_rounds(config, mnist_tiny):
    explorer = CuriousExplorer(config.replace(num_rounds=12, curious_options=dict(
        CHEAP, rounds=(1, 5, 12))), mnist_tiny)
    assert list(explorer.round.options) == [1, 5, 12] and explorer.round.value == 1
    every = CuriousExplorer(config, mnist_tiny)  # every=2 over 3 rounds
    assert list(every.round.options) == [1, 3]


@pytest.mark.parametrize("round_index", [0, 2, 4, "1"])
def test_a_round_without_reconstructions_is_refused_in_one_line(config, mnist_tiny, round_index):
    run = run_curious_live(config.replace(num_rounds=1), mnist_tiny, progress=False)
    with pytest.raises(ValueError, match=f"^round_index={round_index!r} is not allowed") as error:
        run.reconstruction(round_index)
    assert "\n" not in str(error.value)


def test_the_explorer_trains_a_poisoning_once_and_keeps_it(config, mnist_tiny):
    explorer = CuriousExplorer(config, mnist_tiny)
    assert explorer.poison.options[0] == "none" and "curious" not in explorer.poison.options
    explorer.poison.value = "sign-flip"
    first = explorer.run()
    assert explorer.run() is first  # looked up, not trained again
    assert poison_label(first.config) in explorer.plot.histories
