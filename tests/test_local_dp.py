"""Local DP on every honest client: it clips every update it sends, noises it at the stated
scale, is plain FedAvg when switched off, counts epsilon with Opacus, and composes with robust
aggregators and attackers (who do not run it)."""

from __future__ import annotations

import math
import re

import pytest
import torch

from fltutor.aggregators import Krum
from fltutor.attacks.byzantine import SignFlip
from fltutor.defenses.dp import DPConfig
from fltutor.defenses.local_dp import LocalDPConfig, clip_to_norm, local_epsilon, privatize
from fltutor.federation import Federation
from fltutor.models import flat_parameters
from fltutor.parts import DEFENSES

HUGE_CLIP = 1e6  # far above any update's norm here: clipping scales every update by 1
SMALL_CLIP = 1e-3  # far below every update's norm here: every honest update is clipped


def submitted_updates(federation: Federation) -> list[torch.Tensor]:
    """Run ``federation``; return each round's submitted updates (rows in client order)."""
    rounds: list[torch.Tensor] = []
    federation.observers.append(lambda record: rounds.append(record.client_updates.clone()))
    federation.run(progress=False)
    return rounds


def without(history: list[dict], *keys: str) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in ("seconds", *keys)} for r in history]


def test_every_submitted_update_keeps_the_clip_bound(tiny_config, mnist_tiny):
    plain = submitted_updates(Federation.build(tiny_config(num_rounds=3), mnist_tiny))
    clipped = submitted_updates(Federation.build(tiny_config(num_rounds=3, defenses=(
        LocalDPConfig(noise_multiplier=0.0, max_update_norm=SMALL_CLIP),)), mnist_tiny))
    assert all(norm > 10 * SMALL_CLIP for r in plain for norm in r.norm(dim=1))  # control
    norms = torch.cat([r.norm(dim=1) for r in clipped])
    assert len(norms) == 9 and bool((norms <= SMALL_CLIP * (1 + 1e-5)).all())
    assert norms.min() >= SMALL_CLIP * (1 - 1e-5)  # shrunk onto the bound, not to zero


def test_zero_noise_and_a_huge_clip_is_plain_fedavg_exactly(tiny_config, mnist_tiny):
    plain = Federation.build(tiny_config(num_rounds=3), mnist_tiny)
    plain.run(progress=False)
    private = Federation.build(tiny_config(num_rounds=3, defenses=(
        LocalDPConfig(noise_multiplier=0.0, max_update_norm=HUGE_CLIP),)), mnist_tiny)
    private.run(progress=False)
    assert without(private.history, "local_epsilon") == without(plain.history)
    assert torch.equal(flat_parameters(private.global_model), flat_parameters(plain.global_model))
    assert [r["local_epsilon"] for r in private.history] == [math.inf] * 3  # no noise, no guarantee


def test_the_noise_has_standard_deviation_sigma_times_the_clip():
    torch.manual_seed(0)
    update = torch.randn(200_000)  # norm about 447: clipped to C
    sigma, clip = 0.5, 2.0
    noise = privatize(update, clip, sigma) - clip_to_norm(update, clip)
    assert noise.std().item() == pytest.approx(sigma * clip, rel=0.01)
    assert abs(noise.mean().item()) < 0.01 * sigma * clip
    # and it is drawn afresh: two releases of the same update differ
    assert not torch.equal(privatize(update, clip, sigma), privatize(update, clip, sigma))


def test_a_private_federation_sends_noise_of_the_stated_size(tiny_config, mnist_tiny):
    sigma, clip = 1.0, 0.01
    sent = submitted_updates(Federation.build(tiny_config(num_rounds=1, defenses=(
        LocalDPConfig(noise_multiplier=sigma, max_update_norm=clip),)), mnist_tiny))[0]
    num_params = sent.shape[1]
    # ||clip(u) + noise||^2 is about C^2 + sigma^2 C^2 num_params (the noise dominates)
    expected = clip * math.sqrt(1 + sigma**2 * num_params)
    assert sent.norm(dim=1).tolist() == pytest.approx([expected] * 3, rel=0.01)


def test_epsilon_falls_with_noise_and_grows_with_rounds():
    by_noise = [local_epsilon(sigma, rounds=10, delta=1e-5) for sigma in (0.5, 1.0, 2.0, 4.0)]
    by_rounds = [local_epsilon(1.0, rounds=r, delta=1e-5) for r in (1, 2, 10, 100)]
    assert by_noise == sorted(by_noise, reverse=True) and len(set(by_noise)) == 4
    assert by_rounds == sorted(by_rounds) and len(set(by_rounds)) == 4
    # a smaller delta asks for more: a larger epsilon at the same noise
    assert local_epsilon(1.0, 10, delta=1e-8) > local_epsilon(1.0, 10, delta=1e-5)


def test_epsilon_is_the_gaussian_mechanism_on_sensitivity_two_clips():
    # Replacing a client's data moves its clipped update by up to 2C: noise sigma*C is
    # noise multiplier sigma / 2 of that; the accountant's add/remove view (sensitivity C) at
    # noise multiplier sigma / 2 must agree, and sigma itself gives less.
    from opacus.accountants import RDPAccountant

    from fltutor.defenses.dp import RENYI_ORDERS

    accountant = RDPAccountant()
    for _ in range(5):
        accountant.step(noise_multiplier=1.5, sample_rate=1.0)
    assert local_epsilon(3.0, 5, 1e-5) == pytest.approx(
        accountant.get_epsilon(1e-5, alphas=RENYI_ORDERS))


def test_each_round_records_the_epsilon_spent_so_far(tiny_config, mnist_tiny):
    spec = LocalDPConfig(noise_multiplier=2.0, max_update_norm=0.1, delta=1e-5)
    federation = Federation.build(tiny_config(num_rounds=3, defenses=(spec,)), mnist_tiny)
    history = federation.run(progress=False)
    assert [r["local_epsilon"] for r in history] == [local_epsilon(2.0, t, 1e-5) for t in (1, 2, 3)]


def test_it_composes_with_krum_and_sign_flipping_attackers_who_do_not_run_it(tiny_config,
                                                                             mnist_tiny):
    # Prepare: clients 0 and 1 flip signs (they train first, so their round-1 training draws
    # the same random numbers with and without the defense); Krum aggregates.
    settings = dict(num_clients=7, num_rounds=2, aggregator=Krum(num_malicious=2),
                    attackers=(SignFlip(clients=(0, 1)),))
    plain = submitted_updates(Federation.build(tiny_config(**settings), mnist_tiny))
    # Execute
    private = Federation.build(tiny_config(**settings, defenses=(
        LocalDPConfig(noise_multiplier=0.0, max_update_norm=SMALL_CLIP),)), mnist_tiny)
    sent = submitted_updates(private)
    # Assert: the attackers send their raw flipped updates, the honest clients clipped ones
    torch.testing.assert_close(sent[0][:2], plain[0][:2], rtol=0, atol=0)
    assert bool((sent[0][:2].norm(dim=1) > 10 * SMALL_CLIP).all())
    honest_norms = torch.cat([r[2:].norm(dim=1) for r in sent])
    assert bool((honest_norms <= SMALL_CLIP * (1 + 1e-5)).all())
    assert all(len(r["kept"]) == 1 and math.isinf(r["local_epsilon"]) for r in private.history)


def test_it_composes_with_record_level_dp_each_recording_its_own_epsilon(tiny_config, mnist_tiny):
    federation = Federation.build(tiny_config(num_rounds=1, defenses=(
        DPConfig(), LocalDPConfig(noise_multiplier=0.0, max_update_norm=SMALL_CLIP))), mnist_tiny)
    sent = submitted_updates(federation)[0]
    assert bool((sent.norm(dim=1) <= SMALL_CLIP * (1 + 1e-5)).all())
    record = federation.history[0]
    assert math.isfinite(record["epsilon"]) and math.isinf(record["local_epsilon"])


def test_it_is_registered_and_written_as_a_defense(tiny_config):
    assert DEFENSES["local-dp"] is LocalDPConfig
    config = tiny_config(defenses=(LocalDPConfig(noise_multiplier=0.5),))
    assert config.to_dict()["defenses"] == [{"name": "local-dp", "noise_multiplier": 0.5,
                                              "max_update_norm": 1.0, "delta": 1e-5}]


FINITE = "is not allowed: it must be a finite number"


@pytest.mark.parametrize("settings, message", [
    (dict(noise_multiplier=-0.1), f"noise_multiplier=-0.1 {FINITE} >= 0.0 and <= 1000.0"),
    (dict(noise_multiplier=math.nan), f"noise_multiplier=nan {FINITE} >= 0.0 and <= 1000.0"),
    (dict(max_update_norm=0.0), f"max_update_norm=0.0 {FINITE} > 0.0 and <= 1000000000000.0"),
    (dict(max_update_norm=-1.0), f"max_update_norm=-1.0 {FINITE} > 0.0 and <= 1000000000000.0"),
    (dict(max_update_norm=math.inf), f"max_update_norm=inf {FINITE} > 0.0 and <= 1000000000000.0"),
    (dict(delta=1.0), "delta=1.0 is not allowed: it must be a number with 0 < delta < 1"),
    (dict(delta=0.0), "delta=0.0 is not allowed: it must be a number with 0 < delta < 1"),
    (dict(delta=-1e-5), "delta=-1e-05 is not allowed: it must be a number with 0 < delta < 1"),
])
def test_bad_local_dp_settings_fail_in_one_line_naming_the_value(settings, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):  # the whole message: one line
        LocalDPConfig(**settings)


def test_a_bad_round_count_for_epsilon_is_refused():
    with pytest.raises(ValueError, match="rounds=0 is not allowed"):
        local_epsilon(1.0, rounds=0, delta=1e-5)
