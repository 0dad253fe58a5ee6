"""Local training on tensors: shuffled index batches, one optimizer step per batch.

The whole local dataset already sits on the device, so a batch is ``x[indices]``: no DataLoader,
no copying per step. The shuffling uses torch's global generator, which the federation seeds once,
so a CPU run repeats exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from .checks import (MAX_BATCH, MAX_EPOCHS, MAX_RATE, check_bool, check_choice, check_int,
                     check_number)

@dataclass
class ClientUpdate:
    """What a client sends back: its weight change, how many samples it used, its loss."""

    delta: torch.Tensor
    num_samples: int
    train_loss: float


OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "adam": torch.optim.Adam,
    "sgd": torch.optim.SGD,
}


@dataclass(frozen=True)
class LocalTraining:
    """How a client trains in one round: epochs, batch size, optimizer and learning rate.

    ``batch_size=None`` means one batch holding all the data a round trains on. ``minibatch``
    (FedSGD) makes a round train on a fresh random sample of that many of the client's images
    instead of all of them (``draw_minibatch``). With ``keep_optimizer_state`` a client's
    optimizer (Adam's moments) lives on across rounds, as in the CRPA study's reference code; otherwise it starts afresh every round. ``loss`` is what
    every step minimises, ``loss(outputs, labels)``: cross-entropy for the studies' classifiers.
    A client is its data plus this schedule, so the honest clients of a round differ in their
    data alone, and an engine may train them all in one batched step.
    """

    epochs: int
    batch_size: int | None
    optimizer: str
    lr: float
    keep_optimizer_state: bool
    minibatch: int | None = None
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy

    def __post_init__(self) -> None:
        check_int("epochs", self.epochs, 1, MAX_EPOCHS)
        if self.batch_size is not None:
            check_int("batch_size", self.batch_size, 1, MAX_BATCH)
        check_choice("optimizer", self.optimizer, list(OPTIMIZERS))
        check_number("lr", self.lr, 0.0, MAX_RATE, open_low=True)
        check_bool("keep_optimizer_state", self.keep_optimizer_state)
        if self.minibatch is not None:
            check_int("minibatch", self.minibatch, 1, MAX_BATCH)

    @classmethod
    def from_config(cls, config) -> "LocalTraining":
        """FedAvg trains ``local_epochs`` of mini-batches. FedSGD takes one plain SGD step on a
        fresh minibatch of ``batch_size`` images a round (all of them when the client holds
        fewer), so the update is exactly -lr times the gradient of that minibatch: McMahan et
        al. (2017, Sec. 2) with B = infinity is the full-batch case, and the curious-client
        study's analysis (arXiv 2506.11413, tau = 1) is the minibatch one."""
        if config.mode == "fedsgd":
            return cls(epochs=1, batch_size=None, optimizer="sgd", lr=config.lr,
                       keep_optimizer_state=False, minibatch=config.batch_size)
        return cls(config.local_epochs, config.batch_size, config.optimizer, config.lr,
                   config.keep_optimizer_state)

    def make_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        return OPTIMIZERS[self.optimizer](model.parameters(), lr=self.lr)

    def draw_minibatch(self, num_samples: int) -> torch.Tensor | None:
        """The indices of this round's FedSGD minibatch, drawn without replacement with torch's
        global generator (sorted, so that the batch does not depend on the draw's order); None
        when the round trains on all the client's data."""
        if self.minibatch is None or self.minibatch >= num_samples:
            return None
        return torch.randperm(num_samples)[:self.minibatch].sort().values

    def train(self, model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor,
              y: torch.Tensor) -> float:
        """One round's local training on (x, y); returns the mean batch loss."""
        return train_epochs(model, optimizer, x, y, self.epochs, self.batch_size, loss=self.loss)


def shuffled_batches(num_samples: int, batch_size: int | None, device) -> Iterator[torch.Tensor]:
    """Index tensors covering ``range(num_samples)`` once, in random order."""
    order = torch.randperm(num_samples).to(device)
    yield from order.split(batch_size or num_samples)


def train_epochs(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor,
                 y: torch.Tensor, epochs: int, batch_size: int | None,
                 batches: Callable[..., Iterator[torch.Tensor]] = shuffled_batches,
                 loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy
                 ) -> float:
    """Minimise ``loss`` (cross-entropy) on (x, y) for ``epochs`` passes; returns the mean batch
    loss.

    ``batches(num_samples, batch_size, device)`` yields one pass's index batches: shuffled by
    default, Poisson-sampled under DP-SGD (``fltutor.defenses.dp``). ``loss`` may return any
    object with ``backward()`` and ``detach()``: ghost clipping's loss does its two passes there.
    """
    model.train()
    total, steps = torch.zeros((), device=x.device), 0
    for _ in range(epochs):
        for batch in batches(len(y), batch_size, x.device):
            optimizer.zero_grad(set_to_none=True)
            batch_loss = loss(model(x[batch]), y[batch])
            batch_loss.backward()
            optimizer.step()
            if len(batch):  # a Poisson batch may be empty: still a (noise-only) step, no loss
                total, steps = total + batch_loss.detach(), steps + 1
    return total.item() / steps if steps else math.nan  # one device sync per round, not per batch
