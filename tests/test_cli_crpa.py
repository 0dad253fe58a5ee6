"""The ``fltutor crpa`` and ``fltutor sweep`` commands: bad input stops them in one line before any
work; a run leaves its metrics and figures; a sweep started again does no run twice.

The commands run in-process (``run_cli``, as in test_cli.py). The ``quick`` profile is shrunk so
that a CRPA run takes a second or two: 20 images per class, 3 rounds, a short GAN round. The
commands' code paths are unchanged.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import record_runs, replace_runs, run_cli
from fltutor.config import PROFILES
from fltutor.recipes.crpa import CRPA_PROFILES

TINY_PROFILE = dict(max_per_class=20, max_test=100, batch_size=10, optimizer="sgd", lr=0.05,
                    num_rounds=3, attack_start_round=1, poison_count=10,
                    gan={**CRPA_PROFILES["quick"]["gan"], "steps": 2, "batch_size": 8})


@pytest.fixture
def tiny_quick_profile(monkeypatch, mnist_small):
    """The ``quick`` profile (and its CRPA settings) shrunk to a few seconds per run."""
    monkeypatch.setitem(PROFILES, "quick", {**PROFILES["quick"], "max_per_class": 20,
                                            "max_test": 100, "num_rounds": 3})
    monkeypatch.setitem(CRPA_PROFILES, "quick", {**CRPA_PROFILES["quick"], **TINY_PROFILE})


def crpa(out_dir: Path, *arguments: str) -> list[str]:
    """``fltutor crpa`` on the tiny profile, G = 4, T = 9 unless ``arguments`` say otherwise."""
    return ["crpa", "--profile", "quick", "--device", "cpu", "--no-progress",
            "--out", str(out_dir), "--generate", "4", "--target", "9", *arguments]


def sweep_figure4(out_dir: Path, *arguments: str) -> list[str]:
    return ["sweep", "figure4", "--profile", "quick", "--device", "cpu", "--no-progress",
            "--out", str(out_dir), *arguments]


def assert_one_line_error(code: int, err: str, named: str) -> None:
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert named in err and "Traceback" not in err


# --- bad input --------------------------------------------------------------------------------------

BAD_CRPA = [
    # (arguments after "fltutor crpa ... --generate 4 --target 9", what the error line must name)
    (["--target", "4"], "target_class=4"),
    (["--generate", "10"], "generate_class=10"),
    (["--generate", "four"], "invalid int value: 'four'"),
    (["--attack", "bogus"], "invalid choice: 'bogus'"),
    (["--poison-count", "0"], "poison_count=0"),
    (["--start-round", "0"], "attack_start_round=0"),
    (["--start-round", "4"], "attack_start_round=4"),  # the profile has 3 rounds
    (["--rounds", "2", "--start-round", "3"], "attack_start_round=3"),
    (["--noise-multiplier", "1"], "--noise-multiplier=1.0 is not allowed without --dp"),
    (["--max-grad-norm", "1"], "--max-grad-norm=1.0 is not allowed without --dp"),
    (["--dp", "--noise-multiplier", "-1"], "noise_multiplier=-1.0"),
    (["--dp", "--max-grad-norm", "0"], "max_grad_norm=0.0"),
    (["--no-poison", "--attack", "label-flip"], "attack='label-flip' is not allowed with --no-poison"),
]


BAD_SWEEPS = [
    (["--pairs", "4:4"], "target_class=4"),
    (["--pairs", "4:10"], "target_class=10"),
    (["--pairs", "x"], "pairs='x'"),
    (["--pairs", "4:9:1"], "pairs='4:9:1'"),
    (["--seeds", "0"], "seeds=0"),
]
BAD_INPUTS = [(crpa, *case) for case in BAD_CRPA] + [(sweep_figure4, *case) for case in BAD_SWEEPS]


@pytest.mark.parametrize("command, arguments, named", BAD_INPUTS,
                         ids=[f"{command.__name__} {' '.join(a)}" for command, a, _ in BAD_INPUTS])
def test_bad_input_is_one_line_exit_2_and_no_output(command, arguments, named, tiny_quick_profile,
                                                    tmp_path, capsys):
    """A bad crpa or sweep option stops the command in one line naming it, before any output."""
    out_dir = tmp_path / "out"
    code, _, err = run_cli(command(out_dir, *arguments), capsys)
    assert_one_line_error(code, err, named)
    assert not out_dir.exists()


def test_an_unknown_figure_is_one_line_exit_2(tiny_quick_profile, tmp_path, capsys):
    """``fltutor sweep figure5`` names the figures there are."""
    out_dir = tmp_path / "sweep"
    code, _, err = run_cli(["sweep", "figure5", "--out", str(out_dir)], capsys)
    assert_one_line_error(code, err, "invalid choice: 'figure5'")
    assert not out_dir.exists()


def test_a_pair_without_its_target_class_is_named_in_the_error(tiny_quick_profile, tmp_path,
                                                               capsys):
    """``--pairs 4`` (no ``:T``) says that pairs='4' is not allowed."""
    code, _, err = run_cli(sweep_figure4(tmp_path / "sweep", "--pairs", "4"), capsys)
    assert_one_line_error(code, err, "pairs='4'")


def test_empty_pairs_are_refused_rather_than_taken_as_all_pairs(tiny_quick_profile, tmp_path,
                                                                monkeypatch, capsys):
    """``--pairs ''`` (an unset shell variable, say) is an error, not a 90-run sweep."""
    def no_run(config, out_dir, progress=True):
        raise AssertionError(f"a run started: {out_dir}")

    replace_runs(monkeypatch, no_run)
    code, _, err = run_cli(sweep_figure4(tmp_path / "sweep", "--pairs", ""), capsys)
    assert_one_line_error(code, err, "pairs=''")


def test_a_sweep_directory_of_other_settings_is_refused_in_one_line(tiny_quick_profile, tmp_path,
                                                                    monkeypatch, capsys):
    """Resuming a sweep with changed settings (here --rounds) is refused before any run."""
    out_dir = tmp_path / "sweep"

    def interrupted(config, out_dir, *args, **kwargs):
        raise KeyboardInterrupt  # Ctrl-C as the first run starts

    replace_runs(monkeypatch, interrupted)
    code, _, err = run_cli(sweep_figure4(out_dir, "--pairs", "4:9", "--rounds", "2"), capsys)
    assert code == 130 and "run the same command again to resume" in err
    settings = (out_dir / "sweep.json").read_text()

    started = record_runs(monkeypatch)
    code, _, err = run_cli(sweep_figure4(out_dir, "--pairs", "4:9", "--rounds", "3"), capsys)
    assert_one_line_error(code, err, "other settings")
    assert str(out_dir) in err
    assert started == [] and (out_dir / "sweep.json").read_text() == settings
    assert not (out_dir / "results.jsonl").exists()


def test_the_real_command_exits_2_without_a_traceback(tmp_path):
    """The installed command, not just main(), turns a bad pair into one line and exit code 2."""
    out_dir = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "fltutor.cli", "crpa", "--device", "cpu", "--generate", "4",
         "--target", "4", "--out", str(out_dir)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert_one_line_error(result.returncode, result.stderr, "target_class=4")
    assert not out_dir.exists()


# --- runs -------------------------------------------------------------------------------------------

def test_crpa_writes_attack_accuracy_per_round_aaa_and_figures(tiny_quick_profile, tmp_path,
                                                               capsys):
    """A crpa run leaves every round's attack accuracy, their mean (AAA) and its two figures."""
    out_dir = tmp_path / "run"
    code, out, err = run_cli(crpa(out_dir, "--start-round", "2"), capsys)
    assert code == 0, err
    assert "AAA" in out and str(out_dir) in out

    metrics = json.loads((out_dir / "metrics.json").read_text())
    config = metrics["config"]
    assert (config["generate_class"], config["target_class"]) == (4, 9)
    assert config["attack"] == "crpa" and config["attack_start_round"] == 2  # --start-round
    accuracies = [entry["attack_accuracy"] for entry in metrics["rounds"]]
    assert len(accuracies) == 3 and all(0 <= a <= 1 for a in accuracies)
    assert metrics["summary"]["aaa"] == pytest.approx(sum(accuracies) / len(accuracies))
    assert "epsilon" not in metrics["summary"]
    for figure in ("generated.png", "attack_accuracy.png"):
        assert (out_dir / figure).read_bytes().startswith(b"\x89PNG")
    assert not (out_dir / "checkpoint.pt").exists()


def test_crpa_with_dp_records_a_growing_epsilon(tiny_quick_profile, tmp_path, capsys):
    """With --dp every round reports the privacy spent so far, and the summary the total."""
    out_dir = tmp_path / "run"
    code, out, err = run_cli(crpa(out_dir, "--dp", "--noise-multiplier", "0.5"), capsys)
    assert code == 0, err
    assert "epsilon" in out

    metrics = json.loads((out_dir / "metrics.json").read_text())
    assert [(d["name"], d["noise_multiplier"]) for d in metrics["config"]["defenses"]] == [
        ("record-dp", 0.5)]
    epsilons = [entry["epsilon"] for entry in metrics["rounds"]]
    assert len(epsilons) == 3 and all(math.isfinite(e) and e > 0 for e in epsilons)
    assert epsilons == sorted(epsilons) and epsilons[0] < epsilons[-1]
    assert metrics["summary"]["epsilon"] == epsilons[-1]


def test_a_sweep_run_again_does_no_run_twice(tiny_quick_profile, tmp_path, monkeypatch, capsys):
    """``fltutor sweep figure4 --pairs 4:9,9:4`` writes two results; the same command again, none."""
    out_dir = tmp_path / "sweep"
    started = record_runs(monkeypatch)
    code, out, err = run_cli(sweep_figure4(out_dir, "--pairs", "4:9,9:4"), capsys)
    assert code == 0, err
    assert "2 runs in" in out
    lines = (out_dir / "results.jsonl").read_text().splitlines()
    assert [(json.loads(line)["generate_class"], json.loads(line)["target_class"])
            for line in lines] == [(4, 9), (9, 4)]
    assert len(started) == 2

    started.clear()
    code, out, err = run_cli(sweep_figure4(out_dir, "--pairs", "4:9,9:4"), capsys)
    assert code == 0, err
    assert started == []
    assert (out_dir / "results.jsonl").read_text().splitlines() == lines


# --- finished results are kept ------------------------------------------------------------------------

def test_a_finished_crpa_run_is_kept_another_config_refused_and_force_reruns(
        tiny_quick_profile, tmp_path, monkeypatch, capsys):
    """Same command: exit 0, nothing recomputed. Other settings: exit 2. --force: run again."""
    from fltutor.federation import Federation

    out_dir = tmp_path / "run"
    code, _, err = run_cli(crpa(out_dir), capsys)
    assert code == 0, err
    metrics = (out_dir / "metrics.json").read_bytes()

    def no_build(*args, **kwargs):
        raise AssertionError("the data was loaded again")

    with monkeypatch.context() as patch:
        patch.setattr(Federation, "build", no_build)
        code, out, err = run_cli(crpa(out_dir), capsys)
        assert code == 0, err
        assert "already holds this run, finished" in out and "--force" in out and "AAA" in out
        assert (out_dir / "metrics.json").read_bytes() == metrics

        for other in (["--rounds", "2"], ["--target", "7"], ["--rounds", "2", "--force"]):
            code, _, err = run_cli(crpa(out_dir, *other), capsys)
            assert_one_line_error(code, err, "different configuration")
        assert (out_dir / "metrics.json").read_bytes() == metrics

    code, out, err = run_cli(crpa(out_dir, "--force"), capsys)
    assert code == 0 and "already holds" not in out, err
    assert json.loads((out_dir / "metrics.json").read_text())["finished"] is True


def test_crpa_into_an_unusable_out_is_one_line_exit_2(tiny_quick_profile, tmp_path, capsys):
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    for out in ("", str(a_file), str(a_file / "run")):
        arguments = crpa(tmp_path / "unused")
        arguments[arguments.index("--out") + 1] = out
        code, _, err = run_cli(arguments, capsys)
        assert_one_line_error(code, err, f"out={out!r}")


def test_the_sweep_message_names_the_figure_files_it_wrote(tiny_quick_profile, tmp_path, capsys):
    out_dir = tmp_path / "sweep"
    code, out, err = run_cli(sweep_figure4(out_dir, "--pairs", "4:9", "--rounds", "1"), capsys)
    assert code == 0, err
    assert "aaa_matrix.png, aaa_histogram.png" in out
    assert (out_dir / "aaa_matrix.png").exists() and (out_dir / "aaa_histogram.png").exists()
