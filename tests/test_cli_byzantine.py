"""The ``fltutor byzantine`` command: bad input stops it in one line before any data is loaded; a
run leaves every round's kept clients and detection rates, and its figures.

The commands run in-process (``run_cli``). The ``quick`` profile is shrunk so that a run takes a
second: 6 clients, 20 images per class, 2 rounds. The command's code path is unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import fltutor.recipes.byzantine as byzantine
from fltutor.aggregators import AGGREGATORS
from fltutor.federation import Federation
from helpers import run_cli

TINY_PROFILE = dict(num_rounds=2, max_per_class=20, max_test=100, batch_size=10)


@pytest.fixture
def tiny_quick_profile(monkeypatch, mnist_small):
    """The Byzantine ``quick`` profile shrunk to about a second per run."""
    monkeypatch.setitem(byzantine.BYZANTINE_PROFILES, "quick",
                        {**byzantine.BYZANTINE_PROFILES["quick"], **TINY_PROFILE})


def command(out_dir: Path, *arguments: str) -> list[str]:
    """``fltutor byzantine`` on the tiny profile: 6 clients, one sign-flipper, FedAvg's mean,
    unless ``arguments`` say otherwise."""
    return ["byzantine", "--profile", "quick", "--device", "cpu", "--no-progress",
            "--out", str(out_dir), "--clients", "6", "--attack", "sign-flip", "--malicious", "1",
            "--aggregator", "mean", *arguments]


def assert_one_line_error(code: int, err: str, named: str) -> None:
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert named in err and "Traceback" not in err


# --- bad input --------------------------------------------------------------------------------------

BAD_INPUTS = [
    # (arguments after the defaults of ``command``, what the one error line must name)
    (["--attack", "bogus"], "invalid choice: 'bogus'"),
    (["--aggregator", "bogus"], "invalid choice: 'bogus'"),
    (["--malicious", "many"], "invalid int value: 'many'"),
    (["--malicious", "-1"], "malicious=-1"),
    (["--malicious", "6"], "malicious=6"),  # as many as there are clients: none honest
    (["--clients", "0"], "num_clients=0"),
    (["--alpha=-1"], "alpha=-1.0"),
    (["--attack-option", "bogus=1"], "attack option='bogus'"),
    (["--attack-option", "scale=-1"], "scale=-1"),
    (["--attack-option", "scale"], "option='scale'"),
    (["--attack-option", "scale=1", "--attack-option", "scale=2"], "scale=... is not allowed twice"),
    (["--attack-option", "start_round=3"], "start_round=3"),  # the run has 2 rounds
    (["--attack", "none", "--attack-option", "scale=2"], "empty with attack='none'"),
    (["--aggregator-option", "bogus=1"], "aggregator option='bogus'"),
    (["--attack", "alie", "--malicious", "1", "--attack-option", "omniscient=false"],
     "omniscient=False"),  # from its own updates: it needs two of them
    (["--profile", "fast"], "profile='fast'"),
]


@pytest.fixture
def no_data(monkeypatch):
    """Fail the test if the command gets as far as building the federation (loading data)."""
    def no_build(*args, **kwargs):
        raise AssertionError("the data was loaded")

    monkeypatch.setattr(Federation, "build", no_build)


@pytest.mark.parametrize("arguments, named", BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_is_one_line_exit_2_before_any_data(arguments, named, tiny_quick_profile,
                                                      no_data, tmp_path, capsys):
    out_dir = tmp_path / "run"
    code, _, err = run_cli(command(out_dir, *arguments), capsys)
    assert_one_line_error(code, err, named)
    assert not out_dir.exists()


@pytest.mark.skipif("krum" not in AGGREGATORS, reason="Krum is not registered yet")
def test_krum_with_too_few_clients_for_its_attackers_is_refused(tiny_quick_profile, no_data,
                                                                tmp_path, capsys):
    """Krum needs n > 2f + 2: 6 clients withstand 1 attacker, not 2 (told by --malicious)."""
    code, _, err = run_cli(command(tmp_path / "run", "--aggregator", "krum", "--malicious", "2"),
                           capsys)
    assert_one_line_error(code, err, "num_malicious=2")
    code, _, err = run_cli(command(tmp_path / "run", "--aggregator", "krum",
                                   "--aggregator-option", "num_malicious=2"), capsys)
    assert_one_line_error(code, err, "num_malicious=2")


# --- what the options set ------------------------------------------------------------------------

@pytest.fixture
def recorded(monkeypatch):
    """Replace the recipe's runner with a recorder: the configs the command would run."""
    configs = []
    summary = dict(final_test_accuracy=0.5, rounds=1, total_seconds=0.0,
                   mean_detection_tpr=None, mean_detection_fpr=None)

    def run(config, out_dir, **options):
        configs.append(config)
        return {"summary": summary}

    monkeypatch.setattr(byzantine, "run_byzantine", run)
    return configs


def test_options_are_read_as_json_scalars_else_text(tiny_quick_profile, recorded, tmp_path,
                                                    capsys):
    code, _, err = run_cli(command(tmp_path, "--attack", "alie", "--malicious", "2",
                                   "--attack-option", "omniscient=false",
                                   "--attack-option", "z=1.5", "--attack-option", "start_round=2"),
                           capsys)
    assert code == 0, err
    assert recorded[0].attack_options == {"omniscient": False, "z": 1.5, "start_round": 2}
    code, _, err = run_cli(command(tmp_path, "--attack", "min-max",
                                   "--attack-option", "perturbation=std"), capsys)
    assert code == 0, err
    assert recorded[1].attack_options == {"perturbation": "std"}


def test_alpha_means_a_dirichlet_split_and_without_it_the_profile_split(tiny_quick_profile,
                                                                        recorded, tmp_path,
                                                                        capsys):
    assert run_cli(command(tmp_path, "--alpha", "0.5"), capsys)[0] == 0
    assert run_cli(command(tmp_path), capsys)[0] == 0
    with_alpha, without = recorded
    assert (with_alpha.partition, with_alpha.alpha) == ("dirichlet", 0.5)
    assert without.partition == "iid"
    assert (without.num_clients, without.malicious, without.attack) == (6, 1, "sign-flip")
    assert without.collude is True


# --- runs -------------------------------------------------------------------------------------------

def test_a_run_writes_kept_clients_and_detection_rates_per_round(tiny_quick_profile, tmp_path,
                                                                 capsys):
    """Two sign-flippers under FedAvg's mean: every update is kept, so none is detected."""
    out_dir = tmp_path / "run"
    code, out, err = run_cli(command(out_dir, "--malicious", "2"), capsys)
    assert code == 0, err
    assert "final test accuracy" in out and "left out 0% of the malicious" in out
    assert str(out_dir) in out

    metrics = json.loads((out_dir / "metrics.json").read_text())
    assert (metrics["config"]["attack"], metrics["config"]["malicious"]) == ("sign-flip", 2)
    assert metrics["config"]["aggregator"] == {"name": "mean"}
    assert len(metrics["rounds"]) == 2
    for entry in metrics["rounds"]:
        assert entry["kept"] == entry["clients"] == list(range(6))
        assert (entry["detection_tpr"], entry["detection_fpr"]) == (0.0, 0.0)
    summary = metrics["summary"]
    assert (summary["mean_detection_tpr"], summary["mean_detection_fpr"]) == (0.0, 0.0)
    for figure in ("accuracy.png", "kept.png"):
        assert (out_dir / figure).read_bytes().startswith(b"\x89PNG")


def test_a_backdoor_run_records_its_success_every_round(tiny_quick_profile, tmp_path, capsys):
    out_dir = tmp_path / "run"
    code, out, err = run_cli(command(out_dir, "--attack", "backdoor",
                                     "--attack-option", "target_class=0"), capsys)
    assert code == 0, err
    assert "backdoor success" in out
    metrics = json.loads((out_dir / "metrics.json").read_text())
    successes = [entry["backdoor_success"] for entry in metrics["rounds"]]
    assert len(successes) == 2 and all(0 <= s <= 1 for s in successes)
    assert metrics["summary"]["final_backdoor_success"] == successes[-1]
    assert (out_dir / "backdoor_success.png").read_bytes().startswith(b"\x89PNG")


def test_a_finished_run_is_kept(tiny_quick_profile, tmp_path, monkeypatch, capsys):
    out_dir = tmp_path / "run"
    assert run_cli(command(out_dir), capsys)[0] == 0
    metrics = (out_dir / "metrics.json").read_bytes()
    monkeypatch.setattr(Federation, "build", lambda *a, **k: pytest.fail("run again"))
    code, out, err = run_cli(command(out_dir), capsys)
    assert code == 0, err
    assert "already holds this run, finished" in out and "final test accuracy" in out
    assert (out_dir / "metrics.json").read_bytes() == metrics
