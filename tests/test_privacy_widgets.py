"""Notebook 07's views: the explorer runs a setting once (beside no DP), reads a known one without
running it, and draws the frontier; ``eavesdrop`` keeps what the server reconstructed."""

from __future__ import annotations

from fltutor.privacy import NO_DP, PRIVACY_RESULTS, run_privacy
from fltutor.privacy_widgets import PrivacyExplorer, eavesdrop, eavesdropped_figure
from fltutor.recipes.byzantine import run_byzantine
from helpers import forbid_runs, record_runs

SCENARIOS = ["clean", "sign-flip-mean"]
SHARED = dict(device="cpu", num_rounds=2)


def test_the_explorer_runs_a_setting_once_and_shows_it_beside_no_dp(tmp_path, monkeypatch):
    started = record_runs(monkeypatch, run_byzantine)
    explorer = PrivacyExplorer(tmp_path, SCENARIOS, profile="tiny", shared=SHARED)
    explorer.kind.value, explorer.noise.value, explorer.clip.value = "client-dp", 0.1, 0.5
    rows = explorer.run()
    assert len(started) == 4 and len(explorer.results) == 4
    assert [(r["kind"], r["scenario"]) for r in rows] == [(NO_DP, "sign-flip-mean"),
                                                          ("client-dp", "sign-flip-mean")]
    assert "client-dp" in explorer.table.value and len(explorer.frontier.value) > 0
    started.clear()
    assert explorer.run() == rows and started == []  # known now: nothing runs again


def test_a_known_sweep_is_read_without_running(tmp_path, monkeypatch):
    results = run_privacy(tmp_path / "sweep", kinds=["local-dp"], noises=[0.003], clips=[0.5],
                          scenarios=SCENARIOS, profile="tiny", shared=SHARED, progress=False)
    forbid_runs(monkeypatch, run_byzantine)
    explorer = PrivacyExplorer(tmp_path / "other", SCENARIOS, profile="tiny", shared=SHARED,
                               results=PRIVACY_RESULTS.read(tmp_path / "sweep"))
    explorer.kind.value, explorer.noise.value, explorer.clip.value = "local-dp", 0.003, 0.5
    rows = explorer.run()
    assert len(rows) == 2 and explorer.results == results
    assert not (tmp_path / "other").exists()


def test_the_server_reconstructs_the_clients_images_and_noise_spoils_them():
    seen, last = eavesdrop(NO_DP, 0.0, 1.0, shared=dict(device="cpu"))
    assert seen.images.shape == seen.originals.shape == (2, 1, 28, 28)
    assert seen.scores["psnr"] == last["inversion_psnr"] > 20
    noised, _ = eavesdrop("local-dp", 0.01, 0.5, shared=dict(device="cpu"))
    assert noised.scores["psnr"] < seen.scores["psnr"] - 10
    assert eavesdropped_figure(noised, "local DP").axes
