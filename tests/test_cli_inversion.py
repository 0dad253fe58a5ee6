"""The ``fltutor invert`` command and its recipe: a run leaves every iteration's loss, PSNR and
SSIM and the figure; a trained model is attacked after its federation's rounds; bad input stops
the command in one line with exit code 2, before any data is loaded.

The commands run in-process (``run_cli``) on the CPU with few iterations.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import fltutor.recipes.inversion as recipe
from fltutor.recipes.inversion import InversionConfig, run_inversion
from helpers import run_cli


def command(out_dir: Path, *arguments: str) -> list[str]:
    return ["invert", "--device", "cpu", "--out", str(out_dir), "--model", "lenet5-wide",
            *arguments]


def test_invert_writes_every_iteration_and_the_reconstructions(tmp_path, capsys):
    out = tmp_path / "ig"
    code, stdout, err = run_cli(command(out, "--method", "ig", "--batch-size", "2",
                                        "--iterations", "40"), capsys)
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    trace = metrics["iterations"]
    assert [step["iteration"] for step in trace] == list(range(1, 41))
    assert {"loss", "psnr", "ssim"} <= set(trace[0])
    assert trace[-1]["loss"] < trace[0]["loss"] and trace[-1]["psnr"] > trace[0]["psnr"]
    summary = metrics["summary"]
    assert summary["iterations_run"] == 40 and summary["label_accuracy"] == 1.0
    assert metrics["recovered_labels"] == sorted(metrics["true_labels"])
    assert (out / "reconstructions.png").stat().st_size > 1000
    assert f"PSNR {summary['psnr']:.1f} dB" in stdout and str(out) in stdout
    # the same command again reads the finished run back instead of recomputing it
    code, stdout, _ = run_cli(command(out, "--method", "ig", "--batch-size", "2",
                                      "--iterations", "40"), capsys)
    assert code == 0 and "nothing recomputed" in stdout


def test_invert_attacks_a_fedavg_update_of_a_trained_model(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(recipe.QUICK_FEDERATION, "max_per_class", 10)
    out = tmp_path / "trained"
    code, _, err = run_cli(command(out, "--method", "idlg", "--batch-size", "1",
                                   "--iterations", "3", "--local-steps", "2",
                                   "--trained-rounds", "2"), capsys)
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    assert [r["round"] for r in metrics["rounds"]] == [1, 2]
    assert metrics["config"]["local_steps"] == 2 and metrics["summary"]["rounds"] == 2
    assert metrics["summary"]["final_test_accuracy"] == metrics["rounds"][-1]["test_accuracy"]


def test_a_trained_model_is_the_federations_global_model(mnist_tiny):
    config = InversionConfig(trained_rounds=1, device="cpu")
    untrained, rounds = recipe.victim_model(config.replace(trained_rounds=0), mnist_tiny)
    trained, rounds = recipe.victim_model(config, mnist_tiny)
    assert len(rounds) == 1
    assert any((a != b).any() for a, b in zip(untrained.parameters(), trained.parameters()))


@pytest.mark.parametrize("arguments, named", [
    (["--method", "ig", "--batch-size", "65"], "batch_size=65"),
    (["--method", "ig", "--batch-size", "0"], "batch_size=0"),
    (["--method", "ig", "--batch-size", "1", "--iterations", "0"], "iterations=0"),
    (["--method", "ig", "--batch-size", "1", "--trained-rounds", "101"], "trained_rounds=101"),
    (["--method", "ig", "--batch-size", "1", "--trained-rounds", "-1"], "trained_rounds=-1"),
    (["--method", "ig", "--batch-size", "1", "--local-steps", "2", "--local-lr", "0"],
     "local_lr=0.0"),
    (["--method", "ig", "--batch-size", "1", "--dataset", "cifar"], "dataset='cifar'"),
    (["--method", "magic", "--batch-size", "1"], "'magic'"),
    (["--method", "dlg", "--batch-size", "1", "--model", "resnet"], "'resnet'"),
])
def test_bad_input_stops_invert_in_one_line(arguments, named, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(recipe, "load", lambda *a, **k: pytest.fail("data was loaded"))
    code, _, err = run_cli(command(tmp_path / "bad", *arguments), capsys)
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and named in err
    assert not (tmp_path / "bad").exists()


def test_run_inversion_refuses_a_folder_of_another_run(tmp_path):
    config = InversionConfig(method="idlg", model="lenet-dlg", iterations=2, device="cpu")
    run_inversion(config, tmp_path, progress=False)
    with pytest.raises(ValueError, match="it holds a run of a different configuration"):
        run_inversion(config.replace(method="dlg"), tmp_path, progress=False)
