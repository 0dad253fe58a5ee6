"""Seconds per round of the curious client at quick scale: the round itself, and its reconstruction.

What it measures: rounds of ``CuriousConfig.from_profile("quick")`` federations (6 clients,
60 images per class, SGD) on synthetic images of MNIST's shape (the time does not depend on the
pixels), one row per scenario: the model, and whether the curious client also flips signs. It
times the autoencoder's training once (at build time), then, after one warm-up round,
``--rounds`` rounds: the round without observers (``seconds`` in the history: training,
aggregation, evaluation) and the reconstruction with its scoring (``curious_seconds``).
Nothing is timed in the tests.

    python benchmarks/bench_curious.py --markdown
"""

from __future__ import annotations

from statistics import median

from common import (benchmark_parser, parse_benchmark_args, positive_int, print_machine,
                    synthetic_mnist, table, timed, timed_rounds)
from fltutor.config import resolve_device
from fltutor.federation import Federation
from fltutor.recipes.curious import CuriousConfig

#: (model, poison): the quick profile's model, its poisoning, and the plain LeNet-5.
SCENARIOS = [("lenet5-wide", "none"), ("lenet5-wide", "sign-flip"), ("lenet5", "none")]


def time_scenario(model: str, poison: str, device: str, rounds: int, iterations: int | None,
                  max_per_class: int | None) -> tuple[float, float, float]:
    """Seconds of the autoencoder's training, and medians of a plain round and of a
    reconstruction, after one warm-up round."""
    sizes = {} if max_per_class is None else {"max_per_class": max_per_class}
    options = {} if iterations is None else {"iterations": iterations}
    config = CuriousConfig.from_profile("quick", model=model, poison=poison, device=device,
                                        num_rounds=rounds + 1, curious_options=options, **sizes)
    data = synthetic_mnist(config.max_per_class, config.max_test)
    built: list[Federation] = []
    build_seconds = timed(lambda: built.append(Federation.build(config, data)),
                          resolve_device(device))
    federation = built[0]
    federation.run(progress=False)
    timed_part = federation.history[1:]  # after the warm-up
    return (build_seconds, median(r["seconds"] for r in timed_part),
            median(r["curious_seconds"] for r in timed_part))


def main() -> None:
    parser = benchmark_parser(__doc__.split("\n\n")[0], {"quick": None})
    parser.add_argument("--iterations", type=positive_int,
                        help="reconstruction iterations (default: the curious client's 100)")
    parser.add_argument("--max-per-class", type=positive_int,
                        help="training images per class (default: the quick profile's 60)")
    args, _, devices = parse_benchmark_args(parser, {"quick": None})
    print_machine(args.markdown)
    rows = []
    for device in devices:
        rounds = timed_rounds(args.rounds, "quick", device)
        for model, poison in SCENARIOS:
            build_s, round_s, curious_s = time_scenario(model, poison, device, rounds,
                                                        args.iterations, args.max_per_class)
            rows.append([device, model, poison, f"{build_s:.2f}", f"{round_s:.3f}",
                         f"{curious_s:.3f}", f"{curious_s / round_s:.1f}"])
            print(f"  {model}, poison {poison}, on {device}: done", flush=True)
    print(f"\nSeconds per round of the curious client at quick scale (median of {rounds} rounds "
          f"after a warm-up; build: data split, models and the autoencoder's training).\n")
    print(table(["device", "model", "poison", "build s", "round s", "reconstruction s",
                 "reconstruction / round"], rows, args.markdown, text_columns=3))


if __name__ == "__main__":
    main()
