"""The robustness sweep (``fltutor.sweep.run_robustness``, ``fltutor sweep robustness``): attacks x
rules x malicious clients x data splits, one results line per run, resumable, and its heatmaps.

Runs are tiny: 6 clients, 20 images per class, 2 rounds. The recipe's runner,
``fltutor.recipes.byzantine.run_byzantine``, is wrapped to count the runs a sweep really does.
"""

from __future__ import annotations

import json

import pytest

import fltutor.sweep as sweep
from fltutor.aggregators import AGGREGATORS
from fltutor.recipes.byzantine import ByzantineConfig, run_byzantine
from fltutor.sweep import (ROBUSTNESS_FILES, ROBUSTNESS_RESULTS, RobustnessKey,
                           run_robustness)
from helpers import forbid_runs, record_runs, run_cli

TINY = dict(num_clients=6, num_rounds=2, max_per_class=20, max_test=100, batch_size=10,
            device="cpu", attack="none", malicious=0)


def tiny(**changes) -> ByzantineConfig:
    return ByzantineConfig.from_profile("quick", **{**TINY, **changes})


def test_a_grid_runs_once_each_resumes_with_nothing_to_do_and_draws_its_heatmap(tmp_path,
                                                                                monkeypatch):
    """2 attacks x 2 numbers of malicious clients: four runs, four lines; again: no run."""
    started = record_runs(monkeypatch, run_byzantine)
    results = run_robustness(tiny(seed=3), tmp_path, attacks=["sign-flip", "gaussian-noise"],
                             aggregators=["mean"], malicious=[1, 2], progress=False)

    keys = [ROBUSTNESS_RESULTS.key_of(r) for r in results]
    assert keys == [RobustnessKey(attack, "mean", count, None, 3)
                    for attack in ("sign-flip", "gaussian-noise") for count in (1, 2)]
    assert sorted(started) == sorted(key.name for key in keys)
    for result, key in zip(results, keys):
        metrics = json.loads((tmp_path / "runs" / key.name / "metrics.json").read_text())
        config = metrics["config"]
        assert (config["attack"], config["malicious"], config["seed"]) == (key.attack,
                                                                           key.malicious, 3)
        assert config["partition"] == "iid"
        assert result["final_test_accuracy"] == metrics["summary"]["final_test_accuracy"]
        assert result["mean_detection_tpr"] == 0.0  # the mean keeps every update
        assert result["final_backdoor_success"] is None and result["rounds"] == 2
    heatmap = tmp_path / ROBUSTNESS_FILES["final_test_accuracy"]
    assert heatmap.read_bytes().startswith(b"\x89PNG")
    assert not (tmp_path / ROBUSTNESS_FILES["final_backdoor_success"]).exists()

    started.clear()
    heatmap.unlink()
    lines = (tmp_path / "results.jsonl").read_text()
    again = run_robustness(tiny(seed=3), tmp_path, attacks=["sign-flip", "gaussian-noise"],
                           aggregators=["mean"], malicious=[1, 2], progress=False)
    assert started == [] and again == results
    assert (tmp_path / "results.jsonl").read_text() == lines
    assert heatmap.exists()  # drawn again from the results


def test_alphas_split_the_data_by_dirichlet_and_a_backdoor_gets_its_heatmap(tmp_path):
    results = run_robustness(tiny(), tmp_path, attacks=["backdoor"], aggregators=["mean"],
                             malicious=[1], alphas=[None, 0.5], progress=False)
    assert [r["alpha"] for r in results] == [None, 0.5]
    dirichlet = RobustnessKey("backdoor", "mean", 1, 0.5, 0).name
    config = json.loads((tmp_path / "runs" / dirichlet / "metrics.json").read_text())["config"]
    assert (config["partition"], config["alpha"]) == ("dirichlet", 0.5)
    assert all(0 <= r["final_backdoor_success"] <= 1 for r in results)
    for file in ROBUSTNESS_FILES.values():
        assert (tmp_path / file).read_bytes().startswith(b"\x89PNG")


def test_a_combination_that_cannot_run_is_left_out_with_a_note(tmp_path, capsys):
    """ALIE computes no perturbation for 1 attacker among 6 clients, but does for 2."""
    results = run_robustness(tiny(), tmp_path, attacks=["alie"], aggregators=["mean"],
                             malicious=[1, 2], progress=False)
    assert [(r["attack"], r["malicious"]) for r in results] == [("alie", 2)]
    out = capsys.readouterr().out
    assert "not run: 1 run(s) such as alie-mean-m1-iid-seed0 (z=None is not allowed" in out
    assert (tmp_path / ROBUSTNESS_FILES["final_test_accuracy"]).exists()


@pytest.mark.skipif("krum" not in AGGREGATORS, reason="Krum is not registered yet")
def test_a_rule_with_num_malicious_assumes_the_runs_number_of_attackers():
    for count in (1, 2):
        key = RobustnessKey("sign-flip", "krum", count, None, 0)
        assert sweep.robustness_config(tiny(num_clients=7), key).aggregator.num_malicious == count


BAD_SWEEPS = [
    # (run_robustness's grid, what the one error line must name)
    (dict(attacks=["bogus"]), "attack='bogus'"),
    (dict(aggregators=["bogus"]), "unknown aggregator 'bogus'"),
    (dict(malicious=[1, 6]), "malicious=6"),  # a bad later run stops the first, too
    (dict(attacks=["crpa"]), "attack='crpa'"),  # the CRPA study's: fltutor crpa runs those
    (dict(alphas=[-1.0]), "alpha=-1.0"),
    (dict(attacks=[]), "attacks=[]"),
    (dict(seeds=0), "seeds=0"),
]


@pytest.mark.parametrize("grid, named", BAD_SWEEPS, ids=[str(g) for g, _ in BAD_SWEEPS])
def test_a_bad_grid_fails_in_one_line_before_any_run(grid, named, tmp_path, monkeypatch):
    forbid_runs(monkeypatch, run_byzantine)
    out_dir = tmp_path / "sweep"
    options = {**dict(attacks=["sign-flip"], aggregators=["mean"], malicious=[1]), **grid}
    with pytest.raises(ValueError) as error:
        run_robustness(tiny(), out_dir, progress=False, **options)
    assert named in str(error.value) and "\n" not in str(error.value)
    assert not out_dir.exists()


def test_a_folder_of_another_robustness_sweep_is_refused(tmp_path, monkeypatch):
    """The shared settings are compared as for the CRPA sweeps: here the number of rounds."""
    sweep.claim_directory(tmp_path, sweep.shared_settings(tiny(), sweep.ROBUSTNESS_PER_RUN))
    forbid_runs(monkeypatch, run_byzantine)
    with pytest.raises(ValueError, match="num_rounds"):
        run_robustness(tiny(num_rounds=1), tmp_path, attacks=["sign-flip"], aggregators=["mean"],
                       malicious=[1], progress=False)


# --- the command ------------------------------------------------------------------------------------

def robustness(out_dir, *arguments: str) -> list[str]:
    return ["sweep", "robustness", "--profile", "quick", "--device", "cpu", "--no-progress",
            "--clients", "6", "--rounds", "2", "--max-per-class", "20", "--max-test", "100",
            "--out", str(out_dir), *arguments]


def test_the_command_runs_the_grid_it_is_given(tmp_path, monkeypatch, capsys):
    grids = []

    def recording_sweep(base, out_dir, **grid):
        grids.append((base, grid))
        return []

    monkeypatch.setattr(sweep, "run_robustness", recording_sweep)
    code, out, err = run_cli(robustness(tmp_path, "--attacks", "sign-flip", "ipm",
                                        "--aggregators", "mean", "--malicious", "1", "2",
                                        "--alphas", "iid", "0.1", "--seeds", "2"), capsys)
    assert code == 0, err
    base, grid = grids[0]
    assert (base.num_clients, base.num_rounds, base.attack) == (6, 2, "none")
    assert {name: grid[name] for name in ("attacks", "aggregators", "malicious", "alphas",
                                          "seeds")} == dict(
        attacks=["sign-flip", "ipm"], aggregators=["mean"], malicious=[1, 2], alphas=[None, 0.1],
        seeds=2)


@pytest.mark.parametrize("arguments, named", [
    (["--alphas", "often"], "alpha='often'"), (["--attacks", "bogus"], "invalid choice: 'bogus'"),
    (["--aggregators", "bogus"], "invalid choice: 'bogus'"), (["--malicious", "9"], "malicious=9")])
def test_bad_command_input_is_one_line_exit_2(arguments, named, tmp_path, monkeypatch, capsys):
    forbid_runs(monkeypatch, run_byzantine)
    code, _, err = run_cli(robustness(tmp_path / "sweep", "--aggregators", "mean", *arguments),
                           capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert named in err and "Traceback" not in err
    assert not (tmp_path / "sweep").exists()


def test_the_command_names_its_figures(tmp_path, capsys):
    code, out, err = run_cli(robustness(tmp_path, "--attacks", "sign-flip", "--aggregators",
                                        "mean", "--malicious", "1"), capsys)
    assert code == 0, err
    assert "1 runs in" in out and "figures accuracy_heatmap.png in" in out
