"""Experiment settings: one validated dataclass, and the two profiles that fill it in.

Every run in fltutor (a notebook cell, the command line, a sweep) starts from a ``FedConfig``.
A bad value fails in ``__post_init__``, before any data is loaded or any model trained, with a
one-line message that names the value and what is allowed.

Profiles
--------
``quick``  sized for a notebook on two CPU cores (Binder, a laptop): a few hundred images per
           class, a short federation, a small test set. Results show the same effects as the
           paper, at lower accuracy.
``paper``  the CRPA study's reference settings (Becker et al. 2025, Sec. 4): 10 clients,
           5,000 images per class, 300 rounds, batch 250, one local epoch, Adam lr 1e-3.

>>> FedConfig(num_clients=0)
Traceback (most recent call last):
...
ValueError: num_clients=0 is not allowed: it must be an integer >= 1
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import torch

from .aggregators import AGGREGATORS
from .data import DATASETS
from .models import MODELS
from .partition import PARTITIONS
from .training import OPTIMIZERS

PROFILES: dict[str, dict[str, Any]] = {
    "quick": dict(
        num_rounds=5,
        max_per_class=300,
        max_test=1000,
        batch_size=50,
    ),
    "paper": dict(
        num_rounds=300,
        max_per_class=5000,
        max_test=None,
        batch_size=250,
    ),
}

MODES = ("fedavg", "fedsgd")


def resolve_device(name: str = "auto") -> torch.device:
    """The device to compute on: CUDA if present, then Apple's MPS, then the CPU (for ``auto``)."""
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def default_profile(device: str = "auto") -> str:
    """``paper`` on a GPU, where the study's scale takes minutes; ``quick`` everywhere else."""
    return "paper" if resolve_device(device).type == "cuda" else "quick"


def check(condition: bool, name: str, value: Any, allowed: str) -> None:
    """Raise the project's standard one-line ValueError unless ``condition`` holds."""
    if not condition:
        raise ValueError(f"{name}={value!r} is not allowed: it must be {allowed}")


def check_int(name: str, value: Any, minimum: int) -> None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= minimum
    check(ok, name, value, f"an integer >= {minimum}")


def check_choice(name: str, value: Any, choices) -> None:
    check(value in choices, name, value, "one of " + ", ".join(map(str, choices)))


def check_class(name: str, value: Any, num_classes: int) -> None:
    ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value < num_classes
    check(ok, name, value, f"a class index from 0 to {num_classes - 1}")


def check_number(name: str, value: Any, low: float, high: float = math.inf, *, open_low=False) -> None:
    ok = isinstance(value, (int, float)) and math.isfinite(value) and value <= high
    ok = ok and (value > low if open_low else value >= low)
    bound = f"> {low}" if open_low else f">= {low}"
    check(ok, name, value, f"a finite number {bound}" + (f" and <= {high}" if high < math.inf else ""))


@dataclass
class FedConfig:
    """Settings of one federated-learning run (names follow the project's fixed vocabulary).

    ``partition`` is how the training data is split over clients: ``iid``, ``dirichlet`` (with
    ``alpha``; alpha = 0 is the study's one-class-per-client setting), ``one-class`` or ``shards``.
    ``exclude`` maps a client to classes it must not hold (the CRPA attacker holds neither G nor T).
    """

    dataset: str = "mnist"
    num_clients: int = 10
    partition: str = "iid"
    alpha: float = 1.0
    shards_per_client: int = 2
    exclude: dict[int, tuple[int, ...]] = field(default_factory=dict)
    num_rounds: int = 5
    local_epochs: int = 1
    batch_size: int = 50
    lr: float = 1e-3
    optimizer: str = "adam"
    keep_optimizer_state: bool = True
    client_fraction: float = 1.0
    mode: str = "fedavg"
    aggregator: str = "mean"
    model: str = "classifier"
    max_per_class: int | None = 300
    max_test: int | None = 1000
    seed: int = 0
    device: str = "auto"
    data_root: str | None = None
    allow_fallback: bool = False
    profile: str = "custom"

    def __post_init__(self) -> None:
        check_choice("dataset", self.dataset, DATASETS.names())
        check_int("num_clients", self.num_clients, 1)
        check_choice("partition", self.partition, PARTITIONS.names())
        check_number("alpha", self.alpha, 0.0)
        check_int("shards_per_client", self.shards_per_client, 1)
        num_classes = DATASETS[self.dataset].num_classes
        for client, classes in self.exclude.items():
            check(isinstance(client, int) and 0 <= client < self.num_clients, "exclude client",
                  client, f"a client index from 0 to {self.num_clients - 1}")
            for c in classes:
                check_class("exclude class", c, num_classes)
        check_int("num_rounds", self.num_rounds, 1)
        check_int("local_epochs", self.local_epochs, 1)
        check_int("batch_size", self.batch_size, 1)
        check_number("lr", self.lr, 0.0, open_low=True)
        check_choice("optimizer", self.optimizer, list(OPTIMIZERS))
        check_number("client_fraction", self.client_fraction, 0.0, 1.0, open_low=True)
        check_choice("mode", self.mode, MODES)
        check_choice("aggregator", self.aggregator, AGGREGATORS.names())
        check_choice("model", self.model, MODELS.names())
        for name in ("max_per_class", "max_test"):
            if getattr(self, name) is not None:
                check_int(name, getattr(self, name), 1)
        check_int("seed", self.seed, 0)
        try:
            resolve_device(self.device)
        except (RuntimeError, TypeError):
            check(False, "device", self.device, "auto, cpu, cuda, cuda:N or mps")
        check_choice("profile", self.profile, [*PROFILES, "custom"])

    @classmethod
    def from_profile(cls, profile: str | None = None, **overrides: Any):
        """A config with ``profile``'s values, then ``overrides`` on top.

        ``profile=None`` picks the default for the device (``paper`` on CUDA, else ``quick``).
        """
        profile = profile or default_profile(overrides.get("device", "auto"))
        check_choice("profile", profile, PROFILES)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - known)
        check(not unknown, "setting", ", ".join(unknown), "a field of " + cls.__name__)
        return cls(**{**PROFILES[profile], **overrides, "profile": profile})

    @property
    def num_classes(self) -> int:
        return DATASETS[self.dataset].num_classes

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy (written into every results file)."""
        return dataclasses.asdict(self)

    def replace(self, **changes: Any):
        """A validated copy with some fields changed."""
        return dataclasses.replace(self, **changes)
