"""Seconds per round of a quick federation with client-level DP (DP-FedAvg), against none.

What it measures: rounds of ``FedConfig.from_profile("quick")`` federations (10 clients, 300
images per class, the CRPA study's classifier) on synthetic images of MNIST's shape, one per
row: no DP, client-dp with a fixed clip, client-dp with adaptive clipping (sigma 0.5, C 1,
gamma 0.5, sigma_b 0.5: the default m / 20 for ten clients). After one warm-up round each, the
three are timed in alternation, round by round, so background load hits them alike: the median
seconds of ``--rounds`` rounds, of the aggregation inside them (the rule, and for client-dp the
clipping and the noise around it), and the round's ratio to no DP. Nothing is timed in the tests.

    python benchmarks/bench_client_dp.py --markdown
"""

from __future__ import annotations

from statistics import median

from common import (benchmark_parser, parse_benchmark_args, positive_int, print_machine,
                    synthetic_mnist, table, timed, timed_aggregation, timed_rounds)
from fltutor.config import FedConfig, resolve_device
from fltutor.defenses.client_dp import ClientDPConfig
from fltutor.federation import Federation

#: (label, defenses): the federations timed side by side.
SCENARIOS = [
    ("no DP", ()),
    ("client-dp fixed", (ClientDPConfig(noise_multiplier=0.5, max_update_norm=1.0),)),
    ("client-dp adaptive", (ClientDPConfig(noise_multiplier=0.5, max_update_norm=1.0,
                                           target_quantile=0.5),)),
]


def time_scenarios(device: str, rounds: int, max_per_class: int | None) -> list[tuple]:
    """Per scenario: the median seconds of a round and of its aggregation, after a warm-up."""
    sizes = {} if max_per_class is None else {"max_per_class": max_per_class}
    configs = [FedConfig.from_profile("quick", device=device, num_rounds=rounds + 1,
                                      defenses=defenses, **sizes) for _, defenses in SCENARIOS]
    data = synthetic_mnist(configs[0].max_per_class, configs[0].max_test)
    federations, rounds_s, aggregation_s = [], [], []
    for config in configs:
        federation = Federation.build(config, data)
        federation.run_round()  # warm-up
        seconds: list[float] = []
        timed_aggregation(federation, seconds)
        federations.append(federation)
        rounds_s.append([])
        aggregation_s.append(seconds)
    for _ in range(rounds):
        for federation, times in zip(federations, rounds_s):
            times.append(timed(federation.run_round, resolve_device(device)))
    return [(median(r), median(a)) for r, a in zip(rounds_s, aggregation_s)]


def main() -> None:
    parser = benchmark_parser(__doc__.split("\n\n")[0], {"quick": None})
    parser.add_argument("--max-per-class", type=positive_int,
                        help="training images per class (default: the quick profile's 300)")
    args, _, devices = parse_benchmark_args(parser, {"quick": None})
    print_machine(args.markdown)
    rows = []
    for device in devices:
        rounds = timed_rounds(args.rounds, "quick", device)
        timings = time_scenarios(device, rounds, args.max_per_class)
        plain_round = timings[0][0]
        for (label, _), (round_s, aggregation_s) in zip(SCENARIOS, timings):
            rows.append([device, label, f"{round_s:.3g}", f"{aggregation_s:.3g}",
                         f"{round_s / plain_round:.3g}"])
        print(f"  {device}: done", flush=True)
    print(f"\nSeconds per round of a quick federation (median of {rounds} rounds after a warm-up, "
          f"the scenarios in alternation), and of the aggregation inside it.\n")
    print(table(["device", "defense", "round s", "aggregation s", "round / no DP"], rows,
                args.markdown, text_columns=2))


if __name__ == "__main__":
    main()
