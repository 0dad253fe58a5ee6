"""The curious client: a client that reconstructs its peers' images from the global models.

"Byzantine outside, curious inside" (Yue et al., arXiv 2506.11413). A client sees nothing but
the global models it is sent. Two consecutive ones differ by the aggregated update, so

    g = (w_k - w_{k+1}) / (lr * local_steps)                                  (their Sec. 3)

estimates the mean gradient of the round (``estimated_gradient``; exact for one client taking one
SGD step). The client then looks for images whose gradient on w_k points the way g points, as
gradient inversion does (Geiping et al. 2020), but it searches only among images its own
autoencoder can draw: it optimises latent codes through the decoder (``reconstruct``), so what it
finds looks like handwriting even when g, the mean over hundreds of images, says little about
each one. The earlier the round, the larger and more telling the gradients: early models leak
most. So the client may also poison (sign flipping, Gaussian noise, a backdoor: any attack of
``fltutor.attacks.byzantine`` or ``backdoor``) to slow the federation down and keep it leaky.

Who knows what, from the signatures: ``estimated_gradient``, ``train_autoencoder``,
``dummy_count`` and ``reconstruct`` take only what the curious client has (the models it was
sent, its own data, public settings such as the learning rate, the batch size and the number of
clients). The spec ``CuriousClient`` (``curious`` in ``fltutor.parts.ATTACKS``) puts it in a
federation; its observer (``CuriousObserver``) is the experimenter's view, and only it reads the
peers' private images, to score the reconstructions with ``fltutor.metrics``.

The study publishes no autoencoder, reconstruction schedule or poisoning strength; the choices
here (``CuriousClient``'s defaults) are explained where they are made.

>>> before, after = torch.tensor([1.0, 2.0]), torch.tensor([0.5, 2.25])
>>> estimated_gradient(before, after, lr=0.25).tolist()
[2.0, -1.0]
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..checks import (MAX_BATCH, check_bool, MAX_EPOCHS, MAX_LATENT, MAX_RATE, MAX_STEPS, check,
                      check_int, check_number)
from ..metrics import matched_pairs, reconstruction_scores
from ..models import MODELS, load_flat_parameters
from ..parts import ATTACKS, Attack, known_options
from . import inversion
from .inversion import gradient_distance

#: The most dummy images one reconstruction optimises at once (each costs a double backward pass).
MAX_DUMMIES = 1_000


def shape_of(value) -> tuple | str:
    """A tensor's shape, or the type of what is not a tensor: for error messages."""
    return tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__


def estimated_gradient(before: torch.Tensor, after: torch.Tensor, lr: float,
                       local_steps: int = 1) -> torch.Tensor:
    """The round's mean gradient as a client estimates it from two consecutive global models.

    g = (w_k - w_{k+1}) / (lr * local_steps): the study's estimate (arXiv 2506.11413) with
    ``local_steps=1``. For FedSGD (one client, one SGD step) w_{k+1} = w_k - lr * grad, so g is
    the gradient exactly; for FedAvg it is the mean of the gradients along the clients' local
    paths, averaged over clients; under Adam it is a rescaled, sign-like version of it. Only its
    direction matters to a cosine match, so a wrong guess of lr or local_steps costs nothing there.
    """
    check_number("lr", lr, 0.0, MAX_RATE, open_low=True)
    check_int("local_steps", local_steps, 1, MAX_STEPS)
    check(isinstance(before, torch.Tensor) and isinstance(after, torch.Tensor)
          and before.shape == after.shape, "after.shape", shape_of(after),
          f"the shape of before, {shape_of(before)}")
    return (before - after) / (lr * local_steps)


def peers_gradient(gradient: torch.Tensor, own_gradients: torch.Tensor, num_clients: int
                   ) -> torch.Tensor:
    """The peers' mean gradient, once the client takes its own share out of the round's.

    FedAvg's update is the mean of the ``num_clients`` (K) submitted updates (equal shares
    assumed: the client knows only its own number of samples), so with m own clients
    g = (sum of own g_j + sum of the peers' g_k) / K, and the peers' mean is
    (K g - sum of own g_j) / (K - m). ``own_gradients`` ``[m, num_params]`` is what the
    client's own clients *submitted*, as gradients (minus the update over lr times steps): when
    it poisons, its sign-flipped or noisy updates, which would otherwise point the estimate away
    from the peers' data.

    >>> peers_gradient(torch.tensor([1.0]), torch.tensor([[-2.0]]), num_clients=3).tolist()
    [2.5]
    """
    check_int("num_clients", num_clients, len(own_gradients) + 1)
    return (num_clients * gradient - own_gradients.sum(dim=0)) / (num_clients - len(own_gradients))


class Autoencoder(nn.Module):
    """A small convolutional autoencoder for 28x28 images in [-1, 1]: the curious client's prior.

    Encoder: two 4x4 stride-2 convolutions (16 and 32 channels, ReLU; 28 -> 14 -> 7), then a
    linear layer to ``latent_dim`` numbers. Decoder: the mirror image, ending in tanh, so every
    code decodes to an image in [-1, 1], the range of ``fltutor.data``. It is the smallest of the
    usual DCGAN-like layouts that still draws legible digits: 32 numbers per image are enough for
    MNIST's strokes (its reconstructions reach an RMSE near 0.15 after 100 epochs on a hundred
    images), and the decoder's 60 k weights keep the double backward pass of
    ``reconstruct`` cheap. No BatchNorm: a decoded batch must not depend on its other members.

    >>> Autoencoder(8)(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 1, 28, 28])
    """

    def __init__(self, latent_dim: int = 32):
        check_int("latent_dim", latent_dim, 1, MAX_LATENT)
        super().__init__()
        self.latent_dim = latent_dim
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 16, kernel_size=4, stride=2, padding=1),  # 28 -> 14
            nn.ReLU(),
            nn.Conv2d(16, 32, kernel_size=4, stride=2, padding=1),  # 14 -> 7
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(32 * 7 * 7, latent_dim),
        )
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, 32 * 7 * 7),
            nn.ReLU(),
            nn.Unflatten(1, (32, 7, 7)),
            nn.ConvTranspose2d(32, 16, kernel_size=4, stride=2, padding=1),  # 7 -> 14
            nn.ReLU(),
            nn.ConvTranspose2d(16, 1, kernel_size=4, stride=2, padding=1),  # 14 -> 28
            nn.Tanh(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


@dataclass(frozen=True)
class LatentPrior:
    """Where the decoder's codes live: the mean and spread of the encodings of the attacker's own
    images, per latent dimension. Reconstructions are kept near it (``penalty``)."""

    mean: torch.Tensor
    std: torch.Tensor

    def sample(self, count: int, seed: int = 0) -> torch.Tensor:
        """``count`` random codes drawn from it: decoded, a control that knows no gradient."""
        noise = torch.randn(count, len(self.mean), generator=torch.Generator().manual_seed(seed))
        return self.mean + self.std * noise.to(self.mean.device)

    def penalty(self, codes: torch.Tensor) -> torch.Tensor:
        """Mean squared distance to the prior in units of its spread (a Gaussian's -log density)."""
        return ((codes - self.mean) / self.std).pow(2).mean()


def starting_codes(autoencoder: Autoencoder, own_x: torch.Tensor, count: int,
                   seed: int = 0) -> torch.Tensor:
    """The codes a reconstruction starts from: the encodings of ``count`` of the attacker's own
    images, drawn with ``seed`` (repeated if it holds fewer). Decoded as they are, they are the
    control: what the attacker draws knowing its own data and nothing of the gradient."""
    check_int("count", count, 1, MAX_DUMMIES)
    generator = torch.Generator().manual_seed(seed)
    picked = torch.randperm(max(count, len(own_x)), generator=generator)[:count] % len(own_x)
    with torch.no_grad():
        return autoencoder.encoder(own_x[picked.to(own_x.device)])


def train_autoencoder(own_x: torch.Tensor, latent_dim: int = 32, epochs: int = 30,
                      batch_size: int = 32, lr: float = 1e-3) -> tuple[Autoencoder, LatentPrior]:
    """The curious client's autoencoder, trained on its own images only, and its latent prior.

    Mean squared pixel error, Adam (Kingma & Ba 2015); the batches are shuffled with torch's
    global generator. Returns the autoencoder in eval mode (its weights frozen) and the
    ``LatentPrior`` of its encodings of ``own_x``.
    """
    check(isinstance(own_x, torch.Tensor) and own_x.dim() == 4
          and tuple(own_x.shape[1:]) == (1, 28, 28) and len(own_x) >= 2, "own_x.shape",
          shape_of(own_x), "[N, 1, 28, 28] with N >= 2 images")
    check_int("epochs", epochs, 1, MAX_EPOCHS)
    check_int("batch_size", batch_size, 1, MAX_BATCH)
    check_number("lr", lr, 0.0, MAX_RATE, open_low=True)
    autoencoder = Autoencoder(latent_dim).to(own_x.device)
    optimizer = torch.optim.Adam(autoencoder.parameters(), lr=lr)
    for _ in range(epochs):
        for batch in torch.randperm(len(own_x)).to(own_x.device).split(batch_size):
            optimizer.zero_grad(set_to_none=True)
            F.mse_loss(autoencoder(own_x[batch]), own_x[batch]).backward()
            optimizer.step()
    autoencoder.eval().requires_grad_(False)
    with torch.no_grad():
        codes = autoencoder.encoder(own_x)
    return autoencoder, LatentPrior(codes.mean(dim=0), codes.std(dim=0).clamp(min=1e-3))


def dummy_count(batch_size: int, num_peers: int, budget: int) -> int:
    """How many images to reconstruct: one per image of a peer's step, ``batch_size`` x
    ``num_peers``, at most ``budget`` (the attacker's compute).

    >>> dummy_count(batch_size=16, num_peers=4, budget=32)
    32
    """
    check_int("batch_size", batch_size, 1, MAX_BATCH)
    check_int("num_peers", num_peers, 1, MAX_DUMMIES)
    check_int("budget", budget, 1, MAX_DUMMIES)
    return min(batch_size * num_peers, budget)


def reconstruct(model: nn.Module, gradient: torch.Tensor, decoder: nn.Module,
                start_codes: torch.Tensor, prior: LatentPrior, num_classes: int,
                iterations: int = 100, lr: float = 0.05, prior_weight: float = 1.0,
                seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (through ``decoder``) whose gradient on ``model`` points the way ``gradient`` does.

    From ``start_codes`` (``starting_codes``), minimises over latent codes z and label logits
    s, with Adam (Kingma & Ba 2015) at ``lr``, ``iterations`` steps:

        1 - cos(grad_w CE(model(decoder(z)), softmax(s)), g) + prior_weight * ||(z - mu) / sigma||^2

    The cosine distance (Geiping et al. 2020, Eq. 4; ``gradient_distance``) ignores g's scale,
    which depends on lr and local steps the attacker can only guess. The labels are soft and
    optimised jointly, as in DLG (Zhu et al. 2019), since g is the mean over many images of
    several classes and no label rule reads a batch's labels off it; they start at random
    (``seed``). The prior term keeps the codes where the decoder was trained: without it the
    match is soon reached with codes that decode to no digit at all (an adversarial
    reconstruction whose cosine beats the peers' real images). ``gradient`` is flat, in the
    order of ``model.parameters()``. Returns the images ``[len(start_codes), 1, 28, 28]`` in
    [-1, 1] and their labels (the argmax of s), detached.
    """
    check(isinstance(start_codes, torch.Tensor) and start_codes.dim() == 2
          and 1 <= len(start_codes) <= MAX_DUMMIES, "start_codes.shape", shape_of(start_codes),
          f"[num_images, latent_dim] with 1 to {MAX_DUMMIES} images")
    check_int("num_classes", num_classes, 1)
    check_int("iterations", iterations, 1, MAX_STEPS)
    check_number("lr", lr, 0.0, MAX_RATE, open_low=True)
    check_number("prior_weight", prior_weight, 0.0)
    parameters = list(model.parameters())
    sizes = [p.numel() for p in parameters]
    check(gradient.numel() == sum(sizes), "gradient.numel()", gradient.numel(),
          f"the model's number of weights, {sum(sizes)}")
    target = [part.view_as(p) for part, p in zip(gradient.detach().split(sizes), parameters)]
    codes = start_codes.detach().clone().requires_grad_(True)
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(len(codes), num_classes, generator=generator).to(codes.device)
    logits.requires_grad_(True)
    optimizer = torch.optim.Adam([codes, logits], lr=lr)
    for _ in range(iterations):
        optimizer.zero_grad(set_to_none=True)
        # the gradient of the dummies, kept in the graph to be differentiated again (DLG)
        dummy = inversion.gradient(model, decoder(codes), logits.softmax(dim=1),
                                   create_graph=True)
        loss = gradient_distance(dummy, target, "cosine") + prior_weight * prior.penalty(codes)
        codes.grad, logits.grad = torch.autograd.grad(loss, [codes, logits])
        optimizer.step()
    with torch.no_grad():
        return decoder(codes), logits.argmax(dim=1)


def poisoning_attacks() -> list[str]:
    """The attacks a curious client may poison with: every registered attack that a Byzantine run
    takes on its own (``Attack.byzantine_run``), and ``none``."""
    return ["none", *(name for name in ATTACKS.names() if ATTACKS[name].byzantine_run)]


@dataclass
class RoundReconstruction:
    """One round's reconstructions, with the peers' images they were matched to (for figures)."""

    round: int
    images: torch.Tensor
    labels: torch.Tensor
    originals: torch.Tensor
    scores: dict


def own_local_steps(config, num_samples: int) -> int:
    """The optimizer steps of one client's round with ``num_samples`` images: one in FedSGD,
    else epochs times batches. The curious client assumes its peers take as many as it does."""
    if config.mode == "fedsgd":
        return 1
    return config.local_epochs * math.ceil(num_samples / config.batch_size)


class CuriousObserver:
    """Every ``every`` rounds: the curious client reconstructs from the round's two global models,
    and the experimenter scores the result against the peers' real images.

    The reconstruction step uses the attacker's view only (the global model before the round, the
    gradient estimated from before and after, its own autoencoder and prior, public settings).
    The scoring step reads ``peer_images``, all honest clients' training images pooled, and
    matches reconstructions to them optimally (``fltutor.metrics.matched_pairs``); it records
    ``curious_rmse``, ``curious_psnr`` and ``curious_ssim`` (lower RMSE: more leaked), and
    ``curious_seconds``, the time reconstructing and scoring took; it keeps
    the last ``RoundReconstruction`` in ``latest`` for figures. A round whose global model has
    diverged (weights or reconstructions no longer finite: a poisoning that outweighs the honest
    clients can do that) has nothing to score; it records ``curious_diverged`` instead, and the
    run goes on.
    """

    def __init__(self, attack: "CuriousClient", federation, autoencoder: Autoencoder,
                 prior: LatentPrior, own_x: torch.Tensor, peer_images: torch.Tensor):
        config = federation.config
        own_samples = sum(federation.clients[k].num_samples for k in attack.clients)
        self.attack = attack
        self.model = MODELS[config.model](federation.data.num_classes).to(peer_images.device)
        self.autoencoder, self.prior, self.own_x = autoencoder, prior, own_x
        self.peer_images = peer_images
        self.lr = config.lr
        self.local_steps = attack.local_steps or own_local_steps(config, own_samples
                                                                  // len(attack.clients))
        self.num_images = dummy_count(attack.batch_size or config.batch_size,
                                      max(1, config.clients_per_round - len(attack.clients)),
                                      attack.max_dummies)
        self.num_classes = federation.data.num_classes
        self.seed = config.seed
        # the same starting codes every round, so that only the gradient changes
        self.start_codes = starting_codes(autoencoder, own_x, self.num_images, self.seed)
        self.latest: RoundReconstruction | None = None

    def without_own(self, gradient: torch.Tensor, record) -> torch.Tensor:
        """``peers_gradient``: the round's estimate without what this attack's clients submitted."""
        own = [i for i, k in enumerate(record.client_ids) if k in self.attack.clients]
        if not own or len(own) == len(record.client_ids):
            return gradient
        own_gradients = -record.client_updates[own] / (self.lr * self.local_steps)
        return peers_gradient(gradient, own_gradients, len(record.client_ids))

    def __call__(self, record) -> dict:
        if (record.round - 1) % self.attack.every:
            return {}
        start = time.perf_counter()
        load_flat_parameters(self.model, record.global_before)
        gradient = estimated_gradient(record.global_before, record.global_after, self.lr,
                                      self.local_steps)
        if self.attack.subtract_own:
            gradient = self.without_own(gradient, record)
        if not torch.isfinite(record.global_before).all() or not torch.isfinite(gradient).all():
            return {"curious_diverged": True}
        images, labels = reconstruct(self.model, gradient, self.autoencoder.decoder,
                                     self.start_codes, self.prior, self.num_classes,
                                     self.attack.iterations, self.attack.reconstruction_lr,
                                     self.attack.prior_weight, seed=self.seed)
        if not torch.isfinite(images).all():
            return {"curious_diverged": True}
        scores = reconstruction_scores(images, self.peer_images)
        rows, columns = matched_pairs(images, self.peer_images)
        self.latest = RoundReconstruction(record.round, images[rows], labels[rows],
                                     self.peer_images[columns], scores)
        return {**{f"curious_{name}": scores[name] for name in ("rmse", "psnr", "ssim")},
                "curious_seconds": round(time.perf_counter() - start, 4)}


@ATTACKS.register("curious")
@dataclass
class CuriousClient(Attack):
    """A curious client (arXiv 2506.11413): it reconstructs its peers' images every ``every``
    rounds and, with ``poison``, also poisons to slow the federation down.

    ``poison`` is an attack of ``poisoning_attacks()`` (``sign-flip``, ``gaussian-noise``,
    ``backdoor``, ...) with its ``poison_options``; the curious client hands its clients to that
    attack's spec, which makes them, trains them and decides what they submit, exactly as it
    would on its own; ``none`` trains and submits honestly.

    The reconstruction settings, which the study does not publish (measured at quick scale,
    on two CPU cores):

    - ``latent_dim`` 32, ``autoencoder_epochs`` 100 (Adam 1e-3, batch 32): on the hundred or so
      images a client holds this takes a few seconds and reaches an RMSE near 0.15 on them; at 30
      epochs its digits are blots (RMSE 0.45), which score well against the peers' images only
      because blur is cheap under RMSE (``Autoencoder``);
    - the search starts from the codes of ``max_dummies`` of its own images (``starting_codes``),
      which is also the control: with random codes from the prior the decoder draws no digit;
    - ``iterations`` 100 Adam steps at ``reconstruction_lr`` 0.05: the cosine distance falls
      fast for about 100 steps and slowly after; each step is a double backward pass through
      the model, about 30 ms for ``lenet5-wide``, so 100 of them cost about as much as the
      round's honest training;
    - ``prior_weight`` 1: with 0.001 the codes drift to images that match the gradient better
      than the peers' real images do, yet look like no digit; with 1 the reconstruction beat its
      starting point on 5 seeds out of 5 in round 1 (with 0.1 on 2 of 5);
    - ``max_dummies`` 16 dummy images at most (``dummy_count``: the assumed ``batch_size``, by
      default the run's, times the number of peers): the aggregated gradient averages hundreds
      of images, and more dummies than the few modes it reveals only cost time;
    - ``local_steps``: the number of local steps the attacker assumes its peers took (by
      default its own: epochs times its batches);
    - ``subtract_own`` (on by default, a step beyond the study's estimate): take what its own
      clients submitted out of the round's gradient (``peers_gradient``). The client knows it,
      and its own images are not what it is after; when it poisons, its flipped update would
      otherwise point the estimate away from the peers' data (measured: without it, sign
      flipping made round 1 leak less, not more).
    - ``poison``'s strength is that attack's own default (sign flipping: scale 1, an update of
      honest size, which a norm check cannot tell apart); ``poison_options`` changes it.
    """

    byzantine_run = False  # a Byzantine run gets its poisoning attacks directly

    poison: str = "none"
    poison_options: dict[str, Any] = field(default_factory=dict)
    every: int = 1
    latent_dim: int = 32
    autoencoder_epochs: int = 100
    iterations: int = 100
    reconstruction_lr: float = 0.05
    prior_weight: float = 1.0
    max_dummies: int = 16
    batch_size: int | None = None
    local_steps: int | None = None
    subtract_own: bool = True

    def validate(self) -> None:
        super().validate()
        check(self.poison in poisoning_attacks(), "poison", self.poison,
              "one of " + ", ".join(poisoning_attacks()))
        if self.poison == "none":
            check(not self.poison_options, "poison_options", self.poison_options,
                  "empty with poison='none', which has no options")
        else:
            self.poisoner()  # its options are checked as the poisoning spec is made
        check_int("every", self.every, 1, MAX_STEPS)
        check_int("latent_dim", self.latent_dim, 1, MAX_LATENT)
        check_int("autoencoder_epochs", self.autoencoder_epochs, 1, MAX_EPOCHS)
        check_int("iterations", self.iterations, 1, MAX_STEPS)
        check_number("reconstruction_lr", self.reconstruction_lr, 0.0, MAX_RATE, open_low=True)
        check_number("prior_weight", self.prior_weight, 0.0, MAX_RATE)
        check_int("max_dummies", self.max_dummies, 1, MAX_DUMMIES)
        check_bool("subtract_own", self.subtract_own)
        for name in ("batch_size", "local_steps"):
            if getattr(self, name) is not None:
                check_int(name, getattr(self, name), 1, MAX_STEPS)

    def poisoner(self) -> Attack | None:
        """The poisoning attack's spec on the same clients, or None for ``poison='none'``."""
        if self.poison == "none":
            return None
        spec = ATTACKS[self.poison]
        options = known_options(spec, self.poison_options, "poison option")
        return spec(clients=self.clients, start_round=self.start_round, **options)

    def check_fits(self, config) -> None:
        super().check_fits(config)
        check(config.num_clients > len(self.clients), "clients", self.clients,
              "fewer than num_clients: a curious client needs peers to learn about")
        if self.poisoner() is not None:
            self.poisoner().check_fits(config)

    def placement(self) -> dict[int, tuple[int, ...]]:
        poisoner = self.poisoner()
        return poisoner.placement() if poisoner is not None else {}

    def make_client(self, honest, federation):
        poisoner = self.poisoner()
        return poisoner.make_client(honest, federation) if poisoner is not None else honest

    def observers(self, federation) -> list:
        """The poisoner's observers, then the reconstruction's. The autoencoder is trained here,
        once, on its clients' own data; it and the observer's model copy are made from a forked
        random stream, so the federation's stream stays that of a run without a curious client."""
        poisoner = self.poisoner()
        own_x = torch.cat([federation.clients[k].x for k in self.clients])
        peers = [c.x for c in federation.clients if c.client_id not in federation.malicious_clients]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(federation.config.seed)
            autoencoder, prior = train_autoencoder(own_x, self.latent_dim, self.autoencoder_epochs)
            observer = CuriousObserver(self, federation, autoencoder, prior, own_x,
                                       torch.cat(peers))
        return [*(poisoner.observers(federation) if poisoner is not None else []), observer]

    def submit(self, own_updates: torch.Tensor, honest_updates: torch.Tensor,
               round_index: int) -> torch.Tensor:
        poisoner = self.poisoner()
        if poisoner is None:
            return own_updates
        return poisoner.submit(own_updates, honest_updates, round_index)
