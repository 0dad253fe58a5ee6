"""Seconds per round of notebook 05's scenarios at quick scale: local training, attack, rule.

What it measures: rounds of ``ByzantineConfig.from_profile("quick")`` federations (10 clients,
100 images per class, the Byzantine study's LeNet-5 unless ``--model`` says otherwise) on
synthetic images of MNIST's shape, one scenario per row: an attack with its number of malicious
clients against a rule. After one warm-up round, it times ``--rounds`` rounds and, inside them,
the aggregation alone (the rule's share of the round). Nothing is timed in the tests.

    python benchmarks/bench_byzantine.py --markdown
"""

from __future__ import annotations

import time
from statistics import median

from common import (benchmark_parser, parse_benchmark_args, positive_int, print_machine,
                    synthetic_mnist, table, timed_aggregation, timed_rounds)
from fltutor.federation import Federation
from fltutor.recipes.byzantine import ByzantineConfig

#: (attack, malicious clients, its options, rule, the rule's options): notebook 05's scenarios.
SCENARIOS = [
    ("none", 0, {}, "mean", {}),
    ("sign-flip", 3, {"scale": 4.0}, "mean", {}),
    ("sign-flip", 3, {"scale": 4.0}, "krum", {}),
    ("sign-flip", 3, {"scale": 4.0}, "median", {}),
    ("sign-flip", 3, {"scale": 4.0}, "trimmed-mean", {"trim_fraction": 0.3}),
    ("alie", 3, {}, "median", {}),
    ("alie", 3, {}, "krum", {}),
    ("ipm", 3, {}, "krum", {}),
    ("min-max", 3, {}, "median", {}),
    ("none", 0, {}, "multi-krum", {"num_malicious": 3}),
    ("none", 0, {}, "bulyan", {"num_malicious": 1}),
    ("none", 0, {}, "dnc", {"num_malicious": 3}),
    ("backdoor", 1, {"model_replacement": True}, "mean", {}),
    ("backdoor", 1, {"model_replacement": True}, "norm-clipping", {"max_norm": 0.5}),
    ("backdoor", 1, {"model_replacement": True}, "freqfed", {}),
]


def time_scenario(attack, malicious, attack_options, rule, rule_options, model, device, rounds,
                  max_per_class=None):
    """Median seconds of a round and of its aggregation, after one warm-up round."""
    sizes = {} if max_per_class is None else {"max_per_class": max_per_class}
    config = ByzantineConfig.from_profile(
        "quick", attack=attack, malicious=malicious, attack_options=attack_options,
        aggregator=rule, aggregator_options=rule_options, model=model, device=device,
        num_rounds=rounds + 1, **sizes)
    data = synthetic_mnist(config.max_per_class, config.max_test)
    federation = Federation.build(config, data)
    aggregation = []
    timed_aggregation(federation, aggregation)
    federation.run_round()  # warm-up
    round_seconds = []
    for _ in range(rounds):
        start = time.perf_counter()
        federation.run_round()
        round_seconds.append(time.perf_counter() - start)
    return median(round_seconds), median(aggregation[1:])


def main() -> None:
    parser = benchmark_parser(__doc__.split("\n\n")[0], {"quick": None})
    parser.add_argument("--model", default="lenet5-wide", help="a model name (default lenet5-wide)")
    parser.add_argument("--max-per-class", type=positive_int,
                        help="training images per class (default: the quick profile's 100)")
    args, _, devices = parse_benchmark_args(parser, {"quick": None})
    print_machine(args.markdown)
    rows = []
    for device in devices:
        rounds = timed_rounds(args.rounds, "quick", device)
        for attack, malicious, attack_options, rule, rule_options in SCENARIOS:
            round_s, rule_s = time_scenario(attack, malicious, attack_options, rule,
                                            rule_options, args.model, device, rounds,
                                            args.max_per_class)
            rows.append([device, f"{malicious} x {attack}", rule, f"{round_s:.3f}",
                         f"{rule_s:.3g}", f"{100 * rule_s / round_s:.1f}"])
            print(f"  {malicious} x {attack} against {rule} on {device}: done", flush=True)
    print(f"\nSeconds per round at quick scale ({args.model}; median of {rounds} rounds after a "
          f"warm-up).\n")
    print(table(["device", "attack", "rule", "s/round", "aggregation s", "aggregation %"], rows,
                args.markdown, text_columns=3))


if __name__ == "__main__":
    main()
