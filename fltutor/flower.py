"""The same federation on Flower's simulation engine: many processes, or many machines with Ray.

``fltutor.federation.Federation`` runs a whole federation in one Python process. Here the same
run is a Flower app (https://flower.ai): a ``ServerApp`` plays the server and a ``ClientApp``
plays every client, each on a *node* of Flower's simulation engine, whose Ray backend runs the
nodes in worker processes, on this machine or on a Ray cluster. Nothing about a round is written
again: both sides build the same ``Federation`` from the same config (seeded, so every process
builds the same clients, with the same attackers and defenses in place), and each uses its part.

The node (``client_app``) takes its client from its copy, ``clients[partition-id]``, honest or
malicious, and runs that client's own ``local_update``: DP-SGD, label flipping or a GAN attacker
train on the node exactly as in-process.

The server (``server_app``) runs the federation's own round loop (``Federation.run_round``):
client selection, the attackers' ``submit`` step, the aggregation rule with its defenses,
evaluation and observers. Only ``local_updates`` changes: instead of training its copies of the
clients, the server sends each chosen client's node one Flower message and reads the update from
its reply. So in Flower's terms fltutor's round is the server's strategy.

A message to a node carries the global weights, the round, the client's state and a torch random
state; the reply carries the update, the sample count, the training loss and both states again:

* **The client's state** (``Client.state_dict``: its optimizer's moments, DP-SGD's privacy
  accountant, a GAN attacker's generator) is what a checkpoint keeps. The server's copy of the
  federation holds it between rounds and sends it along, so any worker process can serve any
  client's round, and the server's observers (the epsilon spent, the attacker's
  reconstructions) see the clients as they are. A real server would never see this: the
  server's copy is the experiment's record.
* **The random state.** In-process, every client's batches (and dropout masks) are drawn from
  torch's one generator, client after client, and the next round's client selection continues
  that stream. By default (``parallel=False``) the server relays the stream: it sends each client
  the generator's state, waits for the reply, and continues from the state the client hands
  back. The clients of a round then train one after another, and the run is the in-process run,
  weight for weight (``tests/test_flower.py``). With ``parallel=True`` the round's clients train
  at the same time, on as many workers as Ray has, each from its own stream
  (``client_random_state``): the run repeats with its seed, but its batches are not those of
  the in-process run.

The weights travel as float32 arrays, which is exact. Only torch's CPU generator is relayed, so
on GPUs (``num_gpus_per_client``) dropout masks come from each process's own GPU generator.
Flower is an optional extra: ``pip install -e ".[flower]"``; the rest of fltutor does without it.
"""

from __future__ import annotations

import importlib.util
import inspect
import io
import json
import time
from typing import Any, Callable

import numpy as np
import torch

try:
    from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
    from flwr.clientapp import ClientApp
    from flwr.serverapp import Grid, ServerApp
    from flwr.simulation import run_simulation
except ModuleNotFoundError as missing:  # not installed, or a Flower without these modules
    if (missing.name or "").split(".")[0] != "flwr":
        raise
    raise ImportError('fltutor.flower needs Flower: pip install -e ".[flower]"') from missing
if importlib.util.find_spec("ray") is None:
    raise ImportError('fltutor.flower needs Flower\'s simulation engine (Ray): '
                      'pip install -e ".[flower]"')

from .checks import check, check_bool, check_int, check_number
from .config import FedConfig
from .data import Data
from .threads import cpu_allowance
from .federation import Federation
from .training import ClientUpdate

#: The ray.init arguments that a running cluster fixes (``ray start`` on each machine sets them).
CLUSTER_SETTINGS = ("num_cpus", "num_gpus", "resources", "labels", "object_store_memory")
#: The ray.init arguments that Flower and ``ray_address`` set: not ``ray_options``.
SET_HERE = ("address", "runtime_env")
#: How often the server looks whether all nodes have joined, in seconds.
JOIN_POLL_SECONDS = 0.1


def ray_options_allowed() -> list[str]:
    """The ``ray_options`` a run accepts: the named arguments of ``ray.init`` but those set here."""
    import ray  # Ray takes seconds to import: only when a run is prepared

    return [name for name, parameter in inspect.signature(ray.init).parameters.items()
            if parameter.kind is not parameter.VAR_KEYWORD and name not in SET_HERE]


def backend_config(num_cpus_per_client: float = 1, num_gpus_per_client: float = 0.0,
                   ray_address: str | None = None, ray_options: dict | None = None) -> dict:
    """Flower's ``backend_config`` for Ray: each client's resources and the ``ray.init`` arguments.

    A node's work gets ``num_cpus_per_client`` CPUs (unless ``OMP_NUM_THREADS`` is set, Ray sets
    it to them, and torch trains with as many threads) and ``num_gpus_per_client`` GPUs (a
    fraction shares one GPU); Ray runs as many workers at once as the machines' resources hold.
    ``ray_address=None`` starts a Ray of its own on this machine for the run; an address
    (``"auto"``, ``"HOST:6379"``) joins a running cluster. Any other ``ray.init`` argument goes
    in ``ray_options`` (``{"object_store_memory": 10**8}``, say, where ``/dev/shm`` is small).

    >>> backend_config(num_cpus_per_client=0)
    Traceback (most recent call last):
    ...
    ValueError: num_cpus_per_client=0 is not allowed: it must be a finite number > 0.0
    """
    check_number("num_cpus_per_client", num_cpus_per_client, 0.0, open_low=True)
    check_number("num_gpus_per_client", num_gpus_per_client, 0.0)
    check(ray_address is None or (isinstance(ray_address, str) and ray_address.strip() != ""),
          "ray_address", ray_address,
          "None (start Ray on this machine) or a running cluster's address: auto, HOST:PORT")
    options = {} if ray_options is None else ray_options
    check(isinstance(options, dict), "ray_options", options, "None or a dict of ray.init arguments")
    allowed = ray_options_allowed()
    unknown = sorted(set(options) - set(allowed))
    check(not unknown, "ray_options", ", ".join(map(str, unknown)),
          f"arguments of ray.init: {', '.join(allowed)}")
    check(is_json(options), "ray_options", options,
          "JSON values (numbers, strings, booleans, lists, dicts): Flower hands them on as JSON")
    if ray_address is None:  # Flower itself finds a client too big only once Ray has started
        for unit, wanted, here in (("cpus", num_cpus_per_client, cpu_allowance()),
                                   ("gpus", num_gpus_per_client, torch.cuda.device_count())):
            given = options.get(f"num_{unit}", here)
            check_int(f"ray_options num_{unit}", given, 0)
            check(wanted <= given, f"num_{unit}_per_client", wanted,
                  f"at most the {given} {unit.upper()}s that Ray gets on this machine")
        init_args = {**options, "address": "local"}  # not a cluster that `ray start` left here
    else:
        fixed = sorted(set(options) & set(CLUSTER_SETTINGS))
        check(not fixed, "ray_options", ", ".join(fixed), "none of "
              f"{', '.join(CLUSTER_SETTINGS)} with ray_address: `ray start` sets them")
        init_args = {**options, "address": ray_address}
    return {"client_resources": {"num_cpus": num_cpus_per_client,
                                 "num_gpus": num_gpus_per_client},
            "init_args": init_args}


def is_json(value: Any) -> bool:
    """Whether ``json.dumps`` can write ``value``."""
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def run_on_flower(config: FedConfig, data: Data | None = None, *, parallel: bool = False,
                  num_cpus_per_client: float = 1, num_gpus_per_client: float = 0.0,
                  ray_address: str | None = None, ray_options: dict | None = None,
                  after_round: Callable[[Federation], None] | None = None,
                  progress: bool = True) -> list[dict]:
    """Run ``config``'s federation as a Flower simulation; returns its history, one dict a round.

    The history is the in-process engine's (``Federation.run``): the same metrics, and with
    ``parallel=False`` the same numbers, but for ``seconds``. ``data`` (default: loaded as the
    config says) travels with every message to the nodes' processes; on a cluster, let each
    machine load its own (``data=None``, ``$FLTUTOR_DATA``). ``after_round(federation)`` is
    called on the server after every round, with the server's copy of the federation (its
    ``global_model``, its ``history``). The resources and Ray's settings are ``backend_config``'s.
    Every setting is checked before Ray starts.
    """
    check(isinstance(config, FedConfig), "config", type(config).__name__, "a FedConfig")
    check(data is None or isinstance(data, Data), "data", type(data).__name__,
          "None (load it as the config says) or a fltutor.data.Data")
    check(config.engine != "batched", "engine", config.engine,
          "sequential or auto on Flower (each node trains its own client)")
    check_bool("parallel", parallel)
    check_bool("progress", progress)
    backend = backend_config(num_cpus_per_client, num_gpus_per_client, ray_address, ray_options)
    history: list[dict] = []

    def record(federation: Federation) -> None:
        history.append(federation.history[-1])
        if after_round is not None:
            after_round(federation)

    run_simulation(server_app(config, data, parallel=parallel, after_round=record,
                              progress=progress),
                   client_app(config, data), num_supernodes=config.num_clients,
                   backend_config=backend)
    return history


# --- the server -----------------------------------------------------------------------------------


def server_app(config: FedConfig, data: Data | None = None, *, parallel: bool = False,
               after_round: Callable[[Federation], None] | None = None,
               progress: bool = True) -> ServerApp:
    """A ``ServerApp`` that runs ``config``'s rounds, its clients training on Flower's nodes."""
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        federation = FlowerFederation.build(config, data)
        federation.connect(grid, parallel)
        federation.run(progress=progress, after_round=after_round)

    return app


class FlowerFederation(Federation):
    """The server's side: a ``Federation`` whose ``local_updates`` come from Flower's nodes.

    Everything else of the round is the federation's own. ``connect`` must come before the
    first round: it learns which node holds which client.
    """

    grid: Grid
    parallel: bool
    nodes: dict[int, int]  # client index -> Flower node id

    def connect(self, grid: Grid, parallel: bool) -> None:
        self.grid, self.parallel = grid, parallel
        self.nodes = client_nodes(grid, len(self.clients))

    def local_updates(self, chosen: list[int], global_params: torch.Tensor,
                      round_index: int) -> list[ClientUpdate]:
        """The chosen clients' updates, in the order of ``chosen``, trained on their nodes.

        In turn (the default), the torch random stream is relayed from client to client and
        back to the server; in parallel, all train at once from their own streams, and the
        server's stream goes on as if they had drawn nothing.
        """
        if self.parallel:
            streams = [client_random_state(self.config.seed, round_index, k) for k in chosen]
            with torch.random.fork_rng(devices=[]):  # in case a node runs in this very process
                trained = self.train_on_nodes(chosen, global_params, round_index, streams)
            return [update for update, _ in trained]
        updates = []
        for k in chosen:
            [(update, stream)] = self.train_on_nodes([k], global_params, round_index,
                                                     [torch.get_rng_state()])
            torch.set_rng_state(stream)
            updates.append(update)
        return updates

    def train_on_nodes(self, chosen: list[int], global_params: torch.Tensor, round_index: int,
                       streams: list[torch.Tensor]) -> list[tuple[ClientUpdate, torch.Tensor]]:
        """Send each chosen client its round (at once), wait for every reply, keep the clients'
        new states; returns each client's update and the random state it left."""
        messages = [Message(round_orders(global_params, round_index, stream,
                                         self.clients[k].state_dict()),
                            dst_node_id=self.nodes[k], message_type="train")
                    for k, stream in zip(chosen, streams)]
        replies = {reply.metadata.src_node_id: reply
                   for reply in self.grid.send_and_receive(messages)}
        results = []
        for k in chosen:
            reply = replies[self.nodes[k]]
            if reply.has_error():
                raise RuntimeError(f"client {k} failed on its Flower node: {reply.error.reason}")
            update, client_state, stream = read_report(reply.content, global_params.device)
            self.clients[k].load_state_dict(client_state, global_params)
            results.append((update, stream))
        return results


def client_nodes(grid: Grid, num_clients: int) -> dict[int, int]:
    """Which node holds which client: wait until all ``num_clients`` nodes have joined, then ask
    each for its ``partition-id`` (the simulation numbers its nodes 0, 1, ...)."""
    while len(node_ids := list(grid.get_node_ids())) < num_clients:
        time.sleep(JOIN_POLL_SECONDS)
    questions = [Message(RecordDict(), dst_node_id=node, message_type="query")
                 for node in node_ids]
    return {int(reply.content["node"]["partition_id"]): reply.metadata.src_node_id
            for reply in grid.send_and_receive(questions)}


def client_random_state(seed: int, round_index: int, client_id: int) -> torch.Tensor:
    """The torch random state a client starts a parallel round from.

    numpy's ``SeedSequence`` mixes the run's seed, the round and the client into one seed, so no
    two clients or rounds share a stream, and a run with the same seed draws the same again.
    """
    mixed = np.random.SeedSequence([seed, round_index, client_id]).generate_state(1, np.uint64)
    return torch.Generator().manual_seed(int(mixed[0])).get_state()


# --- the nodes ------------------------------------------------------------------------------------


def client_app(config: FedConfig, data: Data | None = None) -> ClientApp:
    """A ``ClientApp`` whose node is client ``partition-id`` of ``config``'s federation."""
    app = ClientApp()
    app.train()(TrainOnNode(config, data))
    app.query()(say_which_client)
    return app


def say_which_client(message: Message, context: Context) -> Message:
    """Answer the server's question of ``client_nodes``: this node's ``partition-id``."""
    partition = ConfigRecord({"partition_id": int(context.node_config["partition-id"])})
    return Message(RecordDict({"node": partition}), reply_to=message)


class TrainOnNode:
    """The ClientApp's train function: one round of one client's local training on its node.

    A class, not a closure: Ray pickles it, config and data included, into the worker process,
    where the class itself (and with it this module's ``replica``) is imported by its name.
    """

    def __init__(self, config: FedConfig, data: Data | None):
        self.config, self.data = config, data

    def __call__(self, message: Message, context: Context) -> Message:
        federation = replica(self.config, self.data, context.run_id)
        client = federation.clients[int(context.node_config["partition-id"])]
        device = federation.data.train_x.device
        global_params, round_index, stream, client_state = read_orders(message.content, device)
        client.load_state_dict(client_state, global_params)
        torch.set_rng_state(stream)
        update = client.local_update(global_params, round_index)
        report = round_report(update, client.state_dict(), torch.get_rng_state())
        return Message(report, reply_to=message)


#: This process's copy of the federation, with the run it was built for: (run id, federation).
_replica: tuple[int, Federation] | None = None


def replica(config: FedConfig, data: Data | None, run_id: int) -> Federation:
    """This worker process's copy of run ``run_id``'s federation, built on its first message.

    A worker serves many nodes and rounds; the state of each client arrives with its message,
    so one copy serves them all.
    """
    global _replica
    if _replica is None or _replica[0] != run_id:
        _replica = (run_id, Federation.build(config, data))
    return _replica[1]


# --- the messages ---------------------------------------------------------------------------------


def round_orders(global_params: torch.Tensor, round_index: int, stream: torch.Tensor,
                 client_state: dict) -> RecordDict:
    """What the server sends a chosen client: the weights, the round, the random state, and the
    client's state."""
    return RecordDict({
        "global": ArrayRecord({"weights": Array(global_params.detach().cpu().numpy())}),
        "round": ConfigRecord({"round": round_index, "random_state": to_bytes(stream),
                               "client_state": to_bytes(client_state)}),
    })


def read_orders(content: RecordDict, device: torch.device
                ) -> tuple[torch.Tensor, int, torch.Tensor, dict]:
    orders = content["round"]
    global_params = torch.tensor(content["global"]["weights"].numpy(), device=device)
    return (global_params, int(orders["round"]), from_bytes(orders["random_state"]),
            from_bytes(orders["client_state"]))


def round_report(update: ClientUpdate, client_state: dict, stream: torch.Tensor) -> RecordDict:
    """What a client sends back: its update, sample count and loss, and both states."""
    return RecordDict({
        "update": ArrayRecord({"delta": Array(update.delta.detach().cpu().numpy())}),
        "metrics": MetricRecord({"num_samples": update.num_samples,
                                 "train_loss": update.train_loss}),
        "state": ConfigRecord({"random_state": to_bytes(stream),
                               "client_state": to_bytes(client_state)}),
    })


def read_report(content: RecordDict, device: torch.device
                ) -> tuple[ClientUpdate, dict, torch.Tensor]:
    metrics, state = content["metrics"], content["state"]
    delta = torch.tensor(content["update"]["delta"].numpy(), device=device)
    update = ClientUpdate(delta, int(metrics["num_samples"]), float(metrics["train_loss"]))
    return update, from_bytes(state["client_state"]), from_bytes(state["random_state"])


def to_bytes(value: Any) -> bytes:
    """Tensors in plain containers (a state dict) as bytes, by ``torch.save``."""
    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


def from_bytes(data: bytes) -> Any:
    """``to_bytes``'s value again. ``weights_only``: tensors and plain containers only, because
    unpickling anything else from a peer could run that peer's code; such a payload, or bytes
    that are no ``torch.save`` at all, are one line."""
    try:
        return torch.load(io.BytesIO(data), weights_only=True)
    except Exception as error:  # UnpicklingError, zip errors, EOFError...: nothing was run
        raise ValueError(f"payload of {len(data)} bytes is not allowed: it must be tensors in "
                         f"plain containers, as to_bytes writes them ({type(error).__name__}; "
                         f"nothing in it was run)") from None
