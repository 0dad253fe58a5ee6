"""Client-level DP on the server (DP-FedAvg): it clips every row the rule aggregates, the
attackers' too, noises the aggregate at the stated scale, is plain FedAvg when switched off,
counts epsilon with Opacus, moves an adaptive clip to the chosen quantile of the update norms,
resumes exactly, and wraps any rule."""

from __future__ import annotations

import math
import re
from types import SimpleNamespace

import pytest
import torch

from fltutor.aggregators import Krum, Median, mean
from fltutor.attacks.byzantine import SignFlip
from fltutor.cli import build_parser, defense_parts
from fltutor.defenses.client_dp import ClientDPConfig, client_epsilon, update_noise_multiplier
from fltutor.defenses.dp import RENYI_ORDERS, DPConfig
from fltutor.defenses.local_dp import LocalDPConfig, clip_to_norm
from fltutor.experiments import resume, save_progress
from fltutor.federation import Federation
from fltutor.models import flat_parameters
from fltutor.parts import DEFENSES

HUGE_CLIP = 1e6  # far above any update's norm here: clipping scales every update by 1
SMALL_CLIP = 1e-3  # far below every update's norm here: every update is clipped
TOLERANCE = 1e-5  # a clipped norm's float32 rounding


def without_client_dp(history: list[dict]) -> list[dict]:
    """The history without timings and without what client-level DP records."""
    return [{k: v for k, v in r.items() if k != "seconds" and not k.startswith("client_")}
            for r in history]


def protected_with_a_spy(config, data, spec: ClientDPConfig) -> tuple[Federation, list]:
    """A federation of ``config`` whose rule records every batch of rows it gets, then
    protected by ``spec``: the list fills, round by round, with what the rule aggregated."""
    federation = Federation.build(config, data)
    rule, received = federation.aggregate, []

    def spy(rows: torch.Tensor, weights: torch.Tensor):
        received.append(rows.clone())
        return rule(rows, weights)

    federation.aggregate = spy
    spec.protect(federation)
    return federation, received


@pytest.mark.parametrize("target_quantile", [None, 0.5])
def test_zero_noise_and_a_huge_clip_is_plain_fedavg_exactly(tiny_config, mnist_tiny,
                                                            target_quantile):
    plain = Federation.build(tiny_config(num_rounds=2), mnist_tiny)
    plain.run(progress=False)
    spec = ClientDPConfig(noise_multiplier=0.0, max_update_norm=HUGE_CLIP,
                          target_quantile=target_quantile)
    private = Federation.build(tiny_config(num_rounds=2, defenses=(spec,)), mnist_tiny)
    private.run(progress=False)
    assert without_client_dp(private.history) == without_client_dp(plain.history)
    assert torch.equal(flat_parameters(private.global_model), flat_parameters(plain.global_model))
    assert [r["client_epsilon"] for r in private.history] == [math.inf] * 2


def test_every_row_the_rule_aggregates_keeps_the_clip_bound(tiny_config, mnist_tiny):
    federation, received = protected_with_a_spy(
        tiny_config(num_rounds=2), mnist_tiny,
        ClientDPConfig(noise_multiplier=0.0, max_update_norm=SMALL_CLIP))
    submitted = []
    federation.observers.append(lambda record: submitted.append(record.client_updates.clone()))
    federation.run(progress=False)
    raw = torch.cat([rows.norm(dim=1) for rows in submitted])
    assert bool((raw > 10 * SMALL_CLIP).all())  # control: the server saw the raw updates
    norms = torch.cat([rows.norm(dim=1) for rows in received])
    assert len(norms) == 6 and bool((norms <= SMALL_CLIP * (1 + TOLERANCE)).all())
    assert bool((norms >= SMALL_CLIP * (1 - TOLERANCE)).all())  # onto the bound, not to zero
    assert [r["client_clip"] for r in federation.history] == [SMALL_CLIP] * 2


@pytest.mark.parametrize("spec, counts", [
    (ClientDPConfig(noise_multiplier=0.5, max_update_norm=2.0), [1.0, 1.0, 1.0]),
    (ClientDPConfig(noise_multiplier=0.5, max_update_norm=2.0), [1.0, 2.0, 5.0]),
    (ClientDPConfig(noise_multiplier=0.5, max_update_norm=2.0, target_quantile=0.5,
                    count_noise=0.4), [1.0, 2.0, 5.0]),
])
def test_the_noise_on_the_aggregate_has_the_stated_standard_deviation(tiny_config, mnist_tiny,
                                                                      spec, counts):
    federation = Federation.build(tiny_config(defenses=(spec,)), mnist_tiny)
    torch.manual_seed(0)
    updates, weights = torch.randn(3, 200_000), torch.tensor(counts)  # norms about 447: clipped
    clipped = torch.stack([clip_to_norm(u, spec.max_update_norm) for u in updates])
    noise = federation.aggregate(updates, weights).update - mean(clipped, weights).update
    sigma = (update_noise_multiplier(spec.noise_multiplier, spec.count_noise) if spec.adaptive
             else spec.noise_multiplier)
    expected = sigma * spec.max_update_norm * max(counts) / sum(counts)
    assert noise.std().item() == pytest.approx(expected, rel=0.01)
    assert abs(noise.mean().item()) < 0.01 * expected


def test_adaptive_clipping_spends_part_of_the_noise_on_the_count():
    # The update keeps a bit more than sigma; the less noise the count gets, the more.
    assert update_noise_multiplier(1.0, 5.0) == pytest.approx((1 - 1 / 100) ** -0.5)
    assert 1.0 < update_noise_multiplier(1.0, 5.0) < update_noise_multiplier(1.0, 1.0)


def test_client_epsilon_is_opacus_rdp_of_the_sampled_gaussian_mechanism():
    from opacus.accountants import RDPAccountant

    accountant = RDPAccountant()
    for _ in range(20):
        accountant.step(noise_multiplier=1.2, sample_rate=0.3)
    assert client_epsilon(1.2, 0.3, 20, 1e-5) == pytest.approx(
        accountant.get_epsilon(1e-5, alphas=RENYI_ORDERS))


def test_client_epsilon_grows_with_rounds_falls_with_noise_and_is_infinite_without_it():
    by_noise = [client_epsilon(sigma, 0.1, rounds=50, delta=1e-5) for sigma in (0.5, 1, 2, 4)]
    by_rounds = [client_epsilon(1.0, 0.1, rounds=r, delta=1e-5) for r in (1, 10, 100, 1000)]
    assert by_noise == sorted(by_noise, reverse=True) and len(set(by_noise)) == 4
    assert by_rounds == sorted(by_rounds) and len(set(by_rounds)) == 4
    # sampling fewer clients amplifies privacy: a smaller epsilon
    assert client_epsilon(1.0, 0.1, 50, 1e-5) < client_epsilon(1.0, 1.0, 50, 1e-5)
    assert client_epsilon(0.0, 0.1, rounds=1, delta=1e-5) == math.inf


@pytest.mark.parametrize("num_clients, sample_rate", [(4, 0.5), (3, 2 / 3)])
def test_each_round_records_its_clip_and_the_epsilon_spent_so_far(tiny_config, mnist_tiny,
                                                                  num_clients, sample_rate):
    # client_fraction 0.5 is 2 clients of 4, and of 3 too (rounded): the share q really sampled
    spec = ClientDPConfig(noise_multiplier=1.0, max_update_norm=0.1, delta=1e-5)
    config = tiny_config(num_clients=num_clients, client_fraction=0.5, num_rounds=2,
                         defenses=(spec,))
    history = Federation.build(config, mnist_tiny).run(progress=False)
    assert [r[spec.epsilon_metric] for r in history] == [
        client_epsilon(1.0, sample_rate=sample_rate, rounds=t, delta=1e-5) for t in (1, 2)]
    assert [r["client_clip"] for r in history] == [0.1] * 2
    assert all(len(r["clients"]) == 2 for r in history)


@pytest.mark.parametrize("target_quantile, low, high", [(0.5, 5, 6), (0.2, 2, 3), (0.9, 9, 10)])
def test_an_adaptive_clip_moves_to_the_quantile_of_the_update_norms(tiny_config, mnist_tiny,
                                                                   target_quantile, low, high):
    # Ten synthetic updates of norms 1, 2, ..., 10: a clip C in [k, k + 1) leaves k of them
    # unclipped, so without noise the share is exactly gamma there and C stays.
    spec = ClientDPConfig(noise_multiplier=0.0, max_update_norm=1.0,
                          target_quantile=target_quantile)
    federation = Federation.build(tiny_config(num_clients=10, defenses=(spec,)), mnist_tiny)
    torch.manual_seed(0)
    directions = torch.nn.functional.normalize(torch.randn(10, 50), dim=1)
    updates = torch.arange(1.0, 11.0)[:, None] * directions
    observe = federation.observers[-1]
    for t in range(1, 301):  # the round loop's two steps of client-level DP, on these updates
        federation.aggregate(updates, torch.ones(10))
        federation.history.append(observe(SimpleNamespace(round=t)))
    clips = [r["client_clip"] for r in federation.history]
    assert clips[0] == 1.0 and low <= clips[-1] < high
    assert all(low <= c < high for c in clips[-50:])  # and it stays there


def test_with_a_noised_count_the_adaptive_clip_stays_near_the_median(tiny_config, mnist_tiny):
    spec = ClientDPConfig(noise_multiplier=0.5, max_update_norm=1.0, target_quantile=0.5,
                          count_noise=1.0)
    federation = Federation.build(tiny_config(num_clients=10, defenses=(spec,)), mnist_tiny)
    torch.manual_seed(0)
    updates = torch.arange(1.0, 11.0)[:, None] * torch.nn.functional.normalize(
        torch.randn(10, 50), dim=1)
    observe = federation.observers[-1]
    for t in range(1, 301):
        federation.aggregate(updates, torch.ones(10))
        federation.history.append(observe(SimpleNamespace(round=t)))
    late = torch.tensor([r["client_clip"] for r in federation.history[-100:]])
    assert 4 < late.median().item() < 7
    shares = [r["client_unclipped_share"] for r in federation.history]
    assert len(set(shares)) == len(shares)  # noised: no two releases alike


@pytest.fixture
def adaptive_config(tiny_config):
    """Three rounds of adaptive clipping from a clip below every update: C moves every round."""
    spec = ClientDPConfig(noise_multiplier=0.2, max_update_norm=0.01, target_quantile=0.5,
                          count_noise=1.0)
    return tiny_config(num_rounds=3, defenses=(spec,))


def test_a_resumed_adaptive_run_equals_an_uninterrupted_one(adaptive_config, mnist_tiny,
                                                           tmp_path):
    straight = Federation.build(adaptive_config, mnist_tiny)
    straight.run(progress=False)
    interrupted = Federation.build(adaptive_config, mnist_tiny)
    interrupted.run(num_rounds=2, progress=False)
    save_progress(interrupted, tmp_path)
    resumed = Federation.build(adaptive_config, mnist_tiny)
    resume(resumed, tmp_path)
    resumed.run(progress=False)
    timeless = lambda history: [{k: v for k, v in r.items() if k != "seconds"}  # noqa: E731
                                for r in history]
    assert timeless(resumed.history) == timeless(straight.history)
    assert torch.equal(flat_parameters(resumed.global_model),
                       flat_parameters(straight.global_model))
    assert len({r["client_clip"] for r in straight.history}) == 3  # the clip did move


@pytest.mark.parametrize("rule", [Krum(num_malicious=2), Median()])
def test_it_clips_the_attackers_too_and_noises_what_a_robust_rule_returns(tiny_config, mnist_tiny,
                                                                          rule):
    sigma = 1.0
    config = tiny_config(num_clients=7, num_rounds=1, aggregator=rule,
                         attackers=(SignFlip(clients=(0, 1)),))
    spec = ClientDPConfig(noise_multiplier=sigma, max_update_norm=SMALL_CLIP)
    federation, received = protected_with_a_spy(config, mnist_tiny, spec)
    record = federation.run_round()
    rows = received[0]
    assert bool((record.client_updates[:2].norm(dim=1) > 10 * SMALL_CLIP).all())  # raw flips
    assert bool((rows.norm(dim=1) <= SMALL_CLIP * (1 + TOLERANCE)).all())  # attackers clipped
    samples = [client.num_samples for client in federation.clients]
    noise = record.global_after - record.global_before - rule(rows, torch.ones(7)).update
    expected = sigma * SMALL_CLIP * max(samples) / sum(samples)  # the mean's sensitivity
    assert noise.std().item() == pytest.approx(expected, rel=0.02)
    assert math.isfinite(federation.history[0]["client_epsilon"])
    assert len(record.kept_clients) == (1 if isinstance(rule, Krum) else 7)


def test_it_is_registered_and_written_as_a_defense(tiny_config):
    assert DEFENSES["client-dp"] is ClientDPConfig
    config = tiny_config(defenses=(ClientDPConfig(noise_multiplier=0.5),))
    assert config.to_dict()["defenses"] == [{
        "name": "client-dp", "noise_multiplier": 0.5, "max_update_norm": 1.0, "delta": 1e-5,
        "target_quantile": None, "clip_learning_rate": 0.2, "count_noise": None}]


@pytest.mark.parametrize("spec, clip, epsilon", [
    (DPConfig, "max_grad_norm", "epsilon"), (LocalDPConfig, "max_update_norm", "local_epsilon"),
    (ClientDPConfig, "max_update_norm", "client_epsilon")])
def test_every_dp_spec_names_its_clip_setting_and_epsilon_metric(spec, clip, epsilon):
    assert (spec.clip_setting, spec.epsilon_metric) == (clip, epsilon)
    assert clip in spec.__dataclass_fields__  # a field a sweep can set
    assert "clip_setting" not in spec().to_dict()  # a class constant, not a setting


FINITE = "is not allowed: it must be a finite number"


@pytest.mark.parametrize("settings, message", [
    (dict(noise_multiplier=-1.0), f"noise_multiplier=-1.0 {FINITE} >= 0.0 and <= 1000.0"),
    (dict(noise_multiplier=math.nan), f"noise_multiplier=nan {FINITE} >= 0.0 and <= 1000.0"),
    (dict(max_update_norm=0.0), f"max_update_norm=0.0 {FINITE} > 0.0 and <= 1000000000000.0"),
    (dict(max_update_norm=-1.0), f"max_update_norm=-1.0 {FINITE} > 0.0 and <= 1000000000000.0"),
    (dict(delta=0.0), "delta=0.0 is not allowed: it must be a number with 0 < delta < 1"),
    (dict(delta=1.0), "delta=1.0 is not allowed: it must be a number with 0 < delta < 1"),
    (dict(target_quantile=0.0),
     "target_quantile=0.0 is not allowed: it must be a number with 0 < target_quantile < 1"),
    (dict(target_quantile=1.5),
     "target_quantile=1.5 is not allowed: it must be a number with 0 < target_quantile < 1"),
    (dict(clip_learning_rate=0.0), f"clip_learning_rate=0.0 {FINITE} > 0.0 and <= 1000.0"),
    (dict(clip_learning_rate=-0.2), f"clip_learning_rate=-0.2 {FINITE} > 0.0 and <= 1000.0"),
    (dict(count_noise=0.0), f"count_noise=0.0 {FINITE} > 0.0 and <= 1000"),
    (dict(count_noise=-1.0), f"count_noise=-1.0 {FINITE} > 0.0 and <= 1000"),
])
def test_bad_client_dp_settings_fail_in_one_line_naming_the_value(settings, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):  # the whole message: one line
        ClientDPConfig(**settings)


def test_adaptive_noise_the_count_cannot_pay_for_is_refused_naming_both(tiny_config):
    # 3 clients per round: the default count noise is 3 / 20 = 0.15, too little for sigma 1
    spec = ClientDPConfig(noise_multiplier=1.0, target_quantile=0.5)
    with pytest.raises(ValueError, match=r"^noise_multiplier=1\.0 is not allowed: it must be "
                                         r"above 0 and below 2 \* count_noise = 0\.3 "
                                         r"\(count_noise=0\.15: [^\n]*\)$"):
        tiny_config(defenses=(spec,))
    tiny_config(defenses=(spec.replace(count_noise=0.6),))  # 2 * 0.6 > 1: fits


@pytest.mark.parametrize("arguments, message", [
    (dict(sample_rate=0.0), "sample_rate=0.0 is not allowed"),
    (dict(sample_rate=1.5), "sample_rate=1.5 is not allowed"),
    (dict(rounds=0), "rounds=0 is not allowed"),
    (dict(noise_multiplier=-1.0), "noise_multiplier=-1.0 is not allowed"),
])
def test_bad_arguments_for_client_epsilon_are_refused(arguments, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        client_epsilon(**{**dict(noise_multiplier=1.0, sample_rate=0.1, rounds=10,
                                 delta=1e-5), **arguments})


def test_the_curious_command_takes_client_dp_and_its_options():
    args = build_parser().parse_args(["curious", "--out", "run", "--dp", "client-dp",
                                      "--dp-option", "noise_multiplier=0.5",
                                      "--dp-option", "target_quantile=0.5"])
    assert defense_parts(args) == (ClientDPConfig(noise_multiplier=0.5, target_quantile=0.5),)
