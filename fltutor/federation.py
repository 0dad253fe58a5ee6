"""The federated round loop: broadcast, local updates, aggregation, evaluation, observers.

One round t of FedAvg (McMahan et al. 2017, Algorithm 1):

1. the server broadcasts the global weights w_t to the clients chosen for the round;
2. every chosen client k trains a copy on its own data and sends back ``w_t^k - w_t``;
3. the aggregator turns the stacked updates into one update (FedAvg: the sample-weighted mean);
4. w_{t+1} = w_t + update, evaluated on the test set;
5. observers see the round's record (weights before and after, every update, the metrics) and
   may add metrics of their own (attack accuracy, privacy budget, reconstructions, ...).

Between steps 2 and 3 comes one step for the attackers (``submitted``): every attack of the run
turns what its clients trained into what they submit; an omniscient one sees the honest
updates while it does (``fltutor.parts.OmniscientAttack``).

A run is composed of parts (``fltutor.parts``): ``Federation.build`` lets every attack place
its clients, every defense wrap what it protects and every observation add its observer. A
malicious client is just another ``Client`` with its own ``local_update``: neither the builder
nor the round loop asks which attack or defense is present, or who is honest.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from .aggregators import Aggregate
from .batched import batched_on, can_train_together, train_together
from .checks import MAX_ROUNDS, check_int
from .config import FedConfig, resolve_device
from .data import Data, load
from .metrics import Evaluation, evaluate
from .models import MODELS, flat_parameters, load_flat_parameters
from .partition import class_counts, split
from .training import ClientUpdate, LocalTraining


class Client:
    """An honest client: trains the global model on its own data and reports the change.

    It keeps its own model copy and optimizer, so Adam's moment estimates can live on across
    rounds (``LocalTraining.keep_optimizer_state``), as in the CRPA study's reference code.
    ``training`` decides how it trains; a defense such as DP-SGD replaces it with a wrapper.
    """

    def __init__(self, client_id: int, x: torch.Tensor, y: torch.Tensor, model: nn.Module,
                 training: LocalTraining):
        self.client_id = client_id
        self.x, self.y = x, y
        self.model = model
        self.training = training
        self.optimizer: torch.optim.Optimizer | None = None
        #: The indices of the images it trained on in its last round (None: all of them). Only
        #: the experimenter reads it, to score what an attacker recovered of that round.
        self.round_indices: torch.Tensor | None = None

    @property
    def num_samples(self) -> int:
        return len(self.y)

    @property
    def trains_plainly(self) -> bool:
        """Whether this client's round is the plain one: load the weights, train on its own data
        with a plain ``LocalTraining``, report the change. Only such clients can be trained
        together in one batched step (``fltutor.batched``); an attacker's or a defense's own
        ``local_update``, ``train`` or training wrapper makes a client train alone."""
        return (getattr(self.local_update, "__func__", None) is Client.local_update
                and getattr(self.train, "__func__", None) is Client.train
                and type(self.training) is LocalTraining)

    def prepare(self, global_params: torch.Tensor) -> torch.optim.Optimizer:
        """Load the broadcast weights; make a fresh optimizer unless the old one is kept."""
        load_flat_parameters(self.model, global_params)
        if self.optimizer is None or not self.training.keep_optimizer_state:
            self.optimizer = self.training.make_optimizer(self.model)
        return self.optimizer

    def train(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """Run the local training schedule on (x, y); subclasses change *what* they train on."""
        return self.training.train(self.model, self.optimizer, x, y)

    def round_data(self) -> tuple[torch.Tensor, torch.Tensor]:
        """What the client trains on this round: all its data (FedAvg), or a fresh FedSGD
        minibatch (``LocalTraining.draw_minibatch``), whose indices it keeps in
        ``round_indices``."""
        self.round_indices = self.training.draw_minibatch(self.num_samples)
        if self.round_indices is None:
            return self.x, self.y
        self.round_indices = self.round_indices.to(self.x.device)
        return self.x[self.round_indices], self.y[self.round_indices]

    def local_update(self, global_params: torch.Tensor, round_index: int) -> ClientUpdate:
        """One round of local work: start from the global weights, train, report the change and
        the number of images it trained on (the server's weight for it)."""
        self.prepare(global_params)
        x, y = self.round_data()
        loss = self.train(x, y)
        used = self.num_samples if self.round_indices is None else len(self.round_indices)
        return ClientUpdate(flat_parameters(self.model) - global_params, used, loss)

    def state_dict(self) -> dict:
        """What must survive a restart: the optimizer's state (weights come from the server),
        and the training's own state if it keeps one (DP-SGD's privacy accountant)."""
        state = {"optimizer": self.optimizer.state_dict() if self.optimizer else None}
        if hasattr(self.training, "state_dict"):
            state["training"] = self.training.state_dict()
        return state

    def load_state_dict(self, state: dict, global_params: torch.Tensor) -> None:
        if "training" in state:
            self.training.load_state_dict(state["training"])
        if state["optimizer"] is not None:
            self.prepare(global_params).load_state_dict(state["optimizer"])


@dataclass
class RoundRecord:
    """Everything that happened in one round, handed to every observer."""

    round: int
    global_before: torch.Tensor
    global_after: torch.Tensor
    client_ids: list[int]
    client_updates: torch.Tensor
    weights: torch.Tensor  # the server's weight of each update: the images its client trained on
    aggregate: Aggregate
    evaluation: Evaluation
    global_model: nn.Module
    seconds: float
    metrics: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        """The round's line in ``metrics.json``."""
        return {"round": self.round, "seconds": round(self.seconds, 4),
                "clients": self.client_ids, "kept": self.kept_clients,
                **self.evaluation.as_dict(), **self.metrics}

    @property
    def kept_clients(self) -> list[int]:
        """The clients whose updates the aggregator used (``Aggregate.kept`` counts rows)."""
        return [self.client_ids[row] for row in self.aggregate.kept]


#: An observer looks at a finished round and may return extra metrics to record with it.
Observer = Callable[[RoundRecord], "dict | None"]


class Federation:
    """A server, its clients and the round loop.

    Build one from a config with ``Federation.build(config)``; replace ``clients[k]`` with a
    malicious client, append observers, then ``run()``.
    """

    def __init__(self, config: FedConfig, data: Data, parts: list, clients: list[Client],
                 global_model: nn.Module):
        self.config = config
        self.data = data
        self.parts = parts
        self.clients = clients
        self.global_model = global_model
        self.aggregate: Callable[[torch.Tensor, torch.Tensor], Aggregate] = config.aggregator
        self.attacks = config.attack_parts()
        self.malicious_clients = config.malicious_clients
        self.observers: list[Observer] = []
        self.history: list[dict] = []

    @classmethod
    def build(cls, config: FedConfig, data: Data | None = None) -> "Federation":
        """Seed, load the data, partition it, give every client a copy of a fresh model, then
        put the config's parts in place.

        The partition respects ``config.partition_exclude()`` (the attackers' placement
        included). Then each attack replaces its clients (``Attack.make_client``) and adds its
        observers, each defense wraps what it protects (``Defense.protect``), and each
        observation adds its observer. ``config`` itself is kept as it is.
        """
        device = resolve_device(config.device)
        torch.manual_seed(config.seed)
        if data is None:
            data = load(config.dataset, config.data_root, max_per_class=config.max_per_class,
                        max_test=config.max_test, device=device,
                        allow_fallback=config.allow_fallback)
        data = data.to(device)
        parts = split(data.train_y, config.partition, config.num_clients, alpha=config.alpha,
                      shards_per_client=config.shards_per_client,
                      exclude=config.partition_exclude(), seed=config.seed)
        model = MODELS[config.model](data.num_classes).to(device)
        training = LocalTraining.from_config(config)
        clients = []
        for k, part in enumerate(parts):
            index = torch.as_tensor(part, device=device)
            clients.append(Client(k, data.train_x[index], data.train_y[index],
                                  copy.deepcopy(model), training))
        federation = cls(config, data, parts, clients, model)
        for attack in federation.attacks:
            for k in attack.clients:
                federation.clients[k] = attack.make_client(federation.clients[k], federation)
            federation.observers += attack.observers(federation)
        for defense in config.defenses:
            defense.protect(federation)
        for observation in config.observation_parts():
            federation.observers.append(observation.observer(federation))
        return federation

    def attacking_clients(self, round_index: int) -> set[int]:
        """The clients whose attack is on in round ``round_index`` (``Attack.attacking``)."""
        return {k for attack in self.attacks if attack.attacking(round_index) for k in attack.clients}

    @property
    def rounds_done(self) -> int:
        return len(self.history)

    def class_counts(self):
        """Client-by-class sample counts of this federation's partition."""
        return class_counts(self.data.train_y, self.parts, self.data.num_classes)

    def choose_clients(self) -> list[int]:
        """The clients taking part this round: all, or a random ``client_fraction`` of them."""
        num = len(self.clients)
        chosen = max(1, round(self.config.client_fraction * num))
        return list(range(num)) if chosen == num else sorted(torch.randperm(num)[:chosen].tolist())

    def run_round(self) -> RoundRecord:
        """One round: broadcast, local updates, aggregation, evaluation, then observers."""
        start = time.perf_counter()
        round_index = self.rounds_done + 1
        before = flat_parameters(self.global_model)
        chosen = self.choose_clients()
        updates = self.local_updates(chosen, before, round_index)
        stacked = self.submitted(torch.stack([u.delta for u in updates]), chosen, round_index)
        weights = torch.tensor([float(u.num_samples) for u in updates])
        aggregate = self.aggregate(stacked, weights)
        after = before + aggregate.update
        load_flat_parameters(self.global_model, after)
        evaluation = evaluate(self.global_model, self.data.test_x, self.data.test_y,
                              self.data.num_classes)
        record = RoundRecord(round_index, before, after, chosen, stacked, weights, aggregate,
                             evaluation, self.global_model, time.perf_counter() - start)
        record.metrics["train_loss"] = sum(u.train_loss for u in updates) / len(updates)
        for observe in self.observers:
            record.metrics.update(observe(record) or {})
        self.history.append(record.to_json())
        return record

    def local_updates(self, chosen: list[int], global_params: torch.Tensor,
                      round_index: int) -> list[ClientUpdate]:
        """The chosen clients' updates, in the order of ``chosen``.

        With the batched engine (``FedConfig.engine``; ``auto`` picks it on CUDA) the plain
        clients train together first, in one batched computation (``fltutor.batched``), then the
        others one by one; with the sequential engine every client trains in turn.
        """
        together = []
        if batched_on(self.config.engine, self.global_model_device):
            together = [k for k in chosen if self.clients[k].trains_plainly]
            if not can_train_together([self.clients[k] for k in together]):
                together = []
        updates = dict(zip(together, train_together([self.clients[k] for k in together],
                                                     global_params) if together else []))
        for k in chosen:
            if k not in updates:
                updates[k] = self.clients[k].local_update(global_params, round_index)
        return [updates[k] for k in chosen]

    @property
    def global_model_device(self) -> torch.device:
        return next(self.global_model.parameters()).device

    def submitted(self, trained: torch.Tensor, chosen: list[int],
                  round_index: int) -> torch.Tensor:
        """The step between local training and aggregation: what the chosen clients submit.

        ``trained[i]`` is the update client ``chosen[i]`` trained. Each attack gets the rows of
        its own clients and the honest clients' rows (``Attack.submit``; only an omniscient
        attack passes the honest rows on to its ``tamper``) and returns what its clients send.
        """
        if not self.attacks:
            return trained
        honest = [i for i, k in enumerate(chosen) if k not in self.malicious_clients]
        submitted = trained.clone()
        for attack in self.attacks:
            own = [i for i, k in enumerate(chosen) if k in attack.clients]
            if own:  # none of its clients may have been chosen this round
                submitted[own] = attack.submit(trained[own], trained[honest], round_index)
        return submitted

    def run(self, num_rounds: int | None = None, progress: bool = True,
            after_round: Callable[["Federation"], None] | None = None) -> list[dict]:
        """Run until ``num_rounds`` rounds are done in all (default: the config's number).

        ``after_round`` is called after every round (the experiment runner saves a checkpoint
        there). A progress bar shows accuracy as it goes, in a terminal or a notebook.
        """
        from tqdm.auto import tqdm

        if num_rounds is not None:
            check_int("num_rounds", num_rounds, 1, MAX_ROUNDS)
        total = num_rounds or self.config.num_rounds
        with tqdm(total=total, initial=self.rounds_done, desc="rounds", unit="round",
                  disable=not progress) as bar:
            while self.rounds_done < total:
                record = self.run_round()
                bar.set_postfix(acc=f"{record.evaluation.accuracy:.3f}")
                bar.update(1)
                if after_round is not None:
                    after_round(self)
        return self.history

    def summary(self) -> dict:
        """Headline numbers of the run so far."""
        last = self.history[-1]
        return {"rounds": self.rounds_done, "final_test_accuracy": last["test_accuracy"],
                "final_test_loss": last["test_loss"],
                "best_test_accuracy": max(r["test_accuracy"] for r in self.history),
                "total_seconds": round(sum(r["seconds"] for r in self.history), 3)}

    def state_dict(self) -> dict:
        """Everything needed to resume: global weights, client state, history, random state."""
        rng = {"cpu": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return {"global": flat_parameters(self.global_model).cpu(), "history": self.history,
                "clients": [c.state_dict() for c in self.clients], "rng": rng}

    def load_state_dict(self, state: dict) -> None:
        params = state["global"].to(self.data.train_x.device)
        load_flat_parameters(self.global_model, params)
        for client, client_state in zip(self.clients, state["clients"]):
            client.load_state_dict(client_state, params)
        self.history = list(state["history"])
        torch.set_rng_state(state["rng"]["cpu"])
        if "cuda" in state["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
