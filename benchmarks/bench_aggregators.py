"""Seconds per aggregation for every rule in ``fltutor.aggregators``, by clients and model size.

What it measures: one call of each registered rule on random updates (``torch.randn``, global
seed 0) of ``[num_clients, num_params]``, for 10, 100 and 1,000 clients and the parameter counts
of the CRPA study's classifier and of the Byzantine study's LeNet-5 (``lenet5-wide``: conv 32
and 64 channels 5x5, fc 512). Rules that assume ``num_malicious`` attackers get f = 10% of the
clients; the trimmed mean trims 10% per side; DnC and FreqFed run with their defaults.

Memory: the updates alone are num_clients * num_params * 4 bytes (1,000 LeNet-5 updates: 2.3 GB)
and some rules hold copies (a sort keeps the values and their int64 indices). A rule whose
estimated peak (the updates plus its ``COPIES`` of them) exceeds ``--memory-gb`` is not run; its
cell says ``skip`` with the estimate.

    python benchmarks/bench_aggregators.py             # 10, 100, 1,000 clients; both models
    python benchmarks/bench_aggregators.py --quick     # seconds: 10 and 30 clients, 10,000 params
"""

from __future__ import annotations

from statistics import median

import torch

from common import benchmark_parser, parse_benchmark_args, print_machine, table, timed
from fltutor.aggregators import AGGREGATORS
from fltutor.models import MODELS

SCALES = {"full": [10, 100, 1000], "quick": [10, 30]}  # clients per round
QUICK_PARAMS = 10_000
#: Copies of the updates each rule holds at its peak, beyond the updates themselves (rough).
COPIES = {"mean": 0, "krum": 2, "multi-krum": 2, "median": 1, "trimmed-mean": 3.5, "bulyan": 4,
          "norm-clipping": 1, "dnc": 0.1, "freqfed": 2}


def parameters(model: str) -> int:
    """How many numbers an update of ``model`` holds, for MNIST's 10 classes."""
    return sum(p.numel() for p in MODELS[model](10).parameters())


MODEL_SIZES = ("classifier", "lenet5-wide")


def spec_for(name: str, num_clients: int):
    """The rule's spec with the benchmark's options for ``num_clients`` clients."""
    spec_class = AGGREGATORS[name]
    if "num_malicious" in spec_class.__dataclass_fields__:
        return spec_class(num_malicious=num_clients // 10)
    return spec_class()


def seconds_per_call(name: str, updates: torch.Tensor, repeats: int) -> float:
    """Median seconds of ``repeats`` calls after one warm-up call."""
    spec, weights = spec_for(name, len(updates)), torch.ones(len(updates))
    device = updates.device
    spec(updates, weights)
    return median(timed(lambda: spec(updates, weights), device) for _ in range(repeats))


def main() -> None:
    parser = benchmark_parser(__doc__.split("\n\n")[0], SCALES)
    parser.set_defaults(scales="full")
    parser.add_argument("--quick", action="store_true",
                        help=f"10 and 30 clients, {QUICK_PARAMS:,} parameters: runs in seconds")
    parser.add_argument("--models", default=",".join(MODEL_SIZES),
                        help="comma-separated: " + ", ".join(MODEL_SIZES))
    parser.add_argument("--memory-gb", type=float, default=4.0,
                        help="skip a rule whose estimated peak memory exceeds this (default 4)")
    args, scales, devices = parse_benchmark_args(parser, SCALES)
    if args.quick:
        scales = ["quick"]
    repeats = args.rounds or 3
    chosen = args.models.split(",")
    if not set(chosen) <= set(MODEL_SIZES):
        parser.error(f"models={args.models!r} is not allowed: use names from {', '.join(MODEL_SIZES)}")
    models = ({"quick": QUICK_PARAMS} if scales == ["quick"] else
              {name: parameters(name) for name in chosen})
    print_machine(args.markdown)
    print(f"Seconds per aggregation (median of {repeats} after a warm-up); random float32 updates, "
          f"torch seed 0; f = 10% of the clients; skip = estimated peak over "
          f"{args.memory_gb:g} GB.\n")
    rules = AGGREGATORS.names()
    rows = []
    for device in devices:
        for model, params in models.items():
            for num_clients in sorted({n for scale in scales for n in SCALES[scale]}):
                torch.manual_seed(0)
                updates_gb = num_clients * params * 4 / 1e9
                row = [device, model, f"{params:,}", f"{num_clients:,}"]
                updates = torch.randn(num_clients, params, device=device)
                for name in rules:
                    peak = updates_gb * (1 + COPIES[name])
                    row.append(f"skip ({peak:.1f} GB)" if peak > args.memory_gb else
                               f"{seconds_per_call(name, updates, repeats):.3g}")
                del updates
                rows.append(row)
                print(f"  {model} with {num_clients} clients on {device}: done", flush=True)
    print()
    print(table(["device", "model", "params", "clients", *rules], rows, args.markdown,
                text_columns=2))


if __name__ == "__main__":
    main()
