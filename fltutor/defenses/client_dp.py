"""Client-level differential privacy on the server: DP-FedAvg, with fixed or adaptive clipping.

Record-level DP (``fltutor.defenses.dp``) hides one *record*; DP-FedAvg (McMahan et al. 2018,
"Learning differentially private recurrent language models", Algorithm 1 with flat clipping
and the fixed-denominator estimator) hides whether one *client*, with all its data, took part at
all. Every round the server

1. clips every submitted update to norm C: ``clip(u_k) = u_k * min(1, C / ||u_k||_2)``;
2. aggregates the clipped updates (FedAvg: their sample-weighted mean);
3. adds Gaussian noise ``N(0, (sigma * C * max_k w_k / sum_k w_k)^2 I)`` to the aggregate,
   w being the clients' sample counts: sigma * C / m with m equal weights.

With the denominator fixed, one client moves the mean by at most ``C * max_k w_k / sum_k w_k``
(it can be there or not: add/remove adjacency), so the noise is sigma times that sensitivity.
Each round samples a share q of the clients (``client_fraction``, in whole clients: ``q =
clients_per_round / num_clients``); Opacus's ``RDPAccountant`` composes the rounds of this
sampled Gaussian mechanism (Mironov, Talwar and Zhang 2019) into the epsilon of an (epsilon,
delta) guarantee, ``client_epsilon``, recorded every round with the clip C used
(``client_clip``). The kit draws a fixed number of clients per round without replacement; the
accountant's Poisson-sampling analysis approximates it, as TensorFlow Federated's DP-FedAvg
does. With equal sample counts the round's denominator is fixed (always m clients) and this is
the paper's estimator exactly; with unequal ones the weights are the raw counts (the paper caps
them) and the sensitivity is taken in the round's own sum. No noise, no guarantee: epsilon is
infinite.

Whom it protects against: every other client and whoever sees the released global models (the
clients each round, the world at the end). Not the server: it runs the mechanism, so it sees
every raw update (``RoundRecord.client_updates``); a curious server needs local DP
(``fltutor.defenses.local_dp``). And since the server runs it, it binds every client, the
malicious ones too: an attacker's update is clipped like any other.

Any rule can be wrapped (mean, Krum, median ...): the wrapped rule gets the clipped rows and its
result gets the same noise. The reported epsilon is then still the mean's guarantee: a robust
rule's sensitivity to one client is not ``C * max_k w_k / sum_k w_k`` in general (Krum may hand
one client's whole clipped update on), so for such a rule the number is not a proven guarantee.

Adaptive clipping (Andrew et al. 2021, "Differentially private learning with adaptive
clipping", Algorithm 1): C follows the ``target_quantile`` gamma of the update norms instead
of being guessed. Each round, b_k = 1 if ``||u_k|| <= C`` (else 0), the server releases the
noisy share ``b_bar = (sum_k b_k + N(0, sigma_b^2)) / m`` and takes the geometric step
``C <- C * exp(-eta * (b_bar - gamma))``: more clients under the clip than gamma, a smaller C.
sigma_b is ``count_noise``, by default m / 20 (the paper's recommendation, m the clients per
round). The count costs privacy too, so the update's noise multiplier becomes
``(sigma^-2 - (2 sigma_b)^-2)^(-1/2)`` (``update_noise_multiplier``; the paper's Theorem 1):
the two releases together spend what one release at sigma alone would, and ``client_epsilon``
stays the sigma one. That needs sigma < 2 sigma_b; at sigma = 0 there is no budget to keep and
neither release is noised. Every round records b_bar as ``client_unclipped_share``; the next
round's C is computed from the last recorded round, so a resumed run goes on as if never
stopped.

Noise draws from torch's global generators, which the federation seeds and checkpoints; with
sigma = 0 none is drawn, so sigma = 0 and a huge C is the plain run, draw for draw.

>>> spec = ClientDPConfig(noise_multiplier=1.0, max_update_norm=0.5)
>>> spec.to_dict()["name"], spec.clip_setting, spec.epsilon_metric
('client-dp', 'max_update_norm', 'client_epsilon')
>>> round(client_epsilon(noise_multiplier=1.0, sample_rate=0.1, rounds=100, delta=1e-5), 2)
7.9
>>> client_epsilon(noise_multiplier=0.0, sample_rate=0.1, rounds=100, delta=1e-5)
inf
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, ClassVar

import torch

from ..aggregators import Aggregate
from ..checks import (MAX_CLIENTS, MAX_CLIP, MAX_RATE, MAX_ROUNDS, check, check_between_zero_and_one,
                      check_int, check_number)
from ..parts import DEFENSES, Defense
from .dp import accountant_epsilon
from .local_dp import clip_to_norm

if TYPE_CHECKING:
    from ..federation import Federation, RoundRecord

#: Andrew et al.'s default count noise: sigma_b = m / 20 for m clients per round.
CLIENTS_PER_COUNT_NOISE = 20


@DEFENSES.register("client-dp")
@dataclass
class ClientDPConfig(Defense):
    """Settings of DP-FedAvg on the server: clip every update, aggregate, add Gaussian noise.

    ``noise_multiplier`` (sigma): the noise's standard deviation in units of one client's largest
    share of the aggregate (sigma * C / m for m equal clients).
    ``max_update_norm`` (C): the largest L2 norm an update keeps; with adaptive clipping, the
    first round's C.
    ``delta``: the delta of the reported (epsilon, delta) guarantee, well below 1 / clients.
    ``target_quantile`` (gamma): None for a fixed C; a number in (0, 1) for adaptive clipping,
    which moves C toward the gamma-quantile of the update norms.
    ``clip_learning_rate`` (eta): the step of adaptive clipping's geometric update.
    ``count_noise`` (sigma_b): adaptive clipping's noise on the count of unclipped updates; None
    for m / 20. At sigma = 0 the count is released without noise.

    >>> ClientDPConfig(target_quantile=1.0)
    Traceback (most recent call last):
    ...
    ValueError: target_quantile=1.0 is not allowed: it must be a number with 0 < target_quantile < 1
    """

    clip_setting: ClassVar[str] = "max_update_norm"  # as in every DP spec (``DPConfig``)
    epsilon_metric: ClassVar[str] = "client_epsilon"

    noise_multiplier: float = 1.0
    max_update_norm: float = 1.0
    delta: float = 1e-5
    target_quantile: float | None = None
    clip_learning_rate: float = 0.2
    count_noise: float | None = None

    def validate(self) -> None:
        check_number("noise_multiplier", self.noise_multiplier, 0.0, MAX_RATE)
        check_number("max_update_norm", self.max_update_norm, 0.0, MAX_CLIP, open_low=True)
        check_between_zero_and_one("delta", self.delta)
        if self.target_quantile is not None:
            check_between_zero_and_one("target_quantile", self.target_quantile)
        check_number("clip_learning_rate", self.clip_learning_rate, 0.0, MAX_RATE, open_low=True)
        if self.count_noise is not None:  # noise far above the count (m <= 1,000) buries it
            check_number("count_noise", self.count_noise, 0.0, MAX_CLIENTS, open_low=True)

    @property
    def adaptive(self) -> bool:
        return self.target_quantile is not None

    def count_noise_for(self, clients_per_round: int) -> float:
        """sigma_b for ``clients_per_round`` clients: ``count_noise``, or m / 20 when None."""
        if self.count_noise is not None:
            return self.count_noise
        return clients_per_round / CLIENTS_PER_COUNT_NOISE

    def check_fits(self, config) -> None:
        """Adaptive clipping with noise needs sigma < 2 sigma_b for the run's clients per round."""
        if self.adaptive and self.noise_multiplier > 0:
            update_noise_multiplier(self.noise_multiplier,
                                    self.count_noise_for(config.clients_per_round))

    def protect(self, federation: Federation) -> None:
        """The server clips, aggregates and noises (``PrivateAggregation``); every round records
        ``client_clip`` and ``client_epsilon``."""
        server = PrivateAggregation(self, federation)
        federation.aggregate = server.aggregate
        federation.observers.append(server.observe)


class PrivateAggregation:
    """DP-FedAvg in one federation: it wraps the federation's rule, whatever the rule is.

    ``aggregate`` takes the rule's place: clip every row to this round's C, aggregate with the
    rule, add the noise. ``observe`` records what the round released beside the epsilon.
    """

    def __init__(self, spec: ClientDPConfig, federation: Federation):
        self.spec = spec
        self.federation = federation
        self.rule: Callable[[torch.Tensor, torch.Tensor], Aggregate] = federation.aggregate
        config = federation.config
        self.sample_rate = config.clients_per_round / config.num_clients
        noisy_count = spec.adaptive and spec.noise_multiplier > 0
        self.count_noise = spec.count_noise_for(config.clients_per_round) if noisy_count else 0.0
        self.update_noise = (update_noise_multiplier(spec.noise_multiplier, self.count_noise)
                             if noisy_count else spec.noise_multiplier)
        self.released: dict = {}  # this round's clip (and noisy share): recorded by ``observe``

    def clip(self) -> float:
        """This round's C: the initial one, or adaptive clipping's step from the last round done.

        It is read from the federation's history (which a resume restores), not kept here.
        """
        history = self.federation.history
        if not self.spec.adaptive or not history:
            return self.spec.max_update_norm
        last = history[-1]
        return adapted_clip(last["client_clip"], last["client_unclipped_share"],
                            self.spec.target_quantile, self.spec.clip_learning_rate)

    def aggregate(self, client_updates: torch.Tensor, weights: torch.Tensor) -> Aggregate:
        """The wrapped rule on the clipped updates, plus N(0, (sigma C max w / sum w)^2 I)."""
        clip = self.clip()
        clipped = torch.stack([clip_to_norm(update, clip) for update in client_updates])
        aggregate = self.rule(clipped, weights)
        self.released = {"client_clip": clip}
        if self.spec.adaptive:
            self.released["client_unclipped_share"] = noisy_unclipped_share(
                client_updates.norm(dim=1), clip, self.count_noise)
        if self.update_noise == 0:
            return aggregate  # no draw that would shift the seeded stream
        std = self.update_noise * clip * float(weights.max() / weights.sum())
        return Aggregate(aggregate.update + std * torch.randn_like(aggregate.update),
                         aggregate.kept)

    def observe(self, record: RoundRecord) -> dict:
        """``client_clip`` (and ``client_unclipped_share``) of this round, and ``client_epsilon``
        after ``record.round`` rounds."""
        epsilon = client_epsilon(self.spec.noise_multiplier, self.sample_rate, record.round,
                                 self.spec.delta)
        return {**self.released, "client_epsilon": epsilon}


def update_noise_multiplier(noise_multiplier: float, count_noise: float) -> float:
    """Adaptive clipping's noise multiplier of the update: ``(sigma^-2 - (2 sigma_b)^-2)^(-1/2)``.

    With it, the noised update and the noised count together are as private as one release at
    sigma (Andrew et al. 2021, Theorem 1). Defined for 0 < sigma < 2 sigma_b only.

    >>> round(update_noise_multiplier(1.0, count_noise=5.0), 4)
    1.005
    >>> update_noise_multiplier(1.0, count_noise=0.5)
    Traceback (most recent call last):
    ...
    ValueError: noise_multiplier=1.0 is not allowed: it must be above 0 and below 2 * count_noise = 1 (count_noise=0.5: raise it or lower the noise)
    """
    check(0 < noise_multiplier < 2 * count_noise, "noise_multiplier", noise_multiplier,
          f"above 0 and below 2 * count_noise = {2 * count_noise:g} (count_noise={count_noise:g}"
          f": raise it or lower the noise)")
    return (noise_multiplier ** -2 - (2 * count_noise) ** -2) ** -0.5


def noisy_unclipped_share(norms: torch.Tensor, clip: float, count_noise: float) -> float:
    """b_bar: the share of updates whose norm is at most ``clip``, its count noised with
    N(0, ``count_noise``^2) (no draw at 0).

    >>> noisy_unclipped_share(torch.tensor([1.0, 2.0, 3.0, 4.0]), clip=2.0, count_noise=0.0)
    0.5
    """
    count = float((norms <= clip).sum())
    if count_noise > 0:
        count += count_noise * torch.randn(()).item()
    return count / len(norms)


def adapted_clip(clip: float, unclipped_share: float, target_quantile: float,
                 learning_rate: float) -> float:
    """The geometric update ``C * exp(-eta * (b_bar - gamma))``: C shrinks while more than a
    share gamma of the updates fit under it, and grows while fewer do.

    >>> round(adapted_clip(2.0, unclipped_share=1.0, target_quantile=0.5, learning_rate=0.2), 4)
    1.8097
    """
    return clip * math.exp(-learning_rate * (unclipped_share - target_quantile))


def client_epsilon(noise_multiplier: float, sample_rate: float, rounds: int,
                   delta: float) -> float:
    """Epsilon of DP-FedAvg's client-level guarantee after ``rounds`` rounds, at ``delta``.

    Each round is the sampled Gaussian mechanism: a share ``sample_rate`` of the clients, noise
    ``noise_multiplier`` times one client's sensitivity; Opacus's ``RDPAccountant`` composes them.
    """
    check_number("noise_multiplier", noise_multiplier, 0.0, MAX_RATE)
    check_number("sample_rate", sample_rate, 0.0, 1.0, open_low=True)
    check_int("rounds", rounds, 1, MAX_ROUNDS)
    check_between_zero_and_one("delta", delta)
    return accountant_epsilon(noise_multiplier, sample_rate, rounds, delta)
