"""The curious client (arXiv 2506.11413): the gradient it estimates from two global models, its
reconstructions against controls, poisoning by delegation, the recipe's run to disk and resume.

Runs are small (4 clients, 20 to 60 images per class, one to three rounds) and seeded.
"""

from __future__ import annotations

import json
import re

import pytest
import torch
import torch.nn.functional as F

from fltutor.attacks.backdoor import BackdoorClient
from fltutor.attacks.curious import (Autoencoder, CuriousClient, LatentPrior, dummy_count,
                                     estimated_gradient, peers_gradient,
                                     poisoning_attacks, reconstruct, starting_codes)
from fltutor.config import FedConfig
from fltutor.federation import Federation
from fltutor.metrics import reconstruction_scores
from fltutor.models import flat_parameters, load_flat_parameters
from fltutor.recipes.byzantine import BYZANTINE_ATTACKS
from fltutor.recipes.curious import CuriousConfig, curious_observer, run_curious
from fltutor.sweep import robustness_attacks

#: A few seconds a round on one CPU thread: the quick profile's training, fewer images.
SMALL = dict(dataset="mnist", num_clients=4, partition="dirichlet", alpha=0.5, batch_size=32,
             optimizer="sgd", lr=0.1, keep_optimizer_state=False, max_per_class=60,
             max_test=300, device="cpu")
#: Reconstruction settings that cost a fraction of a second: for tests of the run's mechanics.
CHEAP = dict(autoencoder_epochs=2, iterations=2, max_dummies=4)
#: The seed of the reconstruction test (its margins over seeds 0 to 2 are noted there).
SEED = 0


# the gradient from two global models -----------------------------------------------------------

def test_the_gradient_from_two_global_models_is_the_fedsgd_gradient(tiny_config, mnist_tiny):
    # Prepare: one client, one full-batch SGD step (FedSGD), so w_{k+1} = w_k - lr * grad.
    config = tiny_config(num_clients=1, mode="fedsgd", lr=0.1, model="lenet5-wide", num_rounds=1)
    federation = Federation.build(config, data=mnist_tiny)
    client = federation.clients[0]
    # Execute
    record = federation.run_round()
    estimate = estimated_gradient(record.global_before, record.global_after, lr=config.lr)
    # Assert: the true gradient of the client's loss at the weights it was sent.
    load_flat_parameters(client.model, record.global_before)
    loss = F.cross_entropy(client.model(client.x), client.y)
    gradients = torch.autograd.grad(loss, list(client.model.parameters()))
    true = torch.cat([g.reshape(-1) for g in gradients])
    assert torch.allclose(estimate, true, atol=1e-4, rtol=1e-3)
    assert not torch.allclose(estimate, torch.zeros_like(estimate))


def test_local_steps_scale_the_estimate_down():
    before, after = torch.tensor([1.0, 1.0]), torch.tensor([0.0, 2.0])
    assert estimated_gradient(before, after, lr=0.5, local_steps=4).tolist() == [0.5, -0.5]


@pytest.mark.parametrize("lr", [0.0, -0.1])
def test_an_lr_that_is_not_positive_is_refused(lr):
    with pytest.raises(ValueError, match=f"^lr={lr} is not allowed") as error:
        estimated_gradient(torch.zeros(2), torch.zeros(2), lr=lr)
    assert "\n" not in str(error.value)


def test_peers_gradient_takes_the_own_share_out_exactly():
    # Prepare: three clients' gradients and their mean, as FedAvg forms it with equal shares.
    own, peers = torch.tensor([[4.0, -2.0]]), torch.tensor([[1.0, 1.0], [3.0, -1.0]])
    mean = torch.cat([own, peers]).mean(dim=0)
    # Execute / Assert: the peers' mean is recovered.
    assert torch.allclose(peers_gradient(mean, own, num_clients=3), peers.mean(dim=0))


def test_dummy_count_is_batch_times_peers_up_to_the_budget():
    assert dummy_count(batch_size=4, num_peers=3, budget=100) == 12
    assert dummy_count(batch_size=32, num_peers=5, budget=16) == 16


# reconstruction ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def first_round(mnist_small):
    """Round 1 of a federation of 4 clients with a curious client 0 that does not reconstruct
    by itself (every=100): the record, the observer and the gradient it estimates."""
    config = CuriousConfig(**SMALL, num_rounds=1, seed=SEED,
                           curious_options=dict(every=100, max_dummies=8))
    federation = Federation.build(config, data=mnist_small)
    observer = curious_observer(federation)
    record = federation.run_round()
    load_flat_parameters(observer.model, record.global_before)
    gradient = observer.without_own(estimated_gradient(record.global_before, record.global_after,
                                                       observer.lr, observer.local_steps), record)
    return observer, gradient


def test_reconstructions_beat_random_codes_and_an_untrained_autoencoder(first_round):
    observer, gradient = first_round
    # Execute: the reconstruction, from the codes of the attacker's own images.
    images, _ = reconstruct(observer.model, gradient, observer.autoencoder.decoder,
                            observer.start_codes, observer.prior, observer.num_classes)
    rmse = reconstruction_scores(images, observer.peer_images)["rmse"]
    # Control 1: random codes of the prior, decoded (the decoder alone, no gradient, no data).
    random_images = observer.autoencoder.decoder(observer.prior.sample(len(images), SEED))
    # Control 2: the same search through an untrained autoencoder (no prior at all).
    torch.manual_seed(SEED)
    untrained = Autoencoder(observer.autoencoder.latent_dim).requires_grad_(False)
    codes = starting_codes(untrained, observer.own_x, len(images))
    untrained_images, _ = reconstruct(observer.model, gradient, untrained.decoder, codes,
                                      LatentPrior(codes.mean(0), codes.std(0)),
                                      observer.num_classes)
    # Assert (margins measured over seeds 0 to 2: at least 0.07 and 0.31). Against its own
    # images' codes decoded as they are, the gain is small and not there on every seed (from
    # -0.005 to +0.03), so it is not asserted.
    assert rmse < reconstruction_scores(random_images, observer.peer_images)["rmse"] - 0.03
    assert rmse < reconstruction_scores(untrained_images, observer.peer_images)["rmse"] - 0.2


def test_reconstruct_returns_images_in_range_and_labels(first_round):
    observer, gradient = first_round
    images, labels = reconstruct(observer.model, gradient, observer.autoencoder.decoder,
                                 observer.start_codes[:3], observer.prior, 10, iterations=2)
    assert images.shape == (3, 1, 28, 28) and images.abs().max() <= 1
    assert labels.shape == (3,) and labels.max() < 10


@pytest.mark.parametrize("change, named", [
    (dict(iterations=0), "iterations=0"),
    (dict(lr=0.0), "lr=0.0"),
    (dict(gradient=torch.zeros(3)), "gradient.numel()=3"),
])
def test_reconstruct_refuses_bad_settings_in_one_line(first_round, change, named):
    observer, gradient = first_round
    arguments = {**dict(model=observer.model, gradient=gradient,
                        decoder=observer.autoencoder.decoder, start_codes=observer.start_codes,
                        prior=observer.prior, num_classes=10), **change}
    with pytest.raises(ValueError, match=f"^{re.escape(named)} is not allowed") as error:
        reconstruct(**arguments)
    assert "\n" not in str(error.value)


# the spec: poisoning by delegation, the attack lists ---------------------------------------------

def test_curious_is_no_byzantine_attack_and_poisons_with_byzantine_ones():
    assert "curious" not in BYZANTINE_ATTACKS and "curious" not in robustness_attacks()
    assert "crpa" not in poisoning_attacks() and "curious" not in poisoning_attacks()
    assert {"none", "sign-flip", "gaussian-noise", "backdoor"} <= set(poisoning_attacks())


@pytest.mark.parametrize("settings, named", [
    (dict(poison="nope"), "poison='nope'"),
    (dict(poison="curious"), "poison='curious'"),
    (dict(poison="sign-flip", poison_options={"sigma": 1}), "poison option='sigma'"),
    (dict(poison_options={"scale": 2}), "poison_options="),
    (dict(every=0), "every=0"),
])
def test_bad_spec_settings_are_refused_in_one_line(settings, named):
    with pytest.raises(ValueError, match=f"^{named}") as error:
        CuriousClient(**settings)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("overrides, named", [
    (dict(curious_options={"start_round": 9}), "start_round=9"),  # after the last round
    (dict(curious_options={"poison": "sign-flip"}), "curious option='poison'"),
    (dict(curious_options={"speed": 1}), "curious option='speed'"),
    (dict(aggregator="nope"), "unknown aggregator 'nope'"),
])
def test_bad_run_settings_are_refused_before_any_work(overrides, named):
    with pytest.raises(ValueError, match=named) as error:
        CuriousConfig.from_profile("quick", device="cpu", num_rounds=3, **overrides)
    assert "\n" not in str(error.value)


def test_a_curious_client_that_does_not_poison_leaves_the_training_as_it_was(mnist_small):
    # Prepare: the same run with and without a curious client (its autoencoder is trained on a
    # forked random stream, and it trains and submits honestly).
    # Execute
    plain = Federation.build(FedConfig(**SMALL, model="lenet5-wide", num_rounds=2),
                             data=mnist_small)
    plain.run(progress=False)  # each run is seeded as it is built: build, run, build, run
    curious = Federation.build(CuriousConfig(**SMALL, num_rounds=2, curious_options=CHEAP),
                               data=mnist_small)
    curious.run(progress=False)
    # Assert
    assert [r["test_accuracy"] for r in curious.history] == \
        [r["test_accuracy"] for r in plain.history]
    assert torch.equal(flat_parameters(curious.global_model), flat_parameters(plain.global_model))
    assert all("curious_rmse" in r for r in curious.history)


def test_poisoning_is_delegated_to_the_named_attack(mnist_small):
    config = CuriousConfig(**SMALL, num_rounds=1, poison="backdoor",
                           poison_options={"target_class": 3}, curious_options=CHEAP)
    federation = Federation.build(config, data=mnist_small)
    federation.run(progress=False)
    assert isinstance(federation.clients[0], BackdoorClient)
    assert federation.clients[0].poisoned_y.eq(3).sum() > federation.clients[0].y.eq(3).sum()
    assert "backdoor_success" in federation.history[0] and "curious_rmse" in federation.history[0]


def test_a_diverged_model_is_recorded_and_the_run_goes_on(mnist_small):
    # A poisoning that outweighs every honest client a millionfold: the global model stops being
    # finite within a few rounds, and those rounds have nothing to reconstruct from; the run
    # still finishes.
    config = CuriousConfig(**SMALL, num_rounds=4, poison="scaling",
                           poison_options={"factor": 1e6}, curious_options=CHEAP)
    history = Federation.build(config, data=mnist_small).run(progress=False)
    assert len(history) == 4 and "curious_rmse" in history[0]
    diverged = [r for r in history if r.get("curious_diverged")]
    assert diverged and all("curious_rmse" not in r for r in diverged)


def test_sign_flipping_slows_the_training_down(mnist_small):
    def accuracies(poison: str) -> list[float]:
        config = CuriousConfig(**SMALL, num_rounds=3, poison=poison, curious_options=CHEAP)
        federation = Federation.build(config, data=mnist_small)
        return [r["test_accuracy"] for r in federation.run(progress=False)]

    honest, flipped = accuracies("none"), accuracies("sign-flip")
    assert sum(flipped) < sum(honest) - 0.1  # over the three rounds
    assert flipped[-1] < honest[-1]


def test_the_quick_fedsgd_profile_reconstructs_every_image_its_gradient_holds():
    # Prepare: the profile where the leak shows (one peer, FedSGD: g is its full-batch gradient).
    config = CuriousConfig.from_profile("quick-fedsgd", device="cpu",
                                        curious_options={"iterations": 2})
    # Execute
    federation = Federation.build(config)
    observer = curious_observer(federation)
    # Assert: one dummy per image of the peer's step, built on the quick base profile.
    assert config.mode == "fedsgd" and config.profile == "quick"
    assert observer.attack.iterations == 2 and observer.attack.prior_weight == 0.01  # merged
    assert observer.num_images == len(observer.peer_images) == federation.clients[1].num_samples


# the run to disk ---------------------------------------------------------------------------------

def small_run(**overrides) -> CuriousConfig:
    return CuriousConfig.from_profile("quick", **{**SMALL, "max_per_class": 20, "num_rounds": 3,
                                                  "curious_options": CHEAP, **overrides})


def test_a_run_writes_rmse_per_round_and_its_figures(tmp_path):
    final = run_curious(small_run(aggregator="median"), tmp_path / "run", progress=False)
    rounds = json.loads((tmp_path / "run" / "metrics.json").read_text())["rounds"]
    assert [r["round"] for r in rounds] == [1, 2, 3]
    for name in ("curious_rmse", "curious_psnr", "curious_ssim", "test_accuracy"):
        assert all(isinstance(r[name], float) for r in rounds), name
    assert final["summary"]["min_curious_rmse"] == min(r["curious_rmse"] for r in rounds)
    assert final["config"]["aggregator"]["name"] == "median"
    files = {path.name for path in (tmp_path / "run").iterdir()}
    assert {"curious_rmse.png", "reconstructions_round_1.png", "reconstructions_round_3.png",
            "accuracy.png"} <= files


def test_an_interrupted_run_resumes_to_the_same_result(tmp_path):
    config = small_run(poison="sign-flip")
    whole = run_curious(config, tmp_path / "whole", progress=False)

    class Stop(Exception):
        pass

    def stop_after_two(federation):
        if federation.rounds_done == 2:
            raise Stop

    with pytest.raises(Stop):
        run_curious(config, tmp_path / "cut", progress=False, after_round=stop_after_two)
    resumed = run_curious(config, tmp_path / "cut", progress=False)
    keys = ("round", "test_accuracy", "curious_rmse", "curious_ssim")
    assert [{k: r[k] for k in keys} for r in resumed["rounds"]] == \
        [{k: r[k] for k in keys} for r in whole["rounds"]]
