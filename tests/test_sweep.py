"""Resumable sweeps (``fltutor.sweep``): one results line per finished run, safe to stop at any time.

The sweeps here are tiny (two rounds on 20 images per class); a run takes a second or two. The
function a sweep calls per run, ``fltutor.recipes.crpa.run_crpa``, is wrapped where a test needs
to count the runs a sweep really does, or to stop one part-way as Ctrl-C would.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import fltutor.experiments as experiments
import fltutor.sweep as sweep
from fltutor.partition import STUDY_ALPHAS
from fltutor.recipes.crpa import CRPAConfig
from fltutor.sweep import CRPA_PER_RUN, CRPA_RESULTS, RunKey, read_results, run_sweep
from helpers import forbid_runs, record_runs

# Tiny and fast, like the TINY of test_attacks.py, with two rounds and fewer images.
TINY = dict(max_per_class=20, max_test=100, batch_size=10, optimizer="sgd", lr=0.05,
            num_rounds=2, attack_start_round=1, poison_count=10, gan=dict(steps=2, batch_size=8),
            device="cpu", allow_fallback=True)


def tiny(**changes) -> CRPAConfig:
    return CRPAConfig.from_profile("quick", **{**TINY, **changes})


def keys_in(out_dir: Path) -> list[tuple]:
    """(G, T, alpha, dp, seed) of every line of results.jsonl, in file order."""
    return [(r["generate_class"], r["target_class"], r["alpha"], r["dp"], r["seed"])
            for r in read_results(out_dir)]


# --- what a sweep plans ---------------------------------------------------------------------------

def test_each_figure_plans_its_pairs_alphas_dp_settings_and_seeds():
    """figure4 covers all 90 ordered pairs at alpha 0; figure6 the study's alphas; figure8 DP on/off."""
    figure4 = sweep.plan("figure4", 10, seeds=1, pairs=None, done=[])
    assert len(figure4) == 90 and len(set(figure4)) == 90
    assert all(k.generate_class != k.target_class and k.alpha == 0.0 and not k.dp
               for k in figure4)

    figure6 = sweep.plan("figure6", 10, seeds=2, pairs=[(4, 9)], done=[], first_seed=3)
    assert sorted({k.alpha for k in figure6}) == sorted(STUDY_ALPHAS)
    assert {k.seed for k in figure6} == {3, 4} and len(figure6) == len(STUDY_ALPHAS) * 2

    figure8 = sweep.plan("figure8", 10, seeds=1, pairs=[(4, 9)], done=[])
    assert {(k.alpha, k.dp) for k in figure8} == {(0.0, False), (0.0, True),
                                                  (10.0, False), (10.0, True)}


def test_figure6_takes_the_least_mean_and_most_vulnerable_pairs_of_a_figure4_sweep():
    """Without --pairs, figures 6 and 8 study the extremes of the figure-4 results beside them."""
    aaa = {(0, 1): 0.1, (0, 2): 0.4, (0, 3): 0.7, (0, 4): 0.9}  # mean 0.525: (0, 2) is closest
    done = [dict(generate_class=g, target_class=t, alpha=0.0, dp=False, seed=0, aaa=value)
            for (g, t), value in aaa.items()]
    pairs = {(k.generate_class, k.target_class)
             for k in sweep.plan("figure6", 10, seeds=1, pairs=None, done=done)}
    assert pairs == {(0, 1), (0, 2), (0, 4)}

    with pytest.raises(ValueError, match="figure4"):  # nothing to take them from yet
        sweep.plan("figure6", 10, seeds=1, pairs=None, done=[])


# --- running, resuming, writing ---------------------------------------------------------------------

def test_a_sweep_writes_one_line_per_run_whose_aaa_is_the_mean_of_its_rounds(tmp_path):
    """Every run of a sweep leaves one results line: its pair, alpha, dp, seed and AAA."""
    results = run_sweep("figure4", tiny(seed=5), tmp_path, pairs=[(4, 9), (9, 4)],
                        progress=False)

    assert keys_in(tmp_path) == [(4, 9, 0.0, False, 5), (9, 4, 0.0, False, 5)]
    assert results == read_results(tmp_path)
    for result in results:
        assert result["figure"] == "figure4" and result["epsilon"] is None
        assert result["rounds"] == 2
        name = RunKey(result["generate_class"], result["target_class"], result["alpha"],
                      result["dp"], result["seed"]).name
        metrics = json.loads((tmp_path / "runs" / name / "metrics.json").read_text())
        per_round = [r["attack_accuracy"] for r in metrics["rounds"]]
        assert len(per_round) == 2
        assert result["aaa"] == pytest.approx(sum(per_round) / len(per_round))
        assert metrics["config"]["generate_class"] == result["generate_class"]
        assert metrics["config"]["seed"] == 5
    assert (tmp_path / "sweep.json").exists()


def test_an_interrupted_sweep_resumes_without_redoing_or_repeating_any_run(tmp_path, monkeypatch):
    """Stopped in its second run, a sweep started again finishes only what is left, once each."""
    pairs = [(4, 9), (9, 4), (1, 7)]
    base = tiny()
    second_run = RunKey(9, 4, 0.0, False, 0).name

    # First session: Ctrl-C arrives right after the second run has saved its first round.
    real_save_progress = experiments.save_progress

    def save_then_interrupt(federation, out_dir, extra=None):
        real_save_progress(federation, out_dir, extra)
        if Path(out_dir).name == second_run and federation.rounds_done == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(experiments, "save_progress", save_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        run_sweep("figure4", base, tmp_path, pairs=pairs, progress=False)
    assert keys_in(tmp_path) == [(4, 9, 0.0, False, 0)]
    assert (tmp_path / "runs" / second_run / "checkpoint.pt").exists()

    # Second session: count the runs started and the rounds trained.
    rounds_trained: list[tuple[str, int]] = []

    def save_and_count(federation, out_dir, extra=None):
        rounds_trained.append((Path(out_dir).name, federation.rounds_done))
        real_save_progress(federation, out_dir, extra)

    monkeypatch.setattr(experiments, "save_progress", save_and_count)
    started = record_runs(monkeypatch)
    run_sweep("figure4", base, tmp_path, pairs=pairs, progress=False)

    third_run = RunKey(1, 7, 0.0, False, 0).name
    assert started == [second_run, third_run]  # the finished first run is not run again
    assert rounds_trained == [(second_run, 2), (third_run, 1), (third_run, 2)]  # resumed
    assert sorted(keys_in(tmp_path)) == sorted((g, t, 0.0, False, 0) for g, t in pairs)

    # A third session has nothing left to do.
    started.clear()
    run_sweep("figure4", base, tmp_path, pairs=pairs, progress=False)
    assert started == [] and len(read_results(tmp_path)) == 3


def test_a_sweep_with_more_pairs_or_seeds_in_the_same_directory_adds_only_the_new_runs(
        tmp_path, monkeypatch):
    """A finished sweep can be extended: only runs not yet in results.jsonl are done."""
    base = tiny(num_rounds=1)
    run_sweep("figure4", base, tmp_path, pairs=[(4, 9)], progress=False)
    started = record_runs(monkeypatch)
    run_sweep("figure4", base, tmp_path, pairs=[(4, 9), (9, 4)], seeds=2, progress=False)
    assert started == [RunKey(4, 9, 0.0, False, 1).name, RunKey(9, 4, 0.0, False, 0).name,
                       RunKey(9, 4, 0.0, False, 1).name]
    assert len(set(keys_in(tmp_path))) == len(keys_in(tmp_path)) == 4


def fake_result(generate_class: int) -> dict:
    return dict(generate_class=generate_class, target_class=9, alpha=0.0, dp=False, seed=0,
                figure="figure4", aaa=0.5, final_test_accuracy=0.8, epsilon=None, rounds=2,
                seconds=1.0)


def test_a_write_that_fails_half_way_leaves_the_previous_results_file_whole(tmp_path, monkeypatch):
    """results.jsonl is replaced in one step: a write stopped part-way changes nothing on disk."""
    CRPA_RESULTS.record(tmp_path, fake_result(1))
    CRPA_RESULTS.record(tmp_path, fake_result(2))
    before = (tmp_path / "results.jsonl").read_bytes()

    def write_half_then_die(self, text, *args, **kwargs):
        with open(self, "w") as handle:
            handle.write(text[: len(text) // 2])  # a truncated line is on disk ...
        raise KeyboardInterrupt                  # ... when the process is stopped

    monkeypatch.setattr(Path, "write_text", write_half_then_die)
    with pytest.raises(KeyboardInterrupt):
        CRPA_RESULTS.record(tmp_path, fake_result(3))
    monkeypatch.undo()

    assert (tmp_path / "results.jsonl").read_bytes() == before
    assert [r["generate_class"] for r in read_results(tmp_path)] == [1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.jsonl"]  # temp file removed


def test_a_temporary_file_left_by_a_killed_write_is_ignored(tmp_path, monkeypatch):
    """A kill -9 mid-write can leave a hidden temporary file; the results and resume ignore it."""
    CRPA_RESULTS.record(tmp_path, fake_result(4))
    # What SIGKILL during the next append leaves: atomic_write's half-written temporary file.
    (tmp_path / ".results.jsonl.x1y2z3").write_text('{"generate_class": 9, "target_cl')

    assert [r["generate_class"] for r in read_results(tmp_path)] == [4]
    CRPA_RESULTS.record(tmp_path, fake_result(5))
    assert [r["generate_class"] for r in read_results(tmp_path)] == [4, 5]


# --- refused before any work ------------------------------------------------------------------------

def test_a_directory_holding_another_sweep_is_refused_before_any_run(tmp_path, monkeypatch):
    """A sweep never mixes results of two configurations: the directory is refused in one line."""
    sweep.claim_directory(tmp_path, sweep.shared_settings(tiny(num_rounds=2), CRPA_PER_RUN))
    settings_before = (tmp_path / "sweep.json").read_text()
    forbid_runs(monkeypatch)

    with pytest.raises(ValueError, match="sweep.json") as error:
        run_sweep("figure4", tiny(num_rounds=3), tmp_path, pairs=[(4, 9)], progress=False)
    assert "\n" not in str(error.value)
    assert str(tmp_path) in str(error.value)
    assert (tmp_path / "sweep.json").read_text() == settings_before
    assert not (tmp_path / "runs").exists() and not (tmp_path / "results.jsonl").exists()


def test_the_refusal_of_another_sweeps_directory_names_the_setting_that_differs(tmp_path,
                                                                             monkeypatch):
    """The refusal tells the user which setting differs (here num_rounds), not just that one does."""
    sweep.claim_directory(tmp_path, sweep.shared_settings(tiny(num_rounds=2), CRPA_PER_RUN))
    forbid_runs(monkeypatch)
    with pytest.raises(ValueError, match="num_rounds"):
        run_sweep("figure4", tiny(num_rounds=3), tmp_path, pairs=[(4, 9)], progress=False)


def test_other_seeds_pairs_and_dp_do_not_count_as_another_sweep():
    """Only the settings all runs share are compared: seed, pair, alpha and DP may differ."""
    from fltutor.defenses.dp import DPConfig

    shared = sweep.shared_settings(tiny(), CRPA_PER_RUN)
    assert sweep.shared_settings(tiny(seed=3, generate_class=1, target_class=7, alpha=10.0,
                                      defenses=(DPConfig(),)), CRPA_PER_RUN) == shared
    assert sweep.shared_settings(tiny(lr=0.1), CRPA_PER_RUN) != shared


BAD_SWEEPS = [
    # (figure, pairs, seeds, what the one error line must name)
    ("figure5", [(4, 9)], 1, "figure='figure5'"),
    ("figure4", [(4, 4)], 1, "target_class=4"),
    ("figure4", [(4, 10)], 1, "target_class=10"),
    ("figure4", [(-1, 9)], 1, "generate_class=-1"),
    ("figure4", [(4, 9), (7, 7)], 1, "target_class=7"),  # a bad later run stops the first, too
    ("figure8", [(10, 9)], 1, "generate_class=10"),
    ("figure4", [(4, 9)], 0, "seeds=0"),
]


@pytest.mark.parametrize("figure, pairs, seeds, named", BAD_SWEEPS,
                         ids=[f"{f}-{p}-seeds{s}" for f, p, s, _ in BAD_SWEEPS])
def test_a_bad_figure_pair_or_seed_count_fails_in_one_line_before_any_work(
        figure, pairs, seeds, named, tmp_path, monkeypatch):
    """A typo in a sweep's figure, pairs or seeds stops it at once: no run, no directory."""
    forbid_runs(monkeypatch)
    out_dir = tmp_path / "sweep"
    with pytest.raises(ValueError) as error:
        run_sweep(figure, tiny(), out_dir, seeds=seeds, pairs=pairs, progress=False)
    assert named in str(error.value) and "\n" not in str(error.value)
    assert not out_dir.exists()


def test_a_pair_given_twice_is_run_once(tmp_path, monkeypatch):
    """Listing a pair twice does not run it twice nor write its line twice."""
    started = record_runs(monkeypatch)
    run_sweep("figure4", tiny(num_rounds=1), tmp_path, pairs=[(4, 9), (4, 9)], progress=False)
    assert len(started) == 1 and len(read_results(tmp_path)) == 1


# --- files that cannot be used -------------------------------------------------------------------

BAD_RESULT_LINES = {
    # what the damaged line is, and what the one error line must name
    "aaa of the wrong type": (json.dumps({**fake_result(2), "aaa": "high"}), "aaa='high'"),
    "a boolean seed": (json.dumps({**fake_result(2), "seed": True}), "seed=True"),
    "a missing field": (json.dumps({k: v for k, v in fake_result(2).items() if k != "dp"}),
                        "'dp'"),
    "a list": ("[4, 9]", "not an object"),
    "cut short": (json.dumps(fake_result(2))[:30], "not valid JSON"),
}


@pytest.mark.parametrize("damage", BAD_RESULT_LINES)
def test_a_damaged_results_line_stops_the_sweep_in_one_line_naming_file_and_line(
        damage, tmp_path, monkeypatch):
    """The line is neither skipped nor run again and appended twice: the sweep stops before work."""
    line, named = BAD_RESULT_LINES[damage]
    (tmp_path / "results.jsonl").write_text(json.dumps(fake_result(1)) + "\n" + line + "\n")
    before = (tmp_path / "results.jsonl").read_bytes()
    forbid_runs(monkeypatch)
    with pytest.raises(ValueError) as error:
        run_sweep("figure4", tiny(), tmp_path, pairs=[(1, 9), (2, 9)], progress=False)
    message = str(error.value)
    assert "\n" not in message and named in message
    assert str(tmp_path / "results.jsonl") in message and "line 2" in message
    assert (tmp_path / "results.jsonl").read_bytes() == before


@pytest.mark.parametrize("content, named", [("", "empty"), ('{"lr": 0.0', "not valid JSON"),
                                            ("[1, 2]", "not an object")])
def test_a_damaged_sweep_json_is_one_line_naming_it(content, named, tmp_path, monkeypatch):
    (tmp_path / "sweep.json").write_text(content)
    forbid_runs(monkeypatch)
    with pytest.raises(ValueError) as error:
        run_sweep("figure4", tiny(), tmp_path, pairs=[(4, 9)], progress=False)
    assert "\n" not in str(error.value) and named in str(error.value)
    assert str(tmp_path / "sweep.json") in str(error.value)


def test_a_sweep_into_a_file_is_refused_before_any_run(tmp_path, monkeypatch):
    a_file = tmp_path / "results"
    a_file.write_text("not a folder")
    forbid_runs(monkeypatch)
    for out in (a_file, a_file / "sweep", ""):
        with pytest.raises(ValueError, match="out="):
            run_sweep("figure4", tiny(), out, pairs=[(4, 9)], progress=False)


# --- the sweep's figure, its progress, --force ------------------------------------------------------

def test_a_sweep_draws_its_figure_when_complete_and_again_when_resumed_complete(tmp_path,
                                                                                monkeypatch):
    run_sweep("figure4", tiny(num_rounds=1), tmp_path, pairs=[(4, 9), (9, 4)], progress=False)
    figures = [tmp_path / name for name in sweep.FIGURE_FILES["figure4"]]
    assert [path.name for path in figures] == ["aaa_matrix.png", "aaa_histogram.png"]
    for path in figures:
        assert path.read_bytes().startswith(b"\x89PNG")
        path.unlink()

    forbid_runs(monkeypatch)  # complete: nothing is run again, the figure is drawn again
    run_sweep("figure4", tiny(num_rounds=1), tmp_path, pairs=[(4, 9), (9, 4)], progress=False)
    assert all(path.exists() for path in figures)


@pytest.mark.parametrize("figure, alphas, dp_settings", [
    ("figure6", STUDY_ALPHAS, (False,)), ("figure8", (0.0, 10.0), (False, True))])
def test_figures_6_and_8_are_drawn_from_their_results(figure, alphas, dp_settings, tmp_path,
                                                      monkeypatch):
    """A complete figure-6 or figure-8 sweep leaves its alpha trend or its DP comparison."""
    base = tiny()
    sweep.claim_directory(tmp_path, sweep.shared_settings(base, CRPA_PER_RUN))
    for alpha in alphas:
        for dp in dp_settings:
            CRPA_RESULTS.record(tmp_path, {**fake_result(4), "alpha": alpha, "dp": dp, "figure": figure,
                                     "aaa": 0.1 if dp else 0.5})
    forbid_runs(monkeypatch)
    run_sweep(figure, base, tmp_path, pairs=[(4, 9)], progress=False)
    for name in sweep.FIGURE_FILES[figure]:
        assert (tmp_path / name).read_bytes().startswith(b"\x89PNG")


class RecordingBar:
    """Stands in for tqdm and keeps every postfix text the sweep's bar shows."""

    shown: list[str] = []

    def __init__(self, *args, desc=None, **kwargs):
        self.desc = desc

    def set_postfix(self, **values):  # a run's own round bar (switched off inside a sweep)
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def set_postfix_str(self, text):
        if self.desc == "figure4":
            RecordingBar.shown.append(text)

    def update(self, n=1):
        pass


def test_a_sweep_shows_which_run_and_round_it_is_in(tmp_path, monkeypatch):
    import tqdm.auto

    RecordingBar.shown = []
    monkeypatch.setattr(tqdm.auto, "tqdm", RecordingBar)
    run_sweep("figure4", tiny(), tmp_path, pairs=[(4, 9), (9, 4)], progress=True)
    first, second = (RunKey(4, 9, 0.0, False, 0).name, RunKey(9, 4, 0.0, False, 0).name)
    assert RecordingBar.shown == [
        f"run 1 of 2 ({first}), starting", f"run 1 of 2 ({first}), round 1 of 2",
        f"run 1 of 2 ({first}), round 2 of 2",
        f"run 2 of 2 ({second}), starting", f"run 2 of 2 ({second}), round 1 of 2",
        f"run 2 of 2 ({second}), round 2 of 2"]


def test_force_runs_a_finished_sweep_again_and_keeps_one_line_per_run(tmp_path, monkeypatch):
    base = tiny(num_rounds=1)
    run_sweep("figure4", base, tmp_path, pairs=[(4, 9), (9, 4)], progress=False)
    started = record_runs(monkeypatch)
    run_sweep("figure4", base, tmp_path, pairs=[(4, 9), (9, 4)], progress=False, force=True)
    assert started == [RunKey(4, 9, 0.0, False, 0).name, RunKey(9, 4, 0.0, False, 0).name]
    assert sorted(keys_in(tmp_path)) == [(4, 9, 0.0, False, 0), (9, 4, 0.0, False, 0)]
