"""Aggregation rules: hand-checked cases, robustness properties, an independent implementation.

Each rule is tried on two to five tiny clients whose answer can be worked out by hand (Prepare /
Execute / Assert), then on random updates drawn by hypothesis for the properties the papers
prove, and against the ``byzfl`` package where it implements the same rule.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fltutor.aggregators import (AGGREGATORS, Aggregate, Bulyan, Dnc, FreqFed, Krum, Mean, Median,
                                 MultiKrum, NormClipping, Rule, TrimmedMean, bulyan, dnc, freqfed,
                                 krum, krum_scores, mean, median, multi_krum, norm_clipping,
                                 squared_distances, trimmed_mean)

ONES = torch.ones
FEW = settings(max_examples=25, deadline=None)


def random_updates(seed: int, n: int, d: int) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------- by-hand cases


def test_mean_weights_clients_by_their_samples():
    updates = torch.tensor([[0.0, 4.0], [4.0, 0.0]])
    aggregate = mean(updates, torch.tensor([1.0, 3.0]))
    assert aggregate.update.tolist() == [3.0, 1.0]
    assert aggregate.kept == [0, 1]


def test_krum_picks_the_update_closest_to_its_neighbours():
    # n = 5, f = 1: each score sums the squared distances to the 5 - 1 - 2 = 2 nearest others.
    # 0.0: 1 + 4 = 5;  1.0: 1 + 1 = 2;  2.0: 1 + 1 = 2 (tie: the lower index wins);
    # 3.0: 1 + 4 = 5;  50.0: 47^2 + 48^2
    updates = torch.tensor([[0.0], [1.0], [2.0], [3.0], [50.0]])
    assert krum_scores(squared_distances(updates), 1).tolist() == [5.0, 2.0, 2.0, 5.0, 47.0**2 + 48.0**2]
    aggregate = krum(updates, ONES(5), num_malicious=1)
    assert aggregate.update.tolist() == [1.0]
    assert aggregate.kept == [1]


def test_krum_ignores_the_sample_counts_an_attacker_could_inflate():
    updates = torch.tensor([[0.0], [0.1], [0.2], [0.3], [10.0]])
    assert krum(updates, torch.tensor([1.0, 1.0, 1.0, 1.0, 1e9])).kept == [1]


def test_multi_krum_averages_the_lowest_scores_by_samples():
    # scores as above: 1.0 and 2.0 score 2, then 0.0 and 3.0 score 5; m = 3 takes 1, 2 and 0
    updates = torch.tensor([[0.0], [1.0], [2.0], [3.0], [50.0]])
    aggregate = multi_krum(updates, torch.tensor([2.0, 1.0, 1.0, 1.0, 1.0]), num_malicious=1,
                           num_selected=3)
    assert aggregate.kept == [0, 1, 2]
    assert aggregate.update.tolist() == [pytest.approx((2 * 0.0 + 1.0 + 2.0) / 4)]


def test_multi_krum_selects_n_minus_f_by_default():
    updates = torch.tensor([[0.0], [1.0], [2.0], [3.0], [50.0]])
    aggregate = multi_krum(updates, ONES(5), num_malicious=1)
    assert aggregate.kept == [0, 1, 2, 3]
    assert aggregate.update.tolist() == [1.5]


def test_median_of_an_odd_count_is_the_middle_value():
    updates = torch.tensor([[1.0, -5.0], [7.0, 0.0], [2.0, 100.0]])
    aggregate = median(updates, ONES(3))
    assert aggregate.update.tolist() == [2.0, 0.0]
    assert aggregate.kept == [0, 1, 2]


def test_median_of_an_even_count_is_the_mean_of_the_two_middle_values():
    updates = torch.tensor([[1.0], [4.0], [2.0], [100.0]])
    assert median(updates, ONES(4)).update.tolist() == [3.0]  # (2 + 4) / 2, not torch's 2


def test_trimmed_mean_drops_the_extremes_of_each_coordinate():
    # n = 5, trim_fraction 0.2: one value dropped at each end of each coordinate
    updates = torch.tensor([[1.0, 10.0], [2.0, -90.0], [3.0, 20.0], [4.0, 30.0], [-80.0, 40.0]])
    aggregate = trimmed_mean(updates, ONES(5), trim_fraction=0.2)
    assert aggregate.update.tolist() == [2.0, 20.0]  # (1 + 2 + 3) / 3 and (10 + 20 + 30) / 3
    assert aggregate.kept == [0, 1, 2, 3, 4]


def test_trimmed_mean_rounds_the_count_down_and_without_trim_is_the_plain_mean():
    updates = torch.tensor([[1.0], [2.0], [6.0]])
    assert trimmed_mean(updates, ONES(3), trim_fraction=0.3).update.tolist() == [3.0]  # k = 0
    assert trimmed_mean(updates, ONES(3), trim_fraction=0.34).update.tolist() == [2.0]  # k = 1


def test_bulyan_selects_by_krum_then_averages_the_values_nearest_the_median():
    # n = 7, f = 1: theta = 5 picked by Krum, one at a time; beta = 3 per coordinate.
    # The far client 6 is never picked, nor client 5 at (5.5, 9), the farthest of the rest.
    updates = torch.tensor([[0.0, 0.0], [1.0, 3.0], [2.0, 1.0], [3.0, 4.0], [4.0, 2.0],
                            [5.5, 9.0], [90.0, -90.0]])
    aggregate = bulyan(updates, ONES(7), num_malicious=1)
    assert aggregate.kept == [0, 1, 2, 3, 4]
    # first coordinate 0 1 2 3 4: median 2, nearest three 1 2 3; second 0 3 1 4 2: 1 2 3
    assert aggregate.update.tolist() == [2.0, 2.0]


def test_norm_clipping_shrinks_only_the_updates_above_the_bound():
    updates = torch.tensor([[6.0, 8.0], [0.0, 1.0]])  # norms 10 and 1
    aggregate = norm_clipping(updates, torch.tensor([1.0, 3.0]), max_norm=5.0)
    # [3, 4] and [0, 1], weighted 1 : 3
    assert aggregate.update.tolist() == pytest.approx([0.75, 1.75])
    assert aggregate.kept == [0, 1]


def test_norm_clipping_keeps_a_zero_update_at_zero():
    assert norm_clipping(torch.zeros(2, 3), ONES(2)).update.tolist() == [0.0, 0.0, 0.0]


def test_dnc_drops_the_update_far_along_the_main_direction_of_disagreement():
    # three honest updates near [1, 0], one pushed far away: the top singular direction points
    # at it, so it has the highest score and is the f = 1 client removed
    updates = torch.tensor([[1.0, 0.0], [1.2, 0.1], [0.9, -0.1], [-9.0, 9.0]])
    aggregate = dnc(updates, torch.tensor([1.0, 2.0, 1.0, 1.0]), num_malicious=1)
    assert aggregate.kept == [0, 1, 2]
    assert aggregate.update.tolist() == pytest.approx([(1.0 + 2.4 + 0.9) / 4, 0.1 / 4])


def test_dnc_with_several_iterations_keeps_the_clients_never_flagged():
    torch.manual_seed(0)
    honest = 0.1 * torch.randn(6, 50)
    attackers = torch.full((2, 50), 3.0)
    aggregate = dnc(torch.cat([honest, attackers]), ONES(8), num_malicious=2, subsample_dim=20,
                    niters=4)
    assert aggregate.kept == [0, 1, 2, 3, 4, 5]


def test_dnc_draws_its_coordinates_from_torchs_global_generator():
    updates, weights = random_updates(1, 8, 400), ONES(8)
    runs = []
    for _ in range(2):
        torch.manual_seed(3)
        runs.append(dnc(updates, weights, num_malicious=3, subsample_dim=5, niters=3))
    assert runs[0].kept == runs[1].kept
    assert torch.equal(runs[0].update, runs[1].update)


def test_freqfed_keeps_the_majority_cluster_and_averages_it_by_samples():
    honest = torch.tensor([[1.0, 1.0, 0.0, 0.0], [1.0, 0.9, 0.1, 0.0], [0.9, 1.0, 0.0, 0.1]])
    attacker = torch.tensor([[-1.0, 1.0, -1.0, 1.0]])
    weights = torch.tensor([1.0, 1.0, 2.0, 1.0])
    aggregate = freqfed(torch.cat([honest, attacker]), weights)
    assert aggregate.kept == [0, 1, 2]
    assert torch.allclose(aggregate.update, (honest * torch.tensor([[1.0], [1.0], [2.0]])).sum(0) / 4)


def test_freqfed_keeps_everyone_when_hdbscan_finds_no_cluster(monkeypatch):
    # With a single cluster allowed and min_samples = 1, HDBSCAN rarely calls every client
    # noise; make it do so, to see the fallback
    import numpy as np
    from sklearn.cluster import HDBSCAN

    monkeypatch.setattr(HDBSCAN, "fit_predict", lambda self, distances: np.full(len(distances), -1))
    aggregate = freqfed(torch.eye(4), torch.tensor([1.0, 1.0, 1.0, 5.0]))
    assert aggregate.kept == [0, 1, 2, 3]
    assert aggregate.update.tolist() == pytest.approx([0.125, 0.125, 0.125, 0.625])


# ----------------------------------------------------------------- what every rule shares

#: One spec per registered rule, with options that fit 5 clients.
SPECS = {"mean": Mean(), "krum": Krum(num_malicious=1), "multi-krum": MultiKrum(num_malicious=1),
         "median": Median(), "trimmed-mean": TrimmedMean(trim_fraction=0.2),
         "bulyan": Bulyan(num_malicious=0), "norm-clipping": NormClipping(max_norm=1e6),
         "dnc": Dnc(num_malicious=1), "freqfed": FreqFed()}


def test_every_registered_rule_is_a_spec_class_named_as_registered():
    assert sorted(AGGREGATORS.names()) == sorted(SPECS)
    for name in AGGREGATORS:
        spec_class = AGGREGATORS[name]
        assert issubclass(spec_class, Rule) and spec_class.name == name
        assert spec_class().to_dict()["name"] == name  # the defaults make a valid spec


def test_a_spec_called_is_its_function_with_its_options():
    updates, weights = random_updates(0, 5, 7), torch.arange(1.0, 6.0)
    assert torch.equal(Krum(num_malicious=1)(updates, weights).update,
                       krum(updates, weights, num_malicious=1).update)
    assert TrimmedMean(0.2).to_dict() == {"name": "trimmed-mean", "trim_fraction": 0.2}
    assert Dnc().to_dict() == {"name": "dnc", "num_malicious": 1, "subsample_dim": 10_000,
                               "niters": 1, "filter_fraction": 1.0}


@pytest.mark.parametrize("name", sorted(SPECS))
def test_every_rule_returns_float32_on_the_updates_device_with_sorted_kept(name):
    torch.manual_seed(0)
    updates = random_updates(2, 5, 6).double()
    aggregate = SPECS[name](updates, ONES(5))
    assert isinstance(aggregate, Aggregate)
    assert aggregate.update.dtype == torch.float32 and aggregate.update.shape == (6,)
    assert aggregate.update.device == updates.device
    assert aggregate.kept == sorted(set(aggregate.kept)) and set(aggregate.kept) <= set(range(5))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("name", sorted(SPECS))
def test_every_rule_runs_on_the_gpu_and_agrees_with_the_cpu(name):
    updates, weights = random_updates(4, 5, 300), torch.arange(1.0, 6.0)
    torch.manual_seed(0)
    on_cpu = SPECS[name](updates, weights)
    torch.manual_seed(0)
    on_gpu = SPECS[name](updates.cuda(), weights)
    assert on_gpu.update.device.type == "cuda" and on_gpu.kept == on_cpu.kept
    assert torch.allclose(on_gpu.update.cpu(), on_cpu.update, atol=1e-5)


def permutation_specs(n: int) -> list[Rule]:
    """Rules without exact ties on generic updates: Krum scores on at least two neighbours, and
    Bulyan with f = 0 (all selected) or f = 3 (its last Krum picks still use two neighbours).
    DnC draws the same coordinates under the same seed, whatever the order of the clients."""
    specs = [Mean(), Median(), TrimmedMean(0.25), NormClipping(max_norm=2.0), Dnc(num_malicious=2),
             Dnc(num_malicious=1, subsample_dim=3, niters=2), FreqFed(), Bulyan(num_malicious=0)]
    if n >= 5:
        specs += [Krum(num_malicious=1), MultiKrum(num_malicious=1)]
    if n >= 15:
        specs += [Bulyan(num_malicious=3)]
    return specs


@FEW
@given(seed=st.integers(0, 2**31), n=st.sampled_from([3, 4, 5, 8, 15]), d=st.integers(1, 12),
       order=st.randoms(use_true_random=False))
def test_every_rule_ignores_the_order_of_the_clients(seed, n, d, order):
    updates = random_updates(seed, n, d)
    weights = torch.randint(1, 50, (n,), generator=torch.Generator().manual_seed(seed)).float()
    perm = list(range(n))
    order.shuffle(perm)
    for spec in permutation_specs(n):
        torch.manual_seed(seed)
        before = spec(updates, weights)
        torch.manual_seed(seed)
        after = spec(updates[perm], weights[perm])
        assert torch.allclose(before.update, after.update, atol=1e-5), spec
        assert sorted(perm[k] for k in after.kept) == before.kept, spec


@FEW
@given(update=st.lists(st.floats(-100, 100, width=32), min_size=1, max_size=6),
       n=st.integers(3, 8), name=st.sampled_from(sorted(SPECS)))
def test_identical_updates_aggregate_to_that_update(update, n, name):
    spec = SPECS[name]
    if isinstance(spec, (Krum, MultiKrum)) and n < 5:
        spec = type(spec)(num_malicious=0)
    updates = torch.tensor(update).repeat(n, 1)
    aggregate = spec(updates, torch.arange(1.0, n + 1))
    assert torch.allclose(aggregate.update, torch.tensor(update), rtol=1e-5, atol=1e-5)


def honest_and_attackers(seed: int, honest: int, attackers: int, d: int, far: float):
    gen = torch.Generator().manual_seed(seed)
    good = torch.randn(honest, d, generator=gen)
    bad = far * (torch.rand(attackers, d, generator=gen) * 2 - 1)  # anywhere in [-far, far]
    return good, torch.cat([good, bad])


@FEW
@given(seed=st.integers(0, 2**31), honest=st.integers(2, 8), attackers=st.integers(0, 7),
       d=st.integers(1, 6), far=st.sampled_from([1.0, 1e3, 1e20]))
def test_median_and_trimmed_mean_stay_in_the_honest_range_while_attackers_are_a_minority(
        seed, honest, attackers, d, far):
    attackers = min(attackers, honest - 1)  # f < n / 2
    n = honest + attackers
    good, updates = honest_and_attackers(seed, honest, attackers, d, far)
    low, high = good.min(dim=0).values, good.max(dim=0).values
    for aggregate in (median(updates, ONES(n)),
                      trimmed_mean(updates, ONES(n), trim_fraction=attackers / n)):
        assert bool((aggregate.update >= low - 1e-5).all() and (aggregate.update <= high + 1e-5).all())


@FEW
@given(seed=st.integers(0, 2**31), f=st.integers(0, 4), extra=st.integers(0, 4),
       d=st.integers(1, 10))
def test_krum_keeps_an_honest_update_when_the_attackers_are_far(seed, f, extra, d):
    n = 2 * f + 3 + extra  # n > 2f + 2
    gen = torch.Generator().manual_seed(seed)
    honest = torch.randn(n - f, d, generator=gen)
    direction = torch.randn(f, d, generator=gen)
    far = 1e4 * direction / direction.norm(dim=1, keepdim=True)  # norm 10,000, any direction
    aggregate = krum(torch.cat([honest, far]), ONES(n), num_malicious=f)
    assert aggregate.kept[0] < n - f
    assert torch.equal(aggregate.update, honest[aggregate.kept[0]])


# --------------------------------------------------------- against an independent library


def test_krum_and_multi_krum_agree_with_byzfl():
    byzfl = pytest.importorskip("byzfl")
    for seed in range(20):
        n, f = 7 + seed % 5, seed % 3
        updates = random_updates(seed, n, 30)
        # byzfl scores on n - f - 1 neighbours; the kit on n - f - 2: its f + 1 is the kit's f
        assert torch.allclose(krum(updates, ONES(n), num_malicious=f).update,
                              byzfl.Krum(f + 1)(updates.clone()))
        assert torch.allclose(
            multi_krum(updates, ONES(n), num_malicious=f, num_selected=n - f - 1).update,
            byzfl.MultiKrum(f + 1)(updates.clone()), atol=1e-6)


def test_median_trimmed_mean_and_clipping_agree_with_byzfl():
    byzfl = pytest.importorskip("byzfl")
    for seed in range(20):
        n, d = 2 + seed, 25
        updates = random_updates(seed, n, d) * 3
        assert torch.allclose(median(updates, ONES(n)).update, byzfl.Median()(updates.clone()))
        k = seed % ((n + 1) // 2)  # 2k < n
        assert torch.allclose(trimmed_mean(updates, ONES(n), trim_fraction=k / n).update,
                              byzfl.TrMean(k)(updates.clone()), atol=1e-6)
        clipped = byzfl.Clipping(c=10.0)(updates.clone())
        assert torch.allclose(norm_clipping(updates, ONES(n), max_norm=10.0).update,
                              byzfl.Average()(clipped), atol=1e-6)


# -------------------------------------------------------------------------- bad options

BAD_OPTIONS = [
    (lambda: Krum(num_malicious=-1), "num_malicious=-1 is not allowed: it must be an integer >= 0"),
    (lambda: Krum(num_malicious=True), "num_malicious=True is not allowed"),
    (lambda: Krum(num_malicious=1.0), "num_malicious=1.0 is not allowed"),
    (lambda: Krum(num_malicious=4).check_clients(10),
     "num_malicious=4 is not allowed: krum needs num_clients > 2 * num_malicious + 2 "
     "(10 clients allow at most 3)"),
    (lambda: krum(torch.zeros(2, 3), ONES(2), num_malicious=0),
     "num_malicious=0 is not allowed: krum needs num_clients > 2 * num_malicious + 2 "
     "(2 clients allow none: too few)"),
    (lambda: multi_krum(torch.zeros(4, 3), ONES(4), num_malicious=1),
     "num_malicious=1 is not allowed: multi-krum needs num_clients > 2 * num_malicious + 2"),
    (lambda: MultiKrum(num_selected=0), "num_selected=0 is not allowed: it must be an integer >= 1"),
    (lambda: MultiKrum(num_malicious=1, num_selected=6).check_clients(5),
     "num_selected=6 is not allowed: it must be an integer >= 1 and <= 5"),
    (lambda: Bulyan(num_malicious=2).check_clients(10),
     "num_malicious=2 is not allowed: bulyan needs num_clients >= 4 * num_malicious + 3 "
     "(10 clients allow at most 1)"),
    (lambda: bulyan(torch.zeros(6, 2), ONES(6), num_malicious=1), "num_malicious=1 is not allowed"),
    (lambda: TrimmedMean(0.5), "trim_fraction=0.5 is not allowed: it must be a number >= 0 and < 0.5"),
    (lambda: TrimmedMean(-0.1), "trim_fraction=-0.1 is not allowed"),
    (lambda: TrimmedMean(math.nan), "trim_fraction=nan is not allowed"),
    (lambda: TrimmedMean(False), "trim_fraction=False is not allowed"),
    (lambda: trimmed_mean(torch.zeros(4, 2), ONES(4), trim_fraction=0.6),
     "trim_fraction=0.6 is not allowed"),
    (lambda: NormClipping(0.0), "max_norm=0.0 is not allowed: it must be a finite number > 0.0"),
    (lambda: NormClipping(-1.0), "max_norm=-1.0 is not allowed"),
    (lambda: NormClipping(math.inf), "max_norm=inf is not allowed"),
    (lambda: NormClipping(math.nan), "max_norm=nan is not allowed"),
    (lambda: norm_clipping(torch.zeros(2, 2), ONES(2), max_norm=True), "max_norm=True is not allowed"),
    (lambda: Dnc(subsample_dim=0), "subsample_dim=0 is not allowed: it must be an integer >= 1"),
    (lambda: Dnc(niters=0), "niters=0 is not allowed: it must be an integer >= 1"),
    (lambda: Dnc(filter_fraction=0.0), "filter_fraction=0.0 is not allowed: it must be a finite number > 0.0"),
    (lambda: Dnc(num_malicious=-2), "num_malicious=-2 is not allowed"),
    (lambda: Dnc(num_malicious=3, filter_fraction=2.0).check_clients(6),
     "num_malicious=3 is not allowed: it must be such that filter_fraction * num_malicious"),
    (lambda: FreqFed(low_fraction=0.0), "low_fraction=0.0 is not allowed: it must be a finite number > 0.0 and <= 1.0"),
    (lambda: FreqFed(low_fraction=1.5), "low_fraction=1.5 is not allowed"),
    (lambda: freqfed(torch.zeros(1, 3), ONES(1)), "num_clients=1 is not allowed: it must be at least 2"),
    (lambda: median(torch.zeros(3), ONES(3)), "client_updates.shape=(3,) is not allowed"),
    (lambda: median(torch.zeros(2, 3, dtype=torch.long), ONES(2)), "client_updates.dtype=torch.int64 is not allowed"),
    (lambda: bulyan(torch.zeros(3, 2), torch.tensor([1.0, -1.0, 1.0])), "weights=[1.0, -1.0, 1.0] is not allowed"),
]


@pytest.mark.parametrize("make, message", BAD_OPTIONS)
def test_an_impossible_option_fails_in_one_line_naming_it(make, message):
    with pytest.raises(ValueError) as error:
        make()
    text = str(error.value)
    assert text.startswith(message) and "\n" not in text


def test_a_refused_option_set_later_leaves_the_spec_as_it_was():
    spec = Krum(num_malicious=2)
    with pytest.raises(ValueError, match="num_malicious=-1 is not allowed"):
        spec.num_malicious = -1
    assert spec.num_malicious == 2
