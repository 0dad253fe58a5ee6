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

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from .aggregators import AGGREGATORS
from .checks import (MAX_BATCH, MAX_CLIENTS, MAX_EPOCHS, MAX_GAN_BATCH, MAX_GENERATED,
                     MAX_JITTER, MAX_LATENT, MAX_PREVIEW, MAX_RATE, MAX_ROUNDS, MAX_SAMPLES,
                     MAX_SEED, MAX_STEPS, Checked, check, check_bool, check_choice, check_class,
                     check_int, check_number, is_int)
from .data import DATASETS
from .models import MODELS
from .partition import PARTITIONS, check_exclude
from .training import OPTIMIZERS

if TYPE_CHECKING:  # the annotation only: importing Opacus takes seconds, runs without DP skip it
    from .defenses.dp import DPConfig

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
    ``dp`` trains every client with record-level DP-SGD (``fltutor.defenses.dp.DPConfig``).

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
    aggregator: str = "mean"
    model: str = "classifier"
    max_per_class: int | None = 300
    max_test: int | None = 1000
    seed: int = 0
    device: str = "auto"
    data_root: str | None = None
    allow_fallback: bool = False
    profile: str = "custom"
    dp: DPConfig | None = None

    def validate(self) -> None:
        """Check every field; ``__post_init__`` and every later assignment call this."""
        check_choice("dataset", self.dataset, DATASETS.names())
        check_int("num_clients", self.num_clients, 1, MAX_CLIENTS)
        check_choice("partition", self.partition, PARTITIONS.names())
        check_number("alpha", self.alpha, 0.0)
        check_int("shards_per_client", self.shards_per_client, 1, MAX_CLIENTS)
        self.validate_exclude()
        check_int("num_rounds", self.num_rounds, 1, MAX_ROUNDS)
        check_int("local_epochs", self.local_epochs, 1, MAX_EPOCHS)
        check_int("batch_size", self.batch_size, 1, MAX_BATCH)
        check_number("lr", self.lr, 0.0, MAX_RATE, open_low=True)
        check_choice("optimizer", self.optimizer, list(OPTIMIZERS))
        check_bool("keep_optimizer_state", self.keep_optimizer_state)
        check_number("client_fraction", self.client_fraction, 0.0, 1.0, open_low=True)
        check_choice("mode", self.mode, MODES)
        check_choice("aggregator", self.aggregator, AGGREGATORS.names())
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
        check(self.data_root is None or (isinstance(self.data_root, str) and self.data_root != ""),
              "data_root", self.data_root, "None or a folder path")
        check_bool("allow_fallback", self.allow_fallback)
        check_choice("profile", self.profile, [*PROFILES, "custom"])
        if self.dp is not None:
            from .defenses.dp import DPConfig  # imported only when asked for (see above)

            check(isinstance(self.dp, DPConfig), "dp", self.dp, "None or a DPConfig")

    def validate_exclude(self) -> None:
        """``exclude`` must name real clients and classes, and leave a partition possible."""
        check_exclude(self.exclude, self.num_clients, self.num_classes)
        for client, classes in self.exclude.items():
            check(len(set(classes)) < self.num_classes, "exclude classes", classes,
                  f"fewer than all {self.num_classes} classes (client {client} must hold some)")
        check(self.partition != "iid" or not any(self.exclude.values()), "exclude", self.exclude,
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

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy (written into every results file)."""
        return dataclasses.asdict(self)

    def replace(self, **changes: Any):
        """A validated copy with some fields changed."""
        return dataclasses.replace(self, **changes)


#: The CRPA study's settings on top of ``PROFILES`` (see ``CRPAConfig`` for why quick departs).
CRPA_PROFILES: dict[str, dict[str, Any]] = {
    "quick": dict(
        num_rounds=40,
        max_per_class=200,
        max_test=1000,
        batch_size=50,
        keep_optimizer_state=False,
        attack_start_round=10,
        poison_count=20,
        gan_steps=30,
        gan_batch_size=32,
        generator_optimizer="adam",
        generator_lr=5e-4,
        discriminator_optimizer="sgd",
        discriminator_lr=1e-4,
        gan_jitter=2,
        gan_smoothness=0.3,
    ),
    "paper": dict(
        num_clients=10,
        partition="dirichlet",
        alpha=0.0,
        max_per_class=5000,
        max_test=None,
        num_rounds=300,
        batch_size=250,
        local_epochs=1,
        optimizer="adam",
        lr=1e-3,
        attack_start_round=1,
        poison_count=500,
        gan_steps=None,
        gan_batch_size=250,
        generator_optimizer="sgd",
        generator_lr=1e-3,
        discriminator_optimizer="sgd",
        discriminator_lr=1e-4,
    ),
}


def scaled_start_round(profile: dict[str, Any], num_rounds: int) -> int:
    """The profile's first attack round for a run of ``num_rounds``: its honest rounds keep their
    share of the run (the profile's ``attack_start_round - 1`` honest rounds of its own length).

    >>> [scaled_start_round(CRPA_PROFILES["quick"], rounds) for rounds in (40, 5, 4, 100)]
    [10, 2, 1, 23]
    >>> scaled_start_round(CRPA_PROFILES["paper"], 30)
    1
    """
    honest_rounds = profile["attack_start_round"] - 1
    return 1 + honest_rounds * num_rounds // profile["num_rounds"]


@dataclass
class CRPAConfig(FedConfig):
    """Settings of a run with one malicious client (Becker et al. 2025), on top of ``FedConfig``.

    ``attack`` names the attacker (``fltutor.attacks.ATTACKS``): ``crpa`` reconstructs class
    ``generate_class`` (G) with a GAN and submits the reconstructions labelled ``target_class`` (T);
    ``reconstruction`` runs the GAN only (Hitaj et al. 2017); ``label-flip`` holds real images of
    G and submits them labelled T; ``none`` is the control run without an attacker. The attacker
    trains honestly before round ``attack_start_round`` and attacks from it on. Client
    ``attacker`` is placed as in the study: it holds neither G nor T (``placement_exclude``); the
    label-flip attacker is handed ``poison_count`` real images of G on top. A ``free_rider``
    attacker holds no data of its own. The default partition is the study's alpha = 0, one class
    per client.

    GAN settings: every round the generator takes ``gan_steps`` steps (``None``: one epoch over
    the attacker's data, as in the study) on batches of ``gan_batch_size``, with
    ``generator_optimizer`` at ``generator_lr``; the attacker's copy of the global model (the
    discriminator) learns with ``discriminator_optimizer`` at ``discriminator_lr``. The
    generator draws ``latent_dim`` noise numbers; ``preview_count`` samples from fixed noise are
    kept every round to show the reconstruction improving.

    The ``paper`` profile is the study's setting exactly (the study does not say how large its
    GAN batches are; we use its training batch, 250). The ``quick`` profile departs from it to
    show the same effects on two CPU cores in a few minutes (MNIST, G = 4, T = 9, seed 0: AAA
    0.80 at alpha 0 against 0.15 without an attacker; the README's comparison table has the rest):

    - 200 images per class, not 5,000, batch 50, 1,000 test images, 40 rounds, not 300;
    - every client starts each round with a fresh optimizer (``keep_optimizer_state=False``):
      with one class per client, Adam moments carried over from round to round made the global
      model swing between classes (test accuracy 0.35 to 0.72 from round to round; 0.80 and
      steady with fresh optimizers);
    - the attack starts in round 10, not 1. At alpha 0 the federation needs some rounds to
      learn G at all; a generator trained against a model that knows nothing of G has nothing
      to reconstruct, and its poison then only keeps G from ever being learnt. The study's 300
      rounds leave time for both; the reference code of the GAN attack also waits until the
      global model is accurate before it attacks. A run of another length keeps the share of
      honest rounds (round 2 of 5, see ``scaled_start_round``);
    - 20 poisoned images per round: one tenth of a client's 200, the study's 500 to 5,000;
    - the generator trains with Adam (lr 5e-4, beta1 0.5), 30 steps of 32 per round. The
      study's SGD at 1e-3 for one epoch moves it too little to follow the global model in
      30 rounds;
    - two image priors that the study does not use (``gan_jitter=2``, ``gan_smoothness=0.3``,
      see ``fltutor.attacks.gan.GANTraining``): without them the generator's images are
      high-frequency patterns that fool the classifier; with them they are smooth blobs.

    In so short a run the generated images are not yet recognisable digits (see the README's
    comparison table): they fool the global model, and the poison works, long before they look
    like G to a person.
    """

    partition: str = "dirichlet"
    alpha: float = 0.0
    attack: str = "crpa"
    generate_class: int = 4
    target_class: int = 9
    attacker: int = 0
    attack_start_round: int = 1
    poison_count: int = 500
    free_rider: bool = False
    gan_steps: int | None = None
    gan_batch_size: int = 250
    generator_optimizer: str = "sgd"
    generator_lr: float = 1e-3
    discriminator_optimizer: str = "sgd"
    discriminator_lr: float = 1e-4
    gan_jitter: int = 0
    gan_smoothness: float = 0.0
    latent_dim: int = 100
    preview_count: int = 8

    def validate(self) -> None:
        super().validate()
        from .attacks import ATTACKS  # the attacks build on the federation, which imports config

        check_choice("attack", self.attack, ATTACKS.names())
        check_int("num_clients", self.num_clients, 2)  # the attacker and at least one victim
        check_class("generate_class", self.generate_class, self.num_classes)
        check_class("target_class", self.target_class, self.num_classes)
        check(self.target_class != self.generate_class, "target_class", self.target_class,
              f"a class other than generate_class={self.generate_class}")
        check(is_int(self.attacker) and 0 <= self.attacker < self.num_clients,
              "attacker", self.attacker, f"a client index from 0 to {self.num_clients - 1}")
        check(self.partition != "iid", "partition", self.partition,
              f"one of {', '.join(p for p in PARTITIONS.names() if p != 'iid')}: under iid "
              f"the attacker would hold generate_class={self.generate_class} and "
              f"target_class={self.target_class}")
        check(hasattr(MODELS[self.model], "fake_label"), "model", self.model,
              "a model with the attacker's extra fake output (classifier)")
        check(is_int(self.attack_start_round) and 1 <= self.attack_start_round <= self.num_rounds,
              "attack_start_round", self.attack_start_round,
              f"a round from 1 to num_rounds={self.num_rounds}")
        check_int("poison_count", self.poison_count, 1, MAX_GENERATED)
        check_bool("free_rider", self.free_rider)
        check(not (self.free_rider and self.attack == "none"), "free_rider", self.free_rider,
              "False when attack='none' (the control run has no attacker)")
        check(not (self.free_rider and self.attack_start_round > 1), "free_rider",
              self.free_rider, "False when attack_start_round > 1 (a free rider has nothing to "
              "train on honestly before it attacks)")
        if self.gan_steps is not None:
            check_int("gan_steps", self.gan_steps, 1, MAX_STEPS)
        check_int("gan_batch_size", self.gan_batch_size, 2, MAX_GAN_BATCH)  # BatchNorm needs two
        for role in ("generator", "discriminator"):
            check_choice(f"{role}_optimizer", getattr(self, f"{role}_optimizer"), list(OPTIMIZERS))
            check_number(f"{role}_lr", getattr(self, f"{role}_lr"), 0.0, MAX_RATE, open_low=True)
        check_int("gan_jitter", self.gan_jitter, 0, MAX_JITTER)
        check_number("gan_smoothness", self.gan_smoothness, 0.0, MAX_RATE)
        check_int("latent_dim", self.latent_dim, 1, MAX_LATENT)
        check_int("preview_count", self.preview_count, 1, MAX_PREVIEW)

    @classmethod
    def from_profile(cls, profile: str | None = None, **overrides: Any):
        """The profile's federation and CRPA values, then ``overrides`` on top.

        A run shorter or longer than the profile's that names no ``attack_start_round`` gets
        the profile's start scaled to its length (``scaled_start_round``): ``quick`` attacks
        from round 10 of 40, so from round 2 of 5; ``paper`` always from round 1.
        """
        if profile is None:
            profile = default_profile(overrides.get("device", "auto"))
        check_choice("profile", profile, CRPA_PROFILES)
        values = {**CRPA_PROFILES[profile], **overrides}
        rounds = values.get("num_rounds", PROFILES[profile]["num_rounds"])
        if "attack_start_round" not in overrides and is_int(rounds) and rounds >= 1:
            values["attack_start_round"] = scaled_start_round(CRPA_PROFILES[profile], rounds)
        return super().from_profile(profile, **values)

    def placement_exclude(self) -> dict[int, tuple[int, ...]]:
        """``exclude`` plus the study's placement: the attacker holds neither G nor T.

        >>> CRPAConfig(generate_class=4, target_class=9, attacker=2).placement_exclude()
        {2: (4, 9)}
        """
        kept_away = {*self.exclude.get(self.attacker, ()), self.generate_class, self.target_class}
        return {**self.exclude, self.attacker: tuple(sorted(kept_away))}
