"""The batched engine (``fltutor.batched``) trains the honest clients as the sequential one does.

The reference is the sequential engine: every client alone, with its own ``torch.optim``
optimizer. On a model without dropout both draw the same shuffles in the same order, so the
weights must agree to float rounding, also with unequal data sizes, several epochs, Adam's state
kept across rounds, and an attacker that trains on its own code path.
"""

from __future__ import annotations

import math

import pytest
import torch

from fltutor.attacks.crpa import LabelFlip
from fltutor.batched import StackedOptimizer, batched_on, can_train_together
from fltutor.defenses.dp import DPConfig
from fltutor.federation import Federation
from fltutor.models import flat_parameters

#: Data sizes for the clients: unequal, so batches are padded and clients sit steps out.
SIZES = (37, 16, 60, 5)


def run(config, data, rounds: int = 2, sizes=SIZES) -> Federation:
    federation = Federation.build(config, data=data)
    for client, size in zip(federation.clients, sizes):
        client.x, client.y = client.x[:size], client.y[:size]
    federation.run(rounds, progress=False)
    return federation


def both_engines(config, data, **kwargs) -> tuple[Federation, Federation]:
    return (run(config.replace(engine="sequential"), data, **kwargs),
            run(config.replace(engine="batched"), data, **kwargs))


def assert_same_training(sequential: Federation, batched: Federation) -> None:
    """The same weights to a tenth of one Adam step (lr 1e-3): Adam divides by the gradient's
    running size, which lifts float rounding in tiny gradients to about 1e-5."""
    assert torch.allclose(flat_parameters(sequential.global_model),
                          flat_parameters(batched.global_model), atol=1e-4)
    for one, other in zip(sequential.history, batched.history):
        assert one["train_loss"] == pytest.approx(other["train_loss"], abs=1e-5)
        assert one["test_accuracy"] == pytest.approx(other["test_accuracy"], abs=0.02)


@pytest.mark.parametrize("optimizer, keep_state, epochs", [("adam", True, 2), ("sgd", False, 1),
                                                          ("adam", False, 1)])
def test_batched_engine_computes_the_sequential_weights(tiny_config, mnist_tiny, optimizer,
                                                        keep_state, epochs):
    config = tiny_config(num_clients=4, model="lenet5", batch_size=16, local_epochs=epochs,
                         optimizer=optimizer, keep_optimizer_state=keep_state,
                         lr=0.05 if optimizer == "sgd" else 1e-3)
    sequential, batched = both_engines(config, mnist_tiny, rounds=3)
    assert_same_training(sequential, batched)


def test_batched_engine_computes_the_sequential_weights_in_fedsgd_minibatches(tiny_config,
                                                                            mnist_tiny):
    """FedSGD: each client draws a fresh minibatch of 4 a round (the one holding 5 images and
    the one holding 16 too); both engines draw the same ones and take the same step."""
    config = tiny_config(num_clients=4, model="lenet5", mode="fedsgd", batch_size=4, lr=0.1)
    sequential, batched = both_engines(config, mnist_tiny, rounds=3)
    assert_same_training(sequential, batched)
    for one, other in zip(sequential.clients, batched.clients):
        assert len(one.round_indices) == 4 and torch.equal(one.round_indices, other.round_indices)
    assert not torch.equal(flat_parameters(sequential.global_model),
                           flat_parameters(Federation.build(config, mnist_tiny).global_model))


def test_batched_engine_leaves_each_client_the_optimizer_state_it_would_have(tiny_config,
                                                                             mnist_tiny):
    """Adam's moments and step counts go back to every client: a checkpoint is the same, and the
    engines can take turns within one run."""
    config = tiny_config(num_clients=4, model="lenet5", batch_size=16)
    sequential, batched = both_engines(config, mnist_tiny)
    for one, other in zip(sequential.clients, batched.clients):
        for p, q in zip(one.model.parameters(), other.model.parameters()):
            state, stacked = one.optimizer.state[p], other.optimizer.state[q]
            assert float(state["step"]) == float(stacked["step"]) == 2 * math.ceil(one.num_samples / 16)
            assert torch.allclose(state["exp_avg"], stacked["exp_avg"], atol=1e-6)
            assert torch.allclose(state["exp_avg_sq"], stacked["exp_avg_sq"], atol=1e-8)
    sequential.config.engine = "batched"  # a run may switch engines and go on
    batched.config.engine = "sequential"
    shared_stream = torch.get_rng_state()  # both runs drew the same numbers so far
    sequential.run(3, progress=False)
    torch.set_rng_state(shared_stream)
    batched.run(3, progress=False)
    assert_same_training(sequential, batched)


def test_an_attacker_trains_alone_beside_the_batched_honest_clients(tiny_config, mnist_tiny):
    """The label-flipping client has its own ``train``: it keeps its code path. Placed last, it
    draws its shuffles after the honest clients under either engine, so the runs agree."""
    config = tiny_config(num_clients=4, model="lenet5", batch_size=16, partition="dirichlet",
                         attackers=(LabelFlip(clients=(3,), poison_count=10),))
    sequential, batched = both_engines(config, mnist_tiny, sizes=(37, 16, 60, 30))
    assert not batched.clients[3].trains_plainly
    assert [c.trains_plainly for c in batched.clients[:3]] == [True] * 3
    assert_same_training(sequential, batched)


def test_clients_under_dp_sgd_train_alone_under_either_engine(tiny_config, mnist_tiny):
    config = tiny_config(num_clients=3, model="lenet5", defenses=(DPConfig(),))
    sequential, batched = both_engines(config, mnist_tiny, sizes=(40, 40, 40))
    assert not can_train_together(batched.clients)
    assert sequential.history[-1]["test_loss"] == batched.history[-1]["test_loss"]


def test_batched_training_with_dropout_learns_as_well_as_the_sequential(tiny_config,
                                                                       mnist_small):
    """With dropout the masks come in another order, so the weights differ; the learning must
    not: the CRPA classifier reaches the same accuracy under both engines."""
    config = tiny_config(num_clients=3, model="classifier", max_per_class=60, max_test=300,
                         batch_size=30)
    sequential, batched = both_engines(config, mnist_small, rounds=3, sizes=(200, 120, 80))
    accuracies = [f.history[-1]["test_accuracy"] for f in (sequential, batched)]
    assert min(accuracies) > 0.6
    assert abs(accuracies[0] - accuracies[1]) < 0.1


def test_stacked_adam_matches_torch_adam_row_by_row():
    """The stacked update against ``torch.optim.Adam`` on each row alone, with one row sitting
    out a step."""
    torch.manual_seed(0)
    rows = [torch.randn(5, requires_grad=True) for _ in range(3)]
    adams = [torch.optim.Adam([w], lr=0.01) for w in rows]
    stacked = torch.stack([w.detach() for w in rows]).requires_grad_()
    optimizer = StackedOptimizer("adam", 0.01, (0.9, 0.999), 1e-8,
                                 [(torch.zeros(3, 5), torch.zeros(3, 5))], torch.zeros(3))
    for active in ([True, True, True], [True, False, True], [False, True, True]):
        grads = torch.randn(3, 5)
        for k, (w, adam) in enumerate(zip(rows, adams)):
            if active[k]:
                w.grad = grads[k].clone()
                adam.step()
        stacked.grad = grads
        optimizer.step([stacked], torch.tensor(active))
    assert torch.allclose(stacked.detach(), torch.stack([w.detach() for w in rows]), atol=1e-7)
    assert optimizer.steps.tolist() == [2, 2, 3]


def test_auto_engine_batches_on_cuda_only():
    assert batched_on("auto", torch.device("cuda"))
    assert not batched_on("auto", torch.device("cpu"))
    assert batched_on("batched", torch.device("cpu"))
    assert not batched_on("sequential", torch.device("cuda"))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_batched_engine_on_the_gpu_matches_the_cpu(tiny_config, mnist_tiny):
    config = tiny_config(num_clients=4, model="lenet5", batch_size=16, engine="batched")
    on_cpu = run(config, mnist_tiny)
    on_gpu = run(config.replace(device="cuda"), mnist_tiny)
    assert torch.allclose(flat_parameters(on_cpu.global_model),
                          flat_parameters(on_gpu.global_model).cpu(), atol=1e-3)
