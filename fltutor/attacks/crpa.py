"""The combined reconstruction-and-poisoning attack (CRPA) of Becker et al. (2025), and its baselines.

A label-flipping attacker needs images of the class G it wants misclassified. The CRPA attacker
holds none: it reconstructs them with the GAN of Hitaj et al. (2017) from the global model, and
poisons with the reconstructions. Every round it

1. trains its generator against its copy of the global weights (``GANReconstruction``),
2. generates ``poison_count`` images of G (500 in the study), labels them T, and puts them into
   its training data in place of last round's set,
3. trains and submits like any client.

The factories at the end place each attacker of the study in a federation: they turn the honest
client at ``config.attacker`` into the chosen kind of attacker. ``fltutor.attacks.ATTACKS``
maps the attack names to them.
"""

from __future__ import annotations

import torch

from ..federation import Client
from ..models import MODELS, Generator
from .gan import GANReconstruction, GANTraining, ReconstructionClient
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


# Placing the attackers. A factory takes the federation and the run's CRPAConfig and returns
# the client that takes the place of client ``config.attacker``. Unlike the attacks themselves,
# a factory may look at the whole dataset: it is the experimenter deciding what the attacker holds.
# Its random draws come from a forked generator, so placing an attacker leaves the federation's
# random stream as it was: until the attack starts, a run repeats its control run exactly.

def own_data(federation, config) -> tuple[torch.Tensor, torch.Tensor]:
    """The attacker's share of the partition; nothing at all for a free rider."""
    client = federation.clients[config.attacker]
    keep = 0 if config.free_rider else len(client.y)
    return client.x[:keep], client.y[:keep]


def new_reconstruction(federation, config) -> GANReconstruction:
    """A fresh generator and discriminator copy on the federation's device."""
    device = federation.data.train_x.device
    with torch.random.fork_rng(devices=[]):  # drawn on the CPU, then moved
        return GANReconstruction(
            generator=Generator(config.latent_dim).to(device),
            discriminator=MODELS[config.model](federation.data.num_classes).to(device),
            generate_class=config.generate_class,
            training=GANTraining.from_config(config),
            preview_noise=torch.randn(config.preview_count, config.latent_dim).to(device),
        )


def crpa_attacker(federation, config) -> CRPAClient:
    """The CRPA attacker (Becker et al. 2025): reconstructs G, poisons with it as T."""
    honest = federation.clients[config.attacker]
    return CRPAClient(honest.client_id, *own_data(federation, config), honest.model,
                      honest.training, new_reconstruction(federation, config),
                      config.poison_count, config.target_class, config.attack_start_round)


def reconstruction_attacker(federation, config) -> ReconstructionClient:
    """Reconstruction only (Hitaj et al. 2017): ``poison_count`` fakes, labelled fake, each round."""
    honest = federation.clients[config.attacker]
    return ReconstructionClient(honest.client_id, *own_data(federation, config), honest.model,
                                honest.training, new_reconstruction(federation, config),
                                config.poison_count, config.attack_start_round)


def label_flip_attacker(federation, config) -> LabelFlipClient:
    """The baseline that holds G: its share plus ``poison_count`` real training images of G.

    The images of G are copies of training images that an honest client also holds (picked at
    random with the run's seed), so partition and placement stay exactly those of the CRPA run;
    only where the attacker's images of G come from differs.
    """
    honest = federation.clients[config.attacker]
    x, y = own_data(federation, config)
    data = federation.data
    of_class = (data.train_y == config.generate_class).nonzero().flatten()
    with torch.random.fork_rng(devices=[]):
        picked = of_class[torch.randperm(len(of_class))[:config.poison_count].to(of_class.device)]
    return LabelFlipClient(honest.client_id, torch.cat([x, data.train_x[picked]]),
                           torch.cat([y, data.train_y[picked]]), honest.model, honest.training,
                           config.generate_class, config.target_class, config.attack_start_round)


def no_attacker(federation, config) -> Client:
    """The control run: client ``config.attacker`` stays honest."""
    return federation.clients[config.attacker]
