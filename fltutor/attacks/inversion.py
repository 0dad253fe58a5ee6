"""Gradient inversion: images and labels recovered from a gradient or an update alone.

Every function here takes only what the adversary sees: the model it was sent, the gradient or
update it observed, and public facts such as the batch size. Scoring the result against the
private images lives in ``fltutor.metrics`` (``reconstruction_scores``).
"""

from __future__ import annotations

from typing import Sequence

import torch

from ..checks import check_choice

#: How far apart two gradients are: the L2 distance of DLG (Zhu et al. 2019, Eq. 4), or one minus
#: the cosine similarity of Inverting Gradients (Geiping et al. 2020, Eq. 4).
DISTANCES = ("l2", "cosine")


def gradient_distance(dummy: Sequence[torch.Tensor], target: Sequence[torch.Tensor],
                      kind: str = "cosine") -> torch.Tensor:
    """Distance between two gradients given layer by layer (matching lists of tensors).

    ``l2``: the squared Euclidean distance summed over all layers, ||g' - g||^2 (DLG).
    ``cosine``: 1 - <g', g> / (||g'|| ||g||) over all weights at once (Inverting Gradients): it
    ignores the gradient's scale, which the attacker rarely knows (the learning rate, the
    number of local steps), and keeps only its direction.

    >>> g = [torch.tensor([1.0, 0.0])]
    >>> gradient_distance([torch.tensor([2.0, 0.0])], g, "cosine").item()
    0.0
    >>> gradient_distance([torch.tensor([2.0, 0.0])], g, "l2").item()
    1.0
    """
    check_choice("distance", kind, DISTANCES)
    if kind == "l2":
        return sum(((a - b) ** 2).sum() for a, b in zip(dummy, target))
    dot = sum((a * b).sum() for a, b in zip(dummy, target))
    dummy_norm = sum(a.pow(2).sum() for a in dummy).sqrt()
    target_norm = sum(b.pow(2).sum() for b in target).sqrt()
    return 1 - dot / (dummy_norm * target_norm).clamp(min=1e-12)
