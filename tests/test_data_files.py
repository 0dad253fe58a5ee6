"""Dataset files on disk are checked, offline is said plainly, a failed download leaves no folders.

The damaged datasets are copies of the real IDX files from ``$FLTUTOR_DATA`` (or the download
cache) in ``tmp_path``, cut, emptied or edited. Downloads are made to fail at once, either in
fltutor's own call (the ``offline`` fixture of test_data.py) or deeper, in urllib, so that
torchvision's real download code runs and makes its folders.
"""

from __future__ import annotations

import shutil
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import fltutor.environment as environment
from fltutor.data import DataCorruptError, DataUnavailableError, default_root, load
from helpers import run_cli

RAW = Path("MNIST") / "raw"
TRAIN_IMAGES, TRAIN_LABELS = "train-images-idx3-ubyte", "train-labels-idx1-ubyte"
TEST_IMAGES, TEST_LABELS = "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"


@pytest.fixture
def no_network(monkeypatch):
    """urllib cannot open any address: torchvision's own download code runs and fails."""
    def refuse(*args, **kwargs):
        raise urllib.error.URLError("no network in this test")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


@pytest.fixture
def mnist_copy(mnist_small, tmp_path) -> Path:
    """A data root in tmp_path holding a copy of the real MNIST files, free to damage."""
    shutil.copytree(default_root() / RAW, tmp_path / RAW)
    return tmp_path


def damage_file(path: Path, damage: str) -> None:
    content = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(content[: len(content) // 2])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "not IDX":
        path.write_bytes(b"<html>404 not found</html>" + content[26:])
    elif damage == "label 200":
        path.write_bytes(content[:8 + 5] + bytes([200]) + content[8 + 6:])
    elif damage == "missing":
        path.unlink()


DAMAGES = [
    # (file, damage, what the message must say)
    (TRAIN_IMAGES, "truncated", "truncated"),
    (TRAIN_IMAGES, "empty", "empty"),
    (TEST_IMAGES, "not IDX", "does not start like an IDX file"),
    (TRAIN_LABELS, "label 200", "label 200"),
    (TEST_LABELS, "truncated", "truncated"),
    (TEST_LABELS, "empty", "empty"),
    (TRAIN_LABELS, "missing", "missing"),
]


@pytest.mark.parametrize("file, damage, named", DAMAGES, ids=[f"{f}-{d}" for f, d, _ in DAMAGES])
def test_a_damaged_dataset_file_is_reported_as_corrupt_naming_it(file, damage, named, mnist_copy,
                                                                 offline):
    """Not 'not present and could not be downloaded', not an int() error, not accepted as data."""
    damage_file(mnist_copy / RAW / file, damage)
    for allow_fallback in (False, True):  # damaged data is not replaced by the fallback either
        with pytest.raises(DataCorruptError) as error:
            load("mnist", mnist_copy, max_per_class=5, max_test=10, allow_fallback=allow_fallback)
        message = str(error.value)
        assert isinstance(error.value, ValueError) and "\n" not in message
        assert str(mnist_copy / RAW / file) in message and "is corrupt" in message
        assert named in message and "downloaded again" in message


def test_the_intact_copy_loads(mnist_copy, offline):
    """The copies the tests above damage are good before the damage."""
    data = load("mnist", mnist_copy, max_per_class=5, max_test=10)
    assert len(data.train_y) == 50 and int(data.train_y.max()) == 9


def test_the_cli_reports_a_corrupt_dataset_in_one_line_exit_2(mnist_copy, offline, tmp_path,
                                                              capsys):
    damage_file(mnist_copy / RAW / TRAIN_LABELS, "label 200")
    code, _, err = run_cli(["fedavg", "--profile", "quick", "--device", "cpu", "--no-progress",
                            "--data-root", str(mnist_copy), "--out", str(tmp_path / "run")], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert TRAIN_LABELS in err and "label 200" in err and "Traceback" not in err


# --- offline ------------------------------------------------------------------------------------

def test_a_failed_download_leaves_no_empty_folders(tmp_path, no_network):
    root = tmp_path / "new" / "data"
    with pytest.raises(DataUnavailableError):
        load("mnist", root)
    assert list(tmp_path.iterdir()) == []
    # a folder that was there before stays
    root.mkdir(parents=True)
    with pytest.raises(DataUnavailableError):
        load("fashion-mnist", root)
    assert root.is_dir() and list(root.iterdir()) == []


def test_the_offline_error_names_the_way_out_in_the_callers_terms(tmp_path, offline, capsys):
    with pytest.raises(DataUnavailableError) as error:
        load("mnist", tmp_path)
    assert "allow_fallback=True" in str(error.value) and "--fallback" not in str(error.value)

    code, _, err = run_cli(["fedavg", "--profile", "quick", "--device", "cpu", "--no-progress",
                            "--data-root", str(tmp_path), "--out", str(tmp_path / "run")], capsys)
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert "--fallback" in err and "allow_fallback" not in err

    code, _, err = run_cli(["data", "fetch", "--dataset", "mnist", "--root", str(tmp_path)], capsys)
    assert code == 1 and "fallback" not in err  # fetching has no fallback to offer


def info_lines(root: Path, capsys) -> dict[str, str]:
    code, out, _ = run_cli(["info", "--root", str(root)], capsys)
    assert code == 0
    return {what: value.strip() for what, value in (line.split(":", 1) for line in out.splitlines())}


@pytest.mark.parametrize("online", [True, False])
def test_info_says_whether_a_missing_dataset_can_be_downloaded(online, tmp_path, monkeypatch,
                                                               capsys):
    probed = []

    def probe(host, port, timeout=None):
        probed.append(host)
        return online

    monkeypatch.setattr(environment, "can_reach", probe)
    lines = info_lines(tmp_path, capsys)
    assert len(probed) == 2  # one probe per missing dataset
    for name in ("mnist", "fashion-mnist"):
        assert lines[name].startswith("not present")
        if online:
            assert "downloads on first use" in lines[name]
        else:
            assert "cannot be downloaded" in lines[name] and "offline" in lines[name]
            assert "first use" not in lines[name]


def test_info_says_present_or_damaged_without_probing_the_network(mnist_copy, monkeypatch,
                                                                  capsys):
    def probe(host, port, timeout=None):
        raise AssertionError("the network was probed")

    monkeypatch.setattr(environment, "can_reach", probe)
    shutil.copytree(mnist_copy / "MNIST", mnist_copy / "FashionMNIST")  # any intact IDX files
    assert info_lines(mnist_copy, capsys)["mnist"] == "present"
    damage_file(mnist_copy / RAW / TEST_IMAGES, "truncated")
    state = info_lines(mnist_copy, capsys)["mnist"]
    assert state.startswith("present but damaged") and TEST_IMAGES in state


def test_the_network_probe_gives_up_quickly_on_an_address_that_does_not_answer():
    """A refused connection is 'not reachable', not an exception."""
    assert environment.can_reach("127.0.0.1", 9, timeout=1.0) is False
