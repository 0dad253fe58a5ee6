"""Seconds per honest round: the clients trained one after another, or all in one batched step.

What it measures: rounds of FedAvg with honest clients only (10 clients holding one class each,
one local epoch, Adam lr 1e-3, kept across rounds), at the ``quick`` and ``paper`` profiles'
images per class and batch size, once with ``engine="sequential"`` (every client trains its own
model in turn) and once with ``engine="batched"`` (``fltutor.batched``: all clients' weights
stacked, every step one ``vmap`` over ``functional_call``). Both include the same end-of-round
evaluation on 1,000 test images. The two federations run in alternation, round by round, after
one warm-up round each, so background load hits both alike; ``sequential / batched`` divides
their seconds per round (above 1: batching is faster). ``--models`` adds the curious-client
study's LeNet-5s. Images are synthetic random images of MNIST's shape.

    python benchmarks/bench_engines.py                         # quick and paper, CPU (+ GPU)
    python benchmarks/bench_engines.py --scales quick --rounds 5 --markdown
    python benchmarks/bench_engines.py --models classifier,lenet5,lenet5-wide
"""

from __future__ import annotations

from statistics import mean

import torch

from common import (benchmark_parser, chosen_names, parse_benchmark_args, print_machine,
                    synthetic_mnist, table, timed, timed_rounds)
from fltutor.config import PROFILES, FedConfig
from fltutor.federation import Federation
from fltutor.models import MODELS

SCALES = tuple(PROFILES)
ENGINES = ("sequential", "batched")
TEST_IMAGES = 1000
HEADER = ["scale", "device", "model", "images/client", "batch", "sequential s/round",
          "batched s/round", "sequential / batched"]


def config_for(scale: str, model: str, device: str, engine: str) -> FedConfig:
    return FedConfig.from_profile(scale, model=model, device=device, engine=engine,
                                  partition="one-class", max_test=TEST_IMAGES)


def benchmark(scale: str, model: str, device: str, rounds: int) -> dict[str, float]:
    """Mean seconds per round of each engine, after one warm-up round each."""
    config = config_for(scale, model, device, "sequential")
    data = synthetic_mnist(config.max_per_class, TEST_IMAGES)
    federations = {engine: Federation.build(config.replace(engine=engine), data=data)
                   for engine in ENGINES}
    seconds = {engine: [] for engine in ENGINES}
    for _ in range(1 + rounds):
        for engine, federation in federations.items():
            seconds[engine].append(timed(federation.run_round, torch.device(device)))
    return {engine: mean(times[1:]) for engine, times in seconds.items()}


def main() -> None:
    parser = benchmark_parser(__doc__.split("\n\n")[0], SCALES)
    parser.add_argument("--models", default="classifier",
                        help="comma-separated federated models (default: the CRPA classifier)")
    args, scales, devices = parse_benchmark_args(parser, SCALES)
    models = chosen_names(parser, "--models", args.models, MODELS.names())
    print_machine(args.markdown)
    print("Settings: 10 honest clients, one class each, one local epoch, Adam lr 1e-3 kept across "
          f"rounds, evaluation on {TEST_IMAGES} test images; synthetic random 1x28x28 images.\n")
    rows = []
    for scale in scales:
        for device in devices:
            for model in models:
                rounds = timed_rounds(args.rounds, scale, device)
                seconds = benchmark(scale, model, device, rounds)
                config = config_for(scale, model, device, "sequential")
                rows.append([scale, device, model, str(config.max_per_class), str(config.batch_size),
                             f"{seconds['sequential']:.3f}", f"{seconds['batched']:.3f}",
                             f"{seconds['sequential'] / seconds['batched']:.2f}"])
                print(f"  {scale} on {device}, {model}: {rounds} timed round(s) done", flush=True)
    print()
    print(table(HEADER, rows, args.markdown, text_columns=3))


if __name__ == "__main__":
    main()
