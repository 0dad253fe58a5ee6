"""Seconds per CRPA round: fltutor against the study's own TensorFlow code, on the same MNIST.

What it measures: rounds of the CRPA study's federation at its paper settings (10 clients with
one class each, client 0 the attacker reconstructing class 4 with a GAN and submitting 500 of its
images labelled 9, batch 250, one local epoch, Adam 1e-3, no DP, the whole test set evaluated
every round), run twice in one invocation, one after the other:

* ``fltutor``: ``Federation.build(CRPAConfig.from_profile("paper", device="cpu",
  attack_start_round=1))``, timing ``federation.run_round()``;
* ``reference``: the study's ``federated_gan`` (``experiments/federated_gan.py`` of the user's
  checkout of its repository, unchanged) with ``distribution="non-iid"`` (client i holds class
  i), run by ``reference_driver.py`` in a child process of the Python given as
  ``--reference-python`` (TensorFlow 2.12, scikit-learn, matplotlib and pandas). The driver
  times the study's rounds by the ``round:N`` lines it prints at each round's start; mlflow's
  logging is replaced by functions that do nothing, Keras' MNIST download by a reader of the
  local files (see the driver's docstring).

Both read the MNIST copy under ``--data-root`` (default: fltutor's, ``$FLTUTOR_DATA``), with at
most 5,000 training images per class (a smaller copy gives each client what it has: the table
shows the images per client) and the whole test set. Both run on the CPU with their library's
default number of threads, and fltutor's side runs first, so they never compete for the cores.

Warm-up: only attack rounds are timed, after each side's first attack round (graph tracing,
first allocations). fltutor attacks from round 1 (``attack_start_round=1``): its round 1 is the
warm-up, rounds 2 to N+1 are timed. The study attacks while ``test_acc > TEST_ACCURACY_THRESHOLD``
with the threshold 0 and ``test_acc`` set by the round's evaluation, starting at 0: its round 1
trains honestly, its attacker attacks from round 2 on, and its first attack round traces the
GAN's ``tf.function``. So its rounds 1 and 2 are the warm-up, rounds 3 to N+2 are timed (attack
rounds 2 to N+1, as on fltutor's side). Every round's seconds are printed, warm-ups marked.
The study's round also draws its figures (a confusion matrix, a 6x6 grid of generated images)
with matplotlib, as it does for its mlflow log; fltutor's round keeps 8 generated images.

    python benchmarks/bench_vs_reference.py --reference ~/src/fl_crpa \\
        --reference-python ~/venvs/tf212/bin/python
    python benchmarks/bench_vs_reference.py --reference ~/src/fl_crpa \\
        --reference-python ~/venvs/tf212/bin/python --data-root ~/data --rounds 5 --markdown
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from statistics import mean

import torch

from common import positive_int, print_machine, table, timed
from fltutor.data import default_root
from fltutor.federation import Federation
from fltutor.recipes.crpa import CRPAConfig

DRIVER = Path(__file__).resolve().parent / "reference_driver.py"
STUDY_FILE = Path("experiments") / "federated_gan.py"
MNIST_FILE = Path("MNIST") / "raw" / "train-images-idx3-ubyte"
HEADER = ["code", "library", "images/client", "attacker's images", "timed rounds", "s/round",
          "reference / fltutor"]
#: The environment of the study's process: figures drawn off screen, TensorFlow's C++ notes off.
REFERENCE_ENV = {"MPLBACKEND": "Agg", "TF_CPP_MIN_LOG_LEVEL": "2"}


def parse_args() -> argparse.Namespace:
    """The options, checked: a bad one is refused in one line (exit code 2)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", type=Path,
                        help="the folder of a checkout of the CRPA study's repository (the one "
                             "that holds experiments/)")
    parser.add_argument("--reference-python",
                        help="a Python with TensorFlow 2.12, scikit-learn, matplotlib and pandas")
    parser.add_argument("--data-root", type=Path, default=default_root(),
                        help="the folder that holds MNIST/raw (default: fltutor's, "
                             "$FLTUTOR_DATA)")
    parser.add_argument("--rounds", type=positive_int, default=3,
                        help="timed rounds on each side, after its warm-up (default 3)")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args()

    def refuse(message: str):
        parser.exit(2, message + "\n")

    if args.reference is None:
        refuse("--reference is missing: give the folder of a checkout of the CRPA study's "
               "repository (the one that holds experiments/)")
    if not (args.reference / STUDY_FILE).is_file():
        refuse(f"reference='{args.reference}' is not allowed: it has no "
               f"{STUDY_FILE.as_posix()} (give the folder of a checkout of the CRPA study's "
               f"repository)")
    if args.reference_python is None:
        refuse("--reference-python is missing: give a Python with TensorFlow 2.12, scikit-learn, "
               "matplotlib and pandas")
    if shutil.which(args.reference_python) is None:
        refuse(f"reference_python='{args.reference_python}' is not allowed: it names no "
               f"executable file")
    mnist = args.data_root / MNIST_FILE
    if not (mnist.is_file() or mnist.with_name(mnist.name + ".gz").is_file()):
        refuse(f"data_root='{args.data_root}' is not allowed: it has no "
               f"{MNIST_FILE.as_posix()} (run 'fltutor data fetch --root DIR' where there is "
               f"internet, and copy DIR here)")
    return args


def reference_process(args, *options: str) -> subprocess.CompletedProcess:
    """Run ``reference_driver.py`` with the reference Python on the study's experiments folder."""
    experiments = (args.reference / STUDY_FILE).parent.resolve()
    return subprocess.run([args.reference_python, str(DRIVER), str(experiments), *options],
                          env={**os.environ, **REFERENCE_ENV}, capture_output=True, text=True)


def check_reference(args) -> dict[str, str]:
    """The versions of TensorFlow and Python the study's code runs on; exit in one line if it
    cannot be imported."""
    done = reference_process(args, "--check")
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["no message"])[-1]
        sys.stderr.write(f"reference_python='{args.reference_python}' cannot import the study's "
                         f"code: {reason}\n")
        sys.exit(2)
    return json.loads(done.stdout.splitlines()[-1])


def fltutor_rounds(data_root: Path, rounds: int) -> dict:
    """Seconds of 1 + ``rounds`` rounds of fltutor's paper-profile CRPA federation on the CPU."""
    config = CRPAConfig.from_profile("paper", device="cpu", attack_start_round=1,
                                     data_root=str(data_root))
    federation = Federation.build(config)
    images = [len(client.y) for client in federation.clients]
    seconds = [timed(federation.run_round, torch.device("cpu")) for _ in range(1 + rounds)]
    return {"round_seconds": seconds, "warm_up": 1, "client_images": images,
            "attacker": images[config.attacker], "poisoned": config.poison_count}


def reference_rounds(args) -> dict:
    """Seconds of 2 + ``rounds`` rounds of the study's code (its first two are the warm-up)."""
    warm_up = 2
    done = reference_process(args, "--data-root", str(args.data_root.resolve()),
                             "--rounds", str(warm_up + args.rounds))
    if done.returncode != 0:
        sys.stderr.write("\n".join(done.stderr.strip().splitlines()[-20:]) + "\n")
        sys.exit(f"the study's code failed (exit code {done.returncode}); its last messages are "
                 f"above")
    result = json.loads(done.stdout.splitlines()[-1])
    timed_rounds = range(warm_up + 1, warm_up + args.rounds + 1)
    if not set(timed_rounds) <= set(result["attack_rounds"]):
        sys.exit(f"the study's attacker attacked in rounds {result['attack_rounds']}, not in "
                 f"every timed round ({timed_rounds.start} to {timed_rounds.stop - 1})")
    return {**result, "warm_up": warm_up, "attacker": result["client_images"][0]}


def per_round_line(name: str, run: dict) -> str:
    """Every round's seconds of one side, its warm-up rounds marked."""
    cells = [f"{s:.2f}" + (" (warm-up)" if r < run["warm_up"] else "")
             for r, s in enumerate(run["round_seconds"])]
    return f"{name} seconds by round: {', '.join(cells)}"


def row(name: str, library: str, run: dict, seconds: float) -> list[str]:
    """One side's row: its clients' images, its timed rounds and their mean seconds."""
    images = run["client_images"]
    return [name, library, f"{min(images)}-{max(images)}",
            f"{run['attacker']} + {run['poisoned']} poisoned",
            str(len(run["round_seconds"]) - run["warm_up"]), f"{seconds:.3f}"]


def main() -> None:
    args = parse_args()
    versions = check_reference(args)
    print_machine(args.markdown)
    print(f"{'- ' if args.markdown else ''}reference: TensorFlow {versions['tensorflow']}, "
          f"Python {versions['python']}")
    print(f"\nSettings: the study's paper settings on both sides (10 clients, one class each, "
          f"client 0 the CRPA attacker, G=4, T=9, 500 poisoned images, batch 250, no DP, the "
          f"whole test set); MNIST from {args.data_root}, at most 5,000 images per class; CPU, "
          f"each library's default threads; only attack rounds timed, after each side's "
          f"first.\n")
    ours = fltutor_rounds(args.data_root, args.rounds)
    print(per_round_line("fltutor", ours), flush=True)
    theirs = reference_rounds(args)
    print(per_round_line("reference", theirs))
    ours_s, theirs_s = (mean(run["round_seconds"][run["warm_up"]:]) for run in (ours, theirs))
    rows = [row("fltutor", f"torch {torch.__version__}", ours, ours_s) + [""],
            row("reference", f"TensorFlow {versions['tensorflow']}", theirs, theirs_s)
            + [f"{theirs_s / ours_s:.2f}"]]
    print()
    print(table(HEADER, rows, args.markdown, text_columns=4))


if __name__ == "__main__":
    main()
