"""The ``fltutor curious`` command: bad input stops it in one line before any work; a run leaves
the curious client's RMSE, PSNR and SSIM per round, and its figures.

The commands run in-process (``run_cli``) on the ``quick`` profile shrunk to a few seconds: 4
clients, 20 images per class, 2 rounds, a cheap reconstruction. The command's code path is
unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import fltutor.recipes.curious as curious
from helpers import run_cli

TINY_PROFILE = dict(num_rounds=2, max_per_class=20, max_test=100, batch_size=10)
CHEAP = ["--curious-option", "iterations=2", "--curious-option", "autoencoder_epochs=2"]


@pytest.fixture
def tiny_quick_profile(monkeypatch):
    """The curious ``quick`` profile shrunk to a few seconds per run."""
    monkeypatch.setitem(curious.CURIOUS_PROFILES, "quick",
                        {**curious.CURIOUS_PROFILES["quick"], **TINY_PROFILE})


def command(out_dir: Path, *arguments: str) -> list[str]:
    return ["curious", "--profile", "quick", "--device", "cpu", "--no-progress",
            "--out", str(out_dir), "--dataset", "mnist", "--clients", "4", "--alpha", "0.5",
            *CHEAP, *arguments]


def test_a_run_records_the_reconstruction_scores_and_draws_its_figures(tmp_path, capsys,
                                                                       tiny_quick_profile):
    code, out, err = run_cli(command(tmp_path / "run", "--poison", "sign-flip",
                                     "--aggregator", "median", "--dp", "record-dp",
                                     "--dp-option", "noise_multiplier=0.5"), capsys)
    assert code == 0, err
    assert "RMSE" in out and str(tmp_path / "run") in out
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    config = metrics["config"]
    assert config["poison"] == "sign-flip" and config["aggregator"]["name"] == "median"
    assert config["defenses"] == [{"name": "record-dp", "noise_multiplier": 0.5,
                                   "max_grad_norm": 1.5, "lr": 0.25, "delta": 1e-6}]
    assert config["partition"] == "dirichlet" and config["num_clients"] == 4
    for record in metrics["rounds"]:
        assert {"curious_rmse", "curious_psnr", "curious_ssim", "test_accuracy",
                "epsilon"} <= set(record)
    assert (tmp_path / "run" / "curious_rmse.png").exists()
    assert (tmp_path / "run" / "reconstructions_round_1.png").exists()


@pytest.mark.parametrize("arguments, named", [
    (["--poison", "nope"], "--poison: invalid choice: 'nope'"),
    (["--poison", "curious"], "--poison: invalid choice: 'curious'"),
    (["--aggregator", "nope"], "--aggregator: invalid choice: 'nope'"),
    (["--dp", "nope"], "--dp: invalid choice: 'nope'"),
    (["--dp-option", "noise_multiplier=1"], "--dp-option noise_multiplier=1 is not allowed "
                                            "without --dp"),
    (["--dp", "record-dp", "--dp-option", "sigma=1"], "--dp-option='sigma' is not allowed"),
    (["--dp", "client-dp", "--dp-option", "noise_multiplier=-1"],
     "noise_multiplier=-1 is not allowed"),
    (["--dp", "client-dp", "--dp-option", "target_quantile=0.5"],  # 4 clients: sigma_b = 0.2
     "noise_multiplier=1.0 is not allowed: it must be above 0 and below 2 * count_noise = 0.4"),
    (["--poison-option", "scale=2"], "poison_options={'scale': 2} is not allowed"),
    (["--poison", "sign-flip", "--poison-option", "scale=0"], "scale=0 is not allowed"),
    (["--curious-option", "every=0"], "every=0 is not allowed"),
    (["--curious-option", "start_round=5"], "start_round=5 is not allowed"),
    (["--rounds", "0"], "num_rounds=0 is not allowed"),
    (["--alpha", "-1"], "alpha=-1.0 is not allowed"),
])
def test_bad_input_stops_in_one_line_with_exit_code_2(tmp_path, capsys, tiny_quick_profile,
                                                      arguments, named):
    code, _, err = run_cli(command(tmp_path / "run", *arguments), capsys)
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert named in err
    assert not (tmp_path / "run").exists()  # refused before any work
