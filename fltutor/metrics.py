"""How well the global model does, measured on held-out test data.

These functions see the true test data; attacks never call them. Keeping the scoring here and
out of the attacks makes the threat model readable from the attacks' signatures alone.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class Evaluation:
    """Test loss, accuracy, per-class accuracy and the confusion matrix of one model.

    ``confusion[i, j]`` counts test images of true class i that the model predicts as output j;
    it has one column per model output, so the CRPA classifier's extra "fake" output shows too.
    """

    loss: float
    accuracy: float
    per_class_accuracy: list[float]
    confusion: torch.Tensor

    def as_dict(self) -> dict:
        return {"test_loss": self.loss, "test_accuracy": self.accuracy,
                "per_class_accuracy": self.per_class_accuracy,
                "confusion": self.confusion.tolist()}


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, num_classes: int,
             batch_size: int = 1000) -> Evaluation:
    """Evaluate ``model`` on (x, y) in eval mode (no dropout), batch by batch."""
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=x.device)
    predictions = []
    for start in range(0, len(y), batch_size):
        logits = model(x[start : start + batch_size])
        loss_sum += F.cross_entropy(logits, y[start : start + batch_size], reduction="sum")
        predictions.append(logits.argmax(dim=1))
    model.train(was_training)
    predicted = torch.cat(predictions)
    num_outputs = logits.shape[1]
    confusion = torch.bincount(y * num_outputs + predicted, minlength=num_classes * num_outputs)
    confusion = confusion.reshape(num_classes, num_outputs).cpu()
    per_class = confusion.diagonal() / confusion.sum(dim=1).clamp(min=1)
    return Evaluation(
        loss=loss_sum.item() / len(y),
        accuracy=confusion.diagonal().sum().item() / len(y),
        per_class_accuracy=[round(v, 6) for v in per_class.tolist()],
        confusion=confusion,
    )


def attack_accuracy(confusion: torch.Tensor, generate_class: int, target_class: int) -> float:
    """The share of test images of class G that the model predicts as T (Becker et al. 2025).

    Read off the confusion matrix: row G, column T, over the row's sum. It is what a targeted
    poisoning attack is after; it is near zero when the model has learnt G.

    >>> attack_accuracy(torch.tensor([[8, 2], [1, 9]]), generate_class=0, target_class=1)
    0.2
    """
    row = confusion[generate_class]
    return row[target_class].item() / max(row.sum().item(), 1)


def aaa(history: list[dict]) -> float:
    """Average attack accuracy over all rounds of a run: AAA = (1/R) sum_r AA_r (the study's Eq. 1).

    The mean over rounds rewards an attack that works early and keeps working, not a lucky
    last round.

    >>> aaa([{"attack_accuracy": 0.1}, {"attack_accuracy": 0.5}])
    0.3
    """
    return sum(r["attack_accuracy"] for r in history) / len(history)


def mean_and_std(values: list[float]) -> tuple[float, float]:
    """Mean and (population) standard deviation, to report a number over several seeds.

    >>> mean_and_std([0.25, 0.5])
    (0.375, 0.125)
    """
    return statistics.fmean(values), statistics.pstdev(values)


def attack_accuracy_observer(generate_class: int, target_class: int):
    """A federation observer that records each round's ``attack_accuracy`` with its metrics."""

    def observe(record) -> dict:
        confusion = record.evaluation.confusion
        return {"attack_accuracy": attack_accuracy(confusion, generate_class, target_class)}

    return observe
