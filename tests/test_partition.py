"""Partitions: who holds which samples.

What a user relies on: no sample is given twice, none is lost, the schemes have the shapes their
names promise (equal shares, one class each, Dirichlet concentration), the exclusion constraints
of the CRPA study hold, and an impossible constraint fails with a clear message.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from fltutor.partition import PARTITIONS, class_counts, split

SCHEMES = ["iid", "dirichlet", "one-class", "shards"]


@st.composite
def labels_and_clients(draw):
    """Shuffled labels in which every class has at least three samples per client."""
    num_clients = draw(st.integers(1, 8))
    num_classes = draw(st.integers(1, 6))
    counts = draw(st.lists(st.integers(3 * num_clients, 3 * num_clients + 20),
                           min_size=num_classes, max_size=num_classes))
    labels = np.repeat(np.arange(num_classes), counts)
    order = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).permutation(len(labels))
    return labels[order], num_clients


def all_indices(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)


def test_every_scheme_is_registered():
    assert sorted(PARTITIONS.names()) == sorted(SCHEMES)


@pytest.mark.parametrize("scheme", ["iid", "dirichlet", "shards"])
@given(case=labels_and_clients(), alpha=st.sampled_from([0.05, 0.5, 1.0, 10.0]),
       shards_per_client=st.integers(1, 3), seed=st.integers(0, 1000))
def test_every_sample_goes_to_exactly_one_client(scheme, case, alpha, shards_per_client, seed):
    labels, num_clients = case
    parts = split(labels, scheme, num_clients, alpha=alpha, shards_per_client=shards_per_client,
                  seed=seed)
    assert len(parts) == num_clients
    assert all(len(part) > 0 for part in parts)
    np.testing.assert_array_equal(np.sort(all_indices(parts)), np.arange(len(labels)))


@pytest.mark.parametrize("scheme", ["iid", "dirichlet"])
@given(case=labels_and_clients(), alpha=st.sampled_from([0.05, 1.0, 100.0]),
       seed=st.integers(0, 1000))
def test_iid_and_dirichlet_shares_differ_by_at_most_one(scheme, case, alpha, seed):
    labels, num_clients = case
    sizes = [len(part) for part in split(labels, scheme, num_clients, alpha=alpha, seed=seed)]
    assert max(sizes) - min(sizes) <= 1


@given(case=labels_and_clients(), seed=st.integers(0, 1000))
def test_one_class_gives_each_client_one_whole_class_share(case, seed):
    labels, num_clients = case
    parts = split(labels, "one-class", num_clients, seed=seed)
    classes = [np.unique(labels[part]) for part in parts]
    assert all(len(held) == 1 for held in classes)
    indices = all_indices(parts)
    assert len(np.unique(indices)) == len(indices)  # no sample twice
    assigned = np.unique(np.concatenate(classes))
    # The classes handed out are covered completely: every one of their samples has a holder.
    np.testing.assert_array_equal(np.sort(indices), np.flatnonzero(np.isin(labels, assigned)))
    num_classes = labels.max() + 1
    assert len(assigned) == min(num_clients, num_classes)


@given(case=labels_and_clients(), seed=st.integers(0, 1000))
def test_dirichlet_alpha_zero_is_one_class_per_client(case, seed):
    labels, num_clients = case
    zero = split(labels, "dirichlet", num_clients, alpha=0.0, seed=seed)
    one_class = split(labels, "one-class", num_clients, seed=seed)
    assert [p.tolist() for p in zero] == [p.tolist() for p in one_class]


@pytest.mark.parametrize("scheme", SCHEMES)
def test_same_seed_same_partition_other_seed_another(scheme):
    labels = np.repeat(np.arange(10), 30)

    def draw(seed):
        return [part.tolist() for part in split(labels, scheme, 5, alpha=0.5, seed=seed)]

    assert draw(3) == draw(3)
    assert draw(3) != draw(4)


def top_class_share(counts: np.ndarray) -> np.ndarray:
    return counts.max(axis=1) / counts.sum(axis=1)


def distance_to_mix(counts: np.ndarray, mix: np.ndarray) -> np.ndarray:
    """Total-variation distance between every client's class mix and ``mix``."""
    return 0.5 * np.abs(counts / counts.sum(axis=1, keepdims=True) - mix).sum(axis=1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tiny_alpha_concentrates_clients_and_huge_alpha_matches_the_global_mix(seed):
    # Prepare: balanced labels, as in the study's capped MNIST.
    labels = np.repeat(np.arange(10), 300)
    global_mix = np.bincount(labels) / len(labels)
    # Execute
    tiny = class_counts(labels, split(labels, "dirichlet", 10, alpha=1e-3, seed=seed), 10)
    huge = class_counts(labels, split(labels, "dirichlet", 10, alpha=1e3, seed=seed), 10)
    # Assert: most of a client's data is one class at alpha=1e-3 ...
    assert top_class_share(tiny).mean() > 0.6
    assert distance_to_mix(tiny, global_mix).mean() > 0.5
    # ... and at alpha=1e3 every client holds every class, close to the global mix.
    assert (huge > 0).all()
    assert top_class_share(huge).mean() < 0.2
    assert distance_to_mix(huge, global_mix).mean() < 0.15


@pytest.mark.parametrize("scheme, alpha", [("one-class", 1.0), ("dirichlet", 0.0),
                                           ("dirichlet", 0.1), ("shards", 1.0)])
def test_exclusion_constraints_hold(scheme, alpha):
    labels = np.repeat(np.arange(10), 40)
    exclude = {0: (4, 9), 3: (1,)}  # the CRPA attacker holds neither G=4 nor T=9
    parts = split(labels, scheme, 10, alpha=alpha, exclude=exclude, seed=0)
    for client, classes in exclude.items():
        assert not set(labels[parts[client]].tolist()) & set(classes)


@pytest.mark.parametrize("scheme, exclude", [
    ("iid", {0: (0,)}),  # iid gives everyone every class
    ("one-class", {2: tuple(range(10))}),  # client 2 may hold no class at all
])
def test_impossible_constraint_is_a_clear_value_error(scheme, exclude):
    labels = np.repeat(np.arange(10), 20)
    with pytest.raises(ValueError) as raised:
        split(labels, scheme, 5, exclude=exclude, seed=0, max_tries=20)
    message = str(raised.value)
    assert f"exclude={exclude!r}" in message
    assert repr(scheme) in message and "allowed" in message
    assert "\n" not in message


def test_more_clients_than_samples_is_a_clear_value_error():
    with pytest.raises(ValueError, match=r"num_clients=7 is not allowed: .*at most .*\(6\)"):
        split(np.arange(6) % 2, "iid", 7)


def test_unknown_scheme_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown partition 'random'; known: iid"):
        split(np.zeros(10, dtype=int), "random", 2)


def test_split_accepts_label_tensors():
    labels = torch.arange(40) % 4
    parts = split(labels, "iid", 4, seed=0)
    assert sorted(all_indices(parts).tolist()) == list(range(40))


@given(case=labels_and_clients(), scheme=st.sampled_from(SCHEMES), seed=st.integers(0, 1000))
def test_class_counts_is_the_client_by_class_table(case, scheme, seed):
    labels, num_clients = case
    parts = split(labels, scheme, num_clients, alpha=0.5, seed=seed)
    num_classes = int(labels.max()) + 1
    counts = class_counts(labels, parts, num_classes)
    assert counts.shape == (num_clients, num_classes)
    for k, part in enumerate(parts):
        for c in range(num_classes):
            assert counts[k, c] == np.sum(labels[part] == c)
    assert counts.sum() == len(all_indices(parts))
