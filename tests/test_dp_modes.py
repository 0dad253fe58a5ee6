"""Opacus's per-sample-gradient modes give DP-SGD the same step, and our epsilon is Opacus's own.

Every mode of ``GRAD_SAMPLE_MODES`` must move the weights exactly as Opacus's default, the layer
hooks, do (same seed: same batches, dropout and noise); the accountant must count the steps as
Opacus's ``PrivacyEngine`` counts them; a mode that would meet an empty Poisson batch is refused
before any work, while ghost clipping takes it as the hooks do and refuses a loss it cannot split
by record; and the default is not written to JSON, so runs saved before the setting existed
still match their config.
"""

from __future__ import annotations

import copy
import dataclasses
import warnings

import pytest
import torch
from opacus import PrivacyEngine
from torch.utils.data import DataLoader, TensorDataset

from fltutor.config import FedConfig
from fltutor.defenses import dp
from fltutor.defenses.dp import (FIRST_LAYER_HOOK_NOTE, GRAD_SAMPLE_MODES, MIN_VECTORISED_BATCH,
                                 NEEDS_RECORDS, RENYI_ORDERS, DPConfig, DPTraining)
from fltutor.experiments import config_json
from fltutor.models import MODELS, flat_parameters
from fltutor.training import LocalTraining

BATCHES_OF_8 = LocalTraining(epochs=2, batch_size=8, optimizer="sgd", lr=0.25,
                             keep_optimizer_state=False)


@pytest.fixture
def records(mnist_tiny):
    """32 real MNIST images with their labels."""
    return mnist_tiny.train_x[:32], mnist_tiny.train_y[:32]


def weights_after_training(mode: str, model: torch.nn.Module, x, y) -> torch.Tensor:
    """The weights of a copy of ``model`` after one seeded round of DP-SGD in ``mode``."""
    model = copy.deepcopy(model)
    training = DPTraining(BATCHES_OF_8, DPConfig(grad_sample_mode=mode))
    torch.manual_seed(0)  # the same Poisson batches, dropout masks and noise in every mode
    training.train(model, training.make_optimizer(model), x, y)
    return flat_parameters(model)


@pytest.mark.parametrize("model_name", ["classifier", "lenet5"])
def test_every_mode_takes_the_same_clipped_and_noised_steps_as_the_hooks(model_name, records):
    torch.manual_seed(1)
    model = MODELS[model_name](10)
    hooks = weights_after_training("hooks", model, *records)
    assert (hooks - flat_parameters(model)).abs().max() > 1e-3  # the round really moved them
    for mode in GRAD_SAMPLE_MODES:
        torch.testing.assert_close(weights_after_training(mode, model, *records), hooks,
                                   rtol=0, atol=1e-5)


def test_ghost_clipping_takes_an_empty_poisson_batch_as_the_hooks_do(records, monkeypatch):
    real = dp.poisson_batches

    def every_other_batch_empty(num_samples, batch_size, device):
        for i, batch in enumerate(real(num_samples, batch_size, device)):
            yield batch[:0] if i % 2 else batch  # a noise-only step every other step

    monkeypatch.setattr(dp, "poisson_batches", every_other_batch_empty)
    torch.manual_seed(1)
    model = MODELS["lenet5"](10)
    torch.testing.assert_close(weights_after_training("ghost", model, *records),
                               weights_after_training("hooks", model, *records),
                               rtol=0, atol=1e-5)


def test_ghost_clipping_refuses_a_loss_other_than_cross_entropy_in_one_line():
    local = dataclasses.replace(BATCHES_OF_8, loss=torch.nn.functional.nll_loss)
    with pytest.raises(ValueError) as caught:
        DPTraining(local, DPConfig(grad_sample_mode="ghost"))
    assert str(caught.value).startswith("grad_sample_mode='ghost' is not allowed with loss=")
    assert "\n" not in str(caught.value)
    DPTraining(local, DPConfig())  # the other modes take any loss


def test_epsilon_is_what_opacus_privacy_engine_reports_for_the_same_steps(records):
    x, y = records
    ours = DPTraining(BATCHES_OF_8, DPConfig())
    torch.manual_seed(1)
    model = MODELS["lenet5"](10)
    ours.train(model, ours.make_optimizer(model), x, y)  # 2 epochs of 4 steps at q = 1/4

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Secure RNG turned off")  # as in our runs
        warnings.filterwarnings("ignore", message=FIRST_LAYER_HOOK_NOTE)
        engine, theirs = PrivacyEngine(accountant="rdp"), copy.deepcopy(model)
        module, optimizer, loader = engine.make_private(
            module=theirs, optimizer=torch.optim.SGD(theirs.parameters(), lr=0.25),
            data_loader=DataLoader(TensorDataset(x, y), batch_size=8),
            noise_multiplier=DPConfig().noise_multiplier, max_grad_norm=DPConfig().max_grad_norm)
        for _ in range(BATCHES_OF_8.epochs):
            for xb, yb in loader:
                optimizer.zero_grad()
                torch.nn.functional.cross_entropy(module(xb), yb).backward()
                optimizer.step()

    assert engine.accountant.history == ours.accountant.history == [(0.3, 1 / 4, 8)]
    assert ours.epsilon() == engine.accountant.get_epsilon(DPConfig().delta, alphas=RENYI_ORDERS)


def test_an_unknown_mode_fails_in_one_line_naming_it_and_the_modes_allowed():
    with pytest.raises(ValueError) as caught:
        DPConfig(grad_sample_mode="jit")
    assert str(caught.value) == ("grad_sample_mode='jit' is not allowed: it must be one of "
                                 "hooks, functorch, ew, ghost")


@pytest.mark.parametrize("mode", NEEDS_RECORDS)
def test_a_mode_that_fails_on_an_empty_batch_is_refused_for_small_batches(mode):
    dp = (DPConfig(grad_sample_mode=mode),)
    with pytest.raises(ValueError) as caught:
        FedConfig(batch_size=MIN_VECTORISED_BATCH - 1, defenses=dp)
    assert str(caught.value).startswith(f"grad_sample_mode={mode!r} is not allowed: it must be "
                                        f"hooks for batch_size={MIN_VECTORISED_BATCH - 1}")
    FedConfig(batch_size=MIN_VECTORISED_BATCH, defenses=dp)  # large enough
    FedConfig(batch_size=10, mode="fedsgd", defenses=dp)  # one batch of all records
    FedConfig(batch_size=10, defenses=(DPConfig(),))  # the hooks take any batch


def test_the_default_mode_is_left_out_of_the_json_that_runs_are_matched_by():
    saved_before = {"name": "record-dp", "noise_multiplier": 0.3, "max_grad_norm": 1.5,
                    "lr": 0.25, "delta": 1e-6}  # what a run saved before the setting holds
    assert config_json(FedConfig(defenses=(DPConfig(),)))["defenses"] == [saved_before]
    other = config_json(FedConfig(defenses=(DPConfig(grad_sample_mode="functorch"),)))
    assert other["defenses"] == [{**saved_before, "grad_sample_mode": "functorch"}]
