"""The parts a run is composed of: attackers, defenses and observations, each a small validated spec.

A run's configuration (``fltutor.config.FedConfig``) is the federated-learning settings plus

- a list of **attacks** (``Attack``): which clients are malicious and how they behave;
- an **aggregator** (``fltutor.aggregators.Rule``): how the server combines the updates;
- a list of **defenses** (``Defense``): each wraps what it protects (a client's training, the
  aggregator);
- a list of **observations** (``Observation``): what the server measures every round beyond
  accuracy (attack accuracy, backdoor success, ...).

Each spec is a dataclass that lives beside the code it configures (the CRPA's in
``fltutor.attacks.crpa``, DP-SGD's in ``fltutor.defenses.dp``) and is registered under a name in
the registry of its role, from which the widgets take their choices (the command line takes
them from ``fltutor.names``, a copy of the names that needs no torch).
``fltutor.federation.Federation.build`` asks every spec to put itself in place; it never asks
which attack or defense it holds.

>>> examples = Registry("observation")
>>> @examples.register("watch")
... class Watch(Observation):
...     pass
>>> Watch().to_dict()
{'name': 'watch'}
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import torch

from .checks import MAX_ROUNDS, Checked, check, check_int, is_int
from .registry import Registry

# The federation (``fltutor.federation``) is built from these parts and so sits above them: the
# methods below take its ``Client``, ``Federation`` and ``RoundRecord`` without importing them.
Client = Federation = Any
#: An observer looks at a finished round (a ``RoundRecord``) and may return metrics to record.
Observer = Callable[[Any], "dict | None"]

ATTACKS = Registry("attack")
DEFENSES = Registry("defense")
OBSERVATIONS = Registry("observation")


@dataclass
class Part(Checked):
    """A validated spec with a registry ``name``; ``to_dict`` is how it is written to JSON."""

    name: ClassVar[str] = ""  # set by the registry it is filed in

    def check_fits(self, config) -> None:
        """Refuse, in one line, settings of this part that the run's ``config`` cannot hold."""

    def to_dict(self) -> dict[str, Any]:
        """``{"name": ..., field: value, ...}``; a part nested in a part writes its own dict, and
        a part that no registry names (settings nested in another part) writes no name."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        named = {"name": self.name} if self.name else {}
        return {**named, **{key: value.to_dict() if isinstance(value, Part) else value
                            for key, value in values.items()}}

    def replace(self, **changes: Any):
        """A checked copy with some settings changed."""
        return dataclasses.replace(self, **changes)


def check_clients(clients: Any) -> None:
    """An attack's ``clients``: a non-empty tuple of distinct client indices."""
    ok = (isinstance(clients, tuple) and len(clients) > 0 and all(is_int(k) and k >= 0 for k in clients)
          and len(set(clients)) == len(clients))
    check(ok, "clients", clients, "a tuple of distinct client indices (at least one, each >= 0)")


def known_options(kind: type, options: Any, what: str) -> dict:
    """``options`` if it is a dict whose every name is a setting of the spec class ``kind``.

    >>> known_options(Observation, {"speed": 1}, "observation option")
    Traceback (most recent call last):
    ...
    ValueError: observation option='speed' is not allowed: it must be a setting of Observation: it has none
    """
    check(isinstance(options, dict), what, options, "a dict of option names and values")
    known = [f.name for f in dataclasses.fields(kind) if f.name != "clients"]
    unknown = sorted(set(options) - set(known))
    check(not unknown, what, ", ".join(unknown),
          f"a setting of {kind.name or kind.__name__}: {', '.join(known) or 'it has none'}")
    return options


@dataclass
class Attack(Part):
    """An attacker spec: the ``clients`` it controls and how they behave.

    From ``start_round`` on they attack; before it they are honest clients.
    All its clients act together: an attack on updates sees all their trained updates at once
    and decides what each of them submits (they collude). Two attacks that must not collude are
    two specs. The federation asks an attack four things, in this order:

    1. ``placement()``: classes each of its clients must not hold (the partition respects it);
    2. ``make_client(honest, federation)``: the client that takes the place of an honest one
       (one that poisons its data or trains a GAN; by default the honest client itself);
    3. ``observers(federation)``: what to measure every round (attack accuracy, ...);
    4. every round, between local training and aggregation, ``submit``: what its clients send.
    """

    #: Whether a Byzantine run (``fltutor.recipes.byzantine``) takes this attack on its own. Not
    #: those that need their own study's settings (the CRPA's class pair, the curious client's
    #: reconstruction), whose recipes run them.
    byzantine_run: ClassVar[bool] = True

    clients: tuple[int, ...] = (0,)
    start_round: int = 1

    def validate(self) -> None:
        check_clients(self.clients)
        check_int("start_round", self.start_round, 1, MAX_ROUNDS)

    def check_fits(self, config) -> None:
        check(max(self.clients) < config.num_clients, "clients", self.clients,
              f"client indices from 0 to {config.num_clients - 1} (num_clients="
              f"{config.num_clients})")
        check(self.start_round <= config.num_rounds, "start_round", self.start_round,
              f"a round from 1 to num_rounds={config.num_rounds}")

    def attacking(self, round_index: int) -> bool:
        """Whether its clients attack in round ``round_index``: from ``start_round`` on (before
        it they train and submit honestly, and count as honest in the detection rates)."""
        return round_index >= self.start_round

    def placement(self) -> dict[int, tuple[int, ...]]:
        """Classes that each of this attack's clients must not hold (none by default)."""
        return {}

    def make_client(self, honest: Client, federation: Federation) -> Client:
        """The client that replaces ``honest``; by default it trains honestly, and only its
        update may be changed, in ``tamper``."""
        return honest

    def observers(self, federation: Federation) -> list[Observer]:
        """Observers this attack adds to the federation (none by default)."""
        return []

    def submit(self, own_updates: torch.Tensor, honest_updates: torch.Tensor,
               round_index: int) -> torch.Tensor:
        """The federation's one step between local training and aggregation.

        It hands every attack the honest updates of the round; a plain ``Attack`` passes on only
        its own clients' updates to ``tamper``: it does not see the others. Before
        ``start_round`` its clients submit what they trained.
        """
        if not self.attacking(round_index):
            return own_updates
        return self.tamper(own_updates, round_index)

    def tamper(self, own_updates: torch.Tensor, round_index: int) -> torch.Tensor:
        """What this attack's clients submit, ``[num_own, num_params]``, given what they trained
        (unchanged by default)."""
        return own_updates


@dataclass
class OmniscientAttack(Attack):
    """An attack that also sees this round's honest updates before its clients submit
    (ALIE, IPM, Min-Max): the strongest threat model of the Byzantine literature."""

    def submit(self, own_updates: torch.Tensor, honest_updates: torch.Tensor,
               round_index: int) -> torch.Tensor:
        if not self.attacking(round_index) or len(honest_updates) == 0:  # nothing to exploit
            return own_updates
        return self.tamper(own_updates, honest_updates, round_index)

    def tamper(self, own_updates: torch.Tensor, honest_updates: torch.Tensor,  # type: ignore[override]
               round_index: int) -> torch.Tensor:
        """What this attack's clients submit, knowing the honest ``[num_honest, num_params]``."""
        return own_updates


@dataclass
class Defense(Part):
    """A defense spec: ``protect`` wraps the part of the federation it guards."""

    def protect(self, federation: Federation) -> None:
        """Wrap what this defense protects (every client's training, or the aggregator)."""
        raise NotImplementedError


@dataclass
class Observation(Part):
    """Something the server measures every round; ``observer`` makes the function that does."""

    def observer(self, federation: Federation) -> Observer:
        raise NotImplementedError
