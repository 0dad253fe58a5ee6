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
from typing import TYPE_CHECKING, Any

import torch

from .aggregators import AGGREGATORS
from .data import DATASETS
from .models import MODELS
from .partition import PARTITIONS
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
    ``dp`` trains every client with record-level DP-SGD (``fltutor.defenses.dp.DPConfig``).
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

    def __post_init__(self) -> None:
        check_choice("dataset", self.dataset, DATASETS.names())
        check_int("num_clients", self.num_clients, 1)
        check_choice("partition", self.partition, PARTITIONS.names())
        check_number("alpha", self.alpha, 0.0)
        check_int("shards_per_client", self.shards_per_client, 1)
        num_classes = DATASETS[self.dataset].num_classes
        check(isinstance(self.exclude, dict), "exclude", self.exclude,
              "a dict {client: (class, ...)}")
        for client, classes in self.exclude.items():
            check(isinstance(client, int) and 0 <= client < self.num_clients, "exclude client",
                  client, f"a client index from 0 to {self.num_clients - 1}")
            check(isinstance(classes, (tuple, list, set, frozenset)), "exclude classes", classes,
                  "a tuple of class indices, e.g. (4, 9)")
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
        if self.dp is not None:
            from .defenses.dp import DPConfig  # imported only when asked for (see above)

            check(isinstance(self.dp, DPConfig), "dp", self.dp, "None or a DPConfig")

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
      global model is accurate before it attacks;
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

    def __post_init__(self) -> None:
        super().__post_init__()
        from .attacks import ATTACKS  # the attacks build on the federation, which imports config

        check_choice("attack", self.attack, ATTACKS.names())
        check_int("num_clients", self.num_clients, 2)  # the attacker and at least one victim
        check_class("generate_class", self.generate_class, self.num_classes)
        check_class("target_class", self.target_class, self.num_classes)
        check(self.target_class != self.generate_class, "target_class", self.target_class,
              f"a class other than generate_class={self.generate_class}")
        check(isinstance(self.attacker, int) and 0 <= self.attacker < self.num_clients,
              "attacker", self.attacker, f"a client index from 0 to {self.num_clients - 1}")
        check(self.partition != "iid", "partition", self.partition,
              f"one of {', '.join(p for p in PARTITIONS.names() if p != 'iid')}: under iid "
              f"the attacker would hold generate_class={self.generate_class} and "
              f"target_class={self.target_class}")
        check(hasattr(MODELS[self.model], "fake_label"), "model", self.model,
              "a model with the attacker's extra fake output (classifier)")
        check(isinstance(self.attack_start_round, int) and
              1 <= self.attack_start_round <= self.num_rounds, "attack_start_round",
              self.attack_start_round, f"a round from 1 to num_rounds={self.num_rounds}")
        check_int("poison_count", self.poison_count, 1)
        check(isinstance(self.free_rider, bool), "free_rider", self.free_rider, "True or False")
        check(not (self.free_rider and self.attack == "none"), "free_rider", self.free_rider,
              "False when attack='none' (the control run has no attacker)")
        check(not (self.free_rider and self.attack_start_round > 1), "free_rider",
              self.free_rider, "False when attack_start_round > 1 (a free rider has nothing to "
              "train on honestly before it attacks)")
        if self.gan_steps is not None:
            check_int("gan_steps", self.gan_steps, 1)
        check_int("gan_batch_size", self.gan_batch_size, 2)  # BatchNorm needs two samples
        for role in ("generator", "discriminator"):
            check_choice(f"{role}_optimizer", getattr(self, f"{role}_optimizer"), list(OPTIMIZERS))
            check_number(f"{role}_lr", getattr(self, f"{role}_lr"), 0.0, open_low=True)
        check_int("gan_jitter", self.gan_jitter, 0)
        check_number("gan_smoothness", self.gan_smoothness, 0.0)
        check_int("latent_dim", self.latent_dim, 1)
        check_int("preview_count", self.preview_count, 1)

    @classmethod
    def from_profile(cls, profile: str | None = None, **overrides: Any):
        """The profile's federation and CRPA values, then ``overrides`` on top."""
        profile = profile or default_profile(overrides.get("device", "auto"))
        check_choice("profile", profile, CRPA_PROFILES)
        return super().from_profile(profile, **{**CRPA_PROFILES[profile], **overrides})

    def placement_exclude(self) -> dict[int, tuple[int, ...]]:
        """``exclude`` plus the study's placement: the attacker holds neither G nor T.

        >>> CRPAConfig(generate_class=4, target_class=9, attacker=2).placement_exclude()
        {2: (4, 9)}
        """
        kept_away = {*self.exclude.get(self.attacker, ()), self.generate_class, self.target_class}
        return {**self.exclude, self.attacker: tuple(sorted(kept_away))}
