"""Aggregation rules: pure functions from the stacked client updates to one global update.

Every rule takes ``client_updates`` of shape ``[num_clients, num_params]`` (each row is a client's
new weights minus the global weights it was sent) and ``weights`` of shape ``[num_clients]``
(how many samples each client trained on), and returns an ``Aggregate``: the float32 update to
add to the global weights, on the updates' device, and ``kept``, the sorted indices of the
clients whose updates it was built from. Each rule starts with ``check_inputs``: no clients,
shapes that disagree, or weights that are not positive and finite are refused in one line
instead of coming back as a NaN update.

Beside each function sits its *spec*: a small dataclass holding the rule's options, checked when
it is made (``Krum(num_malicious=-1)`` fails at once) and callable like the function. A run's
config holds a spec; ``AGGREGATORS`` maps each rule's name to its spec class.

Robust rules assume at most ``num_malicious`` (f in the papers) of the ``num_clients`` (n)
updates are malicious and may be anything. They differ in what they trust:

* distances between whole updates (``krum``, ``multi-krum``, ``bulyan``),
* each coordinate's middle values (``median``, ``trimmed-mean``, the last step of ``bulyan``),
* the size of an update (``norm-clipping``),
* a direction in which updates disagree (``dnc``), or their low frequencies (``freqfed``).

Rules that select clients average the kept ones by their sample counts, as FedAvg does; with
equal counts this is the plain average the papers write. Rules that work coordinate by coordinate
(median, trimmed mean, Bulyan) and Krum ignore the sample counts: an attacker could claim any.

>>> updates = torch.tensor([[1.0, 0.0], [3.0, 2.0]])
>>> mean(updates, torch.tensor([1.0, 3.0])).update.tolist()
[2.5, 1.5]
>>> spec = AGGREGATORS["krum"](num_malicious=1)
>>> spec.to_dict()
{'name': 'krum', 'num_malicious': 1}
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Callable, ClassVar

import torch

from .checks import MAX_CLIENTS, MAX_CLIP, MAX_DIMENSIONS, check, check_int, check_number
from .parts import Part
from .registry import Registry

AGGREGATORS = Registry("aggregator")


@dataclass
class Aggregate:
    """The result of one aggregation: the global update (float32) and which clients it used."""

    update: torch.Tensor
    kept: list[int]

    def __post_init__(self) -> None:
        self.update = self.update.float()


def check_inputs(client_updates: torch.Tensor, weights: torch.Tensor) -> None:
    """Refuse what no rule can aggregate: no updates, a shape that is not [num_clients, num_params]
    of floats with a weight per client, or a weight that is zero, negative, infinite or NaN.

    >>> check_inputs(torch.zeros(2, 3), torch.tensor([0.0, 1.0]))
    Traceback (most recent call last):
    ...
    ValueError: weights=[0.0, 1.0] is not allowed: it must be one positive, finite number per client (2)
    """
    is_tensor = isinstance(client_updates, torch.Tensor)
    shape = tuple(client_updates.shape) if is_tensor else type(client_updates).__name__
    check(is_tensor and len(shape) == 2 and shape[0] > 0, "client_updates.shape", shape,
          "[num_clients, num_params] with at least one client")
    check(client_updates.is_floating_point(), "client_updates.dtype", client_updates.dtype,
          "a floating-point type")
    ok = (isinstance(weights, torch.Tensor) and weights.shape == (len(client_updates),)
          and bool(torch.isfinite(weights).all()) and bool((weights > 0).all()))
    check(ok, "weights", weights.tolist() if isinstance(weights, torch.Tensor) else weights,
          f"one positive, finite number per client ({len(client_updates)})")


def all_clients(client_updates: torch.Tensor) -> list[int]:
    return list(range(len(client_updates)))


@dataclass
class Rule(Part):
    """An aggregation rule with its options (a part of a run, ``fltutor.parts``); calling it
    aggregates.

    A subclass names its pure ``function`` and declares that function's options as fields, so
    ``Krum(num_malicious=2)(client_updates, weights)`` is ``krum(client_updates, weights,
    num_malicious=2)``. ``validate()`` checks the options alone; ``check_fits(config)``
    checks them against the run's number of clients per round, ``check_clients(num_clients)``
    against any number.
    """

    function: ClassVar[Callable[..., Aggregate]]
    #: Whether the aggregate is the sample-weighted mean of the ``kept`` updates (FedAvg and the
    #: rules that select clients). A client that knows it can take its own share back out of the
    #: aggregate (``fltutor.attacks.curious``); a coordinate-wise rule mixes every update.
    averages_kept: ClassVar[bool] = False

    def __call__(self, client_updates: torch.Tensor, weights: torch.Tensor) -> Aggregate:
        return type(self).function(client_updates, weights, **dataclasses.asdict(self))

    def check_fits(self, config) -> None:
        """The options must hold for the run's number of clients per round."""
        self.check_clients(config.clients_per_round)

    def check_clients(self, num_clients: int) -> None:
        """Raise the one-line ValueError if the options cannot hold for ``num_clients``."""


def rule(name: str, function: Callable[..., Aggregate]):
    """Class decorator: make the class a dataclass spec of ``function``, registered as ``name``."""

    def decorate(cls: type[Rule]) -> type[Rule]:
        cls.function = staticmethod(function)
        return AGGREGATORS.register(name)(dataclass(cls))

    return decorate


def check_num_malicious(value) -> None:
    check_int("num_malicious", value, 0, MAX_CLIENTS)


def check_malicious_fits(rule_name: str, num_malicious: int, num_clients: int, most: int,
                         needs: str) -> None:
    """Refuse ``num_malicious`` above ``most``, the largest ``num_clients`` allows this rule."""
    if num_malicious > most:
        allow = f"at most {most}" if most >= 0 else "none: too few"
        raise ValueError(f"num_malicious={num_malicious!r} is not allowed: {rule_name} needs "
                         f"{needs} ({num_clients} clients allow {allow})")


# ---------------------------------------------------------------------------------- FedAvg


def mean(client_updates: torch.Tensor, weights: torch.Tensor) -> Aggregate:
    """FedAvg: the sample-weighted mean of the updates (McMahan et al. 2017, Algorithm 1).

    w_{t+1} = w_t + sum_k (n_k / n) * (w_{t+1}^k - w_t), with n_k the samples of client k.
    Not robust: one client sending a huge update moves the mean anywhere.
    """
    check_inputs(client_updates, weights)
    diverged = (~torch.isfinite(client_updates).all(dim=1)).nonzero().flatten().tolist()
    if diverged:  # the mean of them would be nan or inf, and so would every model after it
        raise ValueError(f"client_updates is not allowed: the update(s) of row(s) {diverged} "
                         f"hold nan or inf (a client diverged: lower its lr, or keep it out "
                         f"with a robust rule)")
    share = weights.to(client_updates) / weights.sum()
    return Aggregate(update=share @ client_updates, kept=all_clients(client_updates))


@rule("mean", mean)
class Mean(Rule):
    """FedAvg's sample-weighted mean (no options)."""

    averages_kept = True


def mean_of(client_updates: torch.Tensor, weights: torch.Tensor, kept: list[int]) -> Aggregate:
    """FedAvg over the ``kept`` clients only: how a rule that selects clients averages them."""
    kept = sorted(kept)
    return Aggregate(mean(client_updates[kept], weights[kept]).update, kept)


# ----------------------------------------------------------------------- Krum and Multi-Krum


def squared_distances(client_updates: torch.Tensor) -> torch.Tensor:
    """The [num_clients, num_clients] matrix of ||u_i - u_j||^2."""
    return torch.cdist(client_updates, client_updates).square()


def krum_scores(distances: torch.Tensor, num_malicious: int) -> torch.Tensor:
    """Each update's Krum score: the sum of its squared distances to its n - f - 2 nearest others.

    ``distances`` is ``squared_distances`` of the n updates. Blanchard et al. (2017) and Flower
    count n - f - 2 neighbours (some implementations, byzfl among them, use n - f - 1). Bulyan
    scores shrinking sets, so the count is kept between 1 and the n - 1 others there are.
    """
    n = len(distances)
    neighbours = min(max(n - num_malicious - 2, 1), n - 1)
    others = distances + torch.diag(torch.full((n,), math.inf, device=distances.device))
    return others.topk(neighbours, dim=1, largest=False).values.sum(dim=1)


def krum(client_updates: torch.Tensor, weights: torch.Tensor, num_malicious: int = 1) -> Aggregate:
    """Krum: the one update closest to its neighbours (Blanchard et al. 2017, NeurIPS).

    score(i) = sum over the n - f - 2 nearest j != i of ||u_i - u_j||^2;  update = u_argmin.
    Honest updates cluster together, so an honest one has the lowest score as long as
    n > 2f + 2, however far the f malicious updates lie. It ignores the sample counts, and on
    an exact tie takes the lower client index.

    >>> updates = torch.tensor([[0.0], [1.0], [1.5], [9.0]])
    >>> krum(updates, torch.ones(4), num_malicious=0)  # scores 3.25, 1.25, 2.25, 136.25
    Aggregate(update=tensor([1.]), kept=[1])
    """
    check_inputs(client_updates, weights)
    Krum(num_malicious).check_clients(len(client_updates))
    best = int(krum_scores(squared_distances(client_updates), num_malicious).argmin())
    return Aggregate(client_updates[best], [best])


@rule("krum", krum)
class Krum(Rule):
    """Options of ``krum``: ``num_malicious`` f, the malicious clients it must withstand."""

    averages_kept = True

    num_malicious: int = 1

    def validate(self) -> None:
        check_num_malicious(self.num_malicious)

    def check_clients(self, num_clients: int) -> None:
        check_malicious_fits(self.name, self.num_malicious, num_clients, (num_clients - 3) // 2,
                             "num_clients > 2 * num_malicious + 2")


def multi_krum(client_updates: torch.Tensor, weights: torch.Tensor, num_malicious: int = 1,
               num_selected: int | None = None) -> Aggregate:
    """Multi-Krum: the mean of the m updates with the lowest Krum scores (Blanchard et al. 2017).

    m = ``num_selected``, n - f by default; m = 1 is Krum. Averaging several well-placed updates
    keeps most of FedAvg's progress per round while still dropping the outliers.

    >>> updates = torch.tensor([[0.0], [1.0], [1.5], [2.2], [9.0]])
    >>> multi_krum(updates, torch.ones(5), num_malicious=1, num_selected=2)  # 1.5 and 1.0
    Aggregate(update=tensor([1.2500]), kept=[1, 2])
    """
    check_inputs(client_updates, weights)
    MultiKrum(num_malicious, num_selected).check_clients(len(client_updates))
    m = len(client_updates) - num_malicious if num_selected is None else num_selected
    scores = krum_scores(squared_distances(client_updates), num_malicious)
    best = scores.topk(m, largest=False).indices
    return mean_of(client_updates, weights, best.tolist())


@rule("multi-krum", multi_krum)
class MultiKrum(Rule):
    """Options of ``multi_krum``: ``num_malicious`` f and ``num_selected`` m (None: n - f)."""

    averages_kept = True

    num_malicious: int = 1
    num_selected: int | None = None

    def validate(self) -> None:
        check_num_malicious(self.num_malicious)
        if self.num_selected is not None:
            check_int("num_selected", self.num_selected, 1, MAX_CLIENTS)

    def check_clients(self, num_clients: int) -> None:
        check_malicious_fits(self.name, self.num_malicious, num_clients, (num_clients - 3) // 2,
                             "num_clients > 2 * num_malicious + 2")
        if self.num_selected is not None:
            check_int("num_selected", self.num_selected, 1, num_clients)


# ----------------------------------------------------------- coordinate-wise median and mean


def median(client_updates: torch.Tensor, weights: torch.Tensor) -> Aggregate:
    """The coordinate-wise median (Yin et al. 2018, ICML, "Byzantine-robust distributed learning").

    update_k = median(u_1k, ..., u_nk) for every coordinate k. With an even number of clients it
    is the mean of the two middle values (as numpy's and torch.quantile's median; torch.median
    would return the lower one). While fewer than half the clients are malicious, every
    coordinate stays within the honest values. Every update takes part, so ``kept`` is all
    clients; the sample counts are ignored.

    >>> median(torch.tensor([[1.0, 5.0], [2.0, -7.0], [10.0, 6.0], [3.0, 0.0]]), torch.ones(4))
    Aggregate(update=tensor([2.5000, 2.5000]), kept=[0, 1, 2, 3])
    """
    check_inputs(client_updates, weights)
    n = len(client_updates)
    lower = client_updates.kthvalue((n + 1) // 2, dim=0).values
    upper = client_updates.kthvalue(n // 2 + 1, dim=0).values  # the same one when n is odd
    return Aggregate((lower + upper) / 2, all_clients(client_updates))


@rule("median", median)
class Median(Rule):
    """The coordinate-wise median (no options)."""


def trimmed_mean(client_updates: torch.Tensor, weights: torch.Tensor,
                 trim_fraction: float = 0.1) -> Aggregate:
    """The coordinate-wise trimmed mean (Yin et al. 2018, ICML).

    For every coordinate, drop the k = floor(beta * n) largest and k smallest values and average
    the n - 2k left (beta = ``trim_fraction``). With at most k malicious clients, every value
    averaged lies within the honest range. ``kept`` is all clients: each coordinate keeps
    different ones. The sample counts are ignored.

    >>> trimmed_mean(torch.tensor([[1.0], [2.0], [3.0], [100.0]]), torch.ones(4), trim_fraction=0.25)
    Aggregate(update=tensor([2.5000]), kept=[0, 1, 2, 3])
    """
    check_inputs(client_updates, weights)
    TrimmedMean(trim_fraction).check_clients(len(client_updates))
    n = len(client_updates)
    k = int(trim_fraction * n + 1e-9)  # the 1e-9 keeps 0.29 * 100 = 28.999... at 29
    middle = client_updates.sort(dim=0).values[k:n - k]
    return Aggregate(middle.mean(dim=0), all_clients(client_updates))


@rule("trimmed-mean", trimmed_mean)
class TrimmedMean(Rule):
    """Options of ``trimmed_mean``: ``trim_fraction`` beta, the share trimmed from each side."""

    trim_fraction: float = 0.1

    def validate(self) -> None:
        value = self.trim_fraction
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < 0.5
        check(ok, "trim_fraction", value, "a number >= 0 and < 0.5 (the share of clients "
              "trimmed from each side: trimming half or more would leave nothing)")


# ------------------------------------------------------------------------------------ Bulyan


def bulyan(client_updates: torch.Tensor, weights: torch.Tensor, num_malicious: int = 1) -> Aggregate:
    """Bulyan (El Mhamdi et al. 2018, ICML, "The hidden vulnerability of distributed learning").

    1. Select theta = n - 2f updates by Krum, one at a time: each pick leaves the candidates.
    2. For every coordinate, average the beta = theta - 2f selected values closest to their
       median (the median as in ``median``).
    Krum alone can pick an update that is close to the others overall but far off in a few
    coordinates; step 2 bounds every coordinate too. It needs n >= 4f + 3. ``kept`` is the theta
    selected clients; the sample counts are ignored. (In step 1 the last picks score on few
    neighbours, as few as one, where exact ties go to the lower client index.)

    >>> updates = torch.tensor([[0.0], [1.0], [2.0], [3.0], [4.0], [5.0], [90.0]])
    >>> bulyan(updates, torch.ones(7), num_malicious=1)
    Aggregate(update=tensor([2.]), kept=[0, 1, 2, 3, 4])
    """
    check_inputs(client_updates, weights)
    Bulyan(num_malicious).check_clients(len(client_updates))
    n, f = len(client_updates), num_malicious
    distances = squared_distances(client_updates)  # once: each pick scores a subset of it
    candidates, selected = all_clients(client_updates), []
    while len(selected) < n - 2 * f:
        scores = krum_scores(distances[candidates][:, candidates], f)
        selected.append(candidates.pop(int(scores.argmin())))
    chosen = client_updates[sorted(selected)]
    middle = median(chosen, torch.ones(len(chosen))).update.to(chosen)
    beta = len(chosen) - 2 * f
    closest = (chosen - middle).abs().topk(beta, dim=0, largest=False).indices
    return Aggregate(chosen.gather(0, closest).mean(dim=0), sorted(selected))


@rule("bulyan", bulyan)
class Bulyan(Rule):
    """Options of ``bulyan``: ``num_malicious`` f, the malicious clients it must withstand."""

    num_malicious: int = 1

    def validate(self) -> None:
        check_num_malicious(self.num_malicious)

    def check_clients(self, num_clients: int) -> None:
        check_malicious_fits(self.name, self.num_malicious, num_clients, (num_clients - 3) // 4,
                             "num_clients >= 4 * num_malicious + 3")


# ----------------------------------------------------------------------------- norm clipping


def norm_clipping(client_updates: torch.Tensor, weights: torch.Tensor,
                  max_norm: float = 1.0) -> Aggregate:
    """Norm bounding (Sun et al. 2019, "Can you really backdoor federated learning?").

    u_k <- u_k * min(1, M / ||u_k||), then the sample-weighted mean (M = ``max_norm``).
    A backdoor or a boosted update needs a large norm to survive averaging; bounding it caps
    what one client can move the model. M must suit the honest updates' size (it depends on
    the model, the learning rate and the local epochs): the default 1.0 is only a scale to
    start from. ``kept`` is all clients.

    >>> norm_clipping(torch.tensor([[3.0, 4.0], [0.0, 1.0]]), torch.ones(2), max_norm=2.0).update
    tensor([0.6000, 1.3000])
    """
    check_inputs(client_updates, weights)
    NormClipping(max_norm).check_clients(len(client_updates))
    norms = client_updates.norm(dim=1, keepdim=True)
    clipped = client_updates * (max_norm / norms).clamp(max=1.0)  # a zero update stays zero
    return mean(clipped, weights)


@rule("norm-clipping", norm_clipping)
class NormClipping(Rule):
    """Options of ``norm_clipping``: ``max_norm`` M, the largest update norm let through."""

    max_norm: float = 1.0

    def validate(self) -> None:
        check_number("max_norm", self.max_norm, 0.0, MAX_CLIP, open_low=True)


# ---------------------------------------------------------------------- Divide-and-Conquer


def dnc(client_updates: torch.Tensor, weights: torch.Tensor, num_malicious: int = 1,
        subsample_dim: int = 10_000, niters: int = 1, filter_fraction: float = 1.0) -> Aggregate:
    """Divide-and-Conquer (Shejwalkar & Houmansadr 2021, NDSS, "Manipulating the Byzantine").

    Each of ``niters`` iterations:
    1. draw b = ``subsample_dim`` random coordinates (all of them when there are no more);
    2. centre the updates on those coordinates: c_i = u_i[b] - mean_j u_j[b];
    3. score each client s_i = <c_i, v>^2 with v the top right singular vector of [c_1 ... c_n];
    4. flag the floor(c * f) highest scores as outliers (c = ``filter_fraction``).
    Keep the clients never flagged (the paper's intersection of the good sets) and average them.
    Malicious updates that work together push the same way, so that way shows up as the top
    singular direction, and they score high along it. If every client is flagged at least once
    (possible only with several iterations), keep those flagged fewest times.

    The coordinates come from torch's global generator, which the federation seeds, so runs
    repeat. The defaults (b = 10,000, one iteration, c = 1) are common in reimplementations;
    the paper's algorithm takes all three as inputs.

    >>> updates = torch.tensor([[1.0, 0.0], [1.1, 0.1], [0.9, -0.1], [-8.0, 9.0]])
    >>> dnc(updates, torch.ones(4), num_malicious=1).kept
    [0, 1, 2]
    """
    check_inputs(client_updates, weights)
    Dnc(num_malicious, subsample_dim, niters, filter_fraction).check_clients(len(client_updates))
    n, d = client_updates.shape
    times_flagged = torch.zeros(n, dtype=torch.long)
    for _ in range(niters):
        coords = torch.randperm(d)[:subsample_dim] if subsample_dim < d else torch.arange(d)
        sub = client_updates[:, coords.to(client_updates.device)]
        centred = sub - sub.mean(dim=0)
        top = torch.linalg.svd(centred, full_matrices=False).Vh[0]
        scores = (centred @ top).square()
        outliers = scores.topk(int(filter_fraction * num_malicious)).indices
        times_flagged[outliers.cpu()] += 1
    kept = (times_flagged == times_flagged.min()).nonzero().flatten().tolist()
    return mean_of(client_updates, weights, kept)


@rule("dnc", dnc)
class Dnc(Rule):
    """Options of ``dnc``: ``num_malicious`` f, ``subsample_dim`` b, ``niters``, and
    ``filter_fraction`` c (each iteration flags floor(c * f) clients)."""

    averages_kept = True

    num_malicious: int = 1
    subsample_dim: int = 10_000
    niters: int = 1
    filter_fraction: float = 1.0

    def validate(self) -> None:
        check_num_malicious(self.num_malicious)
        check_int("subsample_dim", self.subsample_dim, 1, MAX_DIMENSIONS)
        check_int("niters", self.niters, 1, 1_000)
        check_number("filter_fraction", self.filter_fraction, 0.0, open_low=True)

    def check_clients(self, num_clients: int) -> None:
        flagged = int(self.filter_fraction * self.num_malicious)
        check(flagged < num_clients, "num_malicious", self.num_malicious,
              f"such that filter_fraction * num_malicious = {self.filter_fraction} * "
              f"{self.num_malicious} rounds down to fewer than the {num_clients} clients "
              f"(dnc must leave one)")


# ----------------------------------------------------------------------------------- FreqFed


def freqfed(client_updates: torch.Tensor, weights: torch.Tensor,
            low_fraction: float = 0.5) -> Aggregate:
    """FreqFed (Fereidooni et al. 2024, NDSS): cluster the updates' low frequencies, keep the majority.

    1. Take each update's DCT-II (scipy.fft.dct, orthonormal) and keep the low frequencies.
       The paper transforms each layer in 2-D and keeps its low-frequency block; this rule sees
       one flat vector per client (not the layers' shapes), so it takes the 1-D DCT of the flat
       update and keeps its first ``low_fraction`` of coefficients (the first half by default).
    2. Cosine distances between clients' low frequencies.
    3. HDBSCAN (scikit-learn, precomputed distances) with min_cluster_size = n // 2 + 1, so at
       most one cluster can form and it holds a majority; as in FLAME, from the same group,
       min_samples = 1 and a single cluster is allowed.
    4. FedAvg over the clients of the largest cluster. If HDBSCAN finds no cluster (every
       client is noise: rare with these settings), no majority agrees and every client is kept.
    Poisoned updates differ from honest ones mostly in their low frequencies, where the energy
    of the weights concentrates, so they fall outside the majority's cluster.

    >>> honest = torch.tensor([[1.0, 1.0, 0.0, 0.0], [1.0, 0.9, 0.1, 0.0], [0.9, 1.0, 0.0, 0.1]])
    >>> attacker = torch.tensor([[-1.0, 1.0, -1.0, 1.0]])
    >>> freqfed(torch.cat([honest, attacker]), torch.ones(4)).kept
    [0, 1, 2]
    """
    from scipy.fft import dct  # scipy and scikit-learn take a while to import: only when used
    from sklearn.cluster import HDBSCAN
    from sklearn.metrics.pairwise import cosine_distances

    check_inputs(client_updates, weights)
    FreqFed(low_fraction).check_clients(len(client_updates))
    n, d = client_updates.shape
    spectra = dct(client_updates.detach().float().cpu().numpy(), type=2, norm="ortho", axis=1)
    low = spectra[:, :max(1, math.ceil(low_fraction * d))]
    clusterer = HDBSCAN(min_cluster_size=n // 2 + 1, min_samples=1, metric="precomputed",
                        allow_single_cluster=True, copy=True)
    labels = torch.as_tensor(clusterer.fit_predict(cosine_distances(low).astype("float64")))
    if (labels < 0).all():
        return mean_of(client_updates, weights, all_clients(client_updates))
    largest = labels[labels >= 0].bincount().argmax()
    return mean_of(client_updates, weights, (labels == largest).nonzero().flatten().tolist())


@rule("freqfed", freqfed)
class FreqFed(Rule):
    """Options of ``freqfed``: ``low_fraction``, the share of lowest DCT frequencies compared."""

    averages_kept = True

    low_fraction: float = 0.5

    def validate(self) -> None:
        check_number("low_fraction", self.low_fraction, 0.0, 1.0, open_low=True)

    def check_clients(self, num_clients: int) -> None:
        check(num_clients >= 2, "num_clients", num_clients,
              "at least 2 for freqfed (HDBSCAN's clusters have at least two members)")
