"""Seconds and iterations each gradient inversion needs to reach PSNR >= 30 dB, image by image.

What it measures: for each of the first ``--images`` images of the MNIST test split (30 by
default: test images 0 to 29, batch size 1, FedSGD gradients), every method of
``fltutor.attacks.inversion`` runs from its defaults until the reconstruction reaches 30 dB
(scored every iteration against the original, ``fltutor.metrics``) or its iterations run out:
DLG and iDLG on DLG's untrained sigmoid LeNet (``lenet-dlg``, 300 L-BFGS steps, the setting of
Zhu et al. 2019), Inverting Gradients on the untrained ReLU LeNet-5 (``lenet5-wide``, 1,000
Adam steps). Image i is attacked on a model initialised with seed i and dummy data of seed i.

The table gives, per method: the share of images that reached 30 dB, the median iterations and
seconds of those that did, the median final PSNR over all images, and the share of exact labels.
One CPU thread (``torch.set_num_threads(1)``), and the GPU too when there is one.

    python benchmarks/bench_inversion.py                      # 30 images: about 15 minutes
    python benchmarks/bench_inversion.py --images 2 --iterations 3   # a smoke test: seconds
"""

from __future__ import annotations

import argparse
import time
from statistics import median

import torch

from common import chosen_devices, positive_int, print_machine, synchronize, table
from fltutor.attacks.inversion import Knowledge, gradient, invert
from fltutor.data import load
from fltutor.metrics import psnr, reconstruction_scores
from fltutor.models import MODELS

#: Which model each method is benchmarked on (the setting its paper shows it in).
SETUPS = {"dlg": "lenet-dlg", "idlg": "lenet-dlg", "ig": "lenet5-wide"}
TARGET_DB = 30.0


def attack_one(method: str, index: int, image: torch.Tensor, label: torch.Tensor,
               iterations: int | None) -> dict:
    """One image: iterations and seconds to TARGET_DB (None if never), final PSNR, label right."""
    torch.manual_seed(index)
    model = MODELS[SETUPS[method]](10).to(image.device)
    observed = gradient(model, image, label)
    reached: dict = {}
    start = time.perf_counter()

    def stop_at_target(iteration: int, loss: float, current: torch.Tensor) -> bool:
        if psnr(current.clamp(-1, 1), image).item() >= TARGET_DB:
            synchronize(image.device)
            reached.update(iterations=iteration, seconds=time.perf_counter() - start)
            return True
        return False

    settings = {} if iterations is None else {"iterations": iterations}
    result = invert(method, model, observed, Knowledge(), callback=stop_at_target, seed=index,
                    **settings)
    scores = reconstruction_scores(result.images.clamp(-1, 1), image, result.labels, label)
    return {"iterations": reached.get("iterations"), "seconds": reached.get("seconds"),
            "psnr": scores["psnr"], "label_right": scores["label_accuracy"] == 1.0}


def row(method: str, device: str, runs: list[dict]) -> list[str]:
    done = [run for run in runs if run["iterations"] is not None]
    share = len(done) / len(runs)
    iterations = f"{median(r['iterations'] for r in done):.0f}" if done else "-"
    seconds = f"{median(r['seconds'] for r in done):.2f}" if done else "-"
    return [method, SETUPS[method], device, str(len(runs)), f"{share:.0%}", iterations, seconds,
            f"{median(r['psnr'] for r in runs):.1f}",
            f"{sum(r['label_right'] for r in runs) / len(runs):.0%}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                        help="auto: the CPU, and the GPU too when there is one")
    parser.add_argument("--images", type=positive_int, default=30,
                        help="the first N MNIST test images (default 30)")
    parser.add_argument("--iterations", type=positive_int,
                        help="iterations per image (default: each method's, 300 or 1,000)")
    parser.add_argument("--methods", default=",".join(SETUPS),
                        help="comma-separated: " + ", ".join(SETUPS))
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args()
    methods = args.methods.split(",")
    if not set(methods) <= set(SETUPS):
        parser.error(f"methods={args.methods!r} is not allowed: use names from "
                     f"{', '.join(SETUPS)}")
    devices = chosen_devices(parser, args.device)
    torch.set_num_threads(1)
    data = load("mnist", max_per_class=1, max_test=args.images)
    print_machine(args.markdown)
    print(f"\nMNIST test images 0-{args.images - 1}, batch 1, untrained models (seed = image "
          f"index); iterations and seconds are medians over the images that reached "
          f"{TARGET_DB:g} dB.\n")
    rows = []
    for device in devices:
        images, labels = data.test_x.to(device), data.test_y.to(device)
        for method in methods:
            runs = [attack_one(method, i, images[i:i + 1], labels[i:i + 1], args.iterations)
                    for i in range(args.images)]
            rows.append(row(method, device, runs))
    header = ["method", "model", "device", "images", f">= {TARGET_DB:g} dB", "iterations",
              "seconds", "median PSNR", "labels exact"]
    print(table(header, rows, args.markdown, text_columns=3))


if __name__ == "__main__":
    main()
