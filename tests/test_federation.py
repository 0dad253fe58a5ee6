"""The federation: FedAvg's arithmetic, its controls, determinism, and resuming a run from disk.

Controls a user can check by hand: the weighted mean of tiny hand-made updates; one client holding
all the data is plain local training; FedSGD's step is -lr times the full-batch gradient.
"""

from __future__ import annotations

import copy
import json

import pytest
import torch
import torch.nn.functional as F

from fltutor.aggregators import AGGREGATORS, mean
from fltutor.config import FedConfig
from fltutor.experiments import CHECKPOINT, METRICS, run_to_disk
from fltutor.federation import Client, Federation
from fltutor.models import MODELS, flat_parameters
from fltutor.training import LocalTraining, train_epochs


def without_seconds(history: list[dict]) -> list[dict]:
    """A run's history minus the wall-clock times, which differ between identical runs."""
    return [{k: v for k, v in entry.items() if k != "seconds"} for entry in history]


# --- FedAvg's weighted mean, by hand -------------------------------------------------------------

def test_mean_of_two_equal_clients_is_the_plain_average():
    # Prepare
    updates = torch.tensor([[1.0, -2.0], [3.0, 4.0]])
    # Execute
    aggregate = mean(updates, torch.tensor([5.0, 5.0]))
    # Assert
    assert aggregate.update.tolist() == [2.0, 1.0]
    assert aggregate.kept == [0, 1]


def test_mean_weighs_clients_by_their_sample_counts():
    # Prepare: client 2 holds half of all samples.
    updates = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [-2.0, 0.0, 2.0]])
    samples = torch.tensor([100.0, 100.0, 200.0])
    # Execute
    aggregate = mean(updates, samples)
    # Assert: (1*u0 + 1*u1 + 2*u2) / 4
    assert aggregate.update.tolist() == [0.25, 1.75, 3.25]
    assert aggregate.kept == [0, 1, 2]


def test_mean_of_one_client_is_its_own_update():
    update = torch.tensor([[0.5, -1.5, 2.0]])
    assert torch.equal(mean(update, torch.tensor([7.0])).update, update[0])


def test_mean_is_registered_as_the_default_aggregator():
    rule = FedConfig().aggregator
    assert type(rule) is AGGREGATORS["mean"] and rule.name == "mean"
    updates, weights = torch.tensor([[1.0, 0.0], [3.0, 2.0]]), torch.tensor([1.0, 3.0])
    assert torch.equal(rule(updates, weights).update, mean(updates, weights).update)


def test_the_round_adds_the_sample_weighted_mean_of_the_client_updates(mnist_tiny, tiny_config):
    # Prepare: two clients holding 30 and 90 samples.
    config = tiny_config(num_clients=2, model="lenet5")
    torch.manual_seed(0)
    model = MODELS["lenet5"](10)
    training = LocalTraining.from_config(config)
    parts = [torch.arange(0, 30), torch.arange(30, 120)]
    clients = [Client(k, mnist_tiny.train_x[p], mnist_tiny.train_y[p], copy.deepcopy(model),
                      training) for k, p in enumerate(parts)]
    federation = Federation(config, mnist_tiny, [p.numpy() for p in parts], clients, model)
    # Execute
    record = federation.run_round()
    # Assert
    expected = record.global_before + (30 * record.client_updates[0]
                                       + 90 * record.client_updates[1]) / 120
    torch.testing.assert_close(record.global_after, expected)
    assert torch.equal(flat_parameters(federation.global_model), record.global_after)


# --- Controls: one client is local training; FedSGD is gradient descent ---------------------------

def test_one_client_with_all_the_data_is_plain_local_training(mnist_tiny, tiny_config):
    # Prepare: a federation of one client, and a copy of its starting point.
    config = tiny_config(num_clients=1, model="classifier", optimizer="adam", lr=1e-3)
    federation = Federation.build(config, mnist_tiny)
    local_model = copy.deepcopy(federation.global_model)
    random_state = torch.get_rng_state()
    # Execute: one FedAvg round; then the same training by hand, from the same random state.
    record = federation.run_round()
    torch.set_rng_state(random_state)
    optimizer = torch.optim.Adam(local_model.parameters(), lr=1e-3)
    train_epochs(local_model, optimizer, mnist_tiny.train_x, mnist_tiny.train_y,
                 epochs=config.local_epochs, batch_size=config.batch_size)
    # Assert: the client did exactly the local training, and the server adopted its weights.
    trained = flat_parameters(local_model)
    assert torch.equal(flat_parameters(federation.clients[0].model), trained)
    torch.testing.assert_close(record.global_after, trained, rtol=0, atol=1e-6)
    assert not torch.equal(record.global_after, record.global_before)


def full_batch_gradient(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    return torch.cat([p.grad.reshape(-1) for p in model.parameters()])


def test_fedsgd_step_is_minus_lr_times_the_full_batch_gradient(mnist_tiny, tiny_config):
    # Prepare: three clients, a batch larger than any client's data: every client takes one step
    # on all it holds. LeNet-5 has no dropout, so the gradient is deterministic.
    config = tiny_config(num_clients=3, model="lenet5", mode="fedsgd", lr=0.5, batch_size=1000)
    federation = Federation.build(config, mnist_tiny)
    gradient = full_batch_gradient(copy.deepcopy(federation.global_model), mnist_tiny.train_x,
                                   mnist_tiny.train_y)
    # Execute
    record = federation.run_round()
    # Assert: the sample-weighted mean of the clients' steps is one step on all the data.
    torch.testing.assert_close(record.global_after - record.global_before, -0.5 * gradient,
                               rtol=1e-4, atol=1e-6)


def test_fedsgd_steps_on_a_fresh_minibatch_the_client_records(mnist_tiny, tiny_config):
    # Prepare: one client holding 200 images, minibatches of 5.
    config = tiny_config(num_clients=1, model="lenet5", mode="fedsgd", lr=0.5, batch_size=5)
    federation = Federation.build(config, mnist_tiny)
    client = federation.clients[0]
    drawn = []
    for _ in range(2):
        model = copy.deepcopy(federation.global_model)
        # Execute
        record = federation.run_round()
        used = client.round_indices
        drawn.append(set(used.tolist()))
        gradient = full_batch_gradient(model, client.x[used], client.y[used])
        # Assert: one step of -lr times the gradient of the 5 images it recorded
        assert len(used) == 5 and record.weights.tolist() == [5.0]
        torch.testing.assert_close(record.global_after - record.global_before, -0.5 * gradient,
                                   rtol=1e-4, atol=1e-6)
    assert drawn[0] != drawn[1]  # a fresh minibatch each round


# --- Round mechanics -----------------------------------------------------------------------------

@pytest.mark.parametrize("fraction, expected", [(0.3, 3), (0.5, 5), (0.01, 1), (1.0, 10)])
def test_client_fraction_samples_that_many_distinct_clients(mnist_tiny, tiny_config, fraction,
                                                            expected):
    config = tiny_config(num_clients=10, model="lenet5", client_fraction=fraction)
    federation = Federation.build(config, mnist_tiny)
    record = federation.run_round()
    assert len(record.client_ids) == expected
    assert len(set(record.client_ids)) == expected
    assert all(0 <= k < 10 for k in record.client_ids)
    assert record.client_updates.shape[0] == expected
    assert federation.history[-1]["clients"] == record.client_ids


def test_observer_metrics_land_in_the_history(mnist_tiny, tiny_config):
    federation = Federation.build(tiny_config(model="lenet5"), mnist_tiny)
    seen = []

    def update_norm(record):
        return {"update_norm": record.aggregate.update.norm().item()}

    federation.observers.append(update_norm)
    federation.observers.append(lambda record: seen.append(record.round))  # returns None: fine
    federation.run(num_rounds=2, progress=False)
    assert seen == [1, 2]
    assert [entry["round"] for entry in federation.history] == [1, 2]
    for entry in federation.history:
        assert entry["update_norm"] > 0
        assert {"test_accuracy", "test_loss", "train_loss", "per_class_accuracy",
                "confusion", "seconds"} <= set(entry)
    json.dumps(federation.history)  # every round is JSON-ready


def test_history_and_summary_describe_the_run(mnist_tiny, tiny_config):
    federation = Federation.build(tiny_config(model="lenet5", num_rounds=2), mnist_tiny)
    federation.run(progress=False)
    entry = federation.history[-1]
    assert len(entry["confusion"]) == 10 and len(entry["per_class_accuracy"]) == 10
    assert sum(map(sum, entry["confusion"])) == len(mnist_tiny.test_y)
    summary = federation.summary()
    assert summary["rounds"] == 2
    assert summary["final_test_accuracy"] == entry["test_accuracy"]
    assert summary["best_test_accuracy"] == max(r["test_accuracy"] for r in federation.history)
    assert federation.class_counts().sum() == len(mnist_tiny.train_y)


# --- Determinism ---------------------------------------------------------------------------------

def run_once(config: FedConfig, data) -> tuple[torch.Tensor, list[dict]]:
    federation = Federation.build(config, data)
    federation.run(progress=False)
    return flat_parameters(federation.global_model), without_seconds(federation.history)


def test_same_seed_repeats_exactly_and_another_seed_differs(mnist_tiny, tiny_config):
    config = tiny_config(num_clients=3, num_rounds=2, model="classifier")  # dropout draws too
    weights, history = run_once(config, mnist_tiny)
    weights_again, history_again = run_once(config, mnist_tiny)
    other_weights, other_history = run_once(config.replace(seed=1), mnist_tiny)
    assert torch.equal(weights, weights_again)
    assert history == history_again
    assert not torch.equal(weights, other_weights)
    assert history != other_history


# --- Resuming a run from disk --------------------------------------------------------------------

class Interrupted(Exception):
    """Stands for a run killed part-way (Ctrl-C, a lost machine)."""


def interrupt_at(round_index: int):
    def observer(record):
        if record.round == round_index:
            raise Interrupted

    return observer


@pytest.fixture
def resume_config(tiny_config):
    # Adam's state and client sampling both have to survive the restart for an exact resume.
    return tiny_config(num_clients=3, num_rounds=3, model="lenet5", client_fraction=0.67)


def test_a_killed_run_resumes_to_the_same_history(mnist_tiny, resume_config, tmp_path):
    # Prepare: the uninterrupted run, and a run killed during round 3.
    complete = run_to_disk(Federation.build(resume_config, mnist_tiny), tmp_path / "complete",
                           progress=False)
    killed = Federation.build(resume_config, mnist_tiny)
    killed.observers.append(interrupt_at(3))
    with pytest.raises(Interrupted):
        run_to_disk(killed, tmp_path / "resumed", progress=False)
    saved = json.loads((tmp_path / "resumed" / METRICS).read_text())
    assert [entry["round"] for entry in saved["rounds"]] == [1, 2]
    assert (tmp_path / "resumed" / CHECKPOINT).exists()
    # Execute: the same command again, in the same directory.
    resumed = run_to_disk(Federation.build(resume_config, mnist_tiny), tmp_path / "resumed",
                          progress=False)
    # Assert
    assert without_seconds(resumed["rounds"]) == without_seconds(complete["rounds"])
    assert not (tmp_path / "resumed" / CHECKPOINT).exists()
    on_disk = json.loads((tmp_path / "resumed" / METRICS).read_text())
    assert without_seconds(on_disk["rounds"]) == without_seconds(complete["rounds"])


def test_a_checkpoint_of_another_config_is_refused(mnist_tiny, resume_config, tmp_path):
    killed = Federation.build(resume_config, mnist_tiny)
    killed.observers.append(interrupt_at(2))
    with pytest.raises(Interrupted):
        run_to_disk(killed, tmp_path, progress=False)
    other = Federation.build(resume_config.replace(seed=1), mnist_tiny)
    with pytest.raises(ValueError, match="different configuration"):
        run_to_disk(other, tmp_path, progress=False)
    assert other.rounds_done == 0


# --- Sanity: FedAvg learns MNIST -----------------------------------------------------------------

def test_quick_fedavg_learns_mnist(mnist_small):
    config = FedConfig.from_profile("quick", device="cpu", num_clients=2, num_rounds=3)
    federation = Federation.build(config, mnist_small)
    federation.run(progress=False)
    accuracies = [entry["test_accuracy"] for entry in federation.history]
    assert accuracies[-1] > 0.7
    assert accuracies[-1] > accuracies[0] - 0.05


def test_an_attacker_counts_as_honest_in_the_detection_rates_until_its_attack_starts(mnist_tiny):
    from fltutor.aggregators import Krum
    from fltutor.recipes.byzantine import ByzantineConfig

    # Prepare: five clients, client 0 flips its sign from round 2 on, Krum picks one update.
    config = ByzantineConfig(model="classifier", num_clients=5, num_rounds=2, batch_size=20,
                             max_per_class=20, max_test=100, device="cpu", attack="sign-flip",
                             malicious=1, attack_options={"start_round": 2},
                             aggregator=Krum(num_malicious=1))
    # Execute
    history = Federation.build(config, mnist_tiny).run(progress=False)
    # Assert: no attacker in round 1 (all five honest), one in round 2
    assert history[0]["detection_tpr"] is None
    assert history[0]["detection_fpr"] == pytest.approx(4 / 5)  # Krum keeps one of five
    assert history[1]["detection_tpr"] in (0.0, 1.0)
    assert history[1]["detection_fpr"] == pytest.approx(1 - (history[1]["detection_tpr"] == 1) / 4)
