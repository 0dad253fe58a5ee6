"""Shared test fixtures: small real datasets loaded once per session, and tiny configs.

The datasets come from ``$FLTUTOR_DATA`` when it is set; otherwise the loader downloads them into
its default cache, so the suite needs nothing more than a normal online machine. Every fixture here
is small on purpose: each test runs in a few seconds on two CPU cores.
"""

from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")  # the CLI and run_to_disk draw figures; no display

import pytest
import torch
from hypothesis import settings

import fltutor.data as data_module
from fltutor.config import FedConfig
from fltutor.data import Data, first_per_class, load

# Property tests draw the same examples on every run (seeded, like everything else here), leave no
# example database behind, and are not timed: the test machines are shared and slow.
settings.register_profile("fltutor", derandomize=True, database=None, deadline=None,
                          max_examples=60)
settings.load_profile("fltutor")

# The tests' models and batches are tiny: one thread is as fast on an idle machine and many times
# faster on a busy, shared one, where idle threads of a parallel region spin for a free core.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def mnist_small() -> Data:
    """Real MNIST on the CPU: the first 60 training images of every class, 300 test images."""
    return load("mnist", max_per_class=60, max_test=300, device="cpu")


@pytest.fixture(scope="session")
def mnist_tiny(mnist_small: Data) -> Data:
    """The first 20 training images of every class of ``mnist_small`` (federation mechanics)."""
    keep = first_per_class(mnist_small.train_y, 20, mnist_small.num_classes)
    return Data(mnist_small.name, mnist_small.train_x[keep], mnist_small.train_y[keep],
                mnist_small.test_x[:100], mnist_small.test_y[:100], mnist_small.class_names,
                mnist_small.source)


@pytest.fixture
def tiny_config():
    """A factory of small, validated CPU configs: ``tiny_config(num_clients=1, ...)``."""

    def make(**overrides) -> FedConfig:
        fields = dict(dataset="mnist", num_clients=3, partition="iid", num_rounds=2,
                      batch_size=20, max_per_class=20, max_test=100, device="cpu", seed=0)
        return FedConfig(**{**fields, **overrides})

    return make


@pytest.fixture
def offline(monkeypatch):
    """No network: reading from disk works as usual, every download fails immediately."""
    read = data_module._torchvision_split

    def no_download(spec, root, train, download):
        if download:
            raise ConnectionError("no network in this test")
        return read(spec, root, train, download=False)

    monkeypatch.setattr(data_module, "_torchvision_split", no_download)


@pytest.fixture
def drawn(monkeypatch):
    """The figures the notebooks' live views would show (``fltutor.widgets.show_in``), collected
    instead of displayed."""
    import matplotlib.pyplot as plt

    import fltutor.widgets as widgets

    figures = []
    monkeypatch.setattr(widgets, "show_in", lambda output, figure: figures.append(figure))
    yield figures
    plt.close("all")
