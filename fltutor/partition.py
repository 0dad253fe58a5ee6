"""Who holds which training samples: iid, Dirichlet non-IID, one class per client, shards.

Each scheme is a pure function of the labels, the number of clients and a random generator, and
returns one array of sample indices per client. No sample is ever given to two clients.

The CRPA study (Becker et al. 2025, Sec. 4.3) varies how non-IID the data is with a Dirichlet
concentration ``alpha``: every client draws its class mix from Dir(alpha, ..., alpha). Large alpha
gives every client nearly every class (alpha = 10 is close to iid); small alpha concentrates each
client on few classes; alpha = 0 is the limit in which every client holds a single class.

>>> labels = np.array([0, 0, 1, 1, 2, 2])
>>> [part.tolist() for part in split(labels, "one-class", 3, seed=0)]
[[4, 5], [0, 1], [2, 3]]
>>> class_counts(labels, split(labels, "one-class", 3, seed=0), 3).tolist()
[[0, 0, 2], [2, 0, 0], [0, 2, 0]]
"""

from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np

from .checks import check, check_class, check_int, check_number, is_int
from .registry import Registry

#: Every scheme takes ``(labels, num_clients, rng)`` and the keyword options it needs
#: (``alpha``, ``shards_per_client``, ``exclude``); it ignores the others. Each one checks what
#: it is given first (``check_labels_and_clients``), so a direct call with impossible arguments
#: fails in one line too.
PARTITIONS = Registry("partition")

#: The Dirichlet concentrations of the CRPA study's non-IID experiments (0 = one class each).
STUDY_ALPHAS = (0.0, 0.05, 0.1, 0.2, 0.5, 1.0, 10.0)


def _as_numpy(labels) -> np.ndarray:
    return labels.cpu().numpy() if hasattr(labels, "cpu") else np.asarray(labels)


def check_labels_and_clients(labels: np.ndarray, num_clients: int) -> None:
    """Labels must be a non-empty 1-D array of class indices, shared by 1 to len(labels) clients.

    >>> check_labels_and_clients(np.array([0, 1.5]), 1)
    Traceback (most recent call last):
    ...
    ValueError: labels.dtype='float64' is not allowed: it must be an integer type (class indices)
    """
    check(labels.ndim == 1 and len(labels) > 0, "labels.shape", labels.shape,
          "(num_samples,) with at least one sample")
    check(np.issubdtype(labels.dtype, np.integer), "labels.dtype", str(labels.dtype),
          "an integer type (class indices)")
    check(labels.min() >= 0, "labels.min()", int(labels.min()), ">= 0 (class indices)")
    check(is_int(num_clients) and 1 <= num_clients <= len(labels), "num_clients", num_clients,
          f"an integer from 1 to at most the number of training samples ({len(labels)})")


def check_exclude(exclude: Mapping[int, Iterable[int]], num_clients: int, num_classes: int) -> None:
    """``exclude`` must map real clients to collections of real classes."""
    check(isinstance(exclude, Mapping), "exclude", exclude, "a dict {client: (class, ...)}")
    for client, classes in exclude.items():
        check(is_int(client) and 0 <= client < num_clients, "exclude client", client,
              f"a client index from 0 to {num_clients - 1}")
        check(isinstance(classes, (tuple, list, set, frozenset)), "exclude classes", classes,
              "a tuple of class indices, e.g. (4, 9)")
        for c in classes:
            check_class("exclude class", c, num_classes)


def _equal_sizes(total: int, parts: int) -> np.ndarray:
    """``total`` split into ``parts`` sizes that differ by at most one."""
    sizes = np.full(parts, total // parts)
    sizes[: total % parts] += 1
    return sizes


@PARTITIONS.register("iid")
def iid(labels: np.ndarray, num_clients: int, rng: np.random.Generator, **_unused) -> list[np.ndarray]:
    """Shuffle all samples and deal them out in equal shares (McMahan et al. 2017)."""
    check_labels_and_clients(labels, num_clients)
    order = rng.permutation(len(labels))
    return [np.sort(part) for part in np.array_split(order, num_clients)]


@PARTITIONS.register("one-class")
def one_class_per_client(labels: np.ndarray, num_clients: int, rng: np.random.Generator,
                         **_unused) -> list[np.ndarray]:
    """Client k holds one class only (the study's alpha = 0); classes are dealt in random order.

    With more clients than classes, the clients that share a class share its samples equally;
    with fewer, the classes left over are held by nobody.
    """
    check_labels_and_clients(labels, num_clients)
    num_classes = int(labels.max()) + 1
    class_of_client = rng.permutation(max(num_classes, num_clients))[:num_clients] % num_classes
    parts: list[np.ndarray] = [np.empty(0, dtype=np.int64)] * num_clients
    for c in range(num_classes):
        holders = np.flatnonzero(class_of_client == c)
        if len(holders):
            samples = rng.permutation(np.flatnonzero(labels == c))
            for client, share in zip(holders, np.array_split(samples, len(holders))):
                parts[client] = np.sort(share)
    return parts


@PARTITIONS.register("dirichlet")
def dirichlet(labels: np.ndarray, num_clients: int, rng: np.random.Generator, *, alpha: float,
              exclude: Mapping[int, Iterable[int]] | None = None, **_unused) -> list[np.ndarray]:
    """Every client draws a class mix q_k ~ Dir(alpha) and fills an equal quota from it.

    Samples are drawn without replacement. When a class runs out, the rest of a client's quota
    comes from the classes it still can get, in proportion to its own mix. ``alpha = 0`` is the
    one-class-per-client limit. A client with ``exclude``d classes gets a mix without them (at
    large alpha nearly every mix holds every class, so re-drawing would never meet the constraint).
    """
    check_labels_and_clients(labels, num_clients)
    check_number("alpha", alpha, 0.0)
    if alpha == 0:
        return one_class_per_client(labels, num_clients, rng)
    num_classes = int(labels.max()) + 1
    pools = [list(rng.permutation(np.flatnonzero(labels == c))) for c in range(num_classes)]
    remaining = np.array([len(pool) for pool in pools])
    mixes = rng.dirichlet(np.full(num_classes, alpha), size=num_clients)
    for client, classes in (exclude or {}).items():
        mixes[client, list(classes)] = 0.0
        mixes[client] /= max(mixes[client].sum(), np.finfo(float).tiny)
    quotas = _equal_sizes(len(labels), num_clients)
    parts: list[np.ndarray] = [np.empty(0, dtype=np.int64)] * num_clients
    for client in rng.permutation(num_clients):
        take = np.minimum(rng.multinomial(quotas[client], mixes[client]), remaining)
        while take.sum() < quotas[client]:
            available = remaining - take
            weights = mixes[client] * (available > 0)
            weights = weights if weights.sum() > 0 else (available > 0).astype(float)
            extra = rng.multinomial(quotas[client] - take.sum(), weights / weights.sum())
            take += np.minimum(extra, available)
        remaining -= take
        chosen = [pools[c].pop() for c in range(num_classes) for _ in range(take[c])]
        parts[client] = np.sort(np.array(chosen, dtype=np.int64))
    return parts


@PARTITIONS.register("shards")
def shards(labels: np.ndarray, num_clients: int, rng: np.random.Generator, *,
           shards_per_client: int = 2, **_unused) -> list[np.ndarray]:
    """Sort by label, cut into ``num_clients * shards_per_client`` shards, deal them at random.

    This is the pathological non-IID split of McMahan et al. (2017): with two shards each, most
    clients see two classes.
    """
    check_labels_and_clients(labels, num_clients)
    check(is_int(shards_per_client) and 1 <= shards_per_client
          and num_clients * shards_per_client <= len(labels), "shards_per_client",
          shards_per_client, f"an integer >= 1 with num_clients * shards_per_client at most the "
          f"number of training samples ({len(labels)})")
    order = rng.permutation(len(labels))
    order = order[np.argsort(labels[order], kind="stable")]
    pieces = np.array_split(order, num_clients * shards_per_client)
    dealt = rng.permutation(len(pieces)).reshape(num_clients, shards_per_client)
    return [np.sort(np.concatenate([pieces[i] for i in row])) for row in dealt]


def violations(labels: np.ndarray, parts: list[np.ndarray],
               exclude: Mapping[int, Iterable[int]]) -> list[str]:
    """Human-readable list of the exclusion constraints that ``parts`` breaks."""
    broken = []
    for client, classes in exclude.items():
        held = sorted(set(labels[parts[client]].tolist()) & set(classes))
        if held:
            broken.append(f"client {client} holds class(es) {held}")
    return broken


def split(labels, scheme: str, num_clients: int, *, alpha: float = 1.0, shards_per_client: int = 2,
          exclude: Mapping[int, Iterable[int]] | None = None, seed: int = 0,
          max_tries: int = 200) -> list[np.ndarray]:
    """Partition ``labels`` with ``scheme``, re-drawing until the ``exclude`` constraints hold.

    ``exclude`` maps a client to classes it must not hold; the CRPA study re-draws its partition
    until the attacker holds neither the generated class G nor the target class T. After
    ``max_tries`` failed draws a ValueError says which constraint could not be met.
    """
    labels = _as_numpy(labels)
    draw = PARTITIONS[scheme]
    check_labels_and_clients(labels, num_clients)
    exclude = {} if exclude is None else exclude
    check_exclude(exclude, num_clients, int(labels.max()) + 1)
    check_int("seed", seed, 0)
    check_int("max_tries", max_tries, 1)
    rng = np.random.default_rng(seed)
    for _ in range(max_tries):
        parts = draw(labels, num_clients, rng, alpha=alpha, shards_per_client=shards_per_client,
                     exclude=exclude)
        broken = [f"client {k} holds no samples" for k, part in enumerate(parts) if len(part) == 0]
        broken += violations(labels, parts, exclude)
        if not broken:
            return parts
    raise ValueError(f"exclude={dict(exclude)!r} could not be met by a {scheme!r} partition of "
                     f"{num_clients} clients in {max_tries} draws ({broken[0]}); allowed: constraints "
                     f"that leave every client a class it may hold, with a scheme that can meet them")


def class_counts(labels, parts: list[np.ndarray], num_classes: int) -> np.ndarray:
    """The client-by-class table: entry [k, c] is how many samples of class c client k holds."""
    labels = _as_numpy(labels)
    return np.stack([np.bincount(labels[part], minlength=num_classes) for part in parts])
