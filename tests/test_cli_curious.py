"""The ``fltutor curious`` command: bad input stops it in one line before any work; a run leaves
the curious client's scores against the round's images and their controls per reconstructed
round, its figures, and one summary line.

The commands run in-process (``run_cli``): the FedAvg ``quick`` profile shrunk to a few seconds
(4 clients, 20 images per class, 2 rounds, a cheap reconstruction), and ``quick-fedsgd`` cut to
3 rounds of 10 images per class. The command's code path is unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import fltutor.recipes.curious as curious
from helpers import run_cli

#: What a round the curious client reconstructed in records (beside the accuracy).
SCORED = {*curious.CURIOUS_METRICS, "curious_images", "curious_dummies", "curious_seconds"}

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
        assert {*SCORED, "test_accuracy", "epsilon"} <= set(record)
    assert (tmp_path / "run" / "curious_rmse.png").exists()
    assert (tmp_path / "run" / "reconstructions_round_1.png").exists()


def test_a_tiny_fedsgd_run_scores_the_rounds_it_is_told_and_prints_one_summary_line(tmp_path,
                                                                                    capsys):
    # Prepare: quick-fedsgd (10 clients, B=1, LeNet-5) cut to 3 rounds, reconstructions in 1, 3.
    arguments = ["curious", "--profile", "quick-fedsgd", "--rounds", "3", "--max-per-class", "10",
                 "--max-test", "100", "--device", "cpu", "--no-progress", "--seed", "0",
                 "--curious-option", "rounds=1,3", "--curious-option", "iterations=20",
                 "--out", str(tmp_path / "run")]
    # Execute
    code, out, err = run_cli(arguments, capsys)
    # Assert
    assert code == 0, err
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    config, rounds = metrics["config"], metrics["rounds"]
    assert (config["mode"], config["batch_size"], config["model"]) == ("fedsgd", 1, "lenet5")
    assert config["curious_options"]["rounds"] == [1, 3]
    assert [sorted(SCORED & set(r)) for r in rounds] == [sorted(SCORED), [], sorted(SCORED)]
    for record in (rounds[0], rounds[2]):
        assert record["curious_images"] == record["curious_dummies"] == 9  # 9 peers, B=1
        assert record["curious_gain"] == pytest.approx(
            record["curious_control_rmse"] - record["curious_rmse"])
    (line,) = out.strip().splitlines()
    assert line.startswith("curious client's RMSE to the images of the round's gradient")
    assert f"{rounds[0]['curious_rmse']:.4f} in its first round" in line
    assert f"last {rounds[2]['curious_rmse']:.4f}" in line and str(tmp_path / "run") in line
    summary = metrics["summary"]
    assert summary["first_gain"] == pytest.approx(rounds[0]["curious_gain"], abs=1e-6)


def test_the_fedsgd_options_reach_the_config_and_the_default_profile_is_quick_fedsgd(
        tmp_path, capsys, monkeypatch):
    asked = []

    def no_run(config, out_dir, **options):
        asked.append(config)
        return {"summary": {}}

    monkeypatch.setattr(curious, "run_curious", no_run)
    code, out, err = run_cli(["curious", "--device", "cpu", "--no-progress", "--out",
                              str(tmp_path / "run"), "--mode", "fedsgd", "--batch-size", "2",
                              "--model", "lenet5-wide", "--lr", "0.05", "--colluders", "2",
                              "--curious-option", "rounds=1,10,50"], capsys)
    assert code == 0, err
    assert "profile: quick-fedsgd" in out
    (config,) = asked
    assert (config.mode, config.batch_size, config.model, config.lr, config.colluders) == (
        "fedsgd", 2, "lenet5-wide", 0.05, 2)
    assert config.curious_options["rounds"] == (1, 10, 50)


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
    (["--mode", "nope"], "--mode: invalid choice: 'nope'"),
    (["--mode", "fedsgd", "--batch-size", "1000"], "batch_size=1000 is not allowed: it must be "
                                                   "at most"),
    (["--curious-option", "rounds=1,x"], "rounds='1,x' is not allowed"),
    (["--curious-option", "rounds=0"], "rounds=(0,) is not allowed"),
    (["--curious-option", "rounds=1,3"], "rounds=(1, 3) is not allowed: it must be rounds from "
                                         "1 to num_rounds=2"),
    (["--curious-option", "prior=autoencoder", "--curious-option", "latent_dim=0"],
     "latent_dim=0 is not allowed"),
    (["--curious-option", "rounds=1", "--curious-option", "every=2"], "every=2 is not allowed"),
    (["--colluders", "4"], "colluders=4 is not allowed"),
])
def test_bad_input_stops_in_one_line_with_exit_code_2(tmp_path, capsys, tiny_quick_profile,
                                                      arguments, named):
    code, _, err = run_cli(command(tmp_path / "run", *arguments), capsys)
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert named in err
    assert not (tmp_path / "run").exists()  # refused before any work
