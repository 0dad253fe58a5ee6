"""The curious client: a client that reconstructs its peers' images from the global models.

"Byzantine outside, curious inside" (Yue et al., arXiv 2506.11413). A client sees nothing but
the global models it is sent. Two consecutive ones differ by the aggregated update, so

    g = (w_k - w_{k+1}) / (lr * local_steps)                                  (their Sec. 3)

estimates the round's mean gradient (``estimated_gradient``). In FedSGD, where every client
takes one SGD step on a fresh minibatch of B images, g *is* the mean gradient of the round's
B x M images exactly, which is the case the study's theory covers. The client takes its own
share back out (``peers_gradient``: it knows what it sent and how the server weighs it) and is
left with the gradient of its peers' B x (M - 1) images. It then searches for that many images
whose gradient points the way g points: gradient inversion (``reconstruct``). The earlier the
round, the larger and more telling the gradients: early models leak most. So the client may
also poison (sign flipping, Gaussian noise, a backdoor: any attack of
``fltutor.attacks.byzantine`` or ``backdoor``) to slow the federation down and keep it leaky.

The search has two parameterisations (``PRIORS``):

``pixels``       Inverting Gradients (Geiping et al. 2020) on the images themselves: cosine
                 distance plus total variation, signed Adam with step decay, a box constraint
                 (``fltutor.attacks.inversion.inverting_gradients``); the labels are counted
                 from the last bias's gradient first (``labels.counts_from_bias``).
``autoencoder``  the study's: latent codes searched through the decoder of an autoencoder the
                 client trained on public images of every class (the dataset's test split:
                 MNIST's 10,000 test digits are public and no client trains on them).

Who knows what, from the signatures: ``estimated_gradient``, ``peers_gradient`` and
``reconstruct`` take only what the curious client has (the models it was sent, what it sent
itself, public settings such as the learning rate, the batch size and the number of clients,
public images). The spec ``CuriousClient`` (``curious`` in ``fltutor.parts.ATTACKS``) puts it in
a federation. Its observer (``CuriousObserver``) is the experimenter's view: only it reads the
peers' private images, and only the ones that really were in the round's gradient, to score the
reconstructions one-to-one against them and against guesses that use no gradient
(``fltutor.metrics.leak_scores``).

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

from ..checks import (MAX_BATCH, MAX_EPOCHS, MAX_LATENT, MAX_RATE, MAX_ROUNDS, MAX_STEPS,
                      check, check_bool, check_choice, check_int, check_number)
from ..metrics import leak_scores, matched_pairs
from ..models import MODELS, load_flat_parameters
from ..parts import ATTACKS, Attack, known_options
from . import inversion
from .inversion import MAX_DUMMY, gradient_distance
from .labels import counts_from_bias, last_layer_bias_gradient

#: How the curious client searches (module docstring).
PRIORS = ("pixels", "autoencoder")


def shape_of(value) -> tuple | str:
    """A tensor's shape, or the type of what is not a tensor: for error messages."""
    return tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__


def estimated_gradient(before: torch.Tensor, after: torch.Tensor, lr: float,
                       local_steps: int = 1) -> torch.Tensor:
    """The round's mean gradient as a client estimates it from two consecutive global models.

    g = (w_k - w_{k+1}) / (lr * local_steps): the study's estimate (arXiv 2506.11413) with
    ``local_steps=1``. In FedSGD w_{k+1} = w_k - lr * (weighted mean of the clients' minibatch
    gradients), so g is that mean exactly; for FedAvg it is the mean of the gradients along the
    clients' local paths, averaged over clients, a blur of what each image contributed. Only its
    direction matters to a cosine match, so a wrong guess of lr or local_steps costs nothing there.
    """
    check_number("lr", lr, 0.0, MAX_RATE, open_low=True)
    check_int("local_steps", local_steps, 1, MAX_STEPS)
    check(isinstance(before, torch.Tensor) and isinstance(after, torch.Tensor)
          and before.shape == after.shape, "after.shape", shape_of(after),
          f"the shape of before, {shape_of(before)}")
    return (before - after) / (lr * local_steps)


def peers_gradient(gradient: torch.Tensor, own_gradients: torch.Tensor,
                   own_weights: torch.Tensor, total_weight: float) -> torch.Tensor:
    """The peers' mean gradient, once the client takes its own share out of the round's.

    The server's aggregate is the weighted mean g = (sum_j n_j g_j) / N over the updates it
    used, with n_j the images client j trained on and N their sum (FedAvg, Eq. 1 of McMahan et
    al. 2017). The client knows its own g_j (what it *submitted*, as a gradient: minus the
    update over lr times steps; when it poisons, its flipped or noisy update, which would
    otherwise point the estimate away from the peers' data) and its n_j, so the peers' mean is
    (N g - sum_own n_j g_j) / (N - sum_own n_j).

    >>> peers_gradient(torch.tensor([1.0]), torch.tensor([[-2.0]]), torch.tensor([1.0]),
    ...                total_weight=3).tolist()
    [2.5]
    """
    own_total = float(own_weights.sum())
    check(total_weight > own_total, "total_weight", total_weight,
          f"more than the client's own weight, {own_total:g}: the peers must have a share")
    own_sum = (own_weights.to(own_gradients)[:, None] * own_gradients).sum(dim=0)
    return (total_weight * gradient - own_sum) / (total_weight - own_total)


def mean_probabilities(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The model's mean softmax over ``images``: the attacker's estimate of the mean prediction
    over the batch it inverts, which ``labels.counts_from_bias`` needs."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        probabilities = model(images).softmax(dim=1).mean(dim=0)
    model.train(was_training)
    return probabilities


class Autoencoder(nn.Module):
    """A small convolutional autoencoder for 28x28 images in [-1, 1]: the study's prior.

    Encoder: two 4x4 stride-2 convolutions (16 and 32 channels, ReLU; 28 -> 14 -> 7), then a
    linear layer to ``latent_dim`` numbers. Decoder: the mirror image, ending in tanh, so every
    code decodes to an image in [-1, 1], the range of ``fltutor.data``. No BatchNorm: a decoded
    batch must not depend on its other members.

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
    """Where the decoder's codes live: the mean and spread of the encodings of its training
    images, per latent dimension. Reconstructions are kept near it (``penalty``)."""

    mean: torch.Tensor
    std: torch.Tensor

    def penalty(self, codes: torch.Tensor) -> torch.Tensor:
        """Mean squared distance to the prior in units of its spread (a Gaussian's -log density)."""
        return ((codes - self.mean) / self.std).pow(2).mean()


def train_autoencoder(images: torch.Tensor, latent_dim: int = 32, epochs: int = 30,
                      batch_size: int = 64, lr: float = 1e-3) -> tuple[Autoencoder, LatentPrior]:
    """An autoencoder trained on ``images`` (mean squared pixel error, Adam, Kingma & Ba 2015;
    batches shuffled with torch's global generator), in eval mode with frozen weights, and the
    ``LatentPrior`` of its encodings of them."""
    check(isinstance(images, torch.Tensor) and images.dim() == 4
          and tuple(images.shape[1:]) == (1, 28, 28) and len(images) >= 2, "images.shape",
          shape_of(images), "[N, 1, 28, 28] with N >= 2 images")
    check_int("epochs", epochs, 1, MAX_EPOCHS)
    check_int("batch_size", batch_size, 1, MAX_BATCH)
    check_number("lr", lr, 0.0, MAX_RATE, open_low=True)
    autoencoder = Autoencoder(latent_dim).to(images.device)
    optimizer = torch.optim.Adam(autoencoder.parameters(), lr=lr)
    for _ in range(epochs):
        for batch in torch.randperm(len(images)).to(images.device).split(batch_size):
            optimizer.zero_grad(set_to_none=True)
            F.mse_loss(autoencoder(images[batch]), images[batch]).backward()
            optimizer.step()
    autoencoder.eval().requires_grad_(False)
    with torch.no_grad():
        codes = autoencoder.encoder(images)
    return autoencoder, LatentPrior(codes.mean(dim=0), codes.std(dim=0).clamp(min=1e-3))


@dataclass
class Search:
    """How the curious client searches: ``iterations`` optimiser steps at ``lr`` from
    ``restarts`` starts; ``tv_weight`` (pixels) or ``prior_weight`` (autoencoder) weighs the
    image prior; ``seed`` draws the starting point."""

    prior: str = "pixels"
    iterations: int = 300
    lr: float = 0.1
    restarts: int = 1
    tv_weight: float = 1e-4
    prior_weight: float = 0.01
    seed: int = 0


def starting_images(count: int, seed: int, device) -> torch.Tensor:
    """The pixel search's first start: Gaussian noise (``inversion.dummy_images``), clamped into
    the box [-1, 1] the search keeps to. Scored as it is, it is a control that knows nothing."""
    knowledge = inversion.Knowledge(batch_size=count)
    generator = torch.Generator().manual_seed(seed)
    return inversion.dummy_images(knowledge, generator, device).detach().clamp(-1, 1)


def reconstruct(model: nn.Module, gradient: torch.Tensor, num_images: int,
                probabilities: torch.Tensor, search: Search,
                decoder: nn.Module | None = None, prior: LatentPrior | None = None,
                start_codes: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``num_images`` images (and labels) whose mean gradient on ``model`` points the way
    ``gradient`` (flat, in the order of ``model.parameters()``) does.

    The labels come first: their counts from the last bias's gradient (``counts_from_bias``,
    with ``probabilities`` the estimated mean prediction). Then the images: with
    ``search.prior == "pixels"``, Inverting Gradients (``inversion.inverting_gradients``:
    1 - cos(grad_w CE(f(x'), y), g) + tv_weight * TV(x'), signed Adam with step decay, box
    [-1, 1]); with ``"autoencoder"``, the same cosine distance minimised over latent codes z
    (Adam) through ``decoder``, plus ``prior_weight`` times the codes' distance to ``prior``,
    from ``start_codes``. Returns images ``[num_images, 1, 28, 28]`` in [-1, 1] and their
    labels, detached.
    """
    check_int("num_images", num_images, 1, MAX_DUMMY)
    check_choice("prior", search.prior, PRIORS)
    parameters = list(model.parameters())
    sizes = [p.numel() for p in parameters]
    check(gradient.numel() == sum(sizes), "gradient.numel()", gradient.numel(),
          f"the model's number of weights, {sum(sizes)}")
    observed = [part.view_as(p) for part, p in zip(gradient.detach().split(sizes), parameters)]
    labels = counts_from_bias(last_layer_bias_gradient(model, observed), num_images,
                              probabilities)
    if search.prior == "pixels":
        knowledge = inversion.Knowledge(batch_size=num_images,
                                        num_classes=len(probabilities))
        settings = inversion.Settings(iterations=search.iterations, lr=search.lr,
                                      restarts=search.restarts, tv_weight=search.tv_weight,
                                      seed=search.seed)
        found = inversion.inverting_gradients(model, observed, knowledge, settings, labels=labels)
        return found.images, labels
    check(decoder is not None and prior is not None and start_codes is not None
          and len(start_codes) == num_images, "start_codes", shape_of(start_codes),
          f"{num_images} codes with the autoencoder's decoder and prior")
    codes = start_codes.detach().clone().requires_grad_(True)
    optimizer = torch.optim.Adam([codes], lr=search.lr)
    for _ in range(search.iterations):
        optimizer.zero_grad(set_to_none=True)
        dummy = inversion.gradient(model, decoder(codes), labels, create_graph=True)
        loss = (gradient_distance(dummy, observed, "cosine")
                + search.prior_weight * prior.penalty(codes))
        codes.grad, = torch.autograd.grad(loss, [codes])
        optimizer.step()
    with torch.no_grad():
        return decoder(codes), labels


def poisoning_attacks() -> list[str]:
    """The attacks a curious client may poison with: every registered attack that a Byzantine run
    takes on its own (``Attack.byzantine_run``), and ``none``."""
    return ["none", *(name for name in ATTACKS.names() if ATTACKS[name].byzantine_run)]


@dataclass
class RoundReconstruction:
    """One round's reconstructions beside the true images of that round's gradient they were
    matched to (for figures), with the round's scores."""

    round: int
    images: torch.Tensor
    labels: torch.Tensor
    originals: torch.Tensor
    true_labels: torch.Tensor
    scores: dict


def own_local_steps(config, num_samples: int) -> int:
    """The optimizer steps of one client's round with ``num_samples`` images: one in FedSGD,
    else epochs times batches. The curious client assumes its peers take as many as it does."""
    if config.mode == "fedsgd":
        return 1
    return config.local_epochs * math.ceil(num_samples / config.batch_size)


class CuriousObserver:
    """In the rounds it reconstructs in, the curious client inverts the round's gradient, and
    the experimenter scores the result against the images that were in it.

    The attacker's side (``attack_round``) uses its own view only: the global model before the
    round, the gradient estimated from before and after, what its own clients submitted and
    their weight, the rule's public behaviour (``Rule.averages_kept``), public images. Which
    updates a selecting rule kept is known to it for its own (its update is the aggregate, or in
    it), and the number of peers kept is taken as known (Krum's and Multi-Krum's options fix it).
    When the server kept only the attacker's own update (Krum may), nothing of a peer is in
    the round: it records ``curious_own_kept`` and reconstructs nothing. With a coordinate-wise
    rule (median, trimmed mean) g is no batch's gradient: the attacker inverts it as if it were
    the mean of all its peers' images, and is scored against all of them.

    The experimenter's side reads the true images of the peers the aggregate used, this round's
    minibatches (``Client.round_indices``) or, in FedAvg, all their data; it records
    ``fltutor.metrics.leak_scores`` under ``curious_`` names (the controls: the attack's start,
    the attacker's own images, the mean of the peers' whole data, and the mean of the round's
    true images when there are several), ``curious_images`` (the true images
    in the gradient), ``curious_dummies`` and ``curious_seconds``, and keeps the last
    ``RoundReconstruction`` in ``latest``. A round whose model has diverged (weights or
    reconstructions not finite: a poisoning that outweighs the honest clients can do that)
    records ``curious_diverged`` instead, and the run goes on.
    """

    def __init__(self, attack: "CuriousClient", federation, public_images: torch.Tensor):
        config = federation.config
        self.attack, self.federation = attack, federation
        device = public_images.device
        self.model = MODELS[config.model](federation.data.num_classes).to(device)
        self.lr = config.lr
        own_samples = sum(federation.clients[k].num_samples for k in attack.clients)
        self.local_steps = attack.local_steps or own_local_steps(
            config, own_samples // len(attack.clients))
        self.peer_batch = attack.batch_size or (config.batch_size if config.mode == "fedsgd"
                                                 else None)
        self.own_x = torch.cat([federation.clients[k].x for k in attack.clients])
        self.search = Search(attack.prior, attack.iterations, attack.reconstruction_lr,
                             attack.restarts, attack.tv_weight, attack.prior_weight, config.seed)
        self.decoder = self.prior = self.public_codes = None
        if attack.prior == "autoencoder":
            autoencoder, self.prior = train_autoencoder(public_images, attack.latent_dim,
                                                        attack.autoencoder_epochs)
            self.decoder = autoencoder.decoder
            with torch.no_grad():
                self.public_codes = autoencoder.encoder(public_images)
        self.latest: RoundReconstruction | None = None

    def reconstructs_in(self, round_index: int) -> bool:
        if self.attack.rounds:
            return round_index in self.attack.rounds
        return (round_index - 1) % self.attack.every == 0

    def peers_in(self, record) -> tuple[list[int], list[int]]:
        """The rows of the round's updates that the aggregate used: the attacker's own, and
        its peers'."""
        used = record.aggregate.kept if self.rule_averages else range(len(record.client_ids))
        own = [i for i in used if record.client_ids[i] in self.attack.clients]
        return own, [i for i in used if record.client_ids[i] not in self.attack.clients]

    @property
    def rule_averages(self) -> bool:
        return type(self.federation.config.aggregator).averages_kept

    def image_count(self, peers: int) -> int:
        """How many images the attacker believes the peers' gradient averages: its assumed
        batch times the peers (FedAvg: what it holds itself, per peer), at most ``max_dummies``."""
        per_peer = self.peer_batch or len(self.own_x) // len(self.attack.clients)
        return max(1, min(per_peer * peers, self.attack.max_dummies, MAX_DUMMY))

    def attack_round(self, record, own: list[int], peers: int
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """The attacker's reconstruction of the round: images, labels, and its starting point."""
        load_flat_parameters(self.model, record.global_before)
        gradient = estimated_gradient(record.global_before, record.global_after, self.lr,
                                      self.local_steps)
        if own and self.rule_averages and self.attack.subtract_own:
            own_gradients = -record.client_updates[own] / (self.lr * self.local_steps)
            kept_weight = float(record.weights[record.aggregate.kept].sum())
            gradient = peers_gradient(gradient, own_gradients, record.weights[own], kept_weight)
        count = self.image_count(peers)
        probabilities = mean_probabilities(self.model, self.own_x)
        start = None
        if self.search.prior == "autoencoder":
            picked = torch.randperm(len(self.public_codes),
                                    generator=torch.Generator().manual_seed(self.search.seed))
            codes = self.public_codes[picked[:count].to(self.public_codes.device)]
            with torch.no_grad():
                start = self.decoder(codes)
            images, labels = reconstruct(self.model, gradient, count, probabilities, self.search,
                                         self.decoder, self.prior, codes)
        else:
            start = starting_images(count, self.search.seed, record.global_before.device)
            images, labels = reconstruct(self.model, gradient, count, probabilities, self.search)
        return images, labels, start

    def truth(self, record, peers: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The experimenter's view: the images (and labels) the used peers trained on, and the
        mean image of all those peers' data."""
        xs, ys, held = [], [], []
        for row in peers:
            client = self.federation.clients[record.client_ids[row]]
            used = client.round_indices
            xs.append(client.x if used is None else client.x[used])
            ys.append(client.y if used is None else client.y[used])
            held.append(client.x)
        return torch.cat(xs), torch.cat(ys), torch.cat(held).mean(dim=0, keepdim=True)

    def __call__(self, record) -> dict:
        if not self.reconstructs_in(record.round):
            return {}
        start_time = time.perf_counter()
        own, peers = self.peers_in(record)
        if not peers:
            return {"curious_own_kept": True}
        if (not torch.isfinite(record.global_before).all()
                or not torch.isfinite(record.global_after).all()):
            return {"curious_diverged": True}
        images, labels, start = self.attack_round(record, own, len(peers))
        if not torch.isfinite(images).all():
            return {"curious_diverged": True}
        originals, true_labels, peers_mean = self.truth(record, peers)
        own_guess = self.own_x[torch.arange(len(images)) % len(self.own_x)]
        scores = leak_scores(images, originals, labels, true_labels,
                             controls={"start": start, "own_images": own_guess,
                                       "peers_mean": peers_mean.expand_as(images)})
        rows, columns = matched_pairs(images, originals)
        self.latest = RoundReconstruction(record.round, images[rows], labels[rows],
                                          originals[columns], true_labels[columns], scores)
        return {**{f"curious_{name}": value for name, value in scores.items()},
                "curious_images": len(originals), "curious_dummies": len(images),
                "curious_seconds": round(time.perf_counter() - start_time, 4)}


@ATTACKS.register("curious")
@dataclass
class CuriousClient(Attack):
    """A curious client (arXiv 2506.11413): it reconstructs its peers' images from the global
    models and, with ``poison``, also poisons to slow the federation down.

    ``poison`` is an attack of ``poisoning_attacks()`` (``sign-flip``, ``gaussian-noise``,
    ``backdoor``, ...) with its ``poison_options``; the curious client hands its clients to that
    attack's spec, which makes them, trains them and decides what they submit, exactly as it
    would on its own; ``none`` trains and submits honestly. Several ``clients`` collude: they
    pool what they sent and take it all out of the round's gradient.

    When: in ``rounds`` (a list of round numbers) or, without it, every ``every`` rounds.
    How (``Search``, ``reconstruct``): ``prior`` ``pixels`` or ``autoencoder``; ``iterations``
    steps at ``reconstruction_lr`` from ``restarts`` starts, ``tv_weight`` (pixels),
    ``latent_dim``, ``autoencoder_epochs`` and ``prior_weight`` (autoencoder). What it assumes:
    ``batch_size`` (None: the run's, the FedSGD minibatch) images per peer and ``local_steps``
    (None: its own) steps, at most ``max_dummies`` images to search for (its compute budget).
    ``subtract_own`` takes its own clients' share out of the gradient (``peers_gradient``).
    The measured effect of each default is in the README's curious-client section.
    """

    byzantine_run = False  # a Byzantine run gets its poisoning attacks directly

    poison: str = "none"
    poison_options: dict[str, Any] = field(default_factory=dict)
    every: int = 1
    rounds: tuple[int, ...] = ()
    # the search's settings, whose defaults are the Search's own
    prior: str = Search.prior
    iterations: int = Search.iterations
    reconstruction_lr: float = Search.lr
    restarts: int = Search.restarts
    tv_weight: float = Search.tv_weight
    latent_dim: int = 32
    autoencoder_epochs: int = 30
    prior_weight: float = Search.prior_weight
    max_dummies: int = MAX_DUMMY
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
        check(isinstance(self.rounds, (tuple, list))
              and all(isinstance(r, int) and not isinstance(r, bool) and 1 <= r <= MAX_ROUNDS
                      for r in self.rounds), "rounds", self.rounds,
              f"a list of round numbers from 1 to {MAX_ROUNDS}, e.g. (1, 10, 50)")
        self.rounds = tuple(sorted(set(self.rounds)))
        check(not (self.rounds and self.every != 1), "every", self.every,
              "1 when rounds are given (rounds already says when)")
        check_choice("prior", self.prior, PRIORS)
        check_int("iterations", self.iterations, 1, MAX_STEPS)
        check_number("reconstruction_lr", self.reconstruction_lr, 0.0, MAX_RATE, open_low=True)
        check_int("restarts", self.restarts, 1, 100)
        check_number("tv_weight", self.tv_weight, 0.0, MAX_RATE)
        check_int("latent_dim", self.latent_dim, 1, MAX_LATENT)
        check_int("autoencoder_epochs", self.autoencoder_epochs, 1, MAX_EPOCHS)
        check_number("prior_weight", self.prior_weight, 0.0, MAX_RATE)
        check_int("max_dummies", self.max_dummies, 1, MAX_DUMMY)
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
        check(not self.rounds or self.rounds[-1] <= config.num_rounds, "rounds", self.rounds,
              f"rounds from 1 to num_rounds={config.num_rounds}")
        if self.poisoner() is not None:
            self.poisoner().check_fits(config)

    def check_partition(self, federation) -> None:
        """In FedSGD every peer must hold the minibatch it draws: refuse, before any training, a
        batch larger than a client's data (the attacker's count of images would be wrong)."""
        config = federation.config
        if config.mode != "fedsgd":
            return
        smallest = min(federation.clients, key=lambda c: c.num_samples)
        check(config.batch_size <= smallest.num_samples, "batch_size", config.batch_size,
              f"at most {smallest.num_samples}, the images client {smallest.client_id} holds "
              f"(in FedSGD every client draws batch_size of its images a round)")

    def placement(self) -> dict[int, tuple[int, ...]]:
        poisoner = self.poisoner()
        return poisoner.placement() if poisoner is not None else {}

    def make_client(self, honest, federation):
        poisoner = self.poisoner()
        return poisoner.make_client(honest, federation) if poisoner is not None else honest

    def observers(self, federation) -> list:
        """The poisoner's observers, then the reconstruction's. Anything random it sets up (the
        autoencoder, the observer's model copy) comes from a forked random stream, so the
        federation's stream stays that of a run without a curious client."""
        self.check_partition(federation)
        poisoner = self.poisoner()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(federation.config.seed)
            observer = CuriousObserver(self, federation, federation.data.test_x)
        return [*(poisoner.observers(federation) if poisoner is not None else []), observer]

    def submit(self, own_updates: torch.Tensor, honest_updates: torch.Tensor,
               round_index: int) -> torch.Tensor:
        poisoner = self.poisoner()
        if poisoner is None:
            return own_updates
        return poisoner.submit(own_updates, honest_updates, round_index)
