"""The privacy sweep (``fltutor.privacy.run_privacy``, ``fltutor sweep privacy``): DP kind x noise
x clipping norm over attack scenarios, one results line per run with its epsilon, accuracy and
the attack's success, resumable without duplicates; the table, the stops and the frontier.

Runs use the ``tiny`` profile and the Byzantine scenarios (about a second a run). The recipe's
runner, ``fltutor.recipes.byzantine.run_byzantine``, is wrapped to count the runs really done.
"""

from __future__ import annotations

import json
import math

import pytest

from fltutor.defenses.client_dp import ClientDPConfig
from fltutor.defenses.dp import DPConfig
from fltutor.defenses.local_dp import LocalDPConfig
from fltutor.privacy import (NO_DP, PRIVACY_DELTA, PRIVACY_FILES, PRIVACY_RESULTS, PrivacyKey,
                             attack_stops, dp_defense, dp_kinds, mean_by_setting, privacy_table,
                             run_privacy, scenario_config, stopped)
from fltutor.recipes.byzantine import run_byzantine
from helpers import forbid_runs, record_runs, replace_runs, run_cli

CHEAP = dict(kinds=["client-dp"], noises=[0.1], clips=[0.5],
             scenarios=["clean", "sign-flip-mean"], profile="tiny", progress=False,
             shared=dict(device="cpu", num_rounds=2))


def test_every_dp_kind_is_a_registered_defense_with_its_own_clip():
    assert dp_kinds() == ["record-dp", "local-dp", "client-dp"]
    assert dp_defense(NO_DP, 0.0, 1.0) == ()
    assert dp_defense("record-dp", 1.0, 1.5) == (DPConfig(noise_multiplier=1.0, max_grad_norm=1.5,
                                                          delta=PRIVACY_DELTA),)
    assert dp_defense("local-dp", 0.5, 2.0) == (LocalDPConfig(0.5, 2.0, PRIVACY_DELTA),)
    assert dp_defense("client-dp", 0.1, 0.5) == (ClientDPConfig(0.1, 0.5, PRIVACY_DELTA),)


def test_a_scenario_is_its_recipe_with_the_settings_defense_and_seed():
    config = scenario_config("quick", PrivacyKey("local-dp", 0.01, 0.5, "sign-flip-median", 3))
    assert (config.attack, config.malicious, config.aggregator.name) == ("sign-flip", 3, "median")
    assert config.defenses == (LocalDPConfig(0.01, 0.5, PRIVACY_DELTA),) and config.seed == 3
    crpa = scenario_config("quick", PrivacyKey(NO_DP, 0.0, 1.0, "crpa", 0))
    assert (crpa.generate_class, crpa.target_class, crpa.alpha, crpa.num_rounds) == (4, 9, 0.0, 12)
    spy = scenario_config("quick", PrivacyKey(NO_DP, 0.0, 1.0, "inversion", 0)).observations[0]
    assert (spy.name, spy.client, spy.every) == ("gradient-inversion", 0, 1)


def test_the_curious_scenario_runs_the_fedsgd_profile_where_the_client_leaks():
    from fltutor.recipes.curious import reconstruction_rounds

    for profile, rounds in [("quick", [1, 5, 10]), ("tiny", [1, 2])]:
        config = scenario_config(profile, PrivacyKey(NO_DP, 0.0, 1.0, "curious", 0))
        assert (config.mode, config.batch_size, config.model) == ("fedsgd", 1, "lenet5"), profile
        assert reconstruction_rounds(config) == rounds and config.num_rounds == rounds[-1]


def test_a_sweep_runs_once_each_records_epsilon_and_resumes_with_nothing_to_do(tmp_path,
                                                                              monkeypatch):
    started = record_runs(monkeypatch, run_byzantine)
    results = run_privacy(tmp_path, **CHEAP)

    keys = [PRIVACY_RESULTS.key_of(r) for r in results]
    assert keys == [PrivacyKey(kind, noise, clip, scenario, 0)
                    for kind, noise, clip in [(NO_DP, 0.0, 1.0), ("client-dp", 0.1, 0.5)]
                    for scenario in CHEAP["scenarios"]]
    assert sorted(started) == sorted(key.name for key in keys)
    for result, key in zip(results, keys):
        metrics = json.loads((tmp_path / "runs" / key.name / "metrics.json").read_text())
        last = metrics["rounds"][-1]
        assert result["final_test_accuracy"] == last["test_accuracy"]
        if key.kind == NO_DP:
            assert math.isinf(result["epsilon"]) and "client_epsilon" not in last
        else:
            assert result["epsilon"] == last["client_epsilon"] and 0 < result["epsilon"] < math.inf
        assert result["success"] == (None if key.scenario == "clean"
                                     else last["test_accuracy"])
    for file in PRIVACY_FILES:
        assert (tmp_path / file).stat().st_size > 0

    started.clear()
    lines = (tmp_path / "results.jsonl").read_text()
    again = run_privacy(tmp_path, **CHEAP)
    assert started == [] and again == results
    assert (tmp_path / "results.jsonl").read_text() == lines


def test_an_interrupted_sweep_resumes_without_running_or_recording_a_run_twice(tmp_path,
                                                                               monkeypatch):
    done: list[str] = []

    def stop_at_the_third(config, out_dir, *args, **kwargs):
        if len(done) == 2:
            raise KeyboardInterrupt  # Ctrl-C as the third run starts
        done.append(out_dir.name)
        return run_byzantine(config, out_dir, *args, **kwargs)

    replace_runs(monkeypatch, stop_at_the_third, run_byzantine)
    with pytest.raises(KeyboardInterrupt):
        run_privacy(tmp_path, **CHEAP)
    assert [PRIVACY_RESULTS.key_of(r).name for r in PRIVACY_RESULTS.read(tmp_path)] == done

    monkeypatch.undo()
    started = record_runs(monkeypatch, run_byzantine)
    results = run_privacy(tmp_path, **CHEAP)
    names = [PRIVACY_RESULTS.key_of(r).name for r in results]
    assert started == names[2:] and names[:2] == done and len(set(names)) == len(names) == 4


def line(kind, noise, scenario, success, accuracy=0.8, epsilon=1.0, seed=0):
    return {"kind": kind, "noise": noise, "clip": 1.0, "scenario": scenario, "seed": seed,
            "epsilon": math.inf if kind == NO_DP else epsilon, "final_test_accuracy": accuracy,
            "success": success, "rounds": 2, "seconds": 1.0}


def test_an_attack_stops_where_its_success_reaches_its_control():
    def run(success, accuracy=0.8):
        return {"success": success, "final_test_accuracy": accuracy}

    assert stopped("inversion", run(12.9), None) and not stopped("inversion", run(13.1), None)
    control = run(0.2, 0.8)
    assert stopped("crpa", run(0.3), control) and not stopped("crpa", run(0.31), control)
    # a low AAA in a model the attack has wrecked is no stop
    assert stopped("crpa", run(0.0, 0.75), control) and not stopped("crpa", run(0.0, 0.74), control)
    clean = run(None, 0.8)
    assert stopped("sign-flip-mean", run(0.76), clean)
    assert not stopped("sign-flip-mean", run(0.7), clean)
    assert stopped("curious", run(0.43), run(0.4)) and not stopped("curious", run(0.41), run(0.4))
    assert stopped("crpa", run(0.3), None) is None
    results = [line(NO_DP, 0.0, "clean", None, 0.9), line(NO_DP, 0.0, "crpa", 0.6),
               line(NO_DP, 0.0, "crpa-control", 0.1),
               *[line("record-dp", z, "clean", None, acc, eps)
                 for z, acc, eps in [(1.0, 0.8, 10.0), (3.0, 0.5, 1.0)]],
               *[line("record-dp", z, "crpa", aaa, epsilon=eps)
                 for z, aaa, eps in [(1.0, 0.5, 10.0), (3.0, 0.15, 1.0)]],
               *[line("record-dp", z, "crpa-control", 0.1, epsilon=eps)
                 for z, eps in [(1.0, 10.0), (3.0, 1.0)]]]
    table = privacy_table(results)
    assert [(r["kind"], r["noise"], r["stopped"]) for r in table] == [
        (NO_DP, 0.0, False), ("record-dp", 1.0, False), ("record-dp", 3.0, True)]
    assert table[2]["clean_accuracy"] == 0.5
    (stop,) = attack_stops(results)
    assert (stop["scenario"], stop["kind"], stop["stops_at_epsilon"], stop["noise"],
            stop["clean_accuracy"], stop["works_up_to_epsilon"]) == (
        "crpa", "record-dp", 1.0, 3.0, 0.5, 10.0)


def test_the_means_over_seeds_carry_the_gans_reconstruction_quality():
    runs = [{**line("record-dp", 1.0, "crpa", 0.4 + 0.2 * seed, seed=seed),
             "judge_confidence": 0.5 + 0.2 * seed, "ssim_nearest": None} for seed in (0, 1)]
    (mean,) = mean_by_setting(runs).values()
    assert mean["seeds"] == 2 and mean["success"] == pytest.approx(0.5)
    assert mean["judge_confidence"] == pytest.approx(0.6) and mean["ssim_nearest"] is None
    (older,) = mean_by_setting([line(NO_DP, 0.0, "clean", None)]).values()  # lines without them
    assert older["judge_confidence"] is None


BAD_SWEEPS = [
    # (run_privacy's options, what the one error line must name)
    (dict(kinds=["magic"]), "kind='magic'"),
    (dict(noises=[-1.0]), "noise=-1.0"),
    (dict(clips=[0.0]), "clip=0.0"),
    (dict(scenarios=["heist"]), "scenario='heist'"),
    (dict(scenarios=[]), "scenarios=[]"),
    (dict(profile="huge"), "profile='huge'"),
    (dict(seeds=0), "seeds=0"),
    (dict(shared=dict(device="cpu", dataset="cifar")), "dataset='cifar'"),
]


@pytest.mark.parametrize("options, named", BAD_SWEEPS, ids=[str(o) for o, _ in BAD_SWEEPS])
def test_bad_sweep_input_fails_in_one_line_before_any_run(options, named, tmp_path, monkeypatch):
    forbid_runs(monkeypatch, run_byzantine)
    out_dir = tmp_path / "sweep"
    with pytest.raises(ValueError) as error:
        run_privacy(out_dir, **{**CHEAP, **options})
    assert named in str(error.value) and "\n" not in str(error.value)
    assert not out_dir.exists()


def privacy(out_dir, *arguments: str) -> list[str]:
    return ["sweep", "privacy", "--profile", "tiny", "--device", "cpu", "--no-progress",
            "--out", str(out_dir), *arguments]


def test_the_command_runs_its_grid_and_prints_the_table_and_the_stops(tmp_path, capsys):
    code, out, _ = run_cli(privacy(tmp_path, "--kinds", "local-dp", "--noises", "0.003",
                                   "--clips", "0.5", "--scenarios", "clean", "sign-flip-mean"),
                           capsys)
    assert code == 0 and "sign-flip-mean under local-dp:" in out and "4 runs in" in out
    assert len(PRIVACY_RESULTS.read(tmp_path)) == 4


@pytest.mark.parametrize("arguments, named", [
    (["--noises", "-0.5"], "noise=-0.5"),
    (["--clips", "0"], "clip=0.0"),
    (["--seeds", "0"], "seeds=0"),
    (["--profile", "huge"], "profile='huge'"),
])
def test_bad_command_input_is_one_line_exit_2(arguments, named, tmp_path, monkeypatch, capsys):
    forbid_runs(monkeypatch, run_byzantine)
    code, out, err = run_cli(privacy(tmp_path / "sweep", "--kinds", "local-dp", *arguments),
                             capsys)
    assert code == 2 and named in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "sweep").exists()
