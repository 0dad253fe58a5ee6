"""The ``fltutor`` command: bad input stops it in one line, a good run leaves its results on disk.

Most cases call ``fltutor.cli.main`` in-process (fast); two run the real command in a subprocess to
check the exit code and that no traceback reaches the user. The ``quick`` profile is shrunk for
these tests so that a run takes a second; the command's code path is unchanged.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import pytest

import fltutor.data as data_module
import fltutor.experiments as experiments
import fltutor.recipes.crpa as crpa_recipe
import fltutor.sweep as sweep
from fltutor import __version__
from fltutor.cli import build_parser
from helpers import run_cli
from fltutor.config import PROFILES
from fltutor.data import default_root


@pytest.fixture
def small_quick_profile(monkeypatch, mnist_small):
    """The ``quick`` profile with 20 training images per class and 100 test images."""
    monkeypatch.setitem(PROFILES, "quick", {**PROFILES["quick"], "max_per_class": 20,
                                            "max_test": 100})


BAD_INPUTS = [
    # (arguments after "fltutor fedavg", what the one error line must name)
    (["--alpha=-1"], "alpha=-1.0"),
    (["--alpha", "nan"], "alpha=nan"),
    (["--clients", "0"], "num_clients=0"),
    (["--clients", "many"], "invalid int value: 'many'"),
    (["--dataset", "cifar10"], "dataset='cifar10'"),
    (["--partition", "random"], "partition='random'"),
    (["--mode", "fedprox"], "mode='fedprox'"),
    (["--profile", "fast"], "profile='fast'"),
    (["--rounds", "0"], "num_rounds=0"),
    (["--exclude", "0:4;x"], "exclude='0:4;x'"),
    (["--clients", "3", "--exclude", "5:1"], "exclude client=5"),
    # Impossible: under iid a single client holds every class.
    (["--clients", "1", "--exclude", "0:3"], "exclude={0: (3,)}"),
]


@pytest.mark.parametrize("arguments, named", BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_is_one_line_exit_2_and_no_output(arguments, named, small_quick_profile,
                                                   tmp_path, capsys):
    out_dir = tmp_path / "run"
    code, _, err = run_cli(["fedavg", "--device", "cpu", "--no-progress", "--out", str(out_dir),
                            *arguments], capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert named in err and "Traceback" not in err
    assert not out_dir.exists()


@pytest.mark.parametrize("arguments, named", [(["--alpha=-1"], "alpha=-1.0"),
                                              (["--exclude", "nonsense"], "exclude='nonsense'")])
def test_the_real_command_exits_2_without_a_traceback(arguments, named, tmp_path):
    out_dir = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "fltutor.cli", "fedavg", "--out", str(out_dir), *arguments],
        capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert named in result.stderr and "Traceback" not in result.stderr
    assert not out_dir.exists()


def test_fedavg_writes_metrics_and_figures(small_quick_profile, tmp_path, capsys):
    out_dir = tmp_path / "run"
    code, out, err = run_cli(["fedavg", "--profile", "quick", "--device", "cpu", "--rounds", "2",
                              "--clients", "3", "--partition", "dirichlet", "--alpha", "0.5",
                              "--no-progress", "--out", str(out_dir)], capsys)
    assert code == 0, err
    assert "final test accuracy" in out and str(out_dir) in out

    metrics = json.loads((out_dir / "metrics.json").read_text())
    assert metrics["config"]["num_clients"] == 3 and metrics["config"]["alpha"] == 0.5
    assert [entry["round"] for entry in metrics["rounds"]] == [1, 2]
    for entry in metrics["rounds"]:
        assert 0 <= entry["test_accuracy"] <= 1
        assert entry["test_loss"] > 0 and entry["seconds"] >= 0
    summary = metrics["summary"]
    assert summary["final_test_accuracy"] == metrics["rounds"][-1]["test_accuracy"]
    assert summary["total_seconds"] >= 0
    assert sum(map(sum, metrics["partition"])) == 200  # 20 images of each of 10 classes
    for figure in ("accuracy.png", "partition.png"):
        assert (out_dir / figure).read_bytes().startswith(b"\x89PNG")
    assert not (out_dir / "checkpoint.pt").exists()


def test_info_reports_versions_device_and_data(mnist_small, capsys):
    code, out, _ = run_cli(["info", "--root", str(default_root())], capsys)
    assert code == 0
    lines = dict(line.split(":", 1) for line in out.splitlines())
    assert lines["fltutor"].strip() == __version__ and "torch" in lines
    assert "device" in lines and "torch threads" in lines
    assert lines["mnist"].strip() == "present"


def test_version(capsys):
    code, out, _ = run_cli(["--version"], capsys)
    assert code == 0 and __version__ in out


def test_data_fetch_finds_a_local_copy_without_the_network(mnist_small, monkeypatch, capsys):
    monkeypatch.setattr(data_module, "_read_or_download", lambda spec, root, train: None)
    code, out, _ = run_cli(["data", "fetch", "--dataset", "mnist", "--root", "somewhere"], capsys)
    assert code == 0 and "mnist: ready in somewhere" in out


def test_data_fetch_of_an_unknown_dataset_is_one_line(capsys):
    code, _, err = run_cli(["data", "fetch", "--dataset", "cifar10"], capsys)
    assert code == 2
    assert err.strip() == "fltutor: error: unknown dataset 'cifar10'; known: mnist, fashion-mnist"


def test_data_fetch_offline_says_how_to_fix_it(monkeypatch, tmp_path, capsys):
    def no_network(spec, root, train, download):
        if download:
            raise ConnectionError("no network in this test")
        raise RuntimeError("Dataset not found.")

    monkeypatch.setattr(data_module, "_torchvision_split", no_network)
    code, _, err = run_cli(["data", "fetch", "--dataset", "mnist", "--root", str(tmp_path)], capsys)
    assert code == 1
    assert len(err.strip().splitlines()) == 1 and "fltutor data fetch --root DIR" in err


def test_the_top_help_is_plain_text(capsys):
    code, out, _ = run_cli(["--help"], capsys)
    assert code == 0
    assert "The fltutor command: environment info" in out and "``" not in out


def all_parsers(parser: argparse.ArgumentParser):
    """``parser`` and every sub-command's parser under it."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                yield from all_parsers(child)


def test_every_option_has_help_text():
    missing = [f"{parser.prog} {action.option_strings or action.dest}"
               for parser in all_parsers(build_parser()) for action in parser._actions
               if not action.help or action.help == argparse.SUPPRESS]
    assert missing == []


@pytest.fixture
def recorded(monkeypatch):
    """Replace the experiment runners with recorders: the configs the commands would run."""
    configs = {}
    summary = {"summary": dict(final_test_accuracy=0.5, aaa=0.5, rounds=1, total_seconds=0.0)}

    def fedavg(config, out_dir, **options):
        configs["fedavg"] = config
        return summary

    def crpa(config, out_dir, **options):
        configs["crpa"] = config
        return summary

    def run_sweep(figure, base, out_dir, **options):
        configs["sweep"] = base
        return []

    monkeypatch.setattr(experiments, "run_fedavg", fedavg)
    monkeypatch.setattr(crpa_recipe, "run_crpa", crpa)
    monkeypatch.setattr(sweep, "run_sweep", run_sweep)
    return configs


def test_a_client_named_twice_in_exclude_keeps_every_class(recorded, tmp_path, capsys):
    code, _, err = run_cli(["fedavg", "--device", "cpu", "--partition", "dirichlet",
                            "--exclude", "0:4;3:1;0:9,4", "--out", str(tmp_path)], capsys)
    assert code == 0, err
    assert recorded["fedavg"].exclude == {0: (4, 9), 3: (1,)}


@pytest.mark.parametrize("command", [["crpa", "--generate", "4", "--target", "9"],
                                     ["sweep", "figure4"]])
def test_a_short_quick_run_attacks_after_the_same_share_of_rounds(command, recorded, tmp_path,
                                                                  capsys):
    code, _, err = run_cli([*command, "--profile", "quick", "--device", "cpu", "--rounds", "5",
                            "--out", str(tmp_path)], capsys)
    assert code == 0, err
    config = recorded[command[0]]
    assert (config.num_rounds, config.attack_start_round) == (5, 2)  # 10 of 40 in the profile


@pytest.mark.parametrize("command", [["crpa", "--generate", "4", "--target", "9"],
                                     ["sweep", "figure4"]])
def test_an_explicit_start_round_is_kept(command, recorded, tmp_path, capsys):
    code, _, err = run_cli([*command, "--profile", "quick", "--device", "cpu", "--rounds", "5",
                            "--start-round", "5", "--out", str(tmp_path)], capsys)
    assert code == 0, err
    assert recorded[command[0]].attack_start_round == 5
