"""Aggregation rules: pure functions from the stacked client updates to one global update.

Every rule takes ``client_updates`` of shape ``[num_clients, num_params]`` (each row is a client's
new weights minus the global weights it was sent) and ``weights`` of shape ``[num_clients]``
(how many samples each client trained on), and returns an ``Aggregate``: the update to add to the
global weights and the indices of the clients whose updates were used. Robust rules (Krum,
median, ...) register here the same way as FedAvg's mean.

>>> updates = torch.tensor([[1.0, 0.0], [3.0, 2.0]])
>>> mean(updates, torch.tensor([1.0, 3.0])).update.tolist()
[2.5, 1.5]
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .registry import Registry

AGGREGATORS = Registry("aggregator")


@dataclass
class Aggregate:
    """The result of one aggregation: the global update and which clients it used."""

    update: torch.Tensor
    kept: list[int]


@AGGREGATORS.register("mean")
def mean(client_updates: torch.Tensor, weights: torch.Tensor) -> Aggregate:
    """FedAvg: the sample-weighted mean of the updates (McMahan et al. 2017, Algorithm 1).

    w_{t+1} = w_t + sum_k (n_k / n) * (w_{t+1}^k - w_t), with n_k the samples of client k.
    """
    share = weights.to(client_updates) / weights.sum()
    return Aggregate(update=share @ client_updates, kept=list(range(len(client_updates))))
