"""Runs the CRPA study's own TensorFlow code for a few rounds and prints each round's seconds.

``bench_vs_reference.py`` starts this script with the Python that has the study's libraries
(TensorFlow 2.12, scikit-learn, matplotlib, pandas): it imports neither fltutor nor torch. The
study's files are used as they are, from the user's checkout; around them it

* puts a stand-in ``mlflow`` module in ``sys.modules`` whose functions do nothing, so nothing is
  logged or saved (the figures are still drawn, as in the study's rounds);
* makes ``tf.keras.datasets.mnist.load_data`` read local IDX files (torchvision's layout,
  ``ROOT/MNIST/raw/train-images-idx3-ubyte``, plain or ``.gz``) instead of downloading;
* makes ``tf.keras.optimizers.SGD`` the legacy SGD: the study's GAN optimizers pass ``decay``,
  which the optimizers of TensorFlow 2.11 and later refuse (ValueError), and the legacy one is
  the SGD of TensorFlow 2.10, which the study used;
* notes the clock whenever the study prints ``round:N`` (the start of round N) or
  ``Attack round: K`` (its attacker attacks in this round).

    python reference_driver.py STUDY/experiments --check
    python reference_driver.py STUDY/experiments --data-root DATA_ROOT --rounds 5

``--check`` only imports the study's code and prints the versions of TensorFlow and Python, as
JSON. A run ends with one JSON line: the versions, the seconds of every round, which rounds were
attack rounds, the images of every client and the number of poisoned images.
"""

from __future__ import annotations

import argparse
import builtins
import gzip
import inspect
import json
import os
import platform
import sys
import time
import types
from pathlib import Path

import numpy as np

#: The paper's settings (Becker et al. 2025): G = 4, T = 9, client 0 the attacker, no DP, one
#: class per client. The attack condition is ``test_acc > TEST_ACCURACY_THRESHOLD``, where
#: test_acc starts at 0 and is set by each round's evaluation: round 1 trains honestly, and the
#: attacker attacks from round 2 on (as soon as the global model classifies any test image right).
PAPER_SETTINGS = dict(TEST_ACCURACY_THRESHOLD=0.0, CLASS_TO_GENERATE=4, CLASS_TO_ATTACK=9,
                      MALICIOUS_ATTACKER=0, WARMUP_TRAINING=False, DATASET="MNIST", DP=False,
                      distribution="non-iid", GENERATOR_ATTACK=True)
MLFLOW_FUNCTIONS = ("set_experiment", "start_run", "end_run", "log_param", "log_metric",
                    "log_figure")


def install_mlflow_stub() -> None:
    """An ``mlflow`` module (and ``mlflow.keras``) whose logging functions do nothing."""
    def nothing(*args, **kwargs):
        return None

    mlflow = types.ModuleType("mlflow")
    for name in MLFLOW_FUNCTIONS:
        setattr(mlflow, name, nothing)
    mlflow.keras = types.ModuleType("mlflow.keras")
    mlflow.keras.log_model = nothing
    sys.modules["mlflow"], sys.modules["mlflow.keras"] = mlflow, mlflow.keras


def read_idx(path: Path, header_bytes: int) -> np.ndarray:
    """The unsigned bytes of an IDX file after its header, from ``path`` or ``path.gz``."""
    if path.exists():
        data = path.read_bytes()
    else:
        with gzip.open(path.with_name(path.name + ".gz")) as handle:
            data = handle.read()
    return np.frombuffer(data, dtype=np.uint8, offset=header_bytes).copy()  # writable, as Keras'


def local_mnist(root: Path):
    """``load_data`` for MNIST in torchvision's layout under ``root``: what Keras' would return."""
    def load_data():
        raw = root / "MNIST" / "raw"
        split = lambda prefix: (  # noqa: E731
            read_idx(raw / f"{prefix}-images-idx3-ubyte", 16).reshape(-1, 28, 28),
            read_idx(raw / f"{prefix}-labels-idx1-ubyte", 8))
        return split("train"), split("t10k")

    return load_data


def import_study(experiments: Path, data_root: Path | None = None):
    """The study's ``federated_gan`` module, imported from its folder with the stand-ins above."""
    install_mlflow_stub()
    import tensorflow as tf

    tf.keras.optimizers.SGD = tf.keras.optimizers.legacy.SGD
    if data_root is not None:
        tf.keras.datasets.mnist.load_data = local_mnist(data_root)
    os.chdir(experiments)  # the study reads its Dirichlet files relative to the working folder
    sys.path.insert(0, str(experiments))
    import federated_gan

    return federated_gan, tf.__version__


class RoundClock:
    """Wraps ``print``: notes when each ``round:N`` line is printed and which rounds attack.

    The study prints ``round:N`` first thing in round N, so a round lasts until the next one's
    line; the last round, until the clock's ``with`` block ends (``federated_gan`` returns).
    """

    def __init__(self):
        self.starts: list[float] = []
        self.attack_rounds: list[int] = []

    def __enter__(self):
        self.print = builtins.print

        def noting_print(*args, **kwargs):
            text = str(args[0]) if args else ""
            if text.startswith("round:"):
                self.starts.append(time.perf_counter())
            elif text.startswith("Attack round:"):
                self.attack_rounds.append(len(self.starts))
            self.print(*args, **kwargs)

        builtins.print = noting_print
        return self

    def __exit__(self, *exc):
        self.end = time.perf_counter()
        builtins.print = self.print

    def round_seconds(self) -> list[float]:
        """The seconds of every round, in order."""
        return np.diff([*self.starts, self.end]).tolist()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("experiments", type=Path, help="the study's experiments folder")
    parser.add_argument("--check", action="store_true",
                        help="only import the study's code; print the versions")
    parser.add_argument("--data-root", type=Path, help="the folder that holds MNIST/raw")
    parser.add_argument("--rounds", type=int, help="rounds to run")
    args = parser.parse_args()
    if not args.check and (args.data_root is None or args.rounds is None):
        parser.error("a run needs --data-root and --rounds")
    data_root = args.data_root.resolve() if args.data_root else None  # before the chdir
    study, tf_version = import_study(args.experiments.resolve(), data_root)
    versions = {"tensorflow": tf_version, "python": platform.python_version()}
    if args.check:
        print(json.dumps(versions))
        return
    client_images: list[int] = []
    load_images = study.load_images

    def counting_load_images(**kwargs):
        loaded = load_images(**kwargs)
        client_images.extend(len(images) for images in loaded[0].values())
        return loaded

    study.load_images = counting_load_images
    with RoundClock() as clock:
        study.federated_gan(Round=args.rounds, **PAPER_SETTINGS)
    poisoned = inspect.signature(study.federated_gan).parameters["NUM_TO_POISON"].default
    print(json.dumps({**versions, "round_seconds": clock.round_seconds(),
                      "attack_rounds": clock.attack_rounds, "client_images": client_images,
                      "poisoned": poisoned}))


if __name__ == "__main__":
    main()
