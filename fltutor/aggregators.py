"""Aggregation rules: pure functions from the stacked client updates to one global update.

Every rule takes ``client_updates`` of shape ``[num_clients, num_params]`` (each row is a client's
new weights minus the global weights it was sent) and ``weights`` of shape ``[num_clients]``
(how many samples each client trained on), and returns an ``Aggregate``: the update to add to the
global weights and the indices of the clients whose updates were used. Robust rules (Krum,
median, ...) register here the same way as FedAvg's mean, and start with ``check_inputs``: no
clients, shapes that disagree, or weights that are not positive and finite are refused in one
line instead of coming back as a NaN update.

>>> updates = torch.tensor([[1.0, 0.0], [3.0, 2.0]])
>>> mean(updates, torch.tensor([1.0, 3.0])).update.tolist()
[2.5, 1.5]
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .checks import check
from .parts import Part
from .registry import Registry

AGGREGATORS = Registry("aggregator")


@dataclass
class Aggregate:
    """The result of one aggregation: the global update and which clients it used."""

    update: torch.Tensor
    kept: list[int]


def check_inputs(client_updates: torch.Tensor, weights: torch.Tensor) -> None:
    """Refuse what no rule can aggregate: no updates, a shape that is not [num_clients, num_params]
    with a weight per client, or a weight that is zero, negative, infinite or NaN.

    >>> check_inputs(torch.zeros(2, 3), torch.tensor([0.0, 1.0]))
    Traceback (most recent call last):
    ...
    ValueError: weights=[0.0, 1.0] is not allowed: it must be one positive, finite number per client (2)
    """
    is_tensor = isinstance(client_updates, torch.Tensor)
    shape = tuple(client_updates.shape) if is_tensor else type(client_updates).__name__
    check(is_tensor and len(shape) == 2 and shape[0] > 0, "client_updates.shape", shape,
          "[num_clients, num_params] with at least one client")
    ok = (isinstance(weights, torch.Tensor) and weights.shape == (len(client_updates),)
          and bool(torch.isfinite(weights).all()) and bool((weights > 0).all()))
    check(ok, "weights", weights.tolist() if isinstance(weights, torch.Tensor) else weights,
          f"one positive, finite number per client ({len(client_updates)})")


@dataclass
class Rule(Part):
    """An aggregation rule with its options: a spec that, called, aggregates."""

    def __call__(self, client_updates: torch.Tensor, weights: torch.Tensor) -> Aggregate:
        raise NotImplementedError

    def check_fits(self, num_clients: int) -> None:
        """Refuse options that cannot hold with ``num_clients`` updates per round."""


def mean(client_updates: torch.Tensor, weights: torch.Tensor) -> Aggregate:
    """FedAvg: the sample-weighted mean of the updates (McMahan et al. 2017, Algorithm 1).

    w_{t+1} = w_t + sum_k (n_k / n) * (w_{t+1}^k - w_t), with n_k the samples of client k.
    """
    check_inputs(client_updates, weights)
    share = weights.to(client_updates) / weights.sum()
    return Aggregate(update=share @ client_updates, kept=list(range(len(client_updates))))


@AGGREGATORS.register("mean")
@dataclass
class Mean(Rule):
    """FedAvg's sample-weighted mean (``mean``)."""

    def __call__(self, client_updates: torch.Tensor, weights: torch.Tensor) -> Aggregate:
        return mean(client_updates, weights)
