"""Gradient inversion as a recipe: one batch of test images, one attack, the result on disk.

``InversionConfig`` says which attack (``dlg``, ``idlg``, ``ig``: ``fltutor.attacks.inversion``)
runs against which model, on how many images, from a FedSGD gradient (``local_steps=0``) or a
FedAvg update after S local steps, and how trained the model already is: ``trained_rounds=R``
first trains it R rounds in a small federation (``QUICK_FEDERATION``), since a trained model
leaks less than a fresh one. The victim's batch is the first ``batch_size`` images of the test
split from ``first_image`` on; the attacker sees only the model and what that batch sends.

``invert_test_batch`` attacks and scores that batch (``fltutor gallery`` draws it too);
``run_inversion`` writes ``metrics.json`` (every iteration's loss, PSNR and SSIM, the final
scores, the model's accuracy, the federation's rounds) and ``reconstructions.png`` (the
originals over their optimally paired reconstructions); it is the ``fltutor invert`` command.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..attacks.inversion import (MAX_ITERATIONS, METHODS, Callback, Inversion, Knowledge, invert,
                                 observed_by)
from ..checks import (MAX_SAMPLES, MAX_SEED, Checked, check, check_bool, check_choice,
                      check_folder, check_int)
from ..config import FedConfig, resolve_device
from ..data import DATASETS, Data, load
from ..experiments import (claim_out_dir, run_command, save_figure, usable_out_dir, write_json,
                           writing_to)
from ..federation import Federation
from ..metrics import evaluate, reconstruction_scores
from ..models import MODELS
from ..viz import reconstruction_pairs

#: The most rounds the victim model may be trained before the attack: enough to converge on
#: MNIST at this small federation's scale.
MAX_TRAINED_ROUNDS = 100

#: The small federation that trains the victim model for ``trained_rounds``: 5 IID clients,
#: 100 images per class in all, one local epoch of Adam at 1e-3 per round.
QUICK_FEDERATION = dict(num_clients=5, max_per_class=100, max_test=500, batch_size=50)


@dataclass
class InversionConfig(Checked):
    """One gradient-inversion experiment; every field is checked as it is made or set."""

    method: str = "ig"
    model: str = "lenet5-wide"
    dataset: str = "mnist"
    batch_size: int = 1
    iterations: int | None = None  # None: the method's default
    local_steps: int = 0
    local_lr: float = 0.1
    trained_rounds: int = 0
    first_image: int = 0
    seed: int = 0
    device: str = "auto"
    data_root: str | None = None
    allow_fallback: bool = False

    def validate(self) -> None:
        check_choice("method", self.method, list(METHODS))
        check_choice("model", self.model, MODELS.names())
        check_choice("dataset", self.dataset, DATASETS.names())
        self.knowledge()  # batch_size, local_steps, local_lr
        # at most the inversion's own bound, which would otherwise refuse it only at the attack
        check(self.iterations is None or (isinstance(self.iterations, int) and
                                          not isinstance(self.iterations, bool)
                                          and 1 <= self.iterations <= MAX_ITERATIONS),
              "iterations", self.iterations, f"an integer >= 1 and <= {MAX_ITERATIONS}, or None "
              f"for the method's default")
        check_int("trained_rounds", self.trained_rounds, 0, MAX_TRAINED_ROUNDS)
        check_int("first_image", self.first_image, 0, MAX_SAMPLES)
        check_int("seed", self.seed, 0, MAX_SEED)
        check(isinstance(self.device, str), "device", self.device, "a device name")
        if self.data_root is not None:
            check_folder("data_root", self.data_root)
        check_bool("allow_fallback", self.allow_fallback)

    def knowledge(self, image_shape: tuple[int, ...] = (1, 28, 28)) -> Knowledge:
        """What the attacker knows about the victim's batch."""
        return Knowledge(batch_size=self.batch_size, image_shape=image_shape,
                         num_classes=DATASETS[self.dataset].num_classes,
                         local_steps=self.local_steps, local_lr=self.local_lr)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> "InversionConfig":
        return dataclasses.replace(self, **changes)


def victim_model(config: InversionConfig, data: Data) -> tuple[nn.Module, list[dict]]:
    """The model the attacker was sent, and the rounds that trained it (none when untrained).

    Untrained: freshly initialised from the seed. Trained: the global model after
    ``trained_rounds`` rounds of FedAvg in ``QUICK_FEDERATION`` on ``data``.
    """
    if config.trained_rounds == 0:
        torch.manual_seed(config.seed)
        return MODELS[config.model](data.num_classes).to(data.train_x.device), []
    federation_config = FedConfig(model=config.model, dataset=config.dataset, seed=config.seed,
                                  num_rounds=config.trained_rounds, device=config.device,
                                  **QUICK_FEDERATION)
    federation = Federation.build(federation_config, data)
    federation.run(progress=False)
    return federation.global_model, federation.history


def load_for(config: InversionConfig) -> Data:
    """The dataset, with enough test images for the victim's batch."""
    check(config.first_image + config.batch_size <= 10_000, "first_image", config.first_image,
          f"at most {10_000 - config.batch_size} (the test split has 10,000 images)")
    return load(config.dataset, config.data_root, device=resolve_device(config.device),
                max_per_class=QUICK_FEDERATION["max_per_class"],
                max_test=max(QUICK_FEDERATION["max_test"], config.first_image + config.batch_size),
                allow_fallback=config.allow_fallback)


def attack_batch(config: InversionConfig, model: nn.Module, images: torch.Tensor,
                 labels: torch.Tensor, callback: Callback | None = None) -> tuple[Inversion, list]:
    """Run the attack on what this batch sends; score every iteration against the batch.

    The attack sees only ``model`` and the observation; the scoring (``fltutor.metrics``) is
    the experiment's, done in the callback. Returns the result and one record per iteration.
    """
    knowledge = config.knowledge(tuple(images.shape[1:]))
    observed = observed_by(model, images, labels, knowledge)
    trace: list[dict] = []

    def record(iteration: int, loss: float, current: torch.Tensor):
        scores = reconstruction_scores(current.clamp(-1, 1), images)
        trace.append({"iteration": iteration, "loss": loss, "psnr": scores["psnr"],
                      "ssim": scores["ssim"]})
        return callback(iteration, loss, current) if callback is not None else None

    settings = {} if config.iterations is None else {"iterations": config.iterations}
    result = invert(config.method, model, observed, knowledge, callback=record,
                    seed=config.seed, **settings)
    return result, trace


@dataclass
class InvertedBatch:
    """One attacked batch: the victim's ``images`` and ``labels``, what the attack recovered
    (``result``), its per-iteration ``trace`` and its final ``scores``
    (``reconstruction_scores``)."""

    images: torch.Tensor
    labels: torch.Tensor
    result: Inversion
    trace: list[dict]
    scores: dict

    def figure(self, title: str):
        """The originals over their optimally paired reconstructions (``reconstruction_pairs``)."""
        return reconstruction_pairs(self.images, self.result.images, self.labels.tolist(),
                                    self.result.labels.tolist(), title=title)


def invert_test_batch(config: InversionConfig, model: nn.Module, data: Data,
                      callback: Callback | None = None) -> InvertedBatch:
    """Attack the victim's batch, the ``batch_size`` test images from ``first_image`` on, as
    ``model`` sees it, and score the result against that batch."""
    chosen = slice(config.first_image, config.first_image + config.batch_size)
    images, labels = data.test_x[chosen], data.test_y[chosen]
    check(len(labels) == config.batch_size, "first_image", config.first_image,
          f"a start that leaves {config.batch_size} of the {len(data.test_y)} test images")
    result, trace = attack_batch(config, model, images, labels, callback)
    scores = reconstruction_scores(result.images.clamp(-1, 1), images, result.labels, labels)
    return InvertedBatch(images, labels, result, trace, scores)


def run_inversion(config: InversionConfig, out_dir: str | Path, progress: bool = True,
                  force: bool = False, callback: Callback | None = None) -> dict:
    """The ``fltutor invert`` command: attack one batch, write metrics.json and the figure.

    A folder that holds this run finished is read back instead (unless ``force``); one holding
    another configuration is refused, before any data is loaded.
    """
    check_bool("progress", progress)
    finished = claim_out_dir(out_dir, config, force)
    if finished is not None:
        return finished
    out_dir = usable_out_dir(out_dir)
    start = time.perf_counter()
    data = load_for(config)
    with writing_to(out_dir, run_command(config)):
        model, rounds = victim_model(config, data)
        accuracy = evaluate(model, data.test_x, data.test_y, data.num_classes).accuracy
        batch = invert_test_batch(config, model, data, callback)
        result, scores = batch.result, batch.scores
        summary = {"rounds": config.trained_rounds, "final_test_accuracy": accuracy,
                   "iterations_run": result.iterations, "final_loss": result.losses[-1]
                   if result.losses else None, **scores,
                   "total_seconds": round(time.perf_counter() - start, 3)}
        final = {"config": config.to_dict(), "data_source": data.source, "rounds": rounds,
                 "iterations": batch.trace, "true_labels": batch.labels.tolist(),
                 "recovered_labels": result.labels.tolist(), "summary": summary,
                 "finished": True}
        save_figure(batch.figure(f"{config.method} on {config.model}"),
                    out_dir / "reconstructions.png")
        write_json(out_dir / "metrics.json", final)
    if progress:
        print(f"{config.method}: PSNR {scores['psnr']:.1f} dB, SSIM {scores['ssim']:.3f}, "
              f"labels {scores['label_accuracy']:.0%} right after {result.iterations} iterations")
    return final
