"""Notebook 06's gradient-inversion views: the explorer's choices come from the registries, its
run draws the reconstruction live and reports the run's own scores, and trained models are kept.

Every attack here is a few iterations on the CPU; the figures are collected, not displayed.
"""

from __future__ import annotations

import fltutor.inversion_widgets as inversion_widgets
from fltutor.attacks.inversion import METHODS
from fltutor.inversion_widgets import InversionExplorer, LiveReconstruction
from fltutor.metrics import reconstruction_scores
from fltutor.models import MODELS
from fltutor.recipes.inversion import InversionConfig


def test_the_explorer_offers_every_method_and_the_registered_models(mnist_tiny):
    explorer = InversionExplorer(mnist_tiny)
    assert list(explorer.method.options) == list(METHODS)
    assert {value for _, value in explorer.model.options} <= set(MODELS.names())
    assert "lenet-dlg-relu" in {value for _, value in explorer.model.options}
    assert explorer.batch_size.max == 8


def test_a_run_draws_every_few_iterations_and_reports_its_scores(mnist_tiny, drawn):
    explorer = InversionExplorer(mnist_tiny, InversionConfig(device="cpu"), redraw_every=5)
    explorer.method.value, explorer.model.value = "ig", "lenet5-wide"
    explorer.batch_size.value, explorer.iterations.value = 2, 20
    result, trace = explorer.run()
    assert len(drawn) == 1 + 4 + 1  # iteration 1, every 5th, and the final state
    assert len(trace) == 20 and result.iterations == 20
    scores = reconstruction_scores(result.images.clamp(-1, 1), mnist_tiny.test_x[:2])
    assert f"PSNR {scores['psnr']:.1f} dB" in explorer.summary.value
    assert "iteration 20" in explorer.live.status.value


def test_a_trained_model_is_trained_once_and_reused(mnist_tiny, drawn, monkeypatch):
    trained = []
    real = inversion_widgets.victim_model
    monkeypatch.setattr(inversion_widgets, "victim_model",
                        lambda config, data: trained.append(config) or real(config, data))
    explorer = InversionExplorer(mnist_tiny, InversionConfig(device="cpu", iterations=2))
    explorer.trained_rounds.value, explorer.iterations.value = 1, 10
    for method in ("ig", "idlg"):
        explorer.method.value = method
        explorer.run()
    assert len(trained) == 1 and trained[0].trained_rounds == 1


def test_the_live_view_pairs_guesses_with_originals(mnist_tiny, drawn):
    live = LiveReconstruction(redraw_every=1)
    originals = mnist_tiny.test_x[:2]
    live.start(originals, "dlg")
    live.callback(1, 0.5, originals.flip(0))  # the right images in the wrong order
    assert "PSNR 100.0 dB" in live.status.value
