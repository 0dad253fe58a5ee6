"""DP-SGD on every client through Opacus: it is SGD when switched off, it clips, it noises at
the configured scale, it counts epsilon, and a private run repeats and resumes exactly."""

from __future__ import annotations

import copy
import math
import re
import warnings

import pytest
import torch
from torch import nn

from fltutor.config import FedConfig
from fltutor.defenses.dp import DPConfig, DPTraining, opacus_compatible, poisson_batches
from fltutor.experiments import resume, save_progress
from fltutor.federation import Federation
from fltutor.models import Classifier, LeNet5, flat_parameters
from fltutor.training import LocalTraining

LR = 0.25
FULL_BATCH = LocalTraining(epochs=1, batch_size=None, optimizer="sgd", lr=LR,
                           keep_optimizer_state=False)
NO_CLIPPING = 1e6  # far above any gradient norm here: clipping scales every gradient by 1


@pytest.fixture
def records(mnist_tiny):
    """32 real MNIST images with their labels."""
    return mnist_tiny.train_x[:32], mnist_tiny.train_y[:32]


@pytest.fixture
def start_model() -> nn.Module:
    """A seeded LeNet-5: no dropout, so plain and DP training see the same forward pass."""
    torch.manual_seed(0)
    return LeNet5(10)


def weight_change(training, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Train a copy of ``model`` on (x, y) with ``training``; return how its weights moved."""
    model = copy.deepcopy(model)
    before = flat_parameters(model)
    training.train(model, training.make_optimizer(model), x, y)
    return flat_parameters(model) - before


def dp_full_batch(**settings) -> DPTraining:
    """DP-SGD taking one step on all records (sample rate 1: every record in every batch)."""
    return DPTraining(FULL_BATCH, DPConfig(lr=LR, **settings))


def test_zero_noise_and_no_clipping_is_plain_sgd(start_model, records):
    plain = weight_change(FULL_BATCH, start_model, *records)
    private = weight_change(dp_full_batch(noise_multiplier=0.0, max_grad_norm=NO_CLIPPING),
                            start_model, *records)
    assert plain.abs().max() > 1e-3  # a real step, not two zeros agreeing
    torch.testing.assert_close(private, plain, rtol=1e-4, atol=1e-7)


def test_noise_has_standard_deviation_sigma_times_clipping_norm(start_model, records):
    sigma, clip = 0.3, 1.5
    clean = weight_change(dp_full_batch(noise_multiplier=0.0, max_grad_norm=clip),
                          start_model, *records)
    noisy = weight_change(dp_full_batch(noise_multiplier=sigma, max_grad_norm=clip),
                          start_model, *records)
    # w <- w - lr * (sum of clipped gradients + noise) / batch size, with the same clipped sum
    noise = (clean - noisy) * len(records[1]) / LR
    assert noise.std().item() == pytest.approx(sigma * clip, rel=0.02)
    assert abs(noise.mean().item()) < 0.01 * sigma * clip


def test_clipping_bounds_what_one_record_can_do(start_model, records):
    x, y = records
    outlier_x, outlier_y = x.clone(), y.clone()
    outlier_x[0] = 30 * torch.randn_like(x[0])  # a wild image with a wrong label
    outlier_y[0] = (y[0] + 1) % 10
    clip = 0.1  # well below the outlier's gradient norm (about 3)
    bound = LR * 2 * clip / len(y)  # the record's clipped gradient went from g to g', both <= C

    def influence(max_grad_norm: float) -> float:
        training = dp_full_batch(noise_multiplier=0.0, max_grad_norm=max_grad_norm)
        return (weight_change(training, start_model, x, y)
                - weight_change(training, start_model, outlier_x, outlier_y)).norm().item()

    assert influence(clip) <= bound * (1 + 1e-4)
    assert influence(NO_CLIPPING) > 5 * bound  # control: unclipped, it moves far more


def test_each_call_brings_its_own_data(start_model, records):
    x, y = records
    training = DPTraining(LocalTraining(1, 10, "sgd", LR, False), DPConfig())
    model = start_model
    for size in (20, 32):  # e.g. real records, then real records plus generated ones
        before = flat_parameters(model)
        training.train(model, training.make_optimizer(model), x[:size], y[:size])
        assert not torch.equal(flat_parameters(model), before)  # the client's own model learnt
    # two batches at q = 1/2, then four at q = 1/4: each call is counted at its own sample rate
    assert training.accountant.history == [(0.3, 1 / 2, 2), (0.3, 1 / 4, 4)]
    # Opacus's hooks come off after every call, so they are never added twice
    assert not any(m._forward_hooks or m._backward_hooks for m in model.modules())
    assert not any(hasattr(p, "grad_sample") for p in model.parameters())


def test_an_empty_poisson_batch_still_steps_but_leaves_the_loss_finite(start_model, records):
    x, y = records[0][:8], records[1][:8]
    training = DPTraining(LocalTraining(1, 1, "sgd", LR, False), DPConfig())  # q = 1/8
    torch.manual_seed(0)
    assert any(len(batch) == 0 for batch in poisson_batches(len(y), 1, "cpu"))
    torch.manual_seed(0)
    loss = training.train(start_model, training.make_optimizer(start_model), x, y)
    assert math.isfinite(loss) and training.accountant.history == [(0.3, 1 / 8, 8)]


def test_a_client_without_records_spends_nothing(start_model):
    training = DPTraining(FULL_BATCH, DPConfig())
    empty = weight_change(training, start_model, torch.zeros(0, 1, 28, 28),
                          torch.zeros(0, dtype=torch.long))
    assert empty.abs().max() == 0 and training.epsilon() == 0


def spend(training: DPTraining, rounds: int, sample_rate: float = 1 / 4) -> None:
    """Record ``rounds`` epochs of DP-SGD steps in ``training``'s accountant (no training)."""
    for _ in range(rounds * round(1 / sample_rate)):
        training.accountant.step(noise_multiplier=training.config.noise_multiplier,
                                 sample_rate=sample_rate)


def test_epsilon_at_the_studys_noise_is_minimised_over_orders_below_opacus_defaults():
    training = DPTraining(FULL_BATCH, DPConfig())  # sigma 0.3 over the study's 300 rounds
    spend(training, rounds=300)
    with pytest.warns(UserWarning, match="Optimal order is the smallest alpha"):
        opacus_default = training.accountant.get_privacy_spent(delta=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "optimal order is the smallest alpha" any more
        ours = training.epsilon()
    assert opacus_default[1] == 1.1 and ours < 0.99 * opacus_default[0]


def test_without_noise_there_is_no_guarantee():
    training = DPTraining(FULL_BATCH, DPConfig(noise_multiplier=0.0))
    assert training.epsilon() == 0  # nothing spent yet
    spend(training, rounds=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # asking Opacus would warn: every order gives infinity
        assert training.epsilon() == math.inf


BAD_SETTINGS = [
    ("noise_multiplier", -0.1, ["noise_multiplier=-0.1", ">= 0"]),
    ("noise_multiplier", math.nan, ["noise_multiplier=nan", "finite number"]),
    ("max_grad_norm", 0.0, ["max_grad_norm=0.0", "> 0"]),
    ("max_grad_norm", math.inf, ["max_grad_norm=inf", "finite number"]),
    ("lr", -1.0, ["lr=-1.0", "> 0"]),
    ("delta", 1.0, ["delta=1.0", "0 < delta < 1"]),
    ("delta", 0.0, ["delta=0.0", "0 < delta < 1"]),
    ("delta", math.nan, ["delta=nan", "0 < delta < 1"]),
]


@pytest.mark.parametrize("name, value, fragments", BAD_SETTINGS)
def test_bad_dp_settings_fail_in_one_line_naming_the_value(name, value, fragments):
    with pytest.raises(ValueError) as caught:
        DPConfig(**{name: value})
    message = str(caught.value)
    assert "\n" not in message and all(f in message for f in fragments)


def test_fedconfig_accepts_only_defense_specs(tiny_config):
    with pytest.raises(ValueError, match=re.escape("defenses=(True,) is not allowed: it must be a "
                                                   "tuple of Defense specs")):
        tiny_config(defenses=(True,))


def test_opacus_fixes_batchnorm_and_leaves_the_studies_models_alone():
    with_batchnorm = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(),
                                   nn.Linear(4 * 26 * 26, 10))
    fixed = opacus_compatible(with_batchnorm)
    assert isinstance(fixed[1], nn.GroupNorm) and isinstance(with_batchnorm[1], nn.BatchNorm2d)
    for model in (Classifier(10), LeNet5(10)):
        assert opacus_compatible(model) is model


@pytest.mark.parametrize("model", ["classifier", "lenet5"])
def test_a_private_federation_reports_a_growing_epsilon(model, tiny_config, mnist_tiny):
    federation = Federation.build(tiny_config(model=model, num_rounds=3, defenses=(DPConfig(),)),
                                  mnist_tiny)
    history = federation.run(progress=False)
    epsilons = [r["epsilon"] for r in history]
    assert all(math.isfinite(e) and e > 0 for e in epsilons)
    assert epsilons == sorted(set(epsilons))  # strictly growing
    assert epsilons[-1] == max(c.training.epsilon() for c in federation.clients)
    assert all(math.isfinite(r["train_loss"]) for r in history)


@pytest.fixture(scope="module")
def private_config() -> FedConfig:
    return FedConfig(num_clients=3, num_rounds=3, batch_size=20, max_per_class=20, max_test=100,
                     device="cpu", seed=1, defenses=(DPConfig(),))


@pytest.fixture(scope="module")
def straight_run(private_config, mnist_tiny):
    """Three private rounds in one go: the history and the final global weights."""
    federation = Federation.build(private_config, mnist_tiny)
    federation.run(progress=False)
    return federation.history, flat_parameters(federation.global_model)


def without_timings(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in history]


def test_a_private_cpu_run_repeats_exactly(private_config, mnist_tiny, straight_run):
    federation = Federation.build(private_config, mnist_tiny)
    federation.run(progress=False)
    history, weights = straight_run
    assert without_timings(federation.history) == without_timings(history)
    assert torch.equal(flat_parameters(federation.global_model), weights)


def test_a_resumed_private_run_continues_epsilon_and_weights(private_config, mnist_tiny,
                                                             straight_run, tmp_path):
    interrupted = Federation.build(private_config, mnist_tiny)
    interrupted.run(num_rounds=2, progress=False)
    save_progress(interrupted, tmp_path)

    resumed = Federation.build(private_config, mnist_tiny)
    resume(resumed, tmp_path)
    assert resumed.clients[0].training.epsilon() == interrupted.clients[0].training.epsilon()
    resumed.run(progress=False)
    history, weights = straight_run
    assert without_timings(resumed.history) == without_timings(history)
    assert torch.equal(flat_parameters(resumed.global_model), weights)


def test_opacus_per_sample_gradients_of_a_private_client_match_one_record_backward_passes(
        tiny_config, mnist_tiny):
    """The CRPA classifier is built channels-last, where Opacus's hooks get a convolution's
    per-sample weight gradient wrong; ``DPTraining`` hands Opacus a contiguous model, and every
    record's gradient is then what a backward pass on that record alone gives."""
    from opacus.grad_sample import GradSampleModule

    federation = Federation.build(tiny_config(model="classifier", defenses=(DPConfig(),)),
                                  data=mnist_tiny)
    federation.run(1, progress=False)  # a round of DP-SGD: the models have been to Opacus
    model = federation.clients[0].model
    model[2].p = model[5].p = 0.0  # no dropout: the same network in every pass
    x, y = mnist_tiny.train_x[:4], mnist_tiny.train_y[:4]
    one_by_one = []
    for i in range(4):
        alone = copy.deepcopy(model)
        nn.functional.cross_entropy(alone(x[i:i + 1]), y[i:i + 1]).backward()
        one_by_one.append([p.grad for p in alone.parameters()])
    module = GradSampleModule(model, loss_reduction="sum")
    nn.functional.cross_entropy(module(x), y, reduction="sum").backward()
    for index, p in enumerate(model.parameters()):
        expected = torch.stack([grads[index] for grads in one_by_one])
        torch.testing.assert_close(p.grad_sample, expected, rtol=0, atol=1e-5)
    module._close()
