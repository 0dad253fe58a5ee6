"""Experiment settings: one validated dataclass, and the two profiles that fill it in.

Every run in fltutor (a notebook cell, the command line, a sweep) starts from a ``FedConfig``.
A bad value fails as the config is made, before any data is loaded or any model trained, with a
one-line message that names the value and what is allowed; so does a field set later.

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
ValueError: num_clients=0 is not allowed: it must be an integer >= 1 and <= 1000
>>> config = FedConfig()
>>> config.num_rounds = -1
Traceback (most recent call last):
...
ValueError: num_rounds=-1 is not allowed: it must be an integer >= 1 and <= 100000
>>> config.num_rounds  # the refused value was not kept
5
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch

from .aggregators import AGGREGATORS, Mean, Rule
from .batched import ENGINES
from .checks import (MAX_BATCH, MAX_CLIENTS, MAX_EPOCHS, MAX_GAN_BATCH, MAX_GENERATED,
                     MAX_JITTER, MAX_LATENT, MAX_PREVIEW, MAX_RATE, MAX_ROUNDS, MAX_SAMPLES,
                     MAX_SEED, MAX_STEPS, Checked, check, check_bool, check_choice, check_class,
                     check_folder, check_int, check_number, is_int)
from .data import DATASETS
from .models import MODELS
from .partition import PARTITIONS, check_exclude
from .parts import Attack, Defense, Observation, Part
from .threads import fit_threads_to_cpus
from .training import OPTIMIZERS

# Every run starts from a config, so capping torch's threads here caps them for every run (in a
# container with a CPU quota torch would start one thread per host core).
fit_threads_to_cpus()

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


def written(value: Any) -> Any:
    """A setting as it goes into JSON: a part as its dict, a tuple of parts as a list of them."""
    if isinstance(value, Part):
        return value.to_dict()
    if isinstance(value, tuple) and any(isinstance(item, Part) for item in value):
        return [item.to_dict() for item in value]
    return value


def _has_mps() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def available_devices() -> list[str]:
    """The devices this machine can compute on: ``cpu``, ``cuda`` and ``cuda:N``, ``mps``."""
    names = ["cpu"]
    if torch.cuda.is_available():
        names += ["cuda", *(f"cuda:{index}" for index in range(torch.cuda.device_count()))]
    if _has_mps():
        names.append("mps")
    return names


def resolve_device(name: str = "auto") -> torch.device:
    """The device to compute on: CUDA if present, then Apple's MPS, then the CPU (for ``auto``).

    A device this machine does not have is refused in one line that lists those it has (torch
    itself would accept ``cuda`` on a machine without a GPU and fail only at the first tensor).
    """
    devices = available_devices()
    if name == "auto":
        return torch.device("cuda" if "cuda" in devices else "mps" if "mps" in devices else "cpu")
    check(isinstance(name, str) and name in devices, "device", name,
          f"one of auto, {', '.join(devices)} (the devices on this machine)")
    return torch.device(name)


def default_profile(device: str = "auto") -> str:
    """``paper`` on a GPU, where the study's scale takes minutes; ``quick`` everywhere else."""
    return "paper" if resolve_device(device).type == "cuda" else "quick"


@dataclass
class FedConfig(Checked):
    """Settings of one federated-learning run (names follow the project's fixed vocabulary).

    ``partition`` is how the training data is split over clients: ``iid``, ``dirichlet`` (with
    ``alpha``; alpha = 0 is the study's one-class-per-client setting), ``one-class`` or ``shards``.
    ``exclude`` maps a client to classes it must not hold (the CRPA attacker holds neither G nor T).
    The parts of the run (``fltutor.parts``): ``attackers`` (attack specs, each on its own
    clients), ``aggregator`` (a rule of ``fltutor.aggregators``, FedAvg's mean by default),
    ``defenses`` (record-level DP-SGD is ``fltutor.defenses.dp.DPConfig``) and ``observations``
    (what is measured every round besides accuracy). ``engine`` is how the honest clients
    train: ``sequential`` one after another, ``batched`` all in one vmap step
    (``fltutor.batched``), ``auto`` batched on CUDA and sequential elsewhere, as measured fastest
    (``benchmarks/bench_engines.py``).

    Every field is checked when the config is made and again when one is set later
    (``fltutor.checks.Checked``); the upper bounds are in ``fltutor.checks``.
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
    model: str = "classifier"
    max_per_class: int | None = 300
    max_test: int | None = 1000
    seed: int = 0
    device: str = "auto"
    engine: str = "auto"
    data_root: str | None = None
    allow_fallback: bool = False
    profile: str = "custom"
    attackers: tuple[Attack, ...] = ()
    aggregator: Rule = field(default_factory=Mean)
    defenses: tuple[Defense, ...] = ()
    observations: tuple[Observation, ...] = ()

    def validate(self) -> None:
        """Check every field; ``__post_init__`` and every later assignment call this."""
        self.validate_settings()
        self.validate_parts()
        self.validate_exclude()

    def validate_settings(self) -> None:
        """The federated-learning settings, one field after another."""
        check_choice("dataset", self.dataset, DATASETS.names())
        check_int("num_clients", self.num_clients, 1, MAX_CLIENTS)
        check_choice("partition", self.partition, PARTITIONS.names())
        check_number("alpha", self.alpha, 0.0)
        check_int("shards_per_client", self.shards_per_client, 1, MAX_CLIENTS)
        check_int("num_rounds", self.num_rounds, 1, MAX_ROUNDS)
        check_int("local_epochs", self.local_epochs, 1, MAX_EPOCHS)
        check_int("batch_size", self.batch_size, 1, MAX_BATCH)
        check_number("lr", self.lr, 0.0, MAX_RATE, open_low=True)
        check_choice("optimizer", self.optimizer, list(OPTIMIZERS))
        check_bool("keep_optimizer_state", self.keep_optimizer_state)
        check_number("client_fraction", self.client_fraction, 0.0, 1.0, open_low=True)
        check_choice("mode", self.mode, MODES)
        check_choice("model", self.model, MODELS.names())
        for name in ("max_per_class", "max_test"):
            if getattr(self, name) is not None:
                check_int(name, getattr(self, name), 1, MAX_SAMPLES)
        if self.max_per_class is not None:  # known before loading: at most so many images in all
            kept = self.max_per_class * self.num_classes
            check(self.num_clients <= kept, "num_clients", self.num_clients,
                  f"at most the {kept} training images kept ({self.max_per_class} per class)")
            if self.partition == "shards":
                check(self.num_clients * self.shards_per_client <= kept, "shards_per_client",
                      self.shards_per_client, f"at most {kept // self.num_clients}, so that "
                      f"{self.num_clients} clients' shards fit in {kept} training images")
        check_int("seed", self.seed, 0, MAX_SEED)
        resolve_device(self.device)
        check_choice("engine", self.engine, ENGINES)
        check(self.data_root is None or (isinstance(self.data_root, str) and self.data_root != ""),
              "data_root", self.data_root, "None or a folder path")
        if self.data_root is not None:
            check_folder("data_root", self.data_root)
        check_bool("allow_fallback", self.allow_fallback)
        check_choice("profile", self.profile, [*PROFILES, "custom"])

    def validate_parts(self) -> None:
        """Every part of the right role and fitting these settings; attackers on distinct
        clients, with at least one honest client left; an aggregator that can work with the
        number of clients of a round."""
        for role, kind in (("attackers", Attack), ("defenses", Defense),
                           ("observations", Observation)):
            parts = getattr(self, role)
            check(isinstance(parts, tuple) and all(isinstance(p, kind) for p in parts), role,
                  parts, f"a tuple of {kind.__name__} specs (see fltutor.parts)")
        check(isinstance(self.aggregator, Rule), "aggregator", self.aggregator,
              f"a rule spec such as Mean() (fltutor.aggregators: {', '.join(AGGREGATORS.names())})")
        for part in (*self.attack_parts(), self.aggregator, *self.defenses,
                     *self.observation_parts()):
            part.check_fits(self)
        taken = [k for attack in self.attack_parts() for k in attack.clients]
        check(len(set(taken)) == len(taken), "attackers", [a.clients for a in self.attack_parts()],
              "attacks on distinct clients (one attack spec per coalition)")
        check(len(taken) < self.num_clients, "malicious clients", len(taken),
              f"fewer than num_clients={self.num_clients} (at least one client must be honest)")

    def validate_exclude(self) -> None:
        """``exclude`` must name real clients and classes, and leave a partition possible, also
        once the attackers' placement is added (``partition_exclude``)."""
        check_exclude(self.exclude, self.num_clients, self.num_classes)
        for client, classes in self.partition_exclude().items():
            check(len(set(classes)) < self.num_classes, "exclude classes", classes,
                  f"fewer than all {self.num_classes} classes (client {client} must hold some)")
        check(self.partition != "iid" or not any(self.partition_exclude().values()), "exclude",
              self.partition_exclude(),
              "empty with partition='iid', where every client holds every class (use "
              "dirichlet, one-class or shards)")

    @classmethod
    def from_profile(cls, profile: str | None = None, **overrides: Any):
        """A config with ``profile``'s values, then ``overrides`` on top.

        ``profile=None`` picks the default for the device (``paper`` on CUDA, else ``quick``).
        """
        if profile is None:
            profile = default_profile(overrides.get("device", "auto"))
        check_choice("profile", profile, PROFILES)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - known)
        check(not unknown, "setting", ", ".join(unknown), "a field of " + cls.__name__)
        return cls(**{**PROFILES[profile], **overrides, "profile": profile})

    @property
    def num_classes(self) -> int:
        return DATASETS[self.dataset].num_classes

    @property
    def clients_per_round(self) -> int:
        """How many clients take part in each round (``client_fraction`` of them, at least one)."""
        return max(1, round(self.client_fraction * self.num_clients))

    # The three points where a run is composed. A study's config (``fltutor.recipes``) may add
    # its own parts here, computed from its settings.

    def attack_parts(self) -> tuple[Attack, ...]:
        """The run's attacks: ``attackers``."""
        return self.attackers

    def observation_parts(self) -> tuple[Observation, ...]:
        """What the run measures beyond accuracy: ``observations``."""
        return self.observations

    def partition_exclude(self) -> dict[int, tuple[int, ...]]:
        """``exclude`` plus every attack's placement: the classes each client must not hold."""
        merged = {client: set(classes) for client, classes in self.exclude.items()}
        for attack in self.attack_parts():
            for client, classes in attack.placement().items():
                merged.setdefault(client, set()).update(classes)
        return {client: tuple(sorted(classes)) for client, classes in merged.items()}

    @property
    def malicious_clients(self) -> set[int]:
        """The clients some attack controls."""
        return {k for attack in self.attack_parts() for k in attack.clients}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy (written into every results file); each part as its own dict."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {name: written(copy.deepcopy(value)) for name, value in values.items()}

    def replace(self, **changes: Any):
        """A validated copy with some fields changed; its parts are copies too, so changing a
        part of one (``config.gan.steps = 5``) leaves the other as it was."""
        return dataclasses.replace(copy.deepcopy(self), **changes)
