"""How well the global model does, measured on held-out test data.

These functions see the true test data; attacks never call them. Keeping the scoring here and
out of the attacks makes the threat model readable from the attacks' signatures alone.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .checks import check, check_class, check_int
from .parts import OBSERVATIONS, Observation


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


def collateral_share(confusion, generate_class: int, target_class: int) -> float:
    """The share of test images of the *other* classes (neither G nor T) predicted as T.

    The attack accuracy reads row G only. A targeted attack leaves the other rows alone; this is
    how far its poison spills over into them, read off the same matrix (a tensor or the nested
    list a run's history keeps): column T of every other row, over those rows' sum.

    >>> collateral_share([[8, 0, 2], [0, 9, 1], [3, 0, 7]], generate_class=0, target_class=2)
    0.1
    """
    confusion = torch.as_tensor(confusion)
    others = [c for c in range(len(confusion)) if c not in (generate_class, target_class)]
    rows = confusion[others]
    return rows[:, target_class].sum().item() / max(rows.sum().item(), 1)


def accuracy_without(confusion, excluded_class: int) -> float:
    """The test accuracy over the images of every class but ``excluded_class``.

    A targeted attack on class G means to leave the other classes alone: this is how well the
    model still does on them, read off the confusion matrix (a tensor or nested list): the
    diagonal without row G, over the sum of those rows. Compare it with a control run's.

    >>> accuracy_without([[8, 2, 0], [0, 0, 10], [1, 0, 9]], excluded_class=1)
    0.85
    """
    confusion = torch.as_tensor(confusion)
    kept = [c for c in range(len(confusion)) if c != excluded_class]
    rows = confusion[kept]
    return rows[range(len(kept)), kept].sum().item() / max(rows.sum().item(), 1)


def predicted_share(confusion, predicted_class: int) -> float:
    """The share of all test images that the model predicts as ``predicted_class``.

    A model that has collapsed onto one class predicts it for nearly everything (a share near
    1); a healthy one about as often as the class occurs (0.1 for ten balanced classes).

    >>> predicted_share([[8, 2], [6, 4]], predicted_class=0)
    0.7
    """
    confusion = torch.as_tensor(confusion)
    return confusion[:, predicted_class].sum().item() / max(confusion.sum().item(), 1)


def spread(images: torch.Tensor) -> float:
    """How different a set of images are from one another: the per-pixel standard deviation
    across the set, averaged over the pixels.

    It is 0 when every image is the same one (a generator that has collapsed onto one output,
    whatever its noise) and about 0.3 for real MNIST images of one class, in [-1, 1].

    >>> spread(torch.ones(4, 1, 2, 2))
    0.0
    """
    return images.flatten(1).std(dim=0).mean().item()


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


@OBSERVATIONS.register("attack-accuracy")
@dataclass
class AttackAccuracy(Observation):
    """Records each round's ``attack_accuracy``: test images of G that the model calls T."""

    generate_class: int = 4
    target_class: int = 9

    def validate(self) -> None:
        check_int("generate_class", self.generate_class, 0)
        check_int("target_class", self.target_class, 0)
        check(self.target_class != self.generate_class, "target_class", self.target_class,
              f"a class other than generate_class={self.generate_class}")

    def check_fits(self, config) -> None:
        check_class("generate_class", self.generate_class, config.num_classes)
        check_class("target_class", self.target_class, config.num_classes)

    def observer(self, federation) -> Callable:
        def observe(record) -> dict:
            confusion = record.evaluation.confusion
            return {"attack_accuracy": attack_accuracy(confusion, self.generate_class,
                                                       self.target_class)}

        return observe


def detection_rates(chosen: list[int], kept: list[int], malicious: set[int]) -> dict:
    """How well the aggregator told the attackers apart this round.

    ``detection_tpr``: the share of the round's malicious clients it left out (1 is perfect);
    ``detection_fpr``: the share of the round's honest clients it left out (0 is perfect).
    A rate with no client to count (no attacker took part) is None: null in metrics.json.

    >>> detection_rates([0, 1, 2, 3], kept=[1, 2], malicious={0})
    {'detection_tpr': 1.0, 'detection_fpr': 0.3333333333333333}
    """
    left_out = set(chosen) - set(kept)
    attackers = [k for k in chosen if k in malicious]
    honest = [k for k in chosen if k not in malicious]

    def share(group: list[int]) -> float | None:
        return sum(k in left_out for k in group) / len(group) if group else None

    return {"detection_tpr": share(attackers), "detection_fpr": share(honest)}


@OBSERVATIONS.register("detection")
@dataclass
class Detection(Observation):
    """Records each round's detection rates of the aggregator (``detection_rates``); a client
    counts as malicious in the rounds its attack is on, honest before its ``start_round``."""

    def observer(self, federation) -> Callable:
        def observe(record) -> dict:
            return detection_rates(record.client_ids, record.kept_clients,
                                   federation.attacking_clients(record.round))

        return observe


class Judge:
    """An independent classifier that scores reconstructions, standing in for a human eye.

    The CRPA study shows its reconstructions to people; we ask a LeNet-5 trained centrally on
    the real training data instead. It is not the federated model the attacker trained against,
    so a generator cannot score well by exploiting that model's quirks alone.
    """

    def __init__(self, model: nn.Module):
        self.model = model.eval()

    @classmethod
    def train(cls, data, epochs: int = 5, batch_size: int = 64, seed: int = 0,
              progress: bool = True) -> "Judge":
        """Train a LeNet-5 on all of ``data``'s training images (a few seconds on a CPU).

        A progress bar shows the epochs and the training loss as it goes (``progress=False``
        hides it). The global random stream is left as it was: the judge's seed is its own.
        """
        from tqdm.auto import tqdm

        from .models import LeNet5
        from .training import train_epochs

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = LeNet5(data.num_classes).to(data.train_x.device)
            optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
            with tqdm(total=epochs, desc="judge", unit="epoch", disable=not progress) as bar:
                for _ in range(epochs):
                    loss = train_epochs(model, optimizer, data.train_x, data.train_y, 1,
                                        batch_size)
                    bar.set_postfix(loss=f"{loss:.3f}")
                    bar.update(1)
        return cls(model)

    @torch.no_grad()
    def class_probabilities(self, images: torch.Tensor) -> torch.Tensor:
        return F.softmax(self.model(images), dim=1)


@torch.no_grad()
def nearest_ssim(fakes: torch.Tensor, reals: torch.Tensor, candidates: int = 8,
                 chunk: int = 20) -> torch.Tensor:
    """For every fake image, its SSIM to the most similar real image (Wang et al. 2004).

    SSIM compares local means, variances and covariance in Gaussian windows; 1 means identical.
    It is computed with torchmetrics' maintained implementation (images in [-1, 1], so a data
    range of 2), against the ``candidates`` real images nearest in pixel distance: comparing
    every fake with every real image costs far more and almost never finds a better match.
    The fakes go ``chunk`` at a time: torchmetrics keeps several full-size copies of the
    images it compares, over a gigabyte for 500 fakes at once; the scores are the same.
    """
    from torchmetrics.functional.image import structural_similarity_index_measure as ssim

    best = []
    for part in fakes.split(chunk):
        distances = torch.cdist(part.flatten(1), reals.flatten(1))
        nearest = distances.topk(min(candidates, len(reals)), largest=False).indices
        pairs_fake = part.repeat_interleave(nearest.shape[1], dim=0)
        scores = ssim(pairs_fake, reals[nearest.flatten()], data_range=2.0, reduction="none")
        best.append(scores.view(len(part), -1).max(dim=1).values)
    return torch.cat(best)


def reconstruction_quality(fakes: torch.Tensor, real_of_class: torch.Tensor, judge: Judge,
                           generate_class: int) -> dict:
    """How much generated images look like class G, judged independently of the attack.

    ``judge_confidence``: the judge's mean probability for G; ``judge_accuracy``: share of fakes
    it calls G; ``ssim_nearest``: mean SSIM of each fake to its nearest real G image.
    """
    probabilities = judge.class_probabilities(fakes)
    return {
        "judge_confidence": probabilities[:, generate_class].mean().item(),
        "judge_accuracy": (probabilities.argmax(dim=1) == generate_class).float().mean().item(),
        "ssim_nearest": nearest_ssim(fakes, real_of_class).mean().item(),
    }


# Scoring a reconstruction against the private images it came from (gradient inversion, the
# curious client). Images are in [-1, 1], as everywhere in fltutor: a data range of 2.

#: The range of fltutor's pixel values, [-1, 1]: what PSNR and SSIM measure an error against.
PIXEL_RANGE = 2.0


def matched_pairs(reconstructions: torch.Tensor, originals: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Which reconstruction goes with which original: index tensors ``(rows, columns)`` such that
    ``reconstructions[rows][i]`` is paired with ``originals[columns][i]``, by least total MSE.

    A gradient does not say in which order a batch's images were, so reconstructions are scored
    after the optimal one-to-one assignment (the Hungarian method, Kuhn 1955, in scipy's
    ``linear_sum_assignment``) between reconstructions and originals on pixel MSE, as in
    Geiping et al. (2020). The smaller set is paired completely: with more originals (a curious
    client's peers hold hundreds of images) each reconstruction gets the original it fits best
    that no other one took; with more reconstructions the extra ones are left out. The pairs come
    in the order of the originals' indices.

    >>> a, b = torch.zeros(1, 1, 2, 2), torch.ones(1, 1, 2, 2)
    >>> [t.tolist() for t in matched_pairs(torch.cat([b, a]), torch.cat([a, b]))]
    [[1, 0], [0, 1]]
    """
    from scipy.optimize import linear_sum_assignment

    cost = torch.cdist(reconstructions.flatten(1).double(), originals.flatten(1).double()) ** 2
    rows, columns = linear_sum_assignment(cost.cpu().numpy())
    by_original = columns.argsort()
    return (torch.as_tensor(rows[by_original], device=reconstructions.device),
            torch.as_tensor(columns[by_original], device=originals.device))


def psnr(reconstructions: torch.Tensor, originals: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio of each image pair, in dB: 10 log10(range^2 / MSE).

    30 dB in [-1, 1] is a mean squared error of 0.004 (a pixel off by about 0.06 of the range
    on average): to the eye, the same image. Identical images give infinity.

    >>> psnr(torch.zeros(1, 1, 2, 2), torch.full((1, 1, 2, 2), 0.2)).round().tolist()
    [20.0]
    """
    mse = (reconstructions - originals).flatten(1).pow(2).mean(dim=1)
    return 10 * torch.log10(PIXEL_RANGE ** 2 / mse)


def ssim(reconstructions: torch.Tensor, originals: torch.Tensor) -> torch.Tensor:
    """Structural similarity of each image pair (Wang et al. 2004), torchmetrics' implementation;
    1 means identical."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    return structural_similarity_index_measure(reconstructions.float(), originals.float(),
                                               data_range=PIXEL_RANGE, reduction="none")


def rmse(reconstructions: torch.Tensor, originals: torch.Tensor) -> torch.Tensor:
    """Root mean squared pixel error of each image pair, in units of [-1, 1] (the curious-client
    study's measure, arXiv 2506.11413: lower is a better reconstruction).

    >>> rmse(torch.zeros(1, 1, 2, 2), torch.full((1, 1, 2, 2), 0.5)).tolist()
    [0.5]
    """
    return (reconstructions - originals).flatten(1).pow(2).mean(dim=1).sqrt()


def reconstruction_scores(reconstructions: torch.Tensor, originals: torch.Tensor,
                          labels: torch.Tensor | None = None,
                          true_labels: torch.Tensor | None = None) -> dict:
    """Mean MSE, RMSE, PSNR and SSIM of reconstructions against the originals, over the pairs of
    ``matched_pairs``; with labels, the share of those pairs whose recovered label is right
    (``label_accuracy``). PSNR's mean is over
    finite values, capped at 100 dB for a perfect copy, so one exact image does not make it
    infinite.

    >>> x = torch.rand(3, 1, 8, 8) * 2 - 1
    >>> scores = reconstruction_scores(x.flip(0), x)
    >>> scores["mse"], scores["ssim"]
    (0.0, 1.0)
    """
    rows, columns = matched_pairs(reconstructions, originals)
    matched, originals = reconstructions[rows].to(originals.dtype), originals[columns]
    scores = {"mse": (matched - originals).pow(2).mean().item(),
              "rmse": rmse(matched, originals).mean().item(),
              "psnr": psnr(matched, originals).clamp(max=100.0).mean().item(),
              "ssim": ssim(matched, originals).mean().item()}
    if labels is not None and true_labels is not None:
        scores["label_accuracy"] = (labels[rows] == true_labels[columns]).float().mean().item()
    return scores


def leak_scores(reconstructions: torch.Tensor, originals: torch.Tensor, labels: torch.Tensor,
                true_labels: torch.Tensor, controls: dict[str, torch.Tensor | None]) -> dict:
    """How much an attack recovered of ``originals``, the images that really were in what it
    inverted, beside guesses that use none of its information.

    The reconstructions are paired one-to-one with the originals (``matched_pairs``) and give
    ``rmse``, ``psnr``, ``ssim`` and ``label_accuracy`` (pixels in [-1, 1], RMSE in those units).
    Every guess is scored the same way, by RMSE: ``control_rmse_mean_image``, copies of the
    originals' own mean image (a guess that even knows the true images' average; not made for a
    single original, whose mean is the image itself); and ``control_rmse_NAME`` for each of
    ``controls`` (None is skipped), such as the attack's starting point or the attacker's own
    images. ``control_rmse`` is the best (lowest) of them,
    and ``gain`` = control_rmse - rmse is the leak: above 0 the attack recovered more than any
    guess did.

    >>> x = torch.linspace(-1, 1, 4 * 256).view(4, 1, 16, 16)
    >>> scores = leak_scores(x.flip(0), x, torch.arange(4), torch.arange(4).flip(0),
    ...                      controls={"blank": torch.zeros_like(x)})
    >>> scores["rmse"], scores["label_accuracy"], scores["gain"] > 0.4
    (0.0, 1.0, True)
    """
    scores = reconstruction_scores(reconstructions, originals, labels, true_labels)
    del scores["mse"]
    guesses = {name: guess for name, guess in controls.items() if guess is not None}
    if len(originals) > 1:
        guesses["mean_image"] = originals.mean(dim=0, keepdim=True).expand(
            len(reconstructions), *originals.shape[1:])
    for name, guess in guesses.items():
        rows, columns = matched_pairs(guess, originals)
        scores[f"control_rmse_{name}"] = rmse(guess[rows].to(originals.dtype),
                                              originals[columns]).mean().item()
    scores["control_rmse"] = min(scores[f"control_rmse_{name}"] for name in guesses)
    scores["gain"] = scores["control_rmse"] - scores["rmse"]
    return scores
