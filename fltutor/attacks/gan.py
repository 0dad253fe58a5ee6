"""GAN reconstruction by a malicious client (Hitaj et al. 2017, "Deep Models Under the GAN").

A client that holds no image of class G can still learn what G looks like: the global model it is
sent every round has learnt G from the clients that hold it, so it can serve as the discriminator
of a GAN. The attacker trains a generator until the model calls the generator's images "G".
To keep the generator honest, the attacker's own copy of the model also learns, as a GAN
discriminator does: its real local images keep their labels, the generated ones get an extra
"fake" label (the classifier's last output, ``Classifier.fake_label``).

The attacker sees only the global weights it is sent, its own data and public facts (the classes,
the image shape): the signatures below take nothing else. How good its images are is scored
elsewhere (``fltutor.metrics``) and by eye.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.functional.image import total_variation

from ..checks import (MAX_GAN_BATCH, MAX_JITTER, MAX_LATENT, MAX_PREVIEW, MAX_RATE, MAX_STEPS,
                      check_choice, check_int, check_number)
from ..federation import Client
from ..models import Generator, load_flat_parameters
from ..parts import Part
from ..training import OPTIMIZERS, LocalTraining, shuffled_batches


@dataclass
class GANSettings(Part):
    """How the attacker's GAN is built and trained each round; the defaults are the CRPA study's.

    Every round the generator takes ``steps`` steps (``None``: the study's "one epoch per round",
    as many steps as batches of the attacker's real data, or of its generated set for a free
    rider that holds none) on batches of ``batch_size``, with ``generator_optimizer`` at
    ``generator_lr``; the attacker's copy of the global model (the discriminator) learns with
    ``discriminator_optimizer`` at ``discriminator_lr``. The generator draws ``latent_dim``
    noise numbers; ``preview_count`` samples from fixed noise are kept every round to show the
    reconstruction improving. (The study does not say how large its GAN batches are; we use its
    training batch, 250.)

    Two image priors, both off in the study (0), help a short run make images a person can
    read rather than patterns that merely fool the classifier (Mahendran & Vedaldi 2015 and
    Yin et al. 2020, "DeepInversion", use both to invert classifiers):

    - ``jitter``: the discriminator sees every generated image shifted by up to so many pixels
      in each direction, so the generator cannot rely on one exact pixel placement;
    - ``smoothness``: the generator's loss adds this weight times the images' total variation
      (mean absolute difference between neighbouring pixels), against high-frequency noise.

    >>> GANSettings(steps=0)
    Traceback (most recent call last):
    ...
    ValueError: steps=0 is not allowed: it must be an integer >= 1 and <= 100000
    """

    steps: int | None = None
    batch_size: int = 250
    generator_optimizer: str = "sgd"
    generator_lr: float = 1e-3
    discriminator_optimizer: str = "sgd"
    discriminator_lr: float = 1e-4
    jitter: int = 0
    smoothness: float = 0.0
    latent_dim: int = 100
    preview_count: int = 8

    def validate(self) -> None:
        if self.steps is not None:
            check_int("steps", self.steps, 1, MAX_STEPS)
        check_int("batch_size", self.batch_size, 2, MAX_GAN_BATCH)  # BatchNorm needs two
        for role in ("generator", "discriminator"):
            check_choice(f"{role}_optimizer", getattr(self, f"{role}_optimizer"), list(OPTIMIZERS))
            check_number(f"{role}_lr", getattr(self, f"{role}_lr"), 0.0, MAX_RATE, open_low=True)
        check_int("jitter", self.jitter, 0, MAX_JITTER)
        check_number("smoothness", self.smoothness, 0.0, MAX_RATE)
        check_int("latent_dim", self.latent_dim, 1, MAX_LATENT)
        check_int("preview_count", self.preview_count, 1, MAX_PREVIEW)

    def steps_per_round(self, num_real: int, num_generated: int) -> int:
        return self.steps or math.ceil((num_real or num_generated) / self.batch_size)


def endless_batches(num_samples: int, batch_size: int, device) -> Iterator[torch.Tensor]:
    """Shuffled index batches over ``range(num_samples)``, pass after pass (empty ones if none)."""
    while True:
        if num_samples == 0:
            yield torch.zeros(0, dtype=torch.long, device=device)
        else:
            yield from shuffled_batches(num_samples, batch_size, device)


def jittered(images: torch.Tensor, max_shift: int) -> torch.Tensor:
    """``images`` rolled by one random shift of up to ``max_shift`` pixels down and across."""
    if max_shift == 0:
        return images
    down, across = torch.randint(-max_shift, max_shift + 1, (2,)).tolist()
    return torch.roll(images, shifts=(down, across), dims=(2, 3))


def mean_total_variation(images: torch.Tensor) -> torch.Tensor:
    """Total variation per pixel, averaged over the batch (torchmetrics sums it per image)."""
    return total_variation(images, reduction="mean") / images[0].numel()


def make_optimizer(name: str, model: nn.Module, lr: float) -> torch.optim.Optimizer:
    """SGD as in the study, or Adam with the DCGAN momentum (beta1 = 0.5) that GANs train well with."""
    if name == "adam":
        return torch.optim.Adam(model.parameters(), lr=lr, betas=(0.5, 0.999))
    return OPTIMIZERS[name](model.parameters(), lr=lr)


class GANReconstruction:
    """The attacker's GAN: a generator of class ``generate_class`` against a copy of the global model.

    Hitaj et al. (2017): every round the copy D is reset to the global weights; then, batch by
    batch, D takes one step on real local images (their own labels) plus generated ones (the
    fake label), and the generator takes one step on
    ``cross_entropy(D(generator(z)), generate_class)``, i.e. it makes D see G in its images.
    ``preview_noise`` is fixed, so the previews kept every round show the same latent points
    sharpening over the rounds.
    """

    def __init__(self, generator: Generator, discriminator: nn.Module, generate_class: int,
                 training: GANSettings, preview_noise: torch.Tensor):
        self.generator = generator
        self.discriminator = discriminator
        self.generate_class = generate_class
        self.training = training
        self.preview_noise = preview_noise
        self.generator_optimizer = make_optimizer(training.generator_optimizer, generator,
                                                  training.generator_lr)
        self.discriminator_optimizer = make_optimizer(training.discriminator_optimizer,
                                                      discriminator, training.discriminator_lr)
        self.previews: list[dict] = []

    @property
    def fake_label(self) -> int:
        return self.discriminator.fake_label

    def train_round(self, global_params: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
                    num_generated: int) -> float:
        """One round of GAN training against the global weights; returns the mean generator loss."""
        load_flat_parameters(self.discriminator, global_params)
        self.generator.train()
        self.discriminator.train()
        steps = self.training.steps_per_round(len(y), num_generated)
        batches = endless_batches(len(y), self.training.batch_size, y.device)
        total = torch.zeros((), device=global_params.device)
        for _, real in zip(range(steps), batches):
            fakes = self.generator.sample(self.training.batch_size)
            self.discriminator_step(x[real], y[real], fakes.detach())
            total = total + self.generator_step(fakes)
        return total.item() / steps

    def discriminator_step(self, real_x: torch.Tensor, real_y: torch.Tensor,
                           fakes: torch.Tensor) -> None:
        """D learns to keep real images in their classes and to call generated ones fake."""
        fake_y = torch.full((len(fakes),), self.fake_label, device=fakes.device)
        fakes = jittered(fakes, self.training.jitter)
        loss = F.cross_entropy(self.discriminator(torch.cat([real_x, fakes])),
                               torch.cat([real_y, fake_y]))
        self.discriminator_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.discriminator_optimizer.step()

    def generator_step(self, fakes: torch.Tensor) -> torch.Tensor:
        """The generator learns to make D classify its images as ``generate_class``."""
        wanted = torch.full((len(fakes),), self.generate_class, device=fakes.device)
        self.discriminator.requires_grad_(False)  # D stays as it is in this step
        loss = F.cross_entropy(self.discriminator(jittered(fakes, self.training.jitter)), wanted)
        if self.training.smoothness:
            loss = loss + self.training.smoothness * mean_total_variation(fakes)
        self.generator_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.generator_optimizer.step()
        self.discriminator.requires_grad_(True)
        return loss.detach()

    @torch.no_grad()
    def generate(self, count: int) -> torch.Tensor:
        """``count`` new images of (what the generator believes is) class G."""
        self.generator.eval()
        return self.generator.sample(count)

    @torch.no_grad()
    def keep_preview(self, round_index: int) -> None:
        """Remember what the fixed preview noise turns into after this round (kept on the CPU)."""
        self.generator.eval()
        images = self.generator(self.preview_noise).cpu()
        self.previews.append({"round": round_index, "images": images})

    def state_dict(self) -> dict:
        """Generator, both optimizers, the preview noise and the previews: all a resumed run needs."""
        return {"generator": self.generator.state_dict(),
                "generator_optimizer": self.generator_optimizer.state_dict(),
                "discriminator_optimizer": self.discriminator_optimizer.state_dict(),
                "preview_noise": self.preview_noise, "previews": self.previews}

    def load_state_dict(self, state: dict) -> None:
        self.generator.load_state_dict(state["generator"])
        self.generator_optimizer.load_state_dict(state["generator_optimizer"])
        self.discriminator_optimizer.load_state_dict(state["discriminator_optimizer"])
        self.preview_noise = state["preview_noise"].to(self.preview_noise.device)
        self.previews = list(state["previews"])


class ReconstructionClient(Client):
    """Hitaj et al.'s attacker: trains its GAN, then submits real data plus fakes labelled "fake".

    Labelling its fakes with the extra label is the active part of that attack: the federation
    learns that these images are not G, so the clients holding G push the model to tell G apart
    more sharply, and the next global model is a sharper discriminator for the attacker.

    That is also where realism comes from. Against a fixed classifier, a generator finds
    adversarial noise that the classifier calls G; the attacker's own copy cannot stop it, as it
    is reset every round and knows only the attacker's classes. Only the federation, where the
    holders of G keep answering "G" for real images while the attacker's submissions say "not G"
    for its fakes, pushes the generator round after round toward images that look like G: a
    slow process, visible over tens to hundreds of rounds.
    ``generated_count`` new fakes replace last round's set every round from ``start_round`` on;
    before it the client trains honestly. The submitted update is trained by ``self.training``
    like any client's (DP-SGD may wrap it).
    """

    def __init__(self, client_id: int, x: torch.Tensor, y: torch.Tensor, model: nn.Module,
                 training: LocalTraining, reconstruction: GANReconstruction, generated_count: int,
                 start_round: int = 1):
        super().__init__(client_id, x, y, model, training)
        self.reconstruction = reconstruction
        self.generated_count = generated_count
        self.start_round = start_round
        self.generated = x[:0]

    @property
    def generated_label(self) -> int:
        """The label the attacker gives its generated images in the training it submits."""
        return self.reconstruction.fake_label

    @property
    def num_samples(self) -> int:
        return len(self.y) + len(self.generated)

    def local_update(self, global_params: torch.Tensor, round_index: int):
        """Train the GAN against the global weights, generate a new set, then train and submit."""
        if round_index >= self.start_round:
            self.reconstruction.train_round(global_params, self.x, self.y, self.generated_count)
            self.reconstruction.keep_preview(round_index)
            self.generated = self.reconstruction.generate(self.generated_count)
        return super().local_update(global_params, round_index)

    def train(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """Train on the real data plus this round's generated set, labelled ``generated_label``."""
        labels = torch.full((len(self.generated),), self.generated_label, device=y.device)
        return super().train(torch.cat([x, self.generated]), torch.cat([y, labels]))

    def state_dict(self) -> dict:
        return {**super().state_dict(), "reconstruction": self.reconstruction.state_dict()}

    def load_state_dict(self, state: dict, global_params: torch.Tensor) -> None:
        super().load_state_dict(state, global_params)
        self.reconstruction.load_state_dict(state["reconstruction"])
