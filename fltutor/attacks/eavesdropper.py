"""An honest-but-curious server: it inverts one client's update, round after round.

The server is the one party that sees every client's update in the clear; it needs to change
nothing in the protocol to run gradient inversion on them (Zhu et al. 2019; Geiping et al. 2020).
This is therefore an *observation* of the round (``fltutor.parts.Observation``), not a client:
after round t it takes the model it broadcast (w_t) and the update one client sent back, and
searches for a batch of ``images`` dummy images whose simulated local training gives that update
(``fltutor.attacks.inversion``). What it knows is public: the number of local steps that the
client's data size, the batch size and the epochs imply, and the configured learning rate; it
assumes plain gradient descent, a cosine match tolerates Adam's other scaling.

The reconstructions are then scored against that client's own images (``fltutor.metrics``:
optimally paired, PSNR, SSIM, label accuracy), the measurement a teacher wants, which the
attack itself never sees.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch

from ..checks import MAX_ROUNDS, check, check_choice, check_int
from ..metrics import reconstruction_scores
from ..models import load_flat_parameters
from ..parts import OBSERVATIONS, Observation
from .inversion import MAX_DUMMY, METHODS, Knowledge, invert


def split_like(vector: torch.Tensor, model: torch.nn.Module) -> list[torch.Tensor]:
    """A flat update cut into one tensor per weight tensor of ``model`` (its parameter order)."""
    sizes = [p.numel() for p in model.parameters()]
    return [piece.view_as(p) for piece, p in zip(vector.split(sizes), model.parameters())]


@OBSERVATIONS.register("gradient-inversion")
@dataclass
class GradientInversion(Observation):
    """Every ``every`` rounds, the server inverts ``client``'s update with ``method`` into
    ``images`` dummy images (``iterations`` steps) and records ``inversion_psnr``,
    ``inversion_ssim`` and ``inversion_label_accuracy`` (``None`` in the other rounds, or when
    the client was not chosen)."""

    client: int = 0
    every: int = 1
    method: str = "ig"
    images: int = 4
    iterations: int = 100

    def validate(self) -> None:
        check_int("client", self.client, 0)
        check_int("every", self.every, 1, MAX_ROUNDS)
        check_choice("method", self.method, list(METHODS))
        check_int("images", self.images, 1, MAX_DUMMY)
        check_int("iterations", self.iterations, 1, 100_000)

    def check_fits(self, config) -> None:
        check(self.client < config.num_clients, "client", self.client,
              f"a client index from 0 to {config.num_clients - 1}")

    def observer(self, federation) -> "Eavesdropper":
        return Eavesdropper(self, federation)


@dataclass
class Eavesdropped:
    """One inverted update: the round, the reconstructions with their labels, the client's own
    images (what they are scored against) and the scores."""

    round: int
    images: torch.Tensor
    labels: torch.Tensor
    originals: torch.Tensor
    scores: dict


class Eavesdropper:
    """The server's observer of ``GradientInversion``; ``latest`` keeps its last inversion."""

    EMPTY = {"inversion_psnr": None, "inversion_ssim": None, "inversion_label_accuracy": None}

    def __init__(self, spec: GradientInversion, federation):
        config = federation.config
        self.spec = spec
        self.model = copy.deepcopy(federation.global_model)
        self.victim = federation.clients[spec.client]
        steps = config.local_epochs * math.ceil(self.victim.num_samples / config.batch_size)
        self.knowledge = Knowledge(batch_size=spec.images,
                                   image_shape=tuple(federation.data.train_x.shape[1:]),
                                   num_classes=federation.data.num_classes, local_steps=steps,
                                   local_lr=config.lr)
        self.latest: Eavesdropped | None = None

    def __call__(self, record) -> dict:
        spec = self.spec
        if record.round % spec.every or spec.client not in record.client_ids:
            return dict(self.EMPTY)
        load_flat_parameters(self.model, record.global_before)
        update = record.client_updates[record.client_ids.index(spec.client)]
        with torch.random.fork_rng(devices=[]):  # the run's random stream is left alone
            result = invert(spec.method, self.model, split_like(update, self.model),
                            self.knowledge, iterations=spec.iterations, seed=record.round)
        images = result.images.clamp(-1, 1)
        scores = reconstruction_scores(images, self.victim.x, result.labels, self.victim.y)
        self.latest = Eavesdropped(record.round, images, result.labels, self.victim.x, scores)
        return {"inversion_psnr": scores["psnr"], "inversion_ssim": scores["ssim"],
                "inversion_label_accuracy": scores["label_accuracy"]}
