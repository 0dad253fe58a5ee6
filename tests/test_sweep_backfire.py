"""The backfire sweep (``fltutor.backfire.run_backfire``, ``fltutor sweep backfire``): defenses x
poisoning on/off x seeds, one results line per run with its RMSE, control and accuracy curves,
resumable without duplicates, and its figure and table.

Runs are tiny: the ``quick-fedsgd`` profile (FedSGD, LeNet-5, one image per client a round) with
6 clients, 10 images per class, 2 rounds, and a curious client that reconstructs in both rounds
in 5 steps. The recipe's runner, ``fltutor.recipes.curious.run_curious``, is wrapped to count the
runs a sweep really does.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from fltutor.backfire import (BACKFIRE_FILES, BACKFIRE_OPTIONS, BACKFIRE_RESULTS, BackfireKey,
                              backfire_config, backfire_table, defense_setting, run_backfire)
from fltutor.defenses.dp import DPConfig
from fltutor.defenses.local_dp import LocalDPConfig
from fltutor.recipes.curious import CuriousConfig, run_curious
from helpers import forbid_runs, record_runs, replace_runs, run_cli

TINY = dict(num_clients=6, num_rounds=2, max_per_class=10, max_test=100, device="cpu",
            curious_options=dict(rounds=(1, 2), iterations=5))
TWO_DEFENSES = ["none", "record-dp+krum"]


def tiny(**changes) -> CuriousConfig:
    return CuriousConfig.from_profile("quick-fedsgd", **{**TINY, **changes})


def test_defense_labels_name_defenses_and_a_rule():
    assert defense_setting("none") == ((), "mean")
    record_dp = DPConfig(**BACKFIRE_OPTIONS["record-dp"])  # the sweep's own settings
    assert defense_setting("record-dp+krum") == ((record_dp,), "krum")
    assert defense_setting("median") == ((), "median")
    (local,), rule = defense_setting("local-dp")
    assert local == LocalDPConfig(**BACKFIRE_OPTIONS["local-dp"]) and rule == "mean"


def test_a_run_gets_its_defenses_rule_poisoning_and_seed():
    config = backfire_config(tiny(seed=4), BackfireKey("record-dp+krum", "sign-flip", 5))
    assert (config.aggregator.name, config.aggregator.num_malicious) == ("krum", 1)
    assert config.defenses == (DPConfig(**BACKFIRE_OPTIONS["record-dp"]),)
    assert config.poison == "sign-flip"
    assert (config.seed, config.num_rounds, config.curious_options) == (5, 2,
                                                                        TINY["curious_options"])


def test_a_sweep_runs_once_each_records_its_curves_and_resumes_with_nothing_to_do(tmp_path,
                                                                                  monkeypatch):
    started = record_runs(monkeypatch, run_curious)
    results = run_backfire(tiny(), tmp_path, defenses=TWO_DEFENSES, seeds=1, progress=False)

    keys = [BACKFIRE_RESULTS.key_of(r) for r in results]
    assert keys == [BackfireKey(d, p, 0) for d in TWO_DEFENSES for p in ("none", "sign-flip")]
    assert sorted(started) == sorted(key.name for key in keys)
    for result, key in zip(results, keys):
        metrics = json.loads((tmp_path / "runs" / key.name / "metrics.json").read_text())
        # the curves hold the rounds the client was scored in (Krum may keep its own update)
        scored = [r for r in metrics["rounds"] if "curious_rmse" in r]
        assert scored and all("curious_own_kept" in r for r in metrics["rounds"]
                              if r not in scored)
        assert result["rmse_rounds"] == [r["round"] for r in scored] and result["rounds"] == 2
        assert result["curious_rmse"] == [r["curious_rmse"] for r in scored]
        assert result["control_rmse"] == [r["curious_control_rmse"] for r in scored]
        assert result["test_accuracy"] == [r["test_accuracy"] for r in scored]
        assert result["mean_gain"] == pytest.approx(
            sum(r["curious_gain"] for r in scored) / len(scored))
        assert metrics["config"]["poison"] == key.poison
        assert metrics["config"]["mode"] == "fedsgd"
    for file in BACKFIRE_FILES:
        assert (tmp_path / file).stat().st_size > 0
    table = json.loads((tmp_path / "backfire_table.json").read_text())
    assert [(row["defense"], row["poison"]) for row in table] == [(k.defense, k.poison)
                                                                  for k in keys]
    assert all(row["difference"] == 0 for row in table if row["defense"] == "none")

    started.clear()
    lines = (tmp_path / "results.jsonl").read_text()
    again = run_backfire(tiny(), tmp_path, defenses=TWO_DEFENSES, seeds=1, progress=False)
    assert started == [] and again == results
    assert (tmp_path / "results.jsonl").read_text() == lines


def test_an_interrupted_sweep_resumes_without_running_or_recording_a_run_twice(tmp_path,
                                                                               monkeypatch):
    done: list[str] = []

    def stop_at_the_second(config, out_dir, *args, **kwargs):
        if done:
            raise KeyboardInterrupt  # Ctrl-C as the second run starts
        done.append(out_dir.name)
        return run_curious(config, out_dir, *args, **kwargs)

    replace_runs(monkeypatch, stop_at_the_second, run_curious)
    with pytest.raises(KeyboardInterrupt):  # "none" alone: clean and poisoned, two runs
        run_backfire(tiny(), tmp_path, defenses=["none"], seeds=1, progress=False)
    assert [BACKFIRE_RESULTS.key_of(r).name for r in BACKFIRE_RESULTS.read(tmp_path)] == done

    monkeypatch.undo()
    started = record_runs(monkeypatch, run_curious)
    results = run_backfire(tiny(), tmp_path, defenses=["none"], seeds=1, progress=False)
    assert started == ["none-sign-flip-seed0"] and done == ["none-none-seed0"]
    assert [BACKFIRE_RESULTS.key_of(r).name for r in results] == [*done, *started]


def run_line(defense: str, seed: int, rmse: dict[int, float]) -> dict:
    """A results line with RMSE ``{round: value}`` (a gain of 0.1 and accuracy 0.5 throughout)."""
    return {"defense": defense, "poison": "none", "seed": seed, "rmse_rounds": list(rmse),
            "curious_rmse": list(rmse.values()),
            "mean_curious_rmse": sum(rmse.values()) / len(rmse), "mean_gain": 0.1,
            "final_test_accuracy": 0.5}


def test_the_table_pairs_each_run_with_no_defense_of_the_same_seed():
    runs = [run_line(d, s, {1: v, 2: v}) for d, s, v in [
        ("none", 0, 0.40), ("none", 1, 0.60), ("krum", 0, 0.36), ("krum", 1, 0.56),
        ("krum", 2, 0.1)]]  # seed 2 has no baseline
    (none, krum) = backfire_table(runs)
    assert (none["difference"], none["difference_std"]) == (0, 0)
    assert krum["seeds"] == 2 and krum["difference"] == pytest.approx(-0.04)
    assert krum["difference_std"] == pytest.approx(0, abs=1e-12)  # -0.04 on both seeds
    assert krum["relative_percent"] == pytest.approx(-8.0)
    assert krum["mean_rmse"] == pytest.approx(0.46)


def test_a_run_that_skipped_rounds_is_compared_on_the_rounds_both_scored():
    # Krum kept the curious client's own update in round 2 (no score) and round 3 has none at
    # all: only round 1 compares, and a run scored in no round is left out.
    runs = [run_line("none", 0, {1: 0.4, 2: 0.5, 3: 1.0}), run_line("krum", 0, {1: 0.1}),
            {**run_line("krum", 1, {1: 0.1}), "rmse_rounds": [], "curious_rmse": []},
            run_line("none", 1, {1: 0.4})]
    krum = next(row for row in backfire_table(runs) if row["defense"] == "krum")
    assert krum["seeds"] == 1 and krum["difference"] == pytest.approx(-0.3)


BAD_SWEEPS = [
    # (run_backfire's options, what the one error line must name)
    (dict(defenses=["bogus"]), "defense='bogus'"),
    (dict(defenses=["krum+median"]), "defense='krum+median'"),  # two rules
    (dict(defenses=["local-dp+local-dp"]), "defense='local-dp+local-dp'"),
    (dict(defenses=[]), "defenses=[]"),
    (dict(poison="none"), "poison='none'"),
    (dict(poison="curious"), "poison='curious'"),
    (dict(seeds=0), "seeds=0"),
]


@pytest.mark.parametrize("options, named", BAD_SWEEPS, ids=[str(o) for o, _ in BAD_SWEEPS])
def test_bad_sweep_input_fails_in_one_line_before_any_run(options, named, tmp_path, monkeypatch):
    forbid_runs(monkeypatch, run_curious)
    out_dir = tmp_path / "sweep"
    with pytest.raises(ValueError) as error:
        run_backfire(tiny(), out_dir, progress=False, **{"defenses": ["krum"], **options})
    assert named in str(error.value) and "\n" not in str(error.value)
    assert not out_dir.exists()


def backfire(out_dir, *arguments: str) -> list[str]:
    return ["sweep", "backfire", "--profile", "quick-fedsgd", "--device", "cpu", "--no-progress",
            "--rounds", "2", "--max-per-class", "20", "--max-test", "100", "--out", str(out_dir),
            *arguments]


def test_the_command_runs_the_defenses_it_is_given_and_prints_the_table(tmp_path, monkeypatch,
                                                                        capsys):
    asked = []
    monkeypatch.setattr("fltutor.backfire.run_backfire",
                        lambda base, out, **options: asked.append((base, options)) or [])
    code, out, _ = run_cli(backfire(tmp_path, "--defenses", "krum", "local-dp+median",
                                    "--seeds", "2", "--poison", "gaussian-noise"), capsys)
    assert code == 0 and "diff < 0: the defense helped the curious client" in out
    base, options = asked[0]
    assert (base.num_rounds, base.max_per_class, base.mode) == (2, 20, "fedsgd")
    assert (options["defenses"], options["seeds"], options["poison"]) == (
        ["krum", "local-dp+median"], 2, "gaussian-noise")


def test_the_command_defaults_to_the_fedsgd_profile_of_the_device(tmp_path, monkeypatch,
                                                                 capsys):
    asked = []
    monkeypatch.setattr("fltutor.backfire.run_backfire",
                        lambda base, out, **options: asked.append(base) or [])
    code, out, _ = run_cli(["sweep", "backfire", "--device", "cpu", "--no-progress", "--rounds",
                            "2", "--out", str(tmp_path)], capsys)
    assert code == 0 and "profile: quick-fedsgd" in out
    (base,) = asked
    assert (base.mode, base.batch_size, base.model) == ("fedsgd", 1, "lenet5")


@pytest.mark.parametrize("arguments, named", [
    (["--defenses", "bogus"], "defense='bogus'"),
    (["--seeds", "0"], "seeds=0"),
    (["--rounds", "0"], "num_rounds=0"),
    (["--poison", "none"], "poison='none'"),
])
def test_bad_command_input_is_one_line_exit_2(arguments, named, tmp_path, monkeypatch, capsys):
    forbid_runs(monkeypatch, run_curious)
    code, out, err = run_cli(backfire(tmp_path / "sweep", *arguments), capsys)
    assert code == 2 and named in err and err.count("\n") == 1 and "Traceback" not in err


#: A backfire sweep of defense "none" in a process of its own, on one thread like these tests.
SWEEP_PROCESS = ("import json, sys, torch\n"
                 "from fltutor.backfire import run_backfire\n"
                 "from fltutor.recipes.curious import CuriousConfig\n"
                 "torch.set_num_threads(1)\n"
                 "base = CuriousConfig.from_profile('quick-fedsgd', **json.loads(sys.argv[2]))\n"
                 "run_backfire(base, sys.argv[1], defenses=['none'], progress=False)")


def test_a_sweep_killed_mid_run_resumes_to_the_uninterrupted_results(tmp_path, capsys):
    """SIGKILL in the second run's second round leaves a results line, that run's checkpoint
    and a lock file whose holder is dead; started again, the sweep runs only the rest."""
    settings = {**TINY, "num_rounds": 3}
    whole = run_backfire(tiny(num_rounds=3), tmp_path / "whole", defenses=["none"],
                         progress=False)
    folder = tmp_path / "killed"
    checkpoint = folder / "runs" / "none-sign-flip-seed0" / "checkpoint.pt"
    sweep = subprocess.Popen([sys.executable, "-c", SWEEP_PROCESS, str(folder),
                              json.dumps(settings)])
    while not checkpoint.exists() and sweep.poll() is None:
        time.sleep(0.02)
    sweep.send_signal(signal.SIGKILL)
    assert sweep.wait() == -signal.SIGKILL, "the sweep ended before its second run saved a round"
    assert len(BACKFIRE_RESULTS.read(folder)) == 1
    capsys.readouterr()

    resumed = run_backfire(tiny(num_rounds=3), folder, defenses=["none"], progress=False)
    assert "resuming" in capsys.readouterr().out
    without_seconds = [{k: v for k, v in r.items() if k != "seconds"} for r in resumed]
    assert without_seconds == [{k: v for k, v in r.items() if k != "seconds"} for r in whole]
