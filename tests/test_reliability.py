"""Reliability at the edges: one writer per folder, a killed writer's leftovers, a full disk, and
paths that are files where a folder is needed.

An output folder belongs to one command and one process (``fltutor.experiments.writing_to``): a
second process is refused at once, naming the holder's PID, and a killed holder lets go without
help. A sweep refuses a run's folder and another sweep's; a run refuses a sweep's. A write that
fails (a full disk) is one line naming the file; what was written before is whole, and the same
run resumes to the uninterrupted result. Runs are tiny: two or three rounds on 20 images per
class. The one-line refusals of bad values are rows of ``test_bad_input``'s tables.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys

import pytest
import torch

from fltutor.backfire import run_backfire
from fltutor.checks import OutputError
from fltutor.experiments import (CHECKPOINT, LOCK, METRICS, SETTINGS, claim_out_dir, run_fedavg,
                                 run_to_disk, writing_to)
from fltutor.federation import Federation
from fltutor.privacy import run_privacy
from fltutor.recipes.byzantine import ByzantineConfig, run_byzantine
from fltutor.recipes.crpa import CRPAConfig
from fltutor.recipes.curious import CuriousConfig
from fltutor.sweep import run_robustness, run_sweep
from helpers import run_cli

SMALL = dict(num_clients=3, num_rounds=2, max_per_class=20, max_test=100, device="cpu")
#: ``fltutor fedavg`` at the size of ``tiny_config``.
FEDAVG = ["fedavg", "--profile", "quick", "--clients", "3", "--rounds", "2", "--max-per-class",
          "20", "--max-test", "100", "--device", "cpu", "--no-progress"]

#: Each sweep, started on ``out`` with tiny settings (each is refused before its first run).
SWEEPS = {
    "sweep figure4, figure6 or figure8": lambda out: run_sweep(
        "figure4", CRPAConfig.from_profile("quick", **SMALL), out, pairs=[(4, 9)],
        progress=False),
    "sweep robustness": lambda out: run_robustness(
        ByzantineConfig.from_profile("quick", **SMALL, attack="none", malicious=0), out,
        attacks=["sign-flip"], aggregators=["mean"], malicious=[1], progress=False),
    "sweep backfire": lambda out: run_backfire(
        CuriousConfig.from_profile("quick", **SMALL), out, defenses=["none"], progress=False),
    "sweep privacy": lambda out: run_privacy(out, kinds=["none"], scenarios=["clean"],
                                             progress=False),
}


def without_seconds(history: list[dict]) -> list[dict]:
    """A run's history minus the wall-clock times, which differ between identical runs."""
    return [{k: v for k, v in entry.items() if k != "seconds"} for entry in history]


# --- one writer per folder -------------------------------------------------------------------------

#: A process that takes a folder's lock for a command, says so, and waits to be killed.
HOLDER = ("import sys, time; from pathlib import Path; from fltutor.experiments import writing_to\n"
          "with writing_to(Path(sys.argv[1]), sys.argv[2]):\n"
          "    print('held', flush=True); time.sleep(120)")


def test_a_second_writer_is_refused_at_once_and_a_killed_one_lets_go(tiny_config, tmp_path,
                                                                      capsys):
    folder = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder), "fedavg"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ValueError, match=f"process {holder.pid} .*is writing to it now"):
            claim_out_dir(folder, tiny_config())
        code, _, err = run_cli([*FEDAVG, "--out", str(folder)], capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1 and str(holder.pid) in err, err
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert claim_out_dir(folder, tiny_config()) is None  # the kernel let go of the dead one's lock


@pytest.mark.parametrize("sweep", list(SWEEPS))
def test_every_sweep_refuses_a_finished_runs_folder(sweep, tiny_config, tmp_path):
    run_fedavg(tiny_config(), tmp_path, progress=False)
    with pytest.raises(ValueError, match="holds the output of `fltutor fedavg`") as error:
        SWEEPS[sweep](tmp_path)
    assert "\n" not in str(error.value)
    (tmp_path / LOCK).unlink()  # a run written before fltutor kept a lock file: told by its files
    with pytest.raises(ValueError, match=r"holds a single run \(metrics.json\)"):
        SWEEPS[sweep](tmp_path)


@pytest.mark.parametrize("sweep", list(SWEEPS))
def test_every_sweep_refuses_another_sweeps_folder(sweep, tmp_path):
    other = "sweep robustness" if sweep != "sweep robustness" else "sweep backfire"
    with writing_to(tmp_path, other):  # what that sweep leaves behind, its lock file
        pass
    with pytest.raises(ValueError, match=f"holds the output of `fltutor {other}`"):
        SWEEPS[sweep](tmp_path)


def test_a_run_refuses_a_sweeps_folder_naming_the_command(tiny_config, tmp_path, capsys):
    with writing_to(tmp_path, "sweep robustness"):
        (tmp_path / SETTINGS).write_text("{}")
    with pytest.raises(ValueError, match="holds the output of `fltutor sweep robustness`"):
        run_fedavg(tiny_config(), tmp_path, progress=False)
    code, _, err = run_cli(["byzantine", "--attack", "sign-flip", "--malicious", "1",
                            "--aggregator", "mean", *FEDAVG[1:], "--out", str(tmp_path)], capsys)
    assert code == 2 and "`fltutor sweep robustness`" in err and len(err.splitlines()) == 1, err
    (tmp_path / LOCK).unlink()  # a sweep written before fltutor kept a lock file
    with pytest.raises(ValueError, match=r"holds a sweep \(sweep.json\)"):
        run_byzantine(ByzantineConfig.from_profile("quick", **SMALL, attack="none", malicious=0),
                      tmp_path, progress=False)


# --- what a killed writer leaves -------------------------------------------------------------------

def test_the_next_writer_removes_the_temporary_files_of_a_killed_one(tiny_config, tmp_path):
    stale = [".checkpoint.pt.0a1b2c3d", ".metrics.json.deadbeef", ".accuracy.png.12345678"]
    kept = [".notes", "notes.txt", ".metrics.json.not-temporary"]
    for name in [*stale, *kept]:
        (tmp_path / name).write_text("half-written")
    run_fedavg(tiny_config(), tmp_path, progress=False)
    names = {path.name for path in tmp_path.iterdir()}
    assert not names & set(stale) and set(kept) <= names


# --- a full disk -----------------------------------------------------------------------------------

def fail_from_call(monkeypatch, number: int, error: Exception) -> None:
    """``torch.save`` works ``number - 1`` times, then raises ``error`` (the disk is full)."""
    save, calls = torch.save, []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) >= number:
            raise error
        return save(*args, **kwargs)

    monkeypatch.setattr(torch, "save", failing)


@pytest.mark.parametrize("error", [
    OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)),
    RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598"),
], ids=["OSError", "torch's RuntimeError"])
def test_a_full_disk_is_one_line_keeps_what_was_written_and_the_run_resumes(
        error, mnist_tiny, tiny_config, tmp_path, monkeypatch):
    config = tiny_config(num_rounds=3)
    whole = run_to_disk(Federation.build(config, mnist_tiny), tmp_path / "whole", progress=False)
    folder = tmp_path / "full"
    fail_from_call(monkeypatch, 2, error)  # the checkpoint of round 2 does not fit
    with pytest.raises(OutputError) as raised:
        run_to_disk(Federation.build(config, mnist_tiny), folder, progress=False)
    message = str(raised.value)
    assert "\n" not in message and str(folder / CHECKPOINT) in message, message
    assert "the checkpoint" in message and "run the same command again" in message, message
    metrics = json.loads((folder / METRICS).read_text())
    assert [r["round"] for r in metrics["rounds"]] == [1] and not metrics["finished"]
    assert sorted(path.name for path in folder.iterdir()) == sorted([LOCK, CHECKPOINT, METRICS])
    monkeypatch.undo()
    resumed = run_to_disk(Federation.build(config, mnist_tiny), folder, progress=False)
    assert without_seconds(resumed["rounds"]) == without_seconds(whole["rounds"])


def test_a_full_disk_on_the_command_line_is_exit_1_and_the_same_command_resumes(tmp_path,
                                                                                monkeypatch,
                                                                                capsys):
    argv = [*FEDAVG, "--out", str(tmp_path)]
    fail_from_call(monkeypatch, 2, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
    code, _, err = run_cli(argv, capsys)
    assert code == 1 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert "No space left on device" in err and CHECKPOINT in err, err
    monkeypatch.undo()
    code, out, _ = run_cli(argv, capsys)
    assert code == 0 and f"resuming {tmp_path} after round 1" in out, out


# --- a file where a folder is needed ---------------------------------------------------------------

@pytest.mark.parametrize("command, named", [
    ([*FEDAVG, "--out", "{file}"], "out="),
    ([*FEDAVG, "--out", "{file}/run"], "lies under the file"),
    ([*FEDAVG, "--out", "{tmp}/run", "--data-root", "{file}"], "data_root="),
    (["data", "fetch", "--dataset", "mnist", "--root", "{file}"], "root="),
    (["info", "--root", "{file}"], "root="),
    (["invert", "--method", "dlg", "--model", "lenet5", "--batch-size", "1", "--data-root",
      "{file}", "--out", "{tmp}/run"], "data_root="),
], ids=["--out", "--out under a file", "--data-root", "data fetch --root", "info --root",
        "invert --data-root"])
def test_a_file_where_a_folder_is_needed_is_named_exit_2(command, named, tmp_path, capsys):
    file = tmp_path / "a-file"
    file.write_text("not a folder")
    argv = [part.format(file=file, tmp=tmp_path) for part in command]
    code, _, err = run_cli(argv, capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert named in err and "file" in err and "internet" not in err, err
    assert not (tmp_path / "run").exists()


# --- options that change nothing, grids that run nothing -------------------------------------------

@pytest.mark.parametrize("command, named", [
    (["invert", "--method", "dlg", "--model", "lenet5", "--batch-size", "1", "--local-lr", "0.5",
      "--out", "{tmp}/run"], "--local-lr=0.5"),
    (["invert", "--method", "dlg", "--model", "lenet5", "--batch-size", "1", "--local-steps",
      "0", "--local-lr", "0.5", "--out", "{tmp}/run"], "--local-lr=0.5"),
    (["invert", "--method", "dlg", "--model", "lenet5", "--batch-size", "1", "--iterations",
      "1000000000000", "--out", "{tmp}/run"], "iterations=1000000000000"),
    (["sweep", "privacy", "--kinds", "none", "--noises", "0.5", "--out", "{tmp}/run"],
     "noises=[0.5]"),
    (["sweep", "privacy", "--kinds", "none", "--clips", "2", "--out", "{tmp}/run"],
     "clips=[2.0]"),
    (["sweep", "robustness", "--profile", "quick", "--clients", "6", "--aggregators", "krum",
      "--malicious", "2", "--out", "{tmp}/run"], "none of them can be done"),
    ([*FEDAVG, "--out", "{tmp}/run\nrm -rf ~"], "line breaks"),
], ids=["--local-lr alone", "--local-lr with a gradient", "--iterations 1e12",
        "privacy noises without DP", "privacy clips without DP", "robustness: 0 runs",
        "--out with a newline"])
def test_an_option_that_changes_nothing_or_a_grid_that_runs_nothing_is_exit_2(
        command, named, tmp_path, capsys):
    code, _, err = run_cli([part.format(tmp=tmp_path) for part in command], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and named in err, err
    assert not any(tmp_path.iterdir())


# --- checkpoints hold what resuming needs ----------------------------------------------------------

def test_a_checkpoint_holds_the_global_model_and_each_clients_adam_moments_only(
        mnist_tiny, tiny_config, tmp_path):
    """Adam's two moments per client carry over between rounds (``keep_optimizer_state``), so
    resuming exactly needs them: 1 + 2 x clients copies of the weights, and no data."""
    config = tiny_config(num_clients=4)
    sizes = []
    federation = Federation.build(config, mnist_tiny)
    run_to_disk(federation, tmp_path, progress=False,
                after_round=lambda _: sizes.append((tmp_path / CHECKPOINT).stat().st_size))
    weights = sum(parameter.numel() for parameter in federation.global_model.parameters())
    needed = (1 + 2 * config.num_clients) * weights * 4  # float32
    assert needed <= sizes[0] <= needed + 64_000, (sizes, needed)


# --- the Python API: a wrong type in one line ------------------------------------------------------

@pytest.mark.parametrize("sweep, expected", [
    (lambda out: run_sweep("figure4", {"num_rounds": 2}, out), "CRPAConfig"),
    (lambda out: run_robustness({"num_rounds": 2}, out), "ByzantineConfig"),
    (lambda out: run_backfire({"num_rounds": 2}, out), "CuriousConfig"),
], ids=["figure4", "robustness", "backfire"])
def test_a_sweep_given_a_dict_for_its_config_is_one_typeerror_naming_it(sweep, expected,
                                                                        tmp_path):
    with pytest.raises(TypeError, match=f"base=dict is not allowed: it must be a {expected}"):
        sweep(tmp_path)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("call", [
    lambda config, out: run_fedavg(config, out, progress="no"),
    lambda config, out: run_robustness(
        ByzantineConfig.from_profile("quick", **SMALL, attack="none", malicious=0), out,
        attacks=["sign-flip"], aggregators=["mean"], malicious=[1], progress="no"),
], ids=["run", "sweep"])
def test_progress_must_be_true_or_false(call, tiny_config, tmp_path):
    with pytest.raises(ValueError, match="progress='no' is not allowed"):
        call(tiny_config(), tmp_path / "out")
    assert not (tmp_path / "out" / METRICS).exists()


# --- a kill during a checkpoint write ---------------------------------------------------------------

#: One of ``SWEEPS`` in a process of its own, killed with SIGKILL halfway through writing its
#: second checkpoint: what it leaves is a half-written temporary file beside the last whole one.
KILLED_MID_WRITE = (
    "import os, pathlib, signal, sys\n"
    "sys.path.insert(0, sys.argv[3])\n"
    "import torch\n"
    "torch.set_num_threads(1)\n"
    "import fltutor.experiments as experiments\n"
    "from test_reliability import SWEEPS\n"
    "save, calls = experiments.save_tensors, []\n"
    "def save_then_die_halfway(state, temporary):\n"
    "    calls.append(temporary)\n"
    "    save(state, temporary)\n"
    "    if len(calls) == 2:\n"
    "        os.truncate(temporary, os.path.getsize(temporary) // 2)\n"
    "        os.kill(os.getpid(), signal.SIGKILL)\n"
    "experiments.save_tensors = save_then_die_halfway\n"
    "SWEEPS[sys.argv[2]](pathlib.Path(sys.argv[1]))\n")


@pytest.mark.parametrize("sweep", list(SWEEPS))
def test_every_sweep_killed_while_writing_a_checkpoint_resumes_to_the_uninterrupted_results(
        sweep, tmp_path):
    # Prepare: the sweep uninterrupted, and the same sweep killed mid-write in another folder.
    whole = SWEEPS[sweep](tmp_path / "whole")
    folder = tmp_path / "killed"
    killed = subprocess.run([sys.executable, "-c", KILLED_MID_WRITE, str(folder), sweep,
                             os.path.dirname(__file__)], capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    leftovers = [p for p in folder.rglob(".*") if p.name != LOCK]
    assert leftovers, "the kill left no half-written temporary file"
    # Execute: the same sweep again, in-process.
    resumed = SWEEPS[sweep](folder)
    # Assert: the results of the uninterrupted sweep, and no temporary file left behind.
    assert without_seconds(resumed) == without_seconds(whole)
    assert not [p for p in folder.rglob(".*") if p.name != LOCK]
