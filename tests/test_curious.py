"""The curious client (arXiv 2506.11413): the gradient it estimates from two global models, its
own share taken out, the label counts, the honest scoring against the images that really were in
the round's gradient, poisoning by delegation, the recipe's run to disk and resume.

Runs are small (2 to 10 clients, 10 to 60 images per class, one to three rounds, a few dozen
reconstruction steps) and seeded.
"""

from __future__ import annotations

import json
import re

import pytest
import torch
from torch import nn

import fltutor.attacks.curious as curious_module
from fltutor.attacks import inversion
from fltutor.attacks.backdoor import BackdoorClient
from fltutor.attacks.curious import (CuriousClient, Search, estimated_gradient,
                                     mean_probabilities, peers_gradient, poisoning_attacks,
                                     reconstruct, train_autoencoder)
from fltutor.attacks.labels import counts_from_bias
from fltutor.config import FedConfig
from fltutor.federation import Federation
from fltutor.metrics import leak_scores, reconstruction_scores
from fltutor.models import flat_parameters, load_flat_parameters
from fltutor.recipes.byzantine import BYZANTINE_ATTACKS
from fltutor.recipes.curious import (CURIOUS_METRICS, QUICK_ROUNDS, CuriousConfig,
                                     curious_observer, curious_summary, figure_rounds,
                                     reconstruction_rounds, run_curious)
from fltutor.sweep import robustness_attacks

#: A few seconds a round on one CPU thread: the quick profile's FedAvg training, fewer images.
SMALL = dict(dataset="mnist", num_clients=4, partition="dirichlet", alpha=0.5, batch_size=32,
             optimizer="sgd", lr=0.1, keep_optimizer_state=False, max_per_class=60,
             max_test=300, device="cpu")
#: Reconstruction settings that cost a fraction of a second: for tests of the run's mechanics.
CHEAP = dict(autoencoder_epochs=2, iterations=2, max_dummies=4)
#: The FedSGD profile shrunk: 10 images per class, 100 test images, cheap reconstructions.
FEDSGD = dict(device="cpu", max_per_class=10, max_test=100)


def fedsgd(**overrides) -> CuriousConfig:
    """``quick-fedsgd`` (10 clients, LeNet-5, FedSGD, B=1) at test size; ``overrides`` on top."""
    options = {"rounds": (1,), "iterations": 5, **overrides.pop("curious_options", {})}
    return CuriousConfig.from_profile("quick-fedsgd", **{**FEDSGD, "num_rounds": 1,
                                                         "curious_options": options, **overrides})


def flat(gradients) -> torch.Tensor:
    return torch.cat([g.reshape(-1) for g in gradients])


# the gradient from two global models -----------------------------------------------------------

def test_the_gradient_from_two_global_models_is_the_fedsgd_minibatch_gradient(tiny_config,
                                                                              mnist_tiny):
    # Prepare: one client, one SGD step on a minibatch of 20 of its 200 images (FedSGD).
    config = tiny_config(num_clients=1, mode="fedsgd", lr=0.1, model="lenet5", num_rounds=1)
    federation = Federation.build(config, data=mnist_tiny)
    client = federation.clients[0]
    # Execute
    record = federation.run_round()
    estimate = estimated_gradient(record.global_before, record.global_after, lr=config.lr)
    # Assert: the true gradient of the client's loss on the minibatch it drew.
    assert len(client.round_indices) == config.batch_size < client.num_samples
    load_flat_parameters(client.model, record.global_before)
    true = flat(inversion.gradient(client.model, client.x[client.round_indices],
                                   client.y[client.round_indices]))
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


def test_peers_gradient_with_unequal_weights_is_the_peers_gradient_computed_directly():
    # Prepare: a small linear model, five clients with batches of unequal sizes; clients 0 and 1
    # collude. The server's mean weighs each client's gradient by its batch size.
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 4))
    sizes = [3, 1, 5, 2, 4]
    xs = [torch.randn(n, 1, 4, 4) for n in sizes]
    ys = [torch.randint(4, (n,)) for n in sizes]
    gradients = torch.stack([flat(inversion.gradient(model, x, y)) for x, y in zip(xs, ys)])
    weights = torch.tensor(sizes, dtype=torch.float)
    aggregate = (weights[:, None] * gradients).sum(dim=0) / weights.sum()
    # Execute
    peers = peers_gradient(aggregate, gradients[:2], weights[:2], float(weights.sum()))
    # Assert: the gradient of the mean loss over all the peers' images at once.
    direct = flat(inversion.gradient(model, torch.cat(xs[2:]), torch.cat(ys[2:])))
    torch.testing.assert_close(peers, direct, rtol=1e-4, atol=1e-6)
    plain_mean = gradients[2:].mean(dim=0)  # what equal weights would wrongly give
    assert not torch.allclose(peers, plain_mean, atol=1e-4)


def test_peers_gradient_refuses_a_round_with_no_peer_share():
    with pytest.raises(ValueError, match=r"^total_weight=2 is not allowed") as error:
        peers_gradient(torch.ones(3), torch.ones(1, 3), torch.tensor([2.0]), total_weight=2)
    assert "\n" not in str(error.value)


# the label counts from the last bias -------------------------------------------------------------

@pytest.mark.parametrize("labels", [[3], [0, 0, 2], [1, 1, 1, 1], [0, 1, 2, 3, 4, 4, 4, 2]])
def test_counts_from_bias_are_exact_with_the_batch_mean_prediction(labels):
    # Prepare: the mean cross-entropy gradient of a small linear model on a batch of known labels.
    torch.manual_seed(1)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 5))
    images, labels = torch.randn(len(labels), 1, 3, 4), torch.tensor(labels)
    bias_gradient = inversion.gradient(model, images, labels)[-1]
    # Execute: with the batch's own mean softmax, the formula n_c = N (pbar_c - g_c) is exact.
    counted = counts_from_bias(bias_gradient, len(labels), mean_probabilities(model, images))
    # Assert
    assert counted.tolist() == sorted(labels.tolist())


def test_counts_from_bias_always_give_num_images_labels_even_from_a_poor_estimate():
    # A bias "gradient" that does not sum to 0 (noised, poisoned, a median of updates) gives
    # estimates whose total is far from N; 64 labels were once 55.
    generator = torch.Generator().manual_seed(0)
    for num_images in (1, 3, 9, 64):
        for _ in range(20):
            bias = torch.randn(10, generator=generator)  # no gradient of any batch
            probabilities = torch.rand(10, generator=generator).softmax(0)
            counted = counts_from_bias(bias, num_images, probabilities)
            assert len(counted) == num_images and counted.min() >= 0 and counted.max() < 10
            assert counted.tolist() == sorted(counted.tolist())
    assert len(counts_from_bias(torch.full((10,), 0.05), 64, torch.full((10,), 0.1))) == 64
    assert len(counts_from_bias(torch.ones(10), 64, torch.full((10,), 0.1))) == 64  # all clamped


def test_counts_from_bias_refuse_mismatched_shapes_in_one_line():
    with pytest.raises(ValueError, match=r"^mean_probabilities.shape=\(3,\) is not allowed"):
        counts_from_bias(torch.zeros(10), 2, torch.full((3,), 1 / 3))


# the scores: one-to-one, against controls --------------------------------------------------------

def constant_images(*values: float) -> torch.Tensor:
    """16x16 images (SSIM's window fits), each a single grey value."""
    return torch.tensor(values).view(-1, 1, 1, 1).expand(-1, 1, 16, 16).clone()


def test_leak_scores_pair_one_to_one_and_score_every_control_by_rmse():
    # Prepare: three originals -1, 0, 1; reconstructions 0.1 off each, in another order.
    originals, true_labels = constant_images(-1.0, 0.0, 1.0), torch.tensor([7, 8, 9])
    reconstructions, labels = constant_images(0.9, -0.9, 0.1), torch.tensor([9, 7, 5])
    start = constant_images(0.5, 0.5, 0.5)
    # Execute
    scores = leak_scores(reconstructions, originals, labels, true_labels,
                         controls={"start": start, "own_images": None})
    # Assert: each pairs with its nearest original; labels right where the pair's label is.
    assert scores["rmse"] == pytest.approx(0.1)
    assert scores["label_accuracy"] == pytest.approx(2 / 3)  # 9 and 7 right, 5 for 8 wrong
    assert scores["control_rmse_mean_image"] == pytest.approx(2 / 3)  # mean image 0: 1, 0, 1
    assert scores["control_rmse_start"] == pytest.approx(2.5 / 3)  # 1.5, 0.5, 0.5
    assert "control_rmse_own_images" not in scores  # None is skipped
    assert scores["control_rmse"] == pytest.approx(2 / 3)  # the best guess
    assert scores["gain"] == pytest.approx(2 / 3 - 0.1) and scores["gain"] > 0
    assert "mse" not in scores and {"psnr", "ssim"} <= set(scores)


def test_leak_scores_gain_is_negative_when_a_guess_beats_the_attack():
    originals = constant_images(-1.0, 1.0)
    scores = leak_scores(constant_images(0.6, -0.6), originals, torch.tensor([0, 1]),
                         torch.tensor([0, 1]), controls={"own": constant_images(-0.9, 0.9)})
    assert scores["rmse"] == pytest.approx(0.4)
    assert scores["control_rmse"] == scores["control_rmse_own"] == pytest.approx(0.1)
    assert scores["gain"] == pytest.approx(-0.3)


# the reconstruction -------------------------------------------------------------------------------

def test_in_the_first_round_the_attack_recovers_its_peers_images_beyond_every_control():
    # Prepare: FedSGD with B=1 and 4 clients: the attacker inverts its 3 peers' images at once.
    config = fedsgd(num_clients=4, curious_options={"iterations": 200})
    # Execute
    record = Federation.build(config).run(progress=False)[0]
    # Assert (gain 0.45 on seed 0; RMSE 0.014: the images themselves).
    assert record["curious_images"] == record["curious_dummies"] == 3
    assert record["curious_label_accuracy"] == 1.0
    assert record["curious_rmse"] < 0.1
    assert record["curious_gain"] > 0.2
    assert record["curious_control_rmse"] == min(
        record[f"curious_control_rmse_{name}"] for name in ("mean_image", "start", "own_images"))


def test_the_curious_client_reaches_what_the_server_reaches_by_inverting_the_peers_gradient():
    # Prepare: two clients in FedSGD, B=2: the curious client's problem is the inversion of its
    # one peer's minibatch gradient, which a server would see directly.
    iterations = 60
    config = fedsgd(num_clients=2, batch_size=2, curious_options={"iterations": iterations})
    federation = Federation.build(config)
    observer = curious_observer(federation)
    # Execute: the curious client's round.
    record = federation.run_round()
    attack = record.metrics
    # Execute: the peer's gradient computed directly on its round's images, inverted with the
    # same settings, labels (counted from the same bias) and seed.
    peer = federation.clients[1]
    images, labels = peer.x[peer.round_indices], peer.y[peer.round_indices]
    model = observer.model
    load_flat_parameters(model, record.global_before)
    observed = inversion.gradient(model, images, labels)
    counted = counts_from_bias(observed[-1], len(images), mean_probabilities(model,
                                                                             observer.own_x))
    found = inversion.inverting_gradients(
        model, observed, inversion.Knowledge(batch_size=len(images)),
        inversion.Settings(iterations=iterations, lr=0.1, restarts=1, tv_weight=1e-4,
                           seed=config.seed), labels=counted)
    direct = reconstruction_scores(found.images, images, found.labels, labels)
    # Assert
    assert attack["curious_images"] == 2 and counted.tolist() == sorted(labels.tolist())
    assert attack["curious_rmse"] == pytest.approx(direct["rmse"], abs=0.01)
    assert attack["curious_label_accuracy"] == direct["label_accuracy"] == 1.0


def test_reconstruct_returns_images_in_range_and_labels_with_either_prior(mnist_small):
    # Prepare: a LeNet-5 and the gradient of 3 real images.
    torch.manual_seed(0)
    model = curious_module.MODELS["lenet5"](10)
    x, y = mnist_small.train_x[:3], mnist_small.train_y[:3]
    gradient = flat(inversion.gradient(model, x, y))
    probabilities = mean_probabilities(model, mnist_small.train_x[::60])
    autoencoder, prior = train_autoencoder(mnist_small.test_x[:64], latent_dim=8, epochs=1)
    codes = autoencoder.encoder(mnist_small.test_x[64:67])
    for search, extra in [(Search(iterations=2), {}),
                          (Search(prior="autoencoder", iterations=2),
                           dict(decoder=autoencoder.decoder, prior=prior, start_codes=codes))]:
        # Execute
        images, labels = reconstruct(model, gradient, 3, probabilities, search, **extra)
        # Assert
        assert images.shape == (3, 1, 28, 28) and images.abs().max() <= 1, search.prior
        assert labels.shape == (3,) and labels.max() < 10 and not images.requires_grad


@pytest.mark.parametrize("change, named", [
    (dict(num_images=0), "num_images=0"),
    (dict(gradient=torch.zeros(3)), "gradient.numel()=3"),
    (dict(search=Search(prior="latent")), "prior='latent'"),
    (dict(search=Search(prior="autoencoder")), "start_codes='NoneType'"),  # no decoder given
])
def test_reconstruct_refuses_bad_settings_in_one_line(change, named):
    model = curious_module.MODELS["lenet5"](10)
    arguments = {**dict(model=model, gradient=flat_parameters(model), num_images=2,
                        probabilities=torch.full((10,), 0.1), search=Search(iterations=2)),
                 **change}
    with pytest.raises(ValueError, match=f"^{re.escape(named)} is not allowed") as error:
        reconstruct(**arguments)
    assert "\n" not in str(error.value)


# honest scoring: the images of the round's gradient, nothing else -------------------------------

def test_in_fedsgd_the_observer_scores_against_exactly_the_kept_peers_minibatches(monkeypatch):
    # Prepare: 4 clients with minibatches of 2 of their images; record what is scored.
    scored = []
    real = curious_module.leak_scores
    monkeypatch.setattr(curious_module, "leak_scores",
                        lambda images, originals, *rest, **kw: scored.append(
                            (images, originals, rest[1])) or real(images, originals, *rest, **kw))
    config = fedsgd(num_clients=4, batch_size=2, num_rounds=2,
                    curious_options={"rounds": (1, 2)})
    federation = Federation.build(config)
    for round_index in (1, 2):
        # Execute
        record = federation.run_round()
        # Assert: B x (M - 1) images, and they are the peers' round rows, in their order.
        peers = federation.clients[1:]
        assert record.metrics["curious_images"] == 2 * 3 == record.metrics["curious_dummies"]
        assert all(len(c.round_indices) == 2 < c.num_samples for c in peers)  # not a pool
        _, originals, true_labels = scored[-1]
        assert torch.equal(originals, torch.cat([c.x[c.round_indices] for c in peers]))
        assert torch.equal(true_labels, torch.cat([c.y[c.round_indices] for c in peers]))
    assert not torch.equal(scored[0][1], scored[1][1])  # fresh minibatches each round


def test_max_dummies_caps_the_search_but_not_the_images_scored_against():
    record = Federation.build(fedsgd(curious_options={"max_dummies": 4})).run(progress=False)[0]
    assert (record["curious_dummies"], record["curious_images"]) == (4, 9)


def test_when_krum_keeps_only_the_attackers_update_the_round_records_own_kept():
    # Prepare: 5 clients that hold the same images and take a full-batch step: equal updates,
    # and Krum breaks the tie for the lowest index, the curious client 0.
    config = fedsgd(num_clients=5, partition="iid", max_per_class=1, batch_size=2,
                    aggregator="krum", num_rounds=2, curious_options={"rounds": (1, 2)})
    federation = Federation.build(config)
    first = federation.clients[0]
    for client in federation.clients:
        client.x, client.y = first.x, first.y
    # Execute
    history = federation.run(progress=False)
    # Assert
    for record in history:
        assert record["curious_own_kept"] is True
        assert not any(name in record for name in CURIOUS_METRICS)
    assert curious_summary(history) == {}


# the spec: options, poisoning by delegation, the attack lists ------------------------------------

def test_curious_is_no_byzantine_attack_and_poisons_with_byzantine_ones():
    assert "curious" not in BYZANTINE_ATTACKS and "curious" not in robustness_attacks()
    assert "crpa" not in poisoning_attacks() and "curious" not in poisoning_attacks()
    assert {"none", "sign-flip", "gaussian-noise", "backdoor"} <= set(poisoning_attacks())


def test_rounds_are_kept_sorted_once_and_say_when_to_reconstruct():
    assert CuriousClient(rounds=(10, 1, 10)).rounds == (1, 10)
    config = CuriousConfig(num_rounds=12, curious_options=dict(rounds=[5, 1, 12]))
    assert reconstruction_rounds(config) == [1, 5, 12]
    assert reconstruction_rounds(config.replace(curious_options=dict(every=5))) == [1, 6, 11]


@pytest.mark.parametrize("settings, named", [
    (dict(poison="nope"), "poison='nope'"),
    (dict(poison="curious"), "poison='curious'"),
    (dict(poison="sign-flip", poison_options={"sigma": 1}), "poison option='sigma'"),
    (dict(poison_options={"scale": 2}), "poison_options="),
    (dict(every=0), "every=0"),
    (dict(rounds=(0,)), "rounds=(0,)"),
    (dict(rounds=(1, "x")), "rounds=(1, 'x')"),
    (dict(rounds=(1, 10), every=2), "every=2"),
    (dict(prior="latent"), "prior='latent'"),
    (dict(prior="autoencoder", latent_dim=0), "latent_dim=0"),
    (dict(iterations=0), "iterations=0"),
    (dict(max_dummies=0), "max_dummies=0"),
    (dict(subtract_own="yes"), "subtract_own='yes'"),
])
def test_bad_spec_settings_are_refused_in_one_line(settings, named):
    with pytest.raises(ValueError, match=f"^{re.escape(named)}") as error:
        CuriousClient(**settings)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("overrides, named", [
    (dict(curious_options={"start_round": 9}), "start_round=9"),  # after the last round
    (dict(curious_options={"rounds": (1, 4)}), "rounds=(1, 4)"),  # beyond num_rounds=3
    (dict(curious_options={"poison": "sign-flip"}), "curious option='poison'"),
    (dict(curious_options={"speed": 1}), "curious option='speed'"),
    (dict(aggregator="nope"), "unknown aggregator 'nope'"),
    (dict(mode="fedprox"), "mode='fedprox'"),
    (dict(colluders=4), "colluders=4"),
])
def test_bad_run_settings_are_refused_before_any_work(overrides, named):
    with pytest.raises(ValueError, match=re.escape(named)) as error:
        CuriousConfig.from_profile("quick-fedsgd", device="cpu", num_rounds=3, num_clients=4,
                                   **overrides)
    assert "\n" not in str(error.value)


def test_a_fedsgd_batch_larger_than_a_clients_data_is_refused_before_any_training(monkeypatch):
    monkeypatch.setattr(Federation, "run_round", lambda self: pytest.fail("a round ran"))
    with pytest.raises(ValueError, match=r"^batch_size=1000 is not allowed: it must be at most "
                                         r"\d+, the images client \d+ holds") as error:
        Federation.build(fedsgd(batch_size=1000))
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("mode", ["fedavg", "fedsgd"])
def test_a_curious_client_that_does_not_poison_leaves_the_training_as_it_was(mnist_small, mode):
    # Prepare: the same run with and without a curious client (its autoencoder and model copy
    # come from a forked random stream, its search from its own generator, and it trains and
    # submits honestly); FedSGD draws its minibatches from the global stream.
    settings = {**SMALL, "mode": mode, "batch_size": 32 if mode == "fedavg" else 2,
                "model": "lenet5", "num_rounds": 2}
    # Execute: each run is seeded as it is built: build, run, build, run.
    plain = Federation.build(FedConfig(**settings), data=mnist_small)
    plain.run(progress=False)
    curious = Federation.build(CuriousConfig(**settings, curious_options=dict(
        CHEAP, prior="autoencoder")), data=mnist_small)
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


def test_a_poisoning_that_makes_the_model_diverge_stops_the_run_in_one_line(mnist_small):
    # A poisoning that outweighs every honest client a millionfold: within a few rounds the
    # clients' updates stop being finite, and FedAvg's mean refuses them in one line naming the
    # rows (it would otherwise turn the global model into NaN). The rounds before are kept.
    # (LeNet-5's tanh saturates and stays finite; the ReLU variant does not.)
    config = CuriousConfig(**SMALL, model="lenet5-wide", num_rounds=4, poison="scaling",
                           poison_options={"factor": 1e6}, curious_options=CHEAP)
    federation = Federation.build(config, data=mnist_small)
    with pytest.raises(ValueError, match=r"hold nan or inf") as error:
        federation.run(progress=False)
    assert "\n" not in str(error.value)
    assert federation.history and "curious_rmse" in federation.history[0]


def test_sign_flipping_slows_the_training_down(mnist_small):
    def accuracies(poison: str) -> list[float]:
        config = CuriousConfig(**SMALL, num_rounds=3, poison=poison, curious_options=CHEAP)
        federation = Federation.build(config, data=mnist_small)
        return [r["test_accuracy"] for r in federation.run(progress=False)]

    honest, flipped = accuracies("none"), accuracies("sign-flip")
    assert sum(flipped) < sum(honest) - 0.1  # over the three rounds
    assert flipped[-1] < honest[-1]


# the profiles ------------------------------------------------------------------------------------

def test_the_quick_fedsgd_profile_is_the_studys_setting_at_cpu_scale():
    # Execute
    config = CuriousConfig.from_profile("quick-fedsgd", device="cpu",
                                        curious_options={"iterations": 2})
    # Assert: FedSGD with one fresh image per client, LeNet-5, reconstructions from the first
    # round to the last; an override changes the profile's options one by one.
    assert (config.mode, config.batch_size, config.lr, config.model) == ("fedsgd", 1, 0.1,
                                                                         "lenet5")
    assert (config.num_clients, config.dataset) == (10, "mnist")
    assert config.profile == "quick"  # built on the quick base profile
    assert config.curious_options == {"rounds": QUICK_ROUNDS, "iterations": 2}
    assert reconstruction_rounds(config) == list(QUICK_ROUNDS)
    assert QUICK_ROUNDS[0] == 1 and QUICK_ROUNDS[-1] == config.num_rounds
    shown = figure_rounds(reconstruction_rounds(config))
    assert len(shown) == 3 and {1, config.num_rounds} <= shown
    paper = CuriousConfig.from_profile("paper-fedsgd", device="cpu")
    assert reconstruction_rounds(paper)[:3] == [1, 26, 51] and paper.mode == "fedsgd"


def test_colluders_are_the_first_clients_and_take_their_share_out_together():
    # Prepare: clients 0 and 1 collude in FedSGD with 4 clients, B=1.
    config = fedsgd(num_clients=4, colluders=2)
    # Execute
    record = Federation.build(config).run(progress=False)[0]
    # Assert: the two peers' images are what is left to invert.
    assert record["curious_images"] == record["curious_dummies"] == 2


# the run to disk ---------------------------------------------------------------------------------

def small_run(**overrides) -> CuriousConfig:
    return CuriousConfig.from_profile("quick", **{**SMALL, "max_per_class": 20, "num_rounds": 3,
                                                  "curious_options": CHEAP, **overrides})


def test_a_run_writes_the_scores_per_round_and_its_figures(tmp_path):
    final = run_curious(small_run(aggregator="median"), tmp_path / "run", progress=False)
    rounds = json.loads((tmp_path / "run" / "metrics.json").read_text())["rounds"]
    assert [r["round"] for r in rounds] == [1, 2, 3]
    for name in (*CURIOUS_METRICS, "curious_seconds", "test_accuracy"):
        assert all(isinstance(r[name], float) for r in rounds), name
    assert all(r["curious_dummies"] == 4 and r["curious_images"] > 4 for r in rounds)
    summary = final["summary"]
    assert summary["min_curious_rmse"] == min(r["curious_rmse"] for r in rounds)
    assert summary["first_curious_rmse"] == rounds[0]["curious_rmse"]
    assert summary["final_control_rmse"] == rounds[-1]["curious_control_rmse"]
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
    keys = ("round", "test_accuracy", "curious_rmse", "curious_ssim", "curious_control_rmse")
    assert [{k: r[k] for k in keys} for r in resumed["rounds"]] == \
        [{k: r[k] for k in keys} for r in whole["rounds"]]
