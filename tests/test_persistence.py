"""What an output folder may hold, and what fltutor does with it (``fltutor.experiments``).

Files on disk are data, never code: a planted checkpoint cannot run its payload. A damaged, empty
or foreign file stops the run in one line that names the file and what to do. A finished run is
kept: the same run again recomputes nothing, another configuration is refused, ``force`` reruns.
An unusable folder is refused before any data is loaded. Runs are tiny: two rounds on 20 images
per class.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from pathlib import Path

import pytest
import torch

import fltutor.experiments as experiments
from fltutor.experiments import (CHECKPOINT, METRICS, atomic_write, config_json, run_fedavg,
                                 run_to_disk, write_json)
from fltutor.federation import Federation


class Interrupted(Exception):
    pass


def stop_in_round(round_index: int):
    """An observer that stops the run in ``round_index``, after round ``round_index - 1`` is saved."""
    def observer(record):
        if record.round == round_index:
            raise Interrupted

    return observer


def interrupted_run(config, data, out_dir: Path) -> None:
    """A run of ``config`` stopped in round 2: out_dir holds round 1's metrics and checkpoint."""
    federation = Federation.build(config, data)
    federation.observers.append(stop_in_round(2))
    with pytest.raises(Interrupted):
        run_to_disk(federation, out_dir, progress=False)
    assert (out_dir / CHECKPOINT).exists()


def forbid_loading(monkeypatch) -> None:
    """Make building a federation (which loads the data) fail the test."""
    def no_build(*args, **kwargs):
        raise AssertionError("the data was loaded")

    monkeypatch.setattr(experiments.Federation, "build", no_build)


def assert_one_line(error: pytest.ExceptionInfo, *fragments: str) -> None:
    message = str(error.value)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, message


# --- a planted checkpoint cannot run code ---------------------------------------------------------

class Payload:
    """Unpickling this object calls ``Path.touch(marker)``: a stand-in for any code at all."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return Path.touch, (self.marker,)


@pytest.mark.parametrize("where", ["federation", "config"])
def test_a_planted_checkpoint_is_refused_in_one_line_and_its_payload_never_runs(
        where, mnist_tiny, tiny_config, tmp_path):
    """A checkpoint whose pickle would run code is refused; the code does not run."""
    config = tiny_config()
    marker = tmp_path / "payload-ran"
    out_dir = tmp_path / "run"
    out_dir.mkdir()
    planted = {"config": config_json(config), "federation": {}}  # the right config: no early exit
    planted[where] = Payload(marker)
    torch.save(planted, out_dir / CHECKPOINT)

    with pytest.raises(ValueError) as error:
        run_to_disk(Federation.build(config, mnist_tiny), out_dir, progress=False)
    assert_one_line(error, str(out_dir / CHECKPOINT), "nothing in it was run", "delete it")
    assert not marker.exists()
    assert not (out_dir / METRICS).exists()

    # The planted file is a real threat: the unsafe way of reading it runs the payload.
    torch.load(out_dir / CHECKPOINT, weights_only=False)
    assert marker.exists()


def test_every_part_of_a_crpa_and_dp_checkpoint_reads_back_with_weights_only(tmp_path):
    """The GAN attacker's state and DP-SGD's accountant are plain tensors and values."""
    from fltutor.defenses.dp import DPConfig
    from fltutor.experiments import read_checkpoint, save_progress
    from fltutor.recipes.crpa import CRPAConfig

    config = CRPAConfig.from_profile("quick", max_per_class=20, max_test=100, batch_size=10,
                                     optimizer="sgd", lr=0.05, num_rounds=2, attack_start_round=1,
                                     poison_count=10, gan=dict(steps=2, batch_size=8), device="cpu",
                                     generate_class=4, target_class=9, defenses=(DPConfig(),))
    federation = Federation.build(config)
    federation.run(1, progress=False)
    save_progress(federation, tmp_path)
    state = read_checkpoint(tmp_path)  # weights_only=True inside

    attacker = state["federation"]["clients"][config.attacker]
    assert set(attacker["reconstruction"]) >= {"generator", "previews", "preview_noise"}
    assert attacker["training"]["accountant"]["history"]  # DP-SGD's steps so far
    resumed = Federation.build(config)
    resumed.load_state_dict(state["federation"])
    assert resumed.history == federation.history


# --- damaged, empty and foreign files -------------------------------------------------------------

def checkpoint_bytes(config, data, tmp_path: Path) -> bytes:
    interrupted_run(config, data, tmp_path / "source")
    return (tmp_path / "source" / CHECKPOINT).read_bytes()


def torch_bytes(value) -> bytes:
    with tempfile.TemporaryFile() as handle:
        torch.save(value, handle)
        handle.seek(0)
        return handle.read()


DAMAGED_CHECKPOINTS = {
    "empty": lambda good: b"",
    "truncated": lambda good: good[: len(good) // 2],
    "garbage": lambda good: b"this is not a checkpoint at all",
    "a tensor": lambda good: torch_bytes(torch.zeros(3)),
    "another dict": lambda good: torch_bytes({"model": torch.zeros(3)}),
    "config as text": lambda good: torch_bytes({"config": "{}", "federation": {}}),
}


@pytest.mark.parametrize("damage", DAMAGED_CHECKPOINTS)
def test_a_damaged_or_foreign_checkpoint_is_one_line_naming_the_file(
        damage, mnist_tiny, tiny_config, tmp_path, monkeypatch):
    """Empty, cut, garbage or someone else's file: one line, the file, what to do, no training."""
    config = tiny_config()
    good = checkpoint_bytes(config, mnist_tiny, tmp_path)
    out_dir = tmp_path / "run"
    out_dir.mkdir()
    (out_dir / CHECKPOINT).write_bytes(DAMAGED_CHECKPOINTS[damage](good))
    forbid_loading(monkeypatch)

    with pytest.raises(ValueError) as error:
        run_fedavg(config, out_dir, progress=False)
    assert_one_line(error, str(out_dir / CHECKPOINT), "cannot be used", "delete it")


def test_a_checkpoint_whose_state_does_not_fit_the_run_is_one_line(mnist_tiny, tiny_config,
                                                                   tmp_path):
    """The right config but weights of another size (edited by hand): one line, not a traceback."""
    config = tiny_config()
    interrupted_run(config, mnist_tiny, tmp_path)
    state = torch.load(tmp_path / CHECKPOINT, weights_only=True)
    state["federation"]["global"] = torch.zeros(7)
    torch.save(state, tmp_path / CHECKPOINT)

    with pytest.raises(ValueError) as error:
        run_to_disk(Federation.build(config, mnist_tiny), tmp_path, progress=False)
    assert_one_line(error, str(tmp_path / CHECKPOINT), "does not fit")


DAMAGED_METRICS = {
    "empty": (lambda good: b"", "empty"),
    "truncated": (lambda good: good[: len(good) // 2], "not valid JSON"),
    "not text": (lambda good: b"\xff\xfe\x00garbage", "not text"),
    "a list": (lambda good: b"[1, 2, 3]", "not an object"),
    "no config": (lambda good: json.dumps({"rounds": [], "summary": {}}).encode(), "'config'"),
    "rounds of the wrong type": (
        lambda good: json.dumps({**json.loads(good), "rounds": "many"}).encode(), "rounds='many'"),
    "a summary without its numbers": (
        lambda good: json.dumps({**json.loads(good), "summary": {"rounds": 1}}).encode(),
        "'final_test_accuracy'"),
}


@pytest.mark.parametrize("damage", DAMAGED_METRICS)
def test_a_damaged_or_foreign_metrics_file_is_one_line_naming_the_file(
        damage, mnist_tiny, tiny_config, tmp_path, monkeypatch):
    config = tiny_config()
    interrupted_run(config, mnist_tiny, tmp_path / "source")
    good = (tmp_path / "source" / METRICS).read_bytes()
    out_dir = tmp_path / "run"
    out_dir.mkdir()
    make, named = DAMAGED_METRICS[damage]
    (out_dir / METRICS).write_bytes(make(good))
    forbid_loading(monkeypatch)

    with pytest.raises(ValueError) as error:
        run_fedavg(config, out_dir, progress=False)
    assert_one_line(error, str(out_dir / METRICS), named, "delete it")


# --- finished results are kept --------------------------------------------------------------------

def count_rounds(monkeypatch) -> list[int]:
    """Record every round trained from now on."""
    trained: list[int] = []
    real_run_round = Federation.run_round

    def counting(self):
        record = real_run_round(self)
        trained.append(record.round)
        return record

    monkeypatch.setattr(Federation, "run_round", counting)
    return trained


def test_a_finished_run_is_kept_and_the_same_run_again_recomputes_nothing(
        tiny_config, tmp_path, monkeypatch, capsys):
    config = tiny_config()
    first = run_fedavg(config, tmp_path, progress=False)
    assert first["finished"] is True and not (tmp_path / CHECKPOINT).exists()
    on_disk = (tmp_path / METRICS).read_bytes()
    capsys.readouterr()

    forbid_loading(monkeypatch)  # not even the data is loaded again
    again = run_fedavg(config, tmp_path, progress=False)
    assert again == json.loads(on_disk)
    assert (tmp_path / METRICS).read_bytes() == on_disk
    assert "already holds this run, finished" in capsys.readouterr().out


def test_force_runs_a_finished_run_again_to_the_same_result(tiny_config, tmp_path, monkeypatch):
    config = tiny_config()
    first = run_fedavg(config, tmp_path, progress=False)
    trained = count_rounds(monkeypatch)
    again = run_fedavg(config, tmp_path, progress=False, force=True)
    assert trained == [1, 2]
    without_seconds = lambda rounds: [{k: v for k, v in r.items() if k != "seconds"}  # noqa: E731
                                      for r in rounds]
    assert without_seconds(again["rounds"]) == without_seconds(first["rounds"])


@pytest.mark.parametrize("stopped", [False, True], ids=["finished", "stopped-with-checkpoint"])
def test_another_configuration_is_refused_with_or_without_a_checkpoint(
        stopped, mnist_tiny, tiny_config, tmp_path, monkeypatch):
    """Old results are never overwritten by a run of other settings; the error names them."""
    if stopped:
        interrupted_run(tiny_config(), mnist_tiny, tmp_path)
    else:
        run_fedavg(tiny_config(), tmp_path, progress=False)
        assert not (tmp_path / CHECKPOINT).exists()
    before = (tmp_path / METRICS).read_bytes()
    forbid_loading(monkeypatch)

    for force in (False, True):
        with pytest.raises(ValueError) as error:
            run_fedavg(tiny_config(num_rounds=3, lr=0.5), tmp_path, progress=False, force=force)
        assert_one_line(error, str(tmp_path), "different configuration", "lr=0.5",
                        "num_rounds=3 (it holds 2)")
    assert (tmp_path / METRICS).read_bytes() == before


def test_a_run_killed_after_its_last_round_is_finished_when_started_again(
        mnist_tiny, tiny_config, tmp_path, monkeypatch):
    """Killed while drawing its figures, a run is not marked finished: started again, it trains
    no round twice, draws them and is then finished."""
    config = tiny_config()

    def die(*args):
        raise Interrupted

    monkeypatch.setattr(experiments, "partition_heatmap", die)
    with pytest.raises(Interrupted):
        run_to_disk(Federation.build(config, mnist_tiny), tmp_path, progress=False)
    assert json.loads((tmp_path / METRICS).read_text())["finished"] is False
    monkeypatch.undo()

    trained = count_rounds(monkeypatch)
    final = run_to_disk(Federation.build(config, mnist_tiny), tmp_path, progress=False)
    assert trained == [] and final["finished"] is True and len(final["rounds"]) == 2
    assert (tmp_path / "partition.png").exists() and not (tmp_path / CHECKPOINT).exists()


# --- an unusable output folder is refused before any work --------------------------------------------

def unusable_places(tmp_path: Path) -> dict[str, tuple[str, str]]:
    """name -> (out, what the one error line must say)."""
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    return {
        "empty string": ("", "out=''"),
        "an existing file": (str(a_file), "not an existing file"),
        "a path under a file": (str(a_file / "run"), f"under the file {a_file}"),
        "deeper under a file": (str(a_file / "x" / "run"), f"under the file {a_file}"),
    }


@pytest.mark.parametrize("place", ["empty string", "an existing file", "a path under a file",
                                   "deeper under a file"])
def test_an_unusable_out_is_refused_before_the_data_is_loaded(place, tiny_config, tmp_path,
                                                              monkeypatch):
    out, named = unusable_places(tmp_path)[place]
    monkeypatch.chdir(tmp_path)  # where --out "" would write
    forbid_loading(monkeypatch)
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(ValueError) as error:
        run_fedavg(tiny_config(), out, progress=False)
    assert_one_line(error, named, "is not allowed")
    assert sorted(tmp_path.rglob("*")) == before  # nothing written, not even for --out ""


def test_a_folder_this_user_cannot_write_is_refused_before_the_data_is_loaded(
        tiny_config, tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("this user (root) may write any folder: there is no unwritable folder")
        forbid_loading(monkeypatch)
        for out in (locked, locked / "run"):
            with pytest.raises(ValueError) as error:
                run_fedavg(tiny_config(), out, progress=False)
            assert_one_line(error, f"out={str(out)!r}", "this user can write")
    finally:
        locked.chmod(stat.S_IRWXU)


def test_a_folder_that_cannot_be_written_even_by_root_is_refused(tiny_config, monkeypatch):
    """/proc takes no new files, whoever asks: the check really tries, it does not trust modes."""
    if not Path("/proc/self").is_dir():
        pytest.skip("no /proc on this system")
    forbid_loading(monkeypatch)
    with pytest.raises(ValueError) as error:
        run_fedavg(tiny_config(), "/proc/fltutor-run", progress=False)
    assert_one_line(error, "out='/proc/fltutor-run'", "this user can write")


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_files_are_written_with_the_users_umask(umask, tmp_path):
    """atomic_write's temporary file would be 0600; the finished file has the usual mode."""
    old = os.umask(umask)
    try:
        write_json(tmp_path / "a.json", {"a": 1})
        atomic_write(tmp_path / "b.bin", lambda temporary: Path(temporary).write_bytes(b"x"))
        with open(tmp_path / "plain", "w"):  # how any new file of this user comes out
            pass
    finally:
        os.umask(old)
    expected = 0o666 & ~umask
    for name in ("a.json", "b.bin", "plain"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == expected, name


def test_a_finished_crpa_run_whose_summary_lacks_its_aaa_is_one_line(tmp_path, monkeypatch):
    """What a finished folder hands back is checked too: the AAA a CRPA run's caller reads."""
    from fltutor.recipes.crpa import CRPAConfig, run_crpa

    config = CRPAConfig.from_profile("quick", generate_class=4, target_class=9, device="cpu")
    write_json(tmp_path / METRICS, {
        "config": config_json(config), "rounds": [], "finished": True,
        "summary": {"rounds": 40, "final_test_accuracy": 0.9, "total_seconds": 1.0}})
    forbid_loading(monkeypatch)
    with pytest.raises(ValueError) as error:
        run_crpa(config, tmp_path, progress=False)
    assert_one_line(error, str(tmp_path / METRICS), "'aaa'", "delete it")
