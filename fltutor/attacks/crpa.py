"""The combined reconstruction-and-poisoning attack (CRPA) of Becker et al. (2025), and its baselines.

A label-flipping attacker needs images of the class G it wants misclassified. The CRPA attacker
holds none: it reconstructs them with the GAN of Hitaj et al. (2017) from the global model, and
poisons with the reconstructions. Every round it

1. trains its generator against its copy of the global weights (``GANReconstruction``),
2. generates ``poison_count`` images of G (500 in the study), labels them T, and puts them into
   its training data in place of last round's set,
3. trains and submits like any client.

The specs at the end (``LabelFlip``, ``Reconstruction``, ``CRPA``) place each attacker of the
study in a federation: they turn honest clients into the chosen kind of attacker. They are filed
in ``fltutor.parts.ATTACKS`` under ``label-flip``, ``reconstruction`` and ``crpa``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..checks import MAX_GENERATED, check, check_bool, check_int
from ..federation import Client
from ..metrics import AttackAccuracy
from ..models import MODELS, Generator
from ..partition import PARTITIONS
from ..parts import ATTACKS, Attack
from .gan import GANReconstruction, GANSettings, ReconstructionClient
from .poisoning import LabelFlipClient


class CRPAClient(ReconstructionClient):
    """The CRPA attacker: a GAN attacker that labels its generated images T, not "fake".

    Everything else is inherited: the GAN round against the global weights, a fresh generated
    set every round replacing the last, training through ``self.training`` (so a defense such as
    DP-SGD applies to the attacker's submission too). The label T plays the part that the fake
    label plays for Hitaj et al.: the federation learns "these images are T", the holder of G
    answers "real images of G are G", and the next generator has to come closer to real G.
    Poison too strongly, though, and the model forgets G altogether: there is then nothing left
    to reconstruct.
    """

    def __init__(self, client_id, x, y, model, training, reconstruction: GANReconstruction,
                 generated_count: int, target_class: int, start_round: int = 1):
        super().__init__(client_id, x, y, model, training, reconstruction, generated_count,
                         start_round)
        self.target_class = target_class

    @property
    def generated_label(self) -> int:
        return self.target_class


# The specs that place these attackers in a federation (``fltutor.parts.Attack``). Unlike the
# attacks themselves, a spec may look at the whole dataset: it is the experimenter deciding what
# the attacker holds. Its random draws come from a forked generator, so placing an attacker
# leaves the federation's random stream as it was: until the attack starts, a run repeats its
# control run exactly.

@dataclass
class TargetedPoisoning(Attack):
    """The CRPA study's attackers: clients that want test images of G classified as T.

    As in the study, each holds neither G (``generate_class``) nor T (``target_class``):
    ``placement`` keeps both away from it. It trains honestly before ``start_round`` and attacks
    from that round on, with ``poison_count`` poisoned images a round. A ``free_rider`` holds no
    data of its own at all. Attack accuracy is measured by ``fltutor.metrics.AttackAccuracy``.
    """

    byzantine_run = False  # it needs a class pair and a placement (``fltutor.recipes.crpa``)

    generate_class: int = 4
    target_class: int = 9
    poison_count: int = 500
    free_rider: bool = False

    def validate(self) -> None:
        super().validate()
        AttackAccuracy(self.generate_class, self.target_class)  # the same checks on G and T
        check_int("poison_count", self.poison_count, 1, MAX_GENERATED)
        check_bool("free_rider", self.free_rider)
        check(not (self.free_rider and self.start_round > 1), "free_rider", self.free_rider,
              "False when start_round > 1 (a free rider has nothing to train on honestly "
              "before it attacks)")

    def check_fits(self, config) -> None:
        super().check_fits(config)
        AttackAccuracy(self.generate_class, self.target_class).check_fits(config)
        check(config.partition != "iid", "partition", config.partition,
              f"one of {', '.join(p for p in PARTITIONS.names() if p != 'iid')}: under iid the "
              f"attacker would hold generate_class={self.generate_class} and "
              f"target_class={self.target_class}")

    def placement(self) -> dict[int, tuple[int, ...]]:
        return {k: tuple(sorted((self.generate_class, self.target_class))) for k in self.clients}

    def own_data(self, honest: Client) -> tuple[torch.Tensor, torch.Tensor]:
        """The attacker's share of the partition; nothing at all for a free rider."""
        keep = 0 if self.free_rider else len(honest.y)
        return honest.x[:keep], honest.y[:keep]


@ATTACKS.register("label-flip")
@dataclass
class LabelFlip(TargetedPoisoning):
    """The baseline that holds G: its share plus ``poison_count`` real training images of G,
    trained as T from ``start_round`` on (``LabelFlipClient``).

    The images of G are copies of training images that an honest client also holds (picked at
    random with the run's seed), so partition and placement stay exactly those of the CRPA run;
    only where the attacker's images of G come from differs.
    """

    def make_client(self, honest: Client, federation) -> LabelFlipClient:
        x, y = self.own_data(honest)
        data = federation.data
        of_class = (data.train_y == self.generate_class).nonzero().flatten()
        with torch.random.fork_rng(devices=[]):
            picked = of_class[torch.randperm(len(of_class))[:self.poison_count].to(of_class.device)]
        return LabelFlipClient(honest.client_id, torch.cat([x, data.train_x[picked]]),
                               torch.cat([y, data.train_y[picked]]), honest.model,
                               honest.training, self.generate_class, self.target_class,
                               self.start_round)


@dataclass
class GANAttack(TargetedPoisoning):
    """An attacker that trains a GAN against the global model; ``gan`` says how."""

    gan: GANSettings = field(default_factory=GANSettings)

    def validate(self) -> None:
        super().validate()
        check(isinstance(self.gan, GANSettings), "gan", self.gan, "a GANSettings")

    def check_fits(self, config) -> None:
        super().check_fits(config)
        check(hasattr(MODELS[config.model], "fake_label"), "model", config.model,
              "a model with the attacker's extra fake output (classifier)")

    def new_reconstruction(self, federation) -> GANReconstruction:
        """A fresh generator and discriminator copy on the federation's device."""
        device = federation.data.train_x.device
        with torch.random.fork_rng(devices=[]):  # drawn on the CPU, then moved
            return GANReconstruction(
                generator=Generator(self.gan.latent_dim).to(device),
                discriminator=MODELS[federation.config.model](federation.data.num_classes).to(device),
                generate_class=self.generate_class,
                training=self.gan,
                preview_noise=torch.randn(self.gan.preview_count, self.gan.latent_dim).to(device),
            )


@ATTACKS.register("reconstruction")
@dataclass
class Reconstruction(GANAttack):
    """Reconstruction only (Hitaj et al. 2017): ``poison_count`` fakes, labelled fake, each round."""

    def make_client(self, honest: Client, federation) -> ReconstructionClient:
        return ReconstructionClient(honest.client_id, *self.own_data(honest), honest.model,
                                    honest.training, self.new_reconstruction(federation),
                                    self.poison_count, self.start_round)


@ATTACKS.register("crpa")
@dataclass
class CRPA(GANAttack):
    """The CRPA attacker (Becker et al. 2025): reconstructs G, poisons with it as T."""

    def make_client(self, honest: Client, federation) -> CRPAClient:
        return CRPAClient(honest.client_id, *self.own_data(honest), honest.model,
                          honest.training, self.new_reconstruction(federation),
                          self.poison_count, self.target_class, self.start_round)
