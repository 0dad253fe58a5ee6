"""Seconds per reconstructed round of the curious client on one CPU thread, by attack and dummies.

What it measures: the ``quick-fedsgd`` setting (10 clients, the classic LeNet-5, FedSGD) on
synthetic images of MNIST's shape (the time does not depend on the pixels; the clients get an
IID split, so that every one holds a minibatch), one row per scenario: the pixel attack
(Inverting Gradients) with B = 1 and B = 2 images per client, so 9 and 18 dummies for the
curious client's 9 peers, and the autoencoder prior at 9 dummies. The curious client
reconstructs in every round at its default number of iterations (``--iterations`` to change
it). After one warm-up round it times ``--rounds`` rounds: the reconstruction with its scoring
(``curious_seconds``, the median is the table's number) and, beside it, the round without
observers (``seconds``: training, aggregation, evaluation). ``build s`` is the federation's
set-up, the autoencoder's training included. torch runs on one thread unless ``--threads`` says
otherwise. Nothing is timed in the tests.

    python benchmarks/bench_curious.py --markdown
"""

from __future__ import annotations

from statistics import median

import torch

from common import (benchmark_parser, parse_benchmark_args, positive_int, print_machine,
                    synthetic_mnist, table, timed, timed_rounds)
from fltutor.attacks.curious import CuriousClient
from fltutor.config import resolve_device
from fltutor.federation import Federation
from fltutor.recipes.curious import CuriousConfig

#: (prior, batch size B): 9 peers with B images each are 9 B dummies.
SCENARIOS = [("pixels", 1), ("pixels", 2), ("autoencoder", 1)]


def time_scenario(prior: str, batch_size: int, device: str, rounds: int,
                  iterations: int | None, max_per_class: int | None
                  ) -> tuple[int, int, float, float, float]:
    """Dummies, iterations, seconds of the build, and medians of a reconstruction and of a
    plain round, after one warm-up round."""
    options = {"prior": prior, **({} if iterations is None else {"iterations": iterations})}
    sizes = {} if max_per_class is None else {"max_per_class": max_per_class}
    config = CuriousConfig.from_profile("quick-fedsgd", device=device, partition="iid",
                                        batch_size=batch_size, num_rounds=rounds + 1,
                                        curious_options={"every": 1, "rounds": (), **options},
                                        **sizes)
    data = synthetic_mnist(config.max_per_class, config.max_test)
    built: list[Federation] = []
    build_seconds = timed(lambda: built.append(Federation.build(config, data)),
                          resolve_device(device))
    federation = built[0]
    federation.run(progress=False)
    timed_part = federation.history[1:]  # after the warm-up
    return (timed_part[0]["curious_dummies"], config.curious_options.get(
        "iterations", CuriousClient.iterations), build_seconds,
        median(r["curious_seconds"] for r in timed_part),
        median(r["seconds"] for r in timed_part))


def main() -> None:
    parser = benchmark_parser(__doc__.split("\n\n")[0], {"quick": None},
                              rounds_help="timed reconstructed rounds after one warm-up "
                                          "(default 3)")
    parser.add_argument("--iterations", type=positive_int,
                        help=f"reconstruction iterations (default: the curious client's "
                             f"{CuriousClient.iterations})")
    parser.add_argument("--max-per-class", type=positive_int,
                        help="training images per class (default: the quick-fedsgd profile's)")
    args, _, devices = parse_benchmark_args(parser, {"quick": None})
    if args.threads is None:
        torch.set_num_threads(1)  # the table's numbers are for one CPU thread
    print_machine(args.markdown)
    rows = []
    for device in devices:
        rounds = timed_rounds(args.rounds, "quick", device)
        for prior, batch_size in SCENARIOS:
            dummies, iterations, build_s, curious_s, round_s = time_scenario(
                prior, batch_size, device, rounds, args.iterations, args.max_per_class)
            rows.append([device, prior, str(batch_size), str(dummies), str(iterations),
                         f"{build_s:.2f}", f"{curious_s:.2f}", f"{round_s:.3f}"])
            print(f"  {prior}, B={batch_size}, on {device}: done", flush=True)
    print(f"\nSeconds per reconstructed round of the curious client, quick-fedsgd with 10 clients "
          f"and LeNet-5, {torch.get_num_threads()} CPU thread(s) (median of {rounds} rounds "
          f"after a warm-up; build: data split, models and the autoencoder's training).\n")
    print(table(["device", "prior", "B", "dummies", "iterations", "build s", "reconstruction s",
                 "round s"], rows, args.markdown, text_columns=2))


if __name__ == "__main__":
    main()
