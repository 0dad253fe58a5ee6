"""Byzantine attacks on updates: what malicious clients submit in place of an honest update.

A Byzantine client may send anything at all (Blanchard et al. 2017 brought the term from
distributed computing to learning). The attacks below are the standard ones of the
robust-aggregation literature, written as pure functions on stacked updates, laid out as the
aggregators take them: one row per client, each row a client's new weights minus the global
weights it was sent, ``[num_clients, num_params]``. Every function returns the malicious
clients' submissions, ``[num_malicious, num_params]``, ready to be stacked with the honest rows.

Who knows what can be read off the signatures:

* ``sign_flip``, ``gaussian_noise`` and ``boost`` transform the attackers' *own* updates
  (``own_updates``): nothing about anyone else is needed.
* ``alie``, ``ipm`` and ``min_max`` take ``honest_updates``: the benign updates the attackers
  know. In the papers' strongest setting these are the honest clients' updates of this very
  round (an *omniscient* attacker); Baruch et al. also run ALIE on the coalition's own benign
  updates only, which any group of colluding clients has.

Random draws (Gaussian noise) use torch's global generator, which the federation seeds, so a
run repeats exactly.

The specs at the end put each attack into a federation (``fltutor.parts``): ``sign-flip``,
``gaussian-noise``, ``scaling``, ``alie``, ``ipm`` and ``min-max`` in ``ATTACKS``. Their clients
train honestly; from ``start_round`` on, the attack replaces what they submit.

>>> own = torch.tensor([[1.0, -2.0]])
>>> sign_flip(own).tolist()
[[-1.0, 2.0]]
>>> honest = torch.tensor([[1.0, 0.0], [3.0, 2.0]])
>>> ipm(honest, num_malicious=2, epsilon=0.5).tolist()
[[-1.0, -0.5], [-1.0, -0.5]]
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..checks import (MAX_CLIENTS, MAX_RATE, check, check_bool, check_choice,
                      check_int, check_number)
from ..parts import ATTACKS, Attack, OmniscientAttack

#: The largest noise, boost and IPM scale accepted: far beyond any that the papers use.
MAX_FACTOR = 1e6

#: The perturbation directions of Min-Max (Shejwalkar & Houmansadr 2021).
PERTURBATIONS = ("unit", "std", "sign")


def check_updates(name: str, updates, minimum_rows: int = 1) -> None:
    """Refuse anything but a ``[rows, num_params]`` tensor with at least ``minimum_rows`` rows."""
    is_tensor = isinstance(updates, torch.Tensor)
    shape = tuple(updates.shape) if is_tensor else type(updates).__name__
    ok = is_tensor and len(shape) == 2 and shape[0] >= minimum_rows and shape[1] > 0
    check(ok, f"{name}.shape", shape, f"[rows, num_params] with at least {minimum_rows} row(s)")


def repeat_rows(update: torch.Tensor, num_malicious: int) -> torch.Tensor:
    """One crafted update ``[num_params]`` sent by each of ``num_malicious`` clients."""
    check_int("num_malicious", num_malicious, 1, MAX_CLIENTS)
    return update.unsqueeze(0).repeat(num_malicious, 1)


# Attacks on the attackers' own updates ---------------------------------------------------------

def sign_flip(own_updates: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Sign flipping: send ``-scale`` times the update honest training produced.

    u_mal = -scale * u. Where the honest update goes downhill, this goes uphill by as much. Its
    distance to the honest update it replaces is (1 + scale) times that update's norm: twice it
    at ``scale=1``. The default 1 keeps the norm of an honest update, so a defense that looks at
    sizes alone cannot tell it apart (the "sign flipping" or "bit flipping" attack of the
    robust-aggregation benchmarks, e.g. Karimireddy et al. 2022, Xu et al. 2022); larger
    scales, such as 4 (Li et al. 2019, RSA), trade that stealth for strength.
    """
    check_updates("own_updates", own_updates)
    check_number("scale", scale, 0.0, MAX_RATE, open_low=True)
    return -scale * own_updates


def gaussian_noise(own_updates: torch.Tensor, std: float = 200.0) -> torch.Tensor:
    """Gaussian attack: send pure noise, every number drawn from N(0, std^2).

    u_mal ~ N(0, std^2 I), of the shape of the attackers' updates (their values are not used).
    Blanchard et al. (2017) use std 200 in their experiments: one such client is enough to wreck
    plain averaging (no linear rule survives a single Byzantine client, their Lemma 1), while a
    robust rule such as Krum simply leaves it out. Drawn from torch's global generator, which
    the federation seeds.
    """
    check_updates("own_updates", own_updates)
    check_number("std", std, 0.0, MAX_FACTOR, open_low=True)
    return torch.randn(own_updates.shape, dtype=own_updates.dtype,
                       device=own_updates.device) * std


def boost(own_updates: torch.Tensor, factor: float = 10.0) -> torch.Tensor:
    """Explicit boosting (Bhagoji et al. 2019, ICML): send ``factor`` times the update.

    u_mal = factor * u. Averaging shrinks a client's update by its weight alpha (1/n for n equal
    clients); boosting by 1/alpha undoes that, so the attacker's update reaches the global model
    at full strength. The default 10 is 1/alpha for the 10 equal agents of Bhagoji et al. (and of
    the CRPA study). Model replacement (Bagdasaryan et al. 2020) is the same operation on a
    backdoored update (``fltutor.attacks.backdoor.replacement_factor``).
    """
    check_updates("own_updates", own_updates)
    check_number("factor", factor, 0.0, MAX_FACTOR, open_low=True)
    return factor * own_updates


# Attacks that craft an update from the benign ones ----------------------------------------------

def alie_z(num_clients: int, num_malicious: int) -> float:
    """The z_max of "A little is enough" (Baruch et al. 2019, NeurIPS).

    s = floor(n/2 + 1) - f honest clients must side with the f attackers to form a majority;
    z_max = Phi^{-1}((n - s) / n). For normally distributed updates a share s/n of the clients
    lies beyond mu + z_max sigma, so in every coordinate about s honest clients are farther out
    than the attackers: to a median or a distance-based rule the attackers look more central
    than those s, and with them they are the majority.

    >>> round(alie_z(50, 12), 4), round(alie_z(10, 2), 4), alie_z(10, 1)
    (0.5828, 0.2533, 0.0)
    """
    check_int("num_clients", num_clients, 2, MAX_CLIENTS)
    check_int("num_malicious", num_malicious, 1, num_clients // 2)  # s >= 1: z_max stays finite
    supporters = math.floor(num_clients / 2 + 1) - num_malicious
    share = torch.tensor((num_clients - supporters) / num_clients, dtype=torch.float64)
    return torch.distributions.Normal(0.0, 1.0).icdf(share).item()


def alie(honest_updates: torch.Tensor, num_clients: int, num_malicious: int,
         z: float | None = None) -> torch.Tensor:
    """"A little is enough" (Baruch et al. 2019): move every coordinate z standard deviations.

    (u_mal)_j = mu_j - z * sigma_j, with mu and sigma the mean and (sample) standard deviation of
    the benign updates, coordinate by coordinate; every attacker sends the same vector. Each
    coordinate stays within the spread that defenses accept as normal, yet all of them move
    together, so the aggregate drifts. ``z`` defaults to ``alie_z(num_clients, num_malicious)``
    (which is 0, no attack at all, for one attacker among 10: pass ``z`` to choose it yourself).

    The sign: the paper only asks that every coordinate lie in [mu_j - z sigma_j, mu_j + z
    sigma_j], the range it shows Krum, trimmed mean and Bulyan let through. Widely used
    re-implementations (Karimireddy et al. 2022, Xu et al. 2022's SignGuard) take the lower
    end, mu - z sigma, for gradients. This kit's rows are weight updates (about -lr times a
    gradient), on which mu - z sigma means mu_g + z sigma_g in gradient terms: the same size of
    shift, the other end of the range. Either end harms as much, since sigma >= 0 carries no
    sign of its own.
    """
    check_updates("honest_updates", honest_updates, minimum_rows=2)  # a spread needs two
    if z is None:
        z = alie_z(num_clients, num_malicious)
    check_number("z", z, 0.0, MAX_FACTOR)
    mean, std = honest_updates.mean(dim=0), honest_updates.std(dim=0)
    return repeat_rows(mean - z * std, num_malicious)


def ipm(honest_updates: torch.Tensor, num_malicious: int, epsilon: float = 0.1) -> torch.Tensor:
    """Inner-product manipulation (Xie et al. 2020, "Fall of empires"): send -epsilon * mean.

    u_mal = -epsilon * mean(honest updates). A rule is safe as long as its output keeps a positive
    inner product with the true mean (it still points downhill); IPM attacks exactly that.
    With a small epsilon (0.1) the attackers' identical vectors lie close to everyone, so Krum
    scores them best, picks one, and the step turns slightly uphill. A large epsilon (such as
    100) turns the plain mean uphill and, all the attackers' values sitting at one extreme of
    every coordinate, pulls coordinate-wise median and trimmed mean towards them. The default
    is the small 0.1, the stealthy case: no defense can filter it by size, and later benchmarks
    usually run it (e.g. Karimireddy et al. 2022).
    """
    check_updates("honest_updates", honest_updates)
    check_number("epsilon", epsilon, 0.0, MAX_FACTOR, open_low=True)
    return repeat_rows(-epsilon * honest_updates.mean(dim=0), num_malicious)


def perturbation_direction(honest_updates: torch.Tensor, perturbation: str) -> torch.Tensor:
    """Min-Max's p: "unit" -mean/||mean||, "std" -sigma (per coordinate), "sign" -sign(mean).

    All three point away from where the benign updates lead (Shejwalkar & Houmansadr 2021).
    A zero mean gives the zero vector for "unit" rather than a division by zero.
    """
    check_choice("perturbation", perturbation, PERTURBATIONS)
    mean = honest_updates.mean(dim=0)
    if perturbation == "unit":
        norm = mean.norm()
        return -mean / norm if norm > 0 else torch.zeros_like(mean)
    if perturbation == "std":
        return -honest_updates.std(dim=0)
    return -mean.sign()


def distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Euclidean distances between the rows of ``a`` and of ``b``, computed exactly (no matmul)."""
    return torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist")


#: How often Min-Max halves its first gamma before it gives up (2^-60: far below float precision).
MAX_HALVINGS = 60


def min_max_gamma(honest_updates: torch.Tensor, direction: torch.Tensor,
                  gamma_init: float = 10.0, tolerance: float = 1e-5) -> float:
    """The largest gamma with max_i ||mean + gamma p - u_i|| <= max_{i,k} ||u_i - u_k||.

    Shejwalkar & Houmansadr (2021) find it by a search that starts at gamma_init = 10 in their
    code, steps up after a success and down after a failure, halving the step each time. Their
    search stays below 2 * gamma_init and stops at an absolute step of 1e-5, which suits
    gradients; weight updates after a small learning rate may need a far smaller gamma. So here
    gamma_init is first doubled or halved until gamma is bracketed (one that fits, twice it
    does not), then bisected until the bracket is narrower than ``tolerance`` times gamma.
    gamma = 0 always fits: the mean is no farther from any update than the farthest other one.
    """
    check_number("gamma_init", gamma_init, 0.0, MAX_FACTOR, open_low=True)
    check_number("tolerance", tolerance, 0.0, 1.0, open_low=True)
    mean = honest_updates.mean(dim=0)
    largest_benign = distances(honest_updates, honest_updates).max()

    def fits(gamma: float) -> bool:
        malicious = (mean + gamma * direction).unsqueeze(0)
        return bool(distances(malicious, honest_updates).max() <= largest_benign)

    if not direction.any():
        return 0.0  # no direction to move in: the mean itself is the answer
    gamma = gamma_init
    if fits(gamma):
        while fits(2 * gamma):  # ends: along a nonzero direction the distance grows without bound
            gamma *= 2
    else:
        for _ in range(MAX_HALVINGS):
            gamma /= 2
            if fits(gamma):
                break
        else:
            return 0.0  # the benign updates all coincide: nothing but the mean fits
    low, high = gamma, 2 * gamma  # low fits, high does not
    while high - low > tolerance * low:
        middle = (low + high) / 2
        low, high = (middle, high) if fits(middle) else (low, middle)
    return low


def min_max(honest_updates: torch.Tensor, num_malicious: int,
            perturbation: str = "unit") -> torch.Tensor:
    """Min-Max (Shejwalkar & Houmansadr 2021, NDSS, "Manipulating the Byzantine").

    u_mal = mean + gamma * p, with p from ``perturbation_direction`` and gamma as large as
    possible while the malicious update is no farther from any benign update than the two
    farthest benign updates are from each other (``min_max_gamma``). So it never looks like an
    outlier to a distance-based defense, and it pushes the aggregate as far as that allows.
    The default direction "unit" is the one their code uses by default.
    """
    check_updates("honest_updates", honest_updates, minimum_rows=2)  # a distance needs two
    direction = perturbation_direction(honest_updates, perturbation)
    gamma = min_max_gamma(honest_updates, direction)
    return repeat_rows(honest_updates.mean(dim=0) + gamma * direction, num_malicious)


# The specs that put these attacks into a federation ----------------------------------------------

@dataclass
class OwnUpdateAttack(Attack):
    """An attack that only transforms what its own clients trained (``craft``)."""

    def tamper(self, own_updates: torch.Tensor, round_index: int) -> torch.Tensor:
        return self.craft(own_updates)

    def craft(self, own_updates: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


@dataclass
class KnowingAttack(OmniscientAttack):
    """An attack that crafts its submissions from the benign updates of the round (``craft``).

    With fewer than two benign updates to learn from there is no spread to hide in: its
    clients then submit what they trained.
    """

    def tamper(self, own_updates: torch.Tensor, honest_updates: torch.Tensor,
               round_index: int) -> torch.Tensor:
        known = self.known_updates(own_updates, honest_updates)
        if len(known) < 2:
            return own_updates
        return self.craft(known, num_clients=len(own_updates) + len(honest_updates),
                          num_malicious=len(own_updates))

    def known_updates(self, own_updates: torch.Tensor,
                      honest_updates: torch.Tensor) -> torch.Tensor:
        """The benign updates the attack learns from: the honest clients' of this round."""
        return honest_updates

    def craft(self, known: torch.Tensor, num_clients: int, num_malicious: int) -> torch.Tensor:
        raise NotImplementedError


@ATTACKS.register("sign-flip")
@dataclass
class SignFlip(OwnUpdateAttack):
    """Its clients submit ``-scale`` times what they trained (``sign_flip``)."""

    scale: float = 1.0

    def validate(self) -> None:
        super().validate()
        check_number("scale", self.scale, 0.0, MAX_RATE, open_low=True)

    def craft(self, own_updates: torch.Tensor) -> torch.Tensor:
        return sign_flip(own_updates, self.scale)


@ATTACKS.register("gaussian-noise")
@dataclass
class GaussianNoise(OwnUpdateAttack):
    """Its clients submit N(0, std^2) noise (``gaussian_noise``)."""

    std: float = 200.0

    def validate(self) -> None:
        super().validate()
        check_number("std", self.std, 0.0, MAX_FACTOR, open_low=True)

    def craft(self, own_updates: torch.Tensor) -> torch.Tensor:
        return gaussian_noise(own_updates, self.std)


@ATTACKS.register("scaling")
@dataclass
class Scaling(OwnUpdateAttack):
    """Its clients submit ``factor`` times what they trained (``boost``)."""

    factor: float = 10.0

    def validate(self) -> None:
        super().validate()
        check_number("factor", self.factor, 0.0, MAX_FACTOR, open_low=True)

    def craft(self, own_updates: torch.Tensor) -> torch.Tensor:
        return boost(own_updates, self.factor)


@ATTACKS.register("alie")
@dataclass
class ALIE(KnowingAttack):
    """"A little is enough" (``alie``), from the honest updates or, with ``omniscient=False``,
    from its own clients' honestly trained ones, as a coalition of ordinary clients can.

    ``z=None`` computes z_max from the round's number of clients and of attackers
    (``alie_z``); should the attackers be a majority of a round (possible with
    ``client_fraction`` below 1), z_max is that of the largest minority.
    """

    z: float | None = None
    omniscient: bool = True

    def validate(self) -> None:
        super().validate()
        if self.z is not None:
            check_number("z", self.z, 0.0, MAX_FACTOR)
        check_bool("omniscient", self.omniscient)
        check(self.omniscient or len(self.clients) >= 2, "omniscient", self.omniscient,
              "True for an attack on one client (it needs two updates of its own for a spread)")

    def check_fits(self, config) -> None:
        super().check_fits(config)
        if self.z is None:
            check(len(self.clients) <= config.num_clients // 2, "clients", self.clients,
                  f"at most num_clients // 2 = {config.num_clients // 2} clients when z is "
                  f"computed (or give z)")
            check(alie_z(config.num_clients, len(self.clients)) > 0, "z", self.z,
                  f"a number > 0: with {len(self.clients)} attacker(s) among "
                  f"{config.num_clients} clients the computed z_max is 0, no attack at all")

    def known_updates(self, own_updates: torch.Tensor,
                      honest_updates: torch.Tensor) -> torch.Tensor:
        return honest_updates if self.omniscient else own_updates

    def craft(self, known: torch.Tensor, num_clients: int, num_malicious: int) -> torch.Tensor:
        z = self.z if self.z is not None else alie_z(num_clients,
                                                     min(num_malicious, num_clients // 2))
        return alie(known, num_clients, num_malicious, z=z)


@ATTACKS.register("ipm")
@dataclass
class IPM(KnowingAttack):
    """Inner-product manipulation (``ipm``): -epsilon times the honest mean."""

    epsilon: float = 0.1

    def validate(self) -> None:
        super().validate()
        check_number("epsilon", self.epsilon, 0.0, MAX_FACTOR, open_low=True)

    def craft(self, known: torch.Tensor, num_clients: int, num_malicious: int) -> torch.Tensor:
        return ipm(known, num_malicious, self.epsilon)


@ATTACKS.register("min-max")
@dataclass
class MinMax(KnowingAttack):
    """Min-Max (``min_max``): as far from the honest mean as the honest spread allows."""

    perturbation: str = "unit"

    def validate(self) -> None:
        super().validate()
        check_choice("perturbation", self.perturbation, PERTURBATIONS)

    def craft(self, known: torch.Tensor, num_clients: int, num_malicious: int) -> torch.Tensor:
        return min_max(known, num_malicious, self.perturbation)
