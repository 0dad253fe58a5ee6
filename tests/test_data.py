"""Data loading: real datasets from $FLTUTOR_DATA, caps, and the announced offline fallback.

The offline tests replace torchvision's download with one that fails at once, so they never touch
the network and cannot hang.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

from fltutor.data import (DATASETS, FALLBACK_SOURCE, DataNotice, DataUnavailableError,
                          default_root, fetch, load, to_unit_range)


@pytest.fixture
def real_root(mnist_small) -> Path:
    """The folder the session's MNIST came from (``$FLTUTOR_DATA`` or the download cache)."""
    return default_root()


def test_default_root_is_FLTUTOR_DATA_when_set(monkeypatch, tmp_path):
    monkeypatch.setenv("FLTUTOR_DATA", str(tmp_path))
    assert default_root() == tmp_path
    monkeypatch.delenv("FLTUTOR_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert default_root() == tmp_path / "cache" / "fltutor"


def test_loader_reads_the_folder_named_by_FLTUTOR_DATA(monkeypatch, tmp_path, real_root, offline):
    # Prepare: a data folder that holds MNIST (a link to the real copy) and nothing else.
    (tmp_path / "MNIST").symlink_to(real_root / "MNIST", target_is_directory=True)
    monkeypatch.setenv("FLTUTOR_DATA", str(tmp_path))
    # Execute
    data = load("mnist", max_per_class=30, max_test=200)
    # Assert: real images from that folder, capped, in [-1, 1].
    assert str(tmp_path) in data.source and not data.is_fallback
    assert data.train_x.shape == (300, 1, 28, 28) and data.train_x.dtype == torch.float32
    assert data.test_x.shape == (200, 1, 28, 28)
    assert data.train_y.dtype == torch.int64
    assert torch.bincount(data.train_y, minlength=10).tolist() == [30] * 10
    for images in (data.train_x, data.test_x):
        assert images.min() == -1.0 and images.max() == 1.0
    assert data.class_names == tuple("0123456789")


def test_session_data_has_the_requested_caps(mnist_small):
    assert torch.bincount(mnist_small.train_y, minlength=10).tolist() == [60] * 10
    assert len(mnist_small.test_y) == 300
    assert set(mnist_small.test_y.tolist()) == set(range(10))


def test_a_cap_beyond_the_copy_is_announced_and_what_there_is_is_used(real_root):
    with pytest.warns(DataNotice, match="asked for 1000000 training images per class"):
        data = load("fashion-mnist", real_root, max_per_class=10**6, max_test=50)
    assert data.class_names == DATASETS["fashion-mnist"].class_names
    counts = torch.bincount(data.train_y, minlength=10)
    assert len(data.train_y) == counts.sum() and counts.min() > 0
    assert len(data.test_y) == 50


def test_offline_without_data_is_a_clear_error(tmp_path, offline):
    with pytest.raises(DataUnavailableError, match="fltutor data fetch") as raised:
        load("mnist", tmp_path)
    assert str(tmp_path) in str(raised.value)
    with pytest.raises(DataUnavailableError):
        fetch("fashion-mnist", tmp_path)


def test_offline_fallback_is_announced_and_looks_like_mnist(tmp_path, offline):
    with pytest.warns(DataNotice, match="USING THE EMBEDDED FALLBACK DATASET"):
        data = load("mnist", tmp_path, max_per_class=40, max_test=100, allow_fallback=True)
    assert data.is_fallback and data.source == FALLBACK_SOURCE
    assert data.num_classes == 10
    assert data.train_x.shape[1:] == (1, 28, 28) and data.test_x.shape == (100, 1, 28, 28)
    assert data.train_x.min() >= -1 and data.train_x.max() <= 1
    assert data.train_x.min() == -1 and data.train_x.max() > 0.9  # real strokes, not blank
    assert torch.bincount(data.train_y, minlength=10).tolist() == [40] * 10


def test_real_data_gives_no_fallback_notice(real_root, offline):
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataNotice)
        data = load("mnist", real_root, max_per_class=5, max_test=10, allow_fallback=True)
    assert not data.is_fallback


def test_unknown_dataset_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown dataset 'cifar10'; known: mnist, fashion-mnist"):
        load("cifar10")


def test_pixel_scaling_maps_0_and_255_to_the_ends_of_the_range():
    images = torch.tensor([[[0, 255], [51, 204]]], dtype=torch.uint8)
    scaled = to_unit_range(images)
    assert scaled.shape == (1, 1, 2, 2)
    torch.testing.assert_close(scaled.flatten(), torch.tensor([-1.0, 1.0, -0.6, 0.6]))


def test_data_moves_to_a_device_and_keeps_its_description(mnist_tiny):
    moved = mnist_tiny.to("cpu")
    assert moved.train_x.device.type == "cpu"
    assert repr(moved) == repr(mnist_tiny)
