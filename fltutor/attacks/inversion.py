"""Gradient inversion: images and labels recovered from a gradient or an update alone.

Every function here takes only what the adversary sees: the model it was sent, the gradient or
update it observed, and public facts (``Knowledge``: the batch size, the image shape, the number
of classes, and for FedAvg the local learning rate and number of local steps). Scoring the
result against the private images lives in ``fltutor.metrics`` (``reconstruction_scores``).

The attack in one line: find dummy images x' (and labels y') whose gradient matches the observed
one, argmin_{x', y'} D(grad_w L(f_w(x'), y'), g) (Zhu et al. 2019, Eq. 4). Three methods fill
that in (``METHODS``):

``dlg``   Deep Leakage from Gradients (Zhu et al. 2019): L2 distance, L-BFGS on images and soft
          labels at once;
``idlg``  improved DLG (Zhao et al. 2020): the label read off the last layer's gradient first
          (``fltutor.attacks.labels``), then DLG on the images alone;
``ig``    Inverting Gradients (Geiping et al. 2020): cosine distance plus total variation, Adam
          on signed gradients with step decay, a box constraint, several restarts.

With FedAvg the client sends the change of its weights after S local steps, not a gradient. The
attack then runs the same S steps on its dummy data, differentiably (``simulated_update``), and
matches the resulting change (Geiping et al. 2020, Sec. 5).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from ..checks import (MAX_CLASSES, MAX_RATE, MAX_STEPS, Checked, check, check_choice, check_int,
                      check_number)
from .labels import last_layer_gradient, recover_labels

#: How far apart two gradients are: the L2 distance of DLG (Zhu et al. 2019, Eq. 4), or one minus
#: the cosine similarity of Inverting Gradients (Geiping et al. 2020, Eq. 4).
DISTANCES = ("l2", "cosine")

#: The most dummy images one inversion optimises at once. The methods are shown on batches of 1
#: to 8; beyond a few dozen images a gradient no longer pins each one down (Geiping et al. 2020,
#: Sec. 6), and the double backward pass grows with every image.
MAX_DUMMY = 64

#: Optimisation steps of one inversion: DLG uses 300 L-BFGS steps, Inverting Gradients 24,000
#: Adam steps.
MAX_ITERATIONS = MAX_STEPS

#: Called after every iteration with (iteration, loss, current images); returning True stops.
Callback = Callable[[int, float, torch.Tensor], "bool | None"]


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


@dataclass
class Knowledge(Checked):
    """The public facts the attacker knows about the batch behind what it observed.

    ``local_steps=0`` (the default): the observation is one gradient of the mean cross-entropy
    over the batch (FedSGD). ``local_steps=S >= 1``: it is the weight change after S steps of
    plain gradient descent with ``local_lr`` on the whole batch (FedAvg's local training).
    """

    batch_size: int = 1
    image_shape: tuple[int, ...] = (1, 28, 28)
    num_classes: int = 10
    local_steps: int = 0
    local_lr: float = 0.1

    def validate(self) -> None:
        check_int("batch_size", self.batch_size, 1, MAX_DUMMY)
        check(isinstance(self.image_shape, tuple) and len(self.image_shape) == 3
              and all(isinstance(n, int) and n >= 1 for n in self.image_shape),
              "image_shape", self.image_shape, "(channels, height, width), each >= 1")
        check_int("num_classes", self.num_classes, 2, MAX_CLASSES)
        check_int("local_steps", self.local_steps, 0, MAX_STEPS)
        check_number("local_lr", self.local_lr, 0.0, MAX_RATE, open_low=True)


@dataclass
class Inversion:
    """What an inversion recovered: ``images`` in [-1, 1] (at most; DLG leaves them free),
    ``labels``, the loss after every iteration, and how many iterations it ran."""

    images: torch.Tensor
    labels: torch.Tensor
    losses: list[float] = field(default_factory=list)

    @property
    def iterations(self) -> int:
        return len(self.losses)


# --- what the victim computes (and the attacker, on its dummy data) ----------------------------------

def batch_loss(model: nn.Module, params: dict | None, images: torch.Tensor,
               targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the batch; ``targets`` are class indices or rows of probabilities
    (DLG's soft labels); ``params`` replace the model's own weights (``torch.func``)."""
    logits = model(images) if params is None else functional_call(model, params, (images,))
    return F.cross_entropy(logits, targets)


def gradient(model: nn.Module, images: torch.Tensor, targets: torch.Tensor,
             create_graph: bool = False) -> list[torch.Tensor]:
    """grad_w L(f_w(x), y), layer by layer: what a FedSGD client sends (Zhu et al. 2019, Eq. 1)."""
    loss = batch_loss(model, None, images, targets)
    grads = torch.autograd.grad(loss, list(model.parameters()), create_graph=create_graph)
    return list(grads) if create_graph else [g.detach() for g in grads]


def simulated_update(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, lr: float,
                     steps: int, create_graph: bool = False) -> list[torch.Tensor]:
    """The weight change w_S - w_0 after ``steps`` steps w_{s+1} = w_s - lr grad L(f_{w_s}(x), y).

    Differentiable in the images when ``create_graph`` is set: the weights are carried as plain
    tensors through ``torch.func.functional_call``, so the attacker can back-propagate through
    all S steps (Geiping et al. 2020, Sec. 5, "Federated averaging").
    """
    start = dict(model.named_parameters())
    params = dict(start)
    for _ in range(steps):
        loss = batch_loss(model, params, images, targets)
        grads = torch.autograd.grad(loss, list(params.values()), create_graph=create_graph)
        params = {name: p - lr * g for (name, p), g in zip(params.items(), grads)}
    change = [params[name] - start[name] for name in start]
    return change if create_graph else [c.detach() for c in change]


def observed_by(model: nn.Module, images: torch.Tensor, targets: torch.Tensor,
                knowledge: Knowledge, create_graph: bool = False) -> list[torch.Tensor]:
    """What a client sends for this batch: its gradient (FedSGD) or its update (FedAvg)."""
    if knowledge.local_steps == 0:
        return gradient(model, images, targets, create_graph)
    return simulated_update(model, images, targets, knowledge.local_lr, knowledge.local_steps,
                            create_graph)


# --- the attacks -------------------------------------------------------------------------------------

@dataclass
class Settings(Checked):
    """How an attack searches: ``iterations`` optimiser steps from ``restarts`` random starts
    (the best by gradient distance is kept), learning rate ``lr``, total-variation weight
    ``tv_weight`` (Inverting Gradients only), and the ``seed`` of the dummy data."""

    iterations: int = 300
    lr: float = 1.0
    restarts: int = 1
    tv_weight: float = 1e-4
    seed: int = 0

    def validate(self) -> None:
        check_int("iterations", self.iterations, 1, MAX_ITERATIONS)
        check_number("lr", self.lr, 0.0, MAX_RATE, open_low=True)
        check_int("restarts", self.restarts, 1, 100)
        check_number("tv_weight", self.tv_weight, 0.0, MAX_RATE)
        check_int("seed", self.seed, 0, 2**63 - 1)


def check_observed(model: nn.Module, observed: Sequence[torch.Tensor]) -> None:
    """One tensor per weight tensor of ``model``, of the same shape."""
    shapes = [tuple(p.shape) for p in model.parameters()]
    check(len(observed) == len(shapes) and all(tuple(o.shape) == s for o, s in zip(observed, shapes)),
          "observed", f"{len(observed)} tensors", f"one tensor per weight tensor of the model "
          f"({len(shapes)}, shaped like them)")


def total_variation(images: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of neighbouring pixels (Rudin et al. 1992), Inverting Gradients'
    image prior: it favours piecewise smooth images over noise (Geiping et al. 2020, Eq. 4)."""
    across = (images[..., :, 1:] - images[..., :, :-1]).abs().mean()
    down = (images[..., 1:, :] - images[..., :-1, :]).abs().mean()
    return across + down


def dummy_images(knowledge: Knowledge, generator: torch.Generator, device) -> torch.Tensor:
    """A fresh Gaussian starting point for the batch (DLG and Inverting Gradients both use one)."""
    shape = (knowledge.batch_size, *knowledge.image_shape)
    return torch.randn(shape, generator=generator).to(device).requires_grad_(True)


def dlg(model: nn.Module, observed: Sequence[torch.Tensor], knowledge: Knowledge,
        settings: Settings | None = None, labels: torch.Tensor | None = None,
        callback: Callback | None = None) -> Inversion:
    """Deep Leakage from Gradients (Zhu et al. 2019, Algorithm 1).

    Dummy images x' and dummy label logits y' start as Gaussian noise; L-BFGS (lr 1, as in DLG's
    code; one iteration is one ``LBFGS.step`` of up to 20 evaluations) minimises
    ||grad_w L(f(x'), softmax(y')) - g||^2 over both. With ``labels`` given (iDLG) only the
    images are searched. The recovered labels are the argmax of the soft labels.

    Unlike DLG's code, L-BFGS searches its step length (a strong-Wolfe line search, torch's
    ``line_search_fn``): with the fixed step of lr 1 it overshoots from many starts in float32
    and stalls with a blurred guess (from one model seed, 1 of 8 test images reached 30 dB in 60
    iterations), while with the line search the same starts reach over 70 dB.
    """
    settings = settings or Settings(lr=1.0)
    check_observed(model, observed)
    device = observed[0].device
    generator = torch.Generator().manual_seed(settings.seed)
    best: Inversion | None = None
    for _ in range(settings.restarts):
        images = dummy_images(knowledge, generator, device)
        logits = torch.randn(knowledge.batch_size, knowledge.num_classes,
                             generator=generator).to(device).requires_grad_(labels is None)
        searched = [images] if labels is not None else [images, logits]
        optimizer = torch.optim.LBFGS(searched, lr=settings.lr, line_search_fn="strong_wolfe")
        targets = (lambda: labels) if labels is not None else (lambda: logits.softmax(dim=1))

        def closure() -> torch.Tensor:
            optimizer.zero_grad()
            dummy = observed_by(model, images, targets(), knowledge, create_graph=True)
            loss = gradient_distance(dummy, observed, "l2")
            loss.backward()
            return loss

        run = optimise(lambda: optimizer.step(closure), images, settings.iterations, callback)
        found = labels if labels is not None else logits.detach().argmax(dim=1)
        result = Inversion(run.images, found, run.losses)
        best = result if best is None or final_loss(result) < final_loss(best) else best
    return best


def idlg(model: nn.Module, observed: Sequence[torch.Tensor], knowledge: Knowledge,
         settings: Settings | None = None, callback: Callback | None = None) -> Inversion:
    """iDLG (Zhao et al. 2020): the labels read off the last layer's gradient, then DLG.

    At batch 1 the label rule is exact (``fltutor.attacks.labels.idlg_label``); for larger
    batches it is the counting rule of ``recover_labels``. Fixing the label removes DLG's
    hardest unknown and makes the image search converge more often.
    """
    labels = observed_labels(model, observed, knowledge)
    return dlg(model, observed, knowledge, settings, labels=labels, callback=callback)


def observed_labels(model: nn.Module, observed: Sequence[torch.Tensor],
                    knowledge: Knowledge) -> torch.Tensor:
    """The batch's labels recovered from the last layer's part of the observation. A FedAvg
    update points against the gradient (w_S - w_0 = -lr sum of gradients), hence the sign."""
    check_observed(model, observed)
    last = last_layer_gradient(model, observed)
    pseudo_gradient = last if knowledge.local_steps == 0 else -last
    return recover_labels(pseudo_gradient, knowledge.batch_size)


def inverting_gradients(model: nn.Module, observed: Sequence[torch.Tensor], knowledge: Knowledge,
                        settings: Settings | None = None, labels: torch.Tensor | None = None,
                        callback: Callback | None = None) -> Inversion:
    """Inverting Gradients (Geiping et al. 2020, Eq. 4 and Sec. 4).

    Minimises 1 - cos(grad_w L(f(x'), y), g) + tv_weight * TV(x') over images x' in [-1, 1]:
    Adam (lr 0.1 by default) on the *sign* of the gradient of that objective, the learning rate
    cut tenfold at 3/8, 5/8 and 7/8 of the iterations, the images clamped into the box after
    every step; from ``restarts`` starts the one with the smallest gradient distance wins. The
    labels come from ``recover_labels`` unless given. With ``knowledge.local_steps`` S >= 1 the
    dummy batch goes through S simulated local steps and the weight change is matched instead.
    """
    settings = settings or Settings(lr=0.1, iterations=1000)
    check_observed(model, observed)
    labels = observed_labels(model, observed, knowledge) if labels is None else labels
    generator = torch.Generator().manual_seed(settings.seed)
    steps = settings.iterations
    best: Inversion | None = None
    for _ in range(settings.restarts):
        images = dummy_images(knowledge, generator, observed[0].device)
        optimizer = torch.optim.Adam([images], lr=settings.lr)
        schedule = torch.optim.lr_scheduler.MultiStepLR(
            optimizer, milestones=[steps * 3 // 8, steps * 5 // 8, steps * 7 // 8], gamma=0.1)

        def step() -> torch.Tensor:
            optimizer.zero_grad()
            dummy = observed_by(model, images, labels, knowledge, create_graph=True)
            distance = gradient_distance(dummy, observed, "cosine")
            (distance + settings.tv_weight * total_variation(images)).backward()
            images.grad.sign_()
            optimizer.step()
            schedule.step()
            with torch.no_grad():
                images.clamp_(-1, 1)
            return distance

        run = optimise(step, images, steps, callback)
        result = Inversion(run.images, labels, run.losses)
        best = result if best is None or final_loss(result) < final_loss(best) else best
    return best


def final_loss(result: Inversion) -> float:
    """The gradient distance a run ended at (infinite when it diverged at once)."""
    return result.losses[-1] if result.losses else float("inf")


def optimise(step: Callable[[], torch.Tensor], images: torch.Tensor, iterations: int,
             callback: Callback | None) -> Inversion:
    """Run ``step`` up to ``iterations`` times, recording the loss; stop early if the loss is no
    longer finite (L-BFGS can diverge: the last finite images are kept) or the callback says so."""
    losses: list[float] = []
    kept = images.detach().clone()
    for iteration in range(1, iterations + 1):
        loss = float(step().detach())
        if not torch.isfinite(torch.tensor(loss)) or not torch.isfinite(images).all():
            break
        losses.append(loss)
        kept = images.detach().clone()
        if callback is not None and callback(iteration, loss, kept):
            break
    return Inversion(kept, torch.empty(0, dtype=torch.long), losses)


#: The methods, by the names the command line and the widgets use.
METHODS: dict[str, Callable[..., Inversion]] = {"dlg": dlg, "idlg": idlg, "ig": inverting_gradients}

#: Each method's default search (DLG's and iDLG's 300 L-BFGS steps at lr 1; Inverting Gradients'
#: Adam at lr 0.1, fewer steps than the paper's 24,000 at batch 1 to fit a notebook).
DEFAULT_SETTINGS = {"dlg": dict(lr=1.0, iterations=300), "idlg": dict(lr=1.0, iterations=300),
                    "ig": dict(lr=0.1, iterations=1000, restarts=1, tv_weight=1e-4)}


def invert(method: str, model: nn.Module, observed: Sequence[torch.Tensor], knowledge: Knowledge,
           callback: Callback | None = None, **settings) -> Inversion:
    """Run the method named ``method`` (``METHODS``) with its defaults and ``settings`` changed.

    >>> invert("magic", None, [], Knowledge())
    Traceback (most recent call last):
    ...
    ValueError: method='magic' is not allowed: it must be one of dlg, idlg, ig
    """
    check_choice("method", method, list(METHODS))
    chosen = Settings(**{**DEFAULT_SETTINGS[method], **settings})
    return METHODS[method](model, observed, knowledge, chosen, callback=callback)
