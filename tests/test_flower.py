"""fltutor.flower: the federation on Flower's simulation engine is the in-process federation.

One Flower simulation on Ray (Ray starts once, for the whole module) runs a seeded case with a
label-flipping client (its own ``local_update``, on its node), a sign-flipping one (the server's
``submit`` step), the coordinate-wise median and partial participation (the client selection
draws from the random stream that the clients' training continues). Every round's global
weights must *equal* the in-process federation's: the weights and states travel as float32
arrays and torch's own serialisation, both exact, and the server relays torch's random stream
from client to client, so nothing is left that could differ.

The parallel mode and the messages are also checked without Ray, through a loopback grid that
hands every message to the ClientApp in this process.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys

import pytest
import torch

pytest.importorskip("flwr")

from flwr.app import Context, RecordDict
from flwr.supercore.task_identity import TaskIdentity

import fltutor.flower as flower
from fltutor.aggregators import Median
from fltutor.attacks.byzantine import SignFlip
from fltutor.attacks.crpa import LabelFlip
from fltutor.config import FedConfig
from fltutor.data import load
from fltutor.defenses.dp import DPConfig
from fltutor.federation import Federation
from fltutor.flower import (backend_config, client_app, client_random_state, run_on_flower,
                            server_app)
from fltutor.models import flat_parameters

#: One CPU, so one worker: the relayed clients train one at a time anyway, and on a small machine
#: one worker starts sooner than two. A small object store: Ray's default takes 30% of the
#: memory, and a CI container's /dev/shm may hold 64 MB.
SMALL_RAY = {"num_cpus": 1, "object_store_memory": 100 * 2**20}


@pytest.fixture(scope="module")
def case():
    """Five clients on a Dirichlet split of 120 real MNIST images, four of them in each round."""
    data = load("mnist", max_per_class=12, max_test=50, allow_fallback=True)
    config = FedConfig(num_clients=5, partition="dirichlet", alpha=1.0, num_rounds=2,
                       batch_size=16, client_fraction=0.8, max_per_class=12, max_test=50,
                       device="cpu", engine="sequential", seed=3, aggregator=Median(),
                       attackers=(LabelFlip(clients=(1,), poison_count=10), SignFlip(clients=(3,))))
    return config, data


def weights_and_history(run) -> tuple[list[torch.Tensor], list[dict]]:
    """Each round's global weights, and the history that ``run(after_round=...)`` returns."""
    weights: list[torch.Tensor] = []
    history = run(after_round=lambda federation: weights.append(
        flat_parameters(federation.global_model)))
    return weights, [without_seconds(line) for line in history]


def without_seconds(line: dict) -> dict:
    return {key: value for key, value in line.items() if key != "seconds"}


def in_process(config, data, kind=Federation):
    return weights_and_history(lambda after_round: kind.build(config, data).run(
        progress=False, after_round=after_round))


def assert_same_run(got, expected) -> None:
    (got_weights, got_history), (weights, history) = got, expected
    assert len(got_weights) == len(weights) == 2
    for round_weights, expected_weights in zip(got_weights, weights):
        assert torch.equal(round_weights, expected_weights)
    assert got_history == history


@pytest.fixture(scope="module")
def on_ray(case):
    """The seeded case, run once on Flower's simulation engine (a Ray of its own)."""
    config, data = case
    return weights_and_history(lambda after_round: run_on_flower(
        config, data, num_cpus_per_client=1, ray_options=SMALL_RAY, progress=False,
        after_round=after_round))


def test_a_flower_simulation_is_the_in_process_federation_weight_for_weight(case, on_ray):
    assert_same_run(on_ray, in_process(*case))


# --- without Ray: the Flower app's own logic, through a grid in this process ----------------------

RUN_IDS = itertools.count(1)


class LoopbackGrid:
    """The two calls of Flower's ``Grid`` that the server makes, answered by a ClientApp here.

    Every node has its own ``Context`` (its ``partition-id``), as in Flower's simulation; a new
    grid is a new run, so the nodes' cached copy of the federation is built again.
    """

    def __init__(self, app, num_nodes: int):
        self.app = app
        self.run_id = next(RUN_IDS)
        self.contexts = {100 + k: Context(run_id=self.run_id, node_id=100 + k,
                                          node_config={"partition-id": k}, state=RecordDict(),
                                          run_config={})
                         for k in range(num_nodes)}

    def get_node_ids(self) -> list[int]:
        return list(self.contexts)

    def send_and_receive(self, messages):
        return [self.app(message, self.contexts[message.metadata.dst_node_id])
                for message in messages]


@pytest.fixture
def on_loopback(monkeypatch):
    """``on_loopback(config, data, parallel)``: each round's weights and the history of the
    config's ServerApp and ClientApp run through a ``LoopbackGrid``."""

    def run_on_loopback(config, data, parallel: bool):
        grid = LoopbackGrid(client_app(config, data), config.num_clients)
        # Flower's runtime tells every new Message the run and the task that send it.
        for name, value in (("_run_id", grid.run_id), ("_node_id", 0), ("_task_id", 1)):
            monkeypatch.setattr(TaskIdentity, name, value)

        def run(after_round):
            seen: list[Federation] = []

            def keep(federation: Federation) -> None:
                seen[:] = [federation]
                after_round(federation)

            app = server_app(config, data, parallel=parallel, after_round=keep, progress=False)
            app(grid, Context(run_id=grid.run_id, node_id=0, node_config={}, state=RecordDict(),
                              run_config={}))
            return seen[0].history

        return weights_and_history(run)

    return run_on_loopback


class OwnStreams(Federation):
    """What a parallel round means, written in-process: every client trains from its own stream
    (``client_random_state``), and the server's stream goes on as if they had drawn nothing."""

    def local_updates(self, chosen, global_params, round_index):
        updates = []
        with torch.random.fork_rng(devices=[]):
            for k in chosen:
                torch.set_rng_state(client_random_state(self.config.seed, round_index, k))
                updates.append(self.clients[k].local_update(global_params, round_index))
        return updates


def test_the_relayed_stream_repeats_the_in_process_run_without_ray_too(case, on_loopback):
    assert_same_run(on_loopback(*case, parallel=False), in_process(*case))


def test_a_parallel_run_trains_every_client_from_its_own_seeded_stream(case, on_loopback):
    parallel = on_loopback(*case, parallel=True)
    assert_same_run(parallel, in_process(*case, kind=OwnStreams))
    assert not torch.equal(parallel[0][-1], in_process(*case)[0][-1])  # other batches


def test_dp_sgd_trains_on_the_nodes_and_its_privacy_spent_reaches_the_server(case, on_loopback):
    # The accountant lives in each client's state: it comes back with the update, and the
    # server's epsilon observer reads it as in-process.
    config, data = case
    private = config.replace(attackers=(), defenses=(DPConfig(),))
    run = on_loopback(private, data, parallel=False)
    assert_same_run(run, in_process(private, data))
    assert run[1][-1]["epsilon"] > run[1][0]["epsilon"] > 0


def test_client_streams_differ_between_clients_and_rounds_and_repeat():
    streams = [client_random_state(0, r, k) for r in (1, 2) for k in (0, 1)]
    assert all(not torch.equal(a, b) for a, b in itertools.combinations(streams, 2))
    assert torch.equal(client_random_state(0, 2, 1), streams[3])


# --- bad input ------------------------------------------------------------------------------------


def assert_refused_before_ray_starts(monkeypatch, message: str, config, data, **settings):
    import ray

    monkeypatch.setattr(flower, "run_simulation",
                        lambda *args, **kwargs: pytest.fail("the simulation started"))
    with pytest.raises(ValueError) as failure:
        run_on_flower(config, data, **settings)
    assert str(failure.value).startswith(message)
    assert "\n" not in str(failure.value)
    assert not ray.is_initialized()


@pytest.mark.parametrize("settings, message", [
    (dict(num_cpus_per_client=0), "num_cpus_per_client=0 is not allowed: it must be a finite "
                                  "number > 0.0"),
    (dict(num_cpus_per_client="2"), "num_cpus_per_client='2' is not allowed"),
    (dict(num_cpus_per_client=10_000), "num_cpus_per_client=10000 is not allowed: it must be at "
                                       "most the"),
    (dict(num_gpus_per_client=-1), "num_gpus_per_client=-1 is not allowed: it must be a finite "
                                   "number >= 0.0"),
    (dict(num_gpus_per_client=10_000), "num_gpus_per_client=10000 is not allowed: it must be at "
                                       "most the"),
    (dict(ray_address=""), "ray_address='' is not allowed: it must be None (start Ray on this "
                           "machine) or a running cluster's address"),
    (dict(ray_options={"num_cpu": 2}), "ray_options='num_cpu' is not allowed: it must be "
                                       "arguments of ray.init: num_cpus, num_gpus"),
    (dict(ray_options={"address": "auto"}), "ray_options='address' is not allowed"),
    (dict(ray_options=[2]), "ray_options=[2] is not allowed: it must be None or a dict"),
    (dict(ray_options={"num_cpus": "two"}), "ray_options num_cpus='two' is not allowed: it must "
                                            "be an integer >= 0"),
    (dict(ray_options={"num_cpus": 2}, ray_address="auto"),
     "ray_options='num_cpus' is not allowed: it must be none of num_cpus, num_gpus, resources, "
     "labels, object_store_memory with ray_address: `ray start` sets them"),
    (dict(parallel="yes"), "parallel='yes' is not allowed: it must be True or False"),
])
def test_bad_settings_fail_in_one_line_before_ray_starts(case, monkeypatch, settings, message):
    assert_refused_before_ray_starts(monkeypatch, message, *case, **settings)


def test_a_config_that_flower_cannot_run_fails_before_ray_starts(case, monkeypatch):
    config, data = case
    assert_refused_before_ray_starts(monkeypatch, "config='dict' is not allowed: it must be a "
                                     "FedConfig", {"num_clients": 2}, data)
    assert_refused_before_ray_starts(monkeypatch, "engine='batched' is not allowed: it must be "
                                     "sequential or auto on Flower", config.replace(
                                         engine="batched"), data)


def test_the_backend_config_is_what_flower_hands_to_ray():
    assert backend_config(2, 0.5, "auto", {"namespace": "class"}) == {
        "client_resources": {"num_cpus": 2, "num_gpus": 0.5},
        "init_args": {"namespace": "class", "address": "auto"}}


def test_fltutor_works_without_flower_and_says_how_to_install_it():
    # A fresh interpreter in which the flwr package cannot be imported, as if not installed.
    script = ("import sys; sys.modules['flwr'] = None\n"
              "import fltutor.cli, fltutor.federation, fltutor.sweep\n"
              "try:\n    import fltutor.flower\n"
              "except ImportError as error:\n    print(error)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == 'fltutor.flower needs Flower: pip install -e ".[flower]"'
