"""Local differential privacy on every honest client: each clips and noises its own update.

Record-level DP (``fltutor.defenses.dp``) protects one *record* inside a client's training, and
the server still sees each client's exact update. Local DP protects the client's *whole dataset*
and trusts nobody: before it sends, every honest client k applies the Gaussian mechanism
(Dwork and Roth 2014, Theorem A.1; here on the update, as in DP-FedAvg, McMahan et al. 2018,
Algorithm 1, but on the client instead of the server) to its update u_k:

    clip(u_k) = u_k * min(1, C / ||u_k||_2),      sent: clip(u_k) + N(0, sigma^2 C^2 I).

What it guarantees, per round, for one client's entire dataset D_k: whatever D_k and D'_k are,
their clipped updates lie in the ball of radius C, so they differ by at most 2C (the L2
sensitivity under *replacement* of the dataset, the adjacency of local DP). Noise of standard
deviation sigma * C is then noise multiplier sigma / 2 in units of that sensitivity. Over R
rounds the R releases compose; ``local_epsilon`` asks Opacus's ``RDPAccountant`` (Renyi DP of
the Gaussian mechanism, Mironov 2017, with sampling rate 1: no subsampling to amplify it) for
the epsilon of the (epsilon, delta) guarantee after R rounds. The weaker notion of DP-FedAvg
(is the client's data there or not, the update against zero: sensitivity C) would give the
smaller epsilon of noise multiplier sigma; the kit reports the local-DP one. No noise, no
guarantee: epsilon is infinite.

Who runs it: a defense a client runs on its own machine binds only clients that follow the
protocol. A malicious client sends what its attack decides, so ``protect`` wraps the honest
clients only; an attack's ``submit`` step (``fltutor.federation.Federation.submitted``) then
sees its own clients' raw trained updates and the honest clients' private ones (as an
omniscient attacker that intercepts them would). The server cannot enforce the bound either: a
noised update's norm is about sigma * C * sqrt(num_params), far above C. The attack's clients
stay unwrapped also in the rounds before its ``start_round``, when they otherwise act honestly.

The second study's group's public code calls something else "local DP": every coordinate of a
batch's gradient clamped to +-bound and Gaussian noise added at every local step. That bounds no
client's update in L2 and states no epsilon; this module implements the update-level mechanism,
whose guarantee can be written down.

Noise draws from torch's global generator, which the federation seeds and checkpoints, so a run
repeats exactly; with sigma = 0 none is drawn, so a run with sigma = 0 and a huge C is the plain
run, draw for draw.

>>> spec = LocalDPConfig(noise_multiplier=1.0, max_update_norm=0.5, delta=1e-5)
>>> spec.to_dict()
{'name': 'local-dp', 'noise_multiplier': 1.0, 'max_update_norm': 0.5, 'delta': 1e-05}
>>> round(local_epsilon(noise_multiplier=2.0, rounds=1, delta=1e-5), 2)
4.73
>>> local_epsilon(noise_multiplier=0.0, rounds=1, delta=1e-5)
inf
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, ClassVar

import torch

from ..checks import (MAX_CLIP, MAX_RATE, MAX_ROUNDS, check_between_zero_and_one, check_int,
                      check_number)
from ..parts import DEFENSES, Defense
from .dp import accountant_epsilon

if TYPE_CHECKING:
    from ..federation import Client, ClientUpdate, Federation, RoundRecord

#: How far one client's clipped update can move under replacement of its data, in units of C:
#: both lie in the ball of radius C, so they are at most a diameter apart.
REPLACEMENT_SENSITIVITY = 2.0


@DEFENSES.register("local-dp")
@dataclass
class LocalDPConfig(Defense):
    """Settings of local DP on every honest client (the Gaussian mechanism on its update).

    ``noise_multiplier`` (sigma): the noise's standard deviation in units of the clipping norm.
    ``max_update_norm`` (C): the largest L2 norm a client's update keeps after clipping.
    ``delta``: the delta of the reported (epsilon, delta) guarantee.
    Every round records ``local_epsilon`` (``local_epsilon()``), a key of its own beside
    record-level DP's ``epsilon``: the two guard different things (a client's whole dataset, one
    record), and a run may use both.

    >>> LocalDPConfig(delta=0)
    Traceback (most recent call last):
    ...
    ValueError: delta=0 is not allowed: it must be a number with 0 < delta < 1
    """

    clip_setting: ClassVar[str] = "max_update_norm"  # as in every DP spec (``DPConfig``)
    epsilon_metric: ClassVar[str] = "local_epsilon"

    noise_multiplier: float = 1.0
    max_update_norm: float = 1.0
    delta: float = 1e-5

    def validate(self) -> None:
        check_number("noise_multiplier", self.noise_multiplier, 0.0, MAX_RATE)
        check_number("max_update_norm", self.max_update_norm, 0.0, MAX_CLIP, open_low=True)
        check_between_zero_and_one("delta", self.delta)

    def privatize(self, update: torch.Tensor) -> torch.Tensor:
        """One release of the Gaussian mechanism: ``update`` clipped to norm C, plus noise."""
        return privatize(update, self.max_update_norm, self.noise_multiplier)

    def protect(self, federation: Federation) -> None:
        """Every honest client privatizes what it sends; every round records ``local_epsilon``."""
        for k, client in enumerate(federation.clients):
            if k not in federation.malicious_clients:
                send_privately(client, self.privatize)
        federation.observers.append(self.epsilon_observer)

    def epsilon_observer(self, record: RoundRecord) -> dict:
        """``local_epsilon`` after ``record.round`` rounds: exact when every client takes part in
        every round, an upper bound when some sit rounds out (a round not sent spends nothing)."""
        return {"local_epsilon": local_epsilon(self.noise_multiplier, record.round, self.delta)}


def clip_to_norm(update: torch.Tensor, max_norm: float) -> torch.Tensor:
    """``update`` scaled down to L2 norm ``max_norm`` if it is longer; unchanged otherwise.

    >>> clip_to_norm(torch.tensor([3.0, 4.0]), 1.0).tolist()
    [0.6000000238418579, 0.800000011920929]
    >>> clip_to_norm(torch.tensor([3.0, 4.0]), 10.0).tolist()
    [3.0, 4.0]
    """
    scale = (max_norm / update.norm()).clamp(max=1.0)  # a zero update: inf, clamped to 1
    return update * scale


def privatize(update: torch.Tensor, max_norm: float, noise_multiplier: float) -> torch.Tensor:
    """The Gaussian mechanism on one update: ``clip_to_norm(update, C) + N(0, sigma^2 C^2 I)``."""
    clipped = clip_to_norm(update, max_norm)
    if noise_multiplier == 0:
        return clipped  # nothing to add, and no draw that would shift the seeded stream
    return clipped + noise_multiplier * max_norm * torch.randn_like(clipped)


def send_privately(client: Client, privatize: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """Wrap ``client``'s ``local_update``: it trains as before, and its update is privatized
    before it leaves the client (the server and every other client only ever see that)."""
    train_and_report = client.local_update

    def local_update(global_params: torch.Tensor, round_index: int) -> ClientUpdate:
        update = train_and_report(global_params, round_index)
        return dataclasses.replace(update, delta=privatize(update.delta))

    client.local_update = local_update


def local_epsilon(noise_multiplier: float, rounds: int, delta: float) -> float:
    """Epsilon of one client's local-DP guarantee after ``rounds`` releases, at ``delta``.

    The Gaussian mechanism with sensitivity 2C (``REPLACEMENT_SENSITIVITY``) and noise sigma * C,
    composed over the rounds by Opacus's ``RDPAccountant`` (sample rate 1: every release counts).
    """
    check_number("noise_multiplier", noise_multiplier, 0.0, MAX_RATE)
    check_int("rounds", rounds, 1, MAX_ROUNDS)
    check_between_zero_and_one("delta", delta)
    return accountant_epsilon(noise_multiplier / REPLACEMENT_SENSITIVITY, 1.0, rounds, delta)
