"""Reading a batch's labels off the gradient of the last layer.

For a last linear layer z = W h + b and the cross-entropy loss, sample i contributes
dL/dW_c = (p_ic - y_ic) h_i to row c of the weight gradient, where p_i = softmax(z_i) and y_i is
the one-hot label (Zhao et al. 2020, Eq. 3-5). Every p_ic is in (0, 1), so at batch 1 exactly
one coefficient is negative: the true label's.

- ``idlg_label`` (batch 1) uses that fact exactly: all rows are multiples of the same h, and the
  label's row is the one pointing against all the others (for non-negative h, as after a sigmoid
  or a ReLU, iDLG simply takes the row with negative entries; comparing rows with each other
  works for any h, the tanh LeNet-5's included).
- ``recover_labels`` (any batch) is the counting rule of LLG (Wainakh et al. 2022, "User-Level
  Label Leakage from Gradients in Federated Learning", Sec. 4): with non-negative features,
  a row whose sum is negative belongs to a class in the batch; each such class is taken once,
  then the remaining places go, one at a time, to the class whose row sum is most negative after
  subtracting the estimated impact of one sample (the mean share of one sample in the negative
  sums) for every time the class was already taken.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..checks import check


def last_linear(model: nn.Module) -> nn.Linear:
    """The model's last linear layer (the classifier head every model here ends with)."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    check(bool(linears), "model", type(model).__name__, "a model that ends with a linear layer")
    return linears[-1]


def last_layer_gradient(model: nn.Module, observed: Sequence[torch.Tensor]) -> torch.Tensor:
    """The part of ``observed`` (one tensor per weight tensor) that is the last layer's weight."""
    weight = last_linear(model).weight
    index = next(i for i, p in enumerate(model.parameters()) if p is weight)
    return observed[index]


def idlg_label(weight_gradient: torch.Tensor) -> int:
    """The label of a single image from its last-layer weight gradient (Zhao et al. 2020).

    Row c is (p_c - y_c) h: only the label's coefficient is negative. The signs of the row
    products <row_c, row_d> (in float64, so tiny probabilities of a trained model do not
    underflow) say which rows point the same way; the label's row points against all others,
    so it has the smallest number of agreeing rows. When the rows do not settle it (only two
    rows are not zero, as when a saturated softmax gives every other class probability 0 in
    float32), iDLG's own rule decides among the tied rows: the label's row sum is negative for
    non-negative features.

    >>> h = torch.tensor([0.5, -1.0, 2.0])
    >>> idlg_label(torch.stack([0.2 * h, -0.7 * h, 0.5 * h]))
    1
    """
    rows = weight_gradient.double().flatten(1)
    agreement = torch.sign(rows @ rows.T).sum(dim=1)
    tied = (agreement == agreement.min()).nonzero().flatten()
    return int(tied[rows[tied].sum(dim=1).argmin()])


def recover_labels(weight_gradient: torch.Tensor, batch_size: int) -> torch.Tensor:
    """The batch's labels (sorted) from its last-layer weight gradient, summed over the batch.

    Batch 1: ``idlg_label``, exact. Larger batches: LLG's counting rule (module docstring),
    exact when the model's last features are non-negative and the classes are distinct, an
    estimate when some class occurs several times.

    >>> grad = torch.tensor([[-2.0, -2.0], [0.5, 0.5], [-1.0, -1.0], [0.1, 0.1]])
    >>> recover_labels(grad, 3).tolist()  # classes 0 and 2 are in; class 0 had most impact
    [0, 0, 2]
    """
    if batch_size == 1:
        return torch.tensor([idlg_label(weight_gradient)], device=weight_gradient.device)
    sums = weight_gradient.double().sum(dim=1)
    present = (sums < 0).nonzero().flatten().tolist()[:batch_size]
    impact = sums[sums < 0].sum() / batch_size if present else sums.min()
    labels = list(present)
    remaining = sums.clone()
    for label in present:
        remaining[label] -= impact
    while len(labels) < batch_size:
        label = int(remaining.argmin())
        labels.append(label)
        remaining[label] -= impact
    return torch.tensor(sorted(labels), device=weight_gradient.device)


def last_layer_bias_gradient(model: nn.Module, observed: Sequence[torch.Tensor]) -> torch.Tensor:
    """The part of ``observed`` (one tensor per weight tensor) that is the last layer's bias."""
    bias = last_linear(model).bias
    check(bias is not None, "model", type(model).__name__, "a last linear layer with a bias")
    index = next(i for i, p in enumerate(model.parameters()) if p is bias)
    return observed[index]


def counts_from_bias(bias_gradient: torch.Tensor, num_images: int,
                     mean_probabilities: torch.Tensor) -> torch.Tensor:
    """How many images of each class a mean cross-entropy gradient averages, from its last bias.

    The bias gradient of class c over N images is (1/N) sum_i (p_ic - y_ic) = pbar_c - n_c / N,
    so n_c = N (pbar_c - g_c) (the counting idea of Wainakh et al. 2022 and Geng et al. 2021,
    applied to the bias, which needs no assumption on the features). The attacker does not know
    the batch's mean prediction pbar; ``mean_probabilities`` is its estimate (the model's mean
    softmax on images it has). The estimates are clamped at 0 and rounded to whole counts that
    add up to N (largest remainders first; an estimate whose total is not N, as from a noised,
    poisoned or coordinate-wise aggregated gradient whose bias gradient does not sum to 0, is
    first scaled to total N, so that rounding never has more to give than one per class).
    Returns the labels, one per image, sorted.

    >>> counts_from_bias(torch.tensor([-0.4, 0.1, 0.3]), 4,
    ...                  torch.tensor([0.1, 0.1, 0.8])).tolist()  # n = 4 x (0.5, 0.0, 0.5)
    [0, 0, 2, 2]
    """
    check(bias_gradient.shape == mean_probabilities.shape, "mean_probabilities.shape",
          tuple(mean_probabilities.shape), f"the bias gradient's, {tuple(bias_gradient.shape)}")
    estimate = (num_images * (mean_probabilities.double() - bias_gradient.double())).clamp(min=0)
    total = float(estimate.sum())
    estimate = (estimate * (num_images / total) if total > 0
                else torch.full_like(estimate, num_images / len(estimate)))
    counts = estimate.floor().long()
    while counts.sum() > num_images:  # clamping added: take back where the least is lost
        remainder = (estimate - counts).masked_fill(counts == 0, float("inf"))
        counts[int(remainder.argmin())] -= 1
    order = (estimate - counts).argsort(descending=True)
    for label in order[:num_images - int(counts.sum())]:
        counts[label] += 1
    labels = torch.repeat_interleave(torch.arange(len(counts)), counts.cpu())
    return labels.to(bias_gradient.device)
