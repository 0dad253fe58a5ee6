"""Honest clients trained together: one batched computation for all of them (``torch.func.vmap``).

In a FedAvg round (McMahan et al. 2017, Algorithm 1, ClientUpdate) every honest client starts
from the same global weights and runs the same schedule (``LocalTraining``) on its own data. So
the K models can be one model with a leading *client axis* on every weight: a step is computed for
all K clients at once, ``vmap`` over ``functional_call`` turning each layer into one batched (for a
convolution: grouped) call. On a GPU that replaces K small launches by one large one; on a
two-core CPU it is slower than training the clients one after another (``benchmarks/
bench_engines.py`` measures both), which is why the federation's ``engine="auto"`` uses it on
CUDA only.

Clients hold different amounts of data. At step s every client trains on its own s-th batch;
the batches are padded to the largest with a mask, so each client's loss is the mean over its own
samples, exactly as alone. A client with fewer batches than the others sits the step out: its
optimizer does not step. The optimizer state is stacked too (``StackedOptimizer``): each client
keeps its own Adam moments and step count, read from and written back to its ``torch.optim``
optimizer, so the two engines can take turns in one run and a checkpoint is the same for both.

The shuffles are drawn client after client, epoch after epoch, as the one-after-another engine
draws them, so for a model without dropout both engines compute the same weights up to float
rounding (tested); with dropout the masks are drawn in another order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.func import functional_call, vmap

from .models import load_flat_parameters
from .training import ClientUpdate, LocalTraining, shuffled_batches

#: The engines a federation can train its honest clients with (``FedConfig.engine``).
ENGINES = ("auto", "sequential", "batched")


def batched_on(engine: str, device: torch.device) -> bool:
    """Whether ``engine`` trains the plain clients together on ``device`` (``auto``: on CUDA)."""
    return engine == "batched" or (engine == "auto" and device.type == "cuda")


def can_train_together(clients: list) -> bool:
    """Whether ``clients`` can share one batched step: plain clients (``Client.trains_plainly``)
    with the same cross-entropy schedule and models without buffers (no BatchNorm statistics)."""
    return (len(clients) > 1 and all(c.trains_plainly for c in clients)
            and len({c.training for c in clients}) == 1
            and clients[0].training.loss is F.cross_entropy
            and not any(True for c in clients for _ in c.model.buffers()))


@dataclass
class StackedOptimizer:
    """SGD or Adam for K clients at once: weights, moments and step counts with a client axis.

    Adam is Kingma and Ba (2015), Algorithm 1, as ``torch.optim.Adam`` computes it:
    m <- b1 m + (1 - b1) g,  v <- b2 v + (1 - b2) g^2,
    w <- w - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps),
    with t counted per client. SGD is w <- w - lr g. Rows whose client sits a step out
    (``active[k]`` false) keep weights and state.
    """

    kind: str
    lr: float
    betas: tuple[float, float]
    eps: float
    moments: list[tuple[torch.Tensor, torch.Tensor]]  # Adam's (m, v) for every weight
    steps: torch.Tensor  # (K,) Adam steps taken per client

    @classmethod
    def from_clients(cls, clients: list, training: LocalTraining) -> "StackedOptimizer":
        """Stack the state of every client's ``torch.optim`` optimizer (empty: zeros, t = 0)."""
        group = clients[0].optimizer.param_groups[0]
        moments, steps = [], torch.zeros(len(clients))
        if training.optimizer == "adam":
            for k, client in enumerate(clients):
                state = client.optimizer.state
                steps[k] = float(state[next(client.model.parameters())].get("step", 0)) if state else 0
            for index, _ in enumerate(clients[0].model.parameters()):
                pairs = [adam_state(c, index) for c in clients]
                moments.append((torch.stack([m for m, _ in pairs]), torch.stack([v for _, v in pairs])))
        return cls(training.optimizer, group["lr"], group.get("betas", (0.9, 0.999)),
                   group.get("eps", 1e-8), moments, steps.to(clients[0].x.device))

    @torch.no_grad()
    def step(self, weights: list[torch.Tensor], active: torch.Tensor) -> None:
        """One step for the ``active`` clients; ``weights[i].grad`` holds every client's gradient."""
        if self.kind == "sgd":
            for w in weights:
                w.sub_(self.lr * w.grad * along_clients(active.to(w.dtype), w))
            return
        b1, b2 = self.betas
        self.steps += active.to(self.steps.dtype)
        t = self.steps.clamp(min=1)
        for w, (m, v) in zip(weights, self.moments):
            keep = along_clients(active, w)
            g = w.grad
            m.copy_(torch.where(keep, b1 * m + (1 - b1) * g, m))
            v.copy_(torch.where(keep, b2 * v + (1 - b2) * g * g, v))
            step_size = along_clients(self.lr / (1 - b1 ** t), w)
            denominator = v.sqrt() / along_clients(torch.sqrt(1 - b2 ** t), w) + self.eps
            w.sub_(torch.where(keep, step_size * m / denominator, torch.zeros_like(w)))

    def write_back(self, clients: list) -> None:
        """Put every client's moments and step count back into its ``torch.optim.Adam``."""
        if self.kind != "adam":
            return
        for k, client in enumerate(clients):
            for index, p in enumerate(client.model.parameters()):
                m, v = self.moments[index]
                client.optimizer.state[p] = {"step": torch.tensor(float(self.steps[k])),
                                             "exp_avg": m[k].clone(), "exp_avg_sq": v[k].clone()}


def adam_state(client, index: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Client's Adam moments (m, v) of its ``index``-th weight; zeros before its first step."""
    p = list(client.model.parameters())[index]
    state = client.optimizer.state.get(p)
    if not state:
        return torch.zeros_like(p), torch.zeros_like(p)
    return state["exp_avg"], state["exp_avg_sq"]


def along_clients(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A (K,) tensor shaped to broadcast along the client axis of ``like`` (K, ...)."""
    return values.view(-1, *[1] * (like.dim() - 1))


@dataclass
class Schedule:
    """Every step's batches for K clients: sample indices (K, width) and a mask of real ones."""

    indices: list[torch.Tensor]
    masks: list[torch.Tensor]

    @classmethod
    def line_up(cls, passes: list[list[list[torch.Tensor]]], device) -> "Schedule":
        """Line up the clients' s-th batches of every epoch as one padded step; ``passes[k]``
        holds client k's shuffled batches, epoch by epoch (``shuffled_passes``)."""
        epochs = len(passes[0])
        indices, masks = [], []
        for epoch in range(epochs):
            for s in range(max(len(batches[epoch]) for batches in passes)):
                batch = [batches[epoch][s] if s < len(batches[epoch]) else torch.zeros(0, dtype=torch.long)
                         for batches in passes]
                width = max(len(b) for b in batch)
                mask = torch.zeros(len(passes), width, dtype=torch.bool)
                index = torch.zeros(len(passes), width, dtype=torch.long)
                for k, b in enumerate(batch):
                    mask[k, :len(b)], index[k, :len(b)] = True, b
                indices.append(index.to(device))
                masks.append(mask.to(device))
        return cls(indices, masks)


def shuffled_passes(num_samples: int, training: LocalTraining) -> list[list[torch.Tensor]]:
    """One client's shuffled batches for each epoch, drawn as ``train_epochs`` draws them."""
    return [list(shuffled_batches(num_samples, training.batch_size, "cpu"))
            for _ in range(training.epochs)]


def padded(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Stack tensors of different lengths along a new client axis, padding with zeros."""
    out = tensors[0].new_zeros(len(tensors), max(len(t) for t in tensors), *tensors[0].shape[1:])
    for k, t in enumerate(tensors):
        out[k, :len(t)] = t
    return out


def train_together(clients: list, global_params: torch.Tensor) -> list:
    """Every client's round of local training in one batched computation; their updates.

    ``clients`` must pass ``can_train_together``. Each starts from ``global_params``, as in
    ``Client.local_update``; afterwards each client's model and optimizer hold what training
    them one after another would have left there.
    """
    training = clients[0].training
    for client in clients:
        client.prepare(global_params)
    model = clients[0].model
    model.train()
    names = [name for name, _ in model.named_parameters()]
    weights = [torch.stack([dict(c.model.named_parameters())[name].detach() for c in clients])
               .requires_grad_() for name in names]
    optimizer = StackedOptimizer.from_clients(clients, training)
    # each client's round data (a FedSGD minibatch), then its shuffles: the sequential order
    rounds, passes = [], []
    for client in clients:
        rounds.append(client.round_data())
        passes.append(shuffled_passes(len(rounds[-1][1]), training))
    x, y = padded([x_k for x_k, _ in rounds]), padded([y_k for _, y_k in rounds])
    schedule = Schedule.line_up(passes, x.device)
    forward = vmap(lambda w, xb: functional_call(model, dict(zip(names, w)), (xb,)),
                   randomness="different")
    rows = torch.arange(len(clients), device=x.device)[:, None]
    loss_sums = torch.zeros(len(clients), device=x.device)
    for index, mask in zip(schedule.indices, schedule.masks):
        logits = forward(weights, x[rows, index])
        per_sample = F.cross_entropy(logits.flatten(0, 1), y[rows, index].flatten(),
                                     reduction="none").view(mask.shape)
        losses = (per_sample * mask).sum(1) / mask.sum(1).clamp(min=1)
        for w in weights:
            w.grad = None
        losses.sum().backward()  # client k's weights get the gradient of its own loss only
        optimizer.step(weights, mask.any(1))
        loss_sums += losses.detach()
    batches = torch.stack([mask.any(1) for mask in schedule.masks]).sum(0).cpu()
    loss_sums = loss_sums.cpu()  # one device sync per round
    optimizer.write_back(clients)
    updates = []
    for k, client in enumerate(clients):
        trained = torch.cat([w[k].detach().reshape(-1) for w in weights])
        load_flat_parameters(client.model, trained)
        loss = loss_sums[k].item() / batches[k].item() if batches[k] else math.nan
        updates.append(ClientUpdate(trained - global_params, len(rounds[k][1]), loss))
    return updates
