"""Malicious clients, and the specs that put them into a federation.

Each attack is a ``Client`` subclass with its own behaviour, or a change to what its clients
submit; the federation never asks who is honest. Each has a spec (``fltutor.parts.Attack``)
filed in ``fltutor.parts.ATTACKS``, from which widgets and the command line take their choices.
Importing this package imports every attack module, so the registry is complete. Adding an
attack is adding a module, its registered spec, its import here, and its name in
``fltutor.names`` (the command line's copy of the names, which needs no torch).

>>> ATTACKS.names()  # doctest: +NORMALIZE_WHITESPACE
['sign-flip', 'gaussian-noise', 'scaling', 'alie', 'ipm', 'min-max', 'backdoor', 'label-flip',
 'reconstruction', 'crpa', 'curious']
"""

from ..parts import ATTACKS
from . import backdoor, byzantine, crpa, curious, eavesdropper

__all__ = ["ATTACKS", "backdoor", "byzantine", "crpa", "curious", "eavesdropper"]
