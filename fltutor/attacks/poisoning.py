"""Targeted label flipping: train on real images of class G, labelled as class T.

The classic data-poisoning attack (Tolpegin et al. 2020): a malicious client relabels its images
of a source class G as a target class T and trains on them like any client. FedAvg averages its
update into the global model, which starts calling G "T". In the CRPA study it is the baseline
the reconstruction attack is measured against: what an attacker that *does* hold G could do.

>>> flip_labels(torch.tensor([4, 1, 4, 9]), generate_class=4, target_class=9).tolist()
[9, 1, 9, 9]
"""

from __future__ import annotations

import torch

from ..federation import Client


def flip_labels(y: torch.Tensor, generate_class: int, target_class: int) -> torch.Tensor:
    """A copy of ``y`` in which every ``generate_class`` label reads ``target_class``."""
    return torch.where(y == generate_class, torch.full_like(y, target_class), y)


class LabelFlipClient(Client):
    """A client that holds real images of G and, from ``start_round`` on, trains on them as T."""

    def __init__(self, client_id, x, y, model, training, generate_class: int, target_class: int,
                 start_round: int = 1):
        super().__init__(client_id, x, y, model, training)
        self.generate_class = generate_class
        self.target_class = target_class
        self.start_round = start_round
        self.flipping = False

    def local_update(self, global_params: torch.Tensor, round_index: int):
        self.flipping = round_index >= self.start_round
        return super().local_update(global_params, round_index)

    def train(self, x: torch.Tensor, y: torch.Tensor) -> float:
        if self.flipping:
            y = flip_labels(y, self.generate_class, self.target_class)
        return super().train(x, y)
