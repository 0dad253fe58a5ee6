"""Malicious clients, and the registry that names them.

Each attack is a ``Client`` subclass with its own behaviour; the federation never asks who is
honest. ``ATTACKS`` maps a name to a factory ``(federation, config) -> Client`` that replaces
client ``config.attacker`` (see ``fltutor.attacks.crpa``); widgets and the command line take
their choices from it. Adding an attack is adding a module and one entry here.

>>> ATTACKS.names()
['none', 'label-flip', 'reconstruction', 'crpa']
"""

from ..registry import Registry
from .crpa import (CRPAClient, crpa_attacker, label_flip_attacker, no_attacker,
                   reconstruction_attacker)
from .gan import GANReconstruction, GANTraining, ReconstructionClient
from .poisoning import LabelFlipClient, flip_labels

ATTACKS = Registry("attack")
ATTACKS.add("none", no_attacker)
ATTACKS.add("label-flip", label_flip_attacker)
ATTACKS.add("reconstruction", reconstruction_attacker)
ATTACKS.add("crpa", crpa_attacker)

#: Attacks that train a generator (their runs save generated samples).
GAN_ATTACKS = ("reconstruction", "crpa")

__all__ = ["ATTACKS", "GAN_ATTACKS", "CRPAClient", "GANReconstruction", "GANTraining",
           "LabelFlipClient", "ReconstructionClient", "flip_labels"]
