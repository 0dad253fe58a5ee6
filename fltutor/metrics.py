"""How well the global model does, measured on held-out test data.

These functions see the true test data; attacks never call them. Keeping the scoring here and
out of the attacks makes the threat model readable from the attacks' signatures alone.
"""

from __future__ import annotations

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
