"""Seconds per CRPA round, part by part, with and without DP-SGD, and DP-SGD's cost as a ratio.

What it measures: rounds of the CRPA study's federation (``Federation.build``: 10 clients with one
class each, client 0 the CRPA attacker), at the ``quick`` and ``paper`` profiles of
``CRPAConfig``, once as configured and once with every client on Opacus's DP-SGD (``DPConfig()``:
the study's sigma 0.3, C 1.5, lr 0.25). A round splits into

* ``honest``: the nine honest clients' local updates (load the weights, train, send the change);
* ``GAN``: the attacker's GAN round against the global weights (``train_round``), its preview
  and the generation of the poison set (``poison_count`` images);
* ``poisoned``: the attacker's own training on its data plus the poison set, and its update;
* ``aggregation``: the server's FedAvg mean; ``evaluation``: the global model on the test set;
* ``other``: what is left (stacking updates, observers such as attack accuracy and epsilon).

The parts are timed by wrapping methods of the federation's objects (and ``evaluate`` in
``fltutor.federation``) with timers, so fltutor runs unchanged; on a GPU every timer waits for
the queued work. The two federations (no DP, DP) run in alternation, round by round, after one
warm-up round each, so background load hits both alike; ``DP / no DP`` divides their seconds per
round, and ``training DP / no DP`` their honest clients' training time: the cost of Opacus's
per-sample gradients, clipping and noise. Images are synthetic random images of MNIST's shape.

    python benchmarks/bench_crpa.py                             # quick and paper, CPU (+ GPU)
    python benchmarks/bench_crpa.py --scales quick --rounds 3 --markdown
    python benchmarks/bench_crpa.py --scales paper --max-per-class 500   # a short smoke test

At the paper scale (without ``--max-per-class``) it also projects the wall time of the study's
Figure 4 (``FIGURE_4_ROUNDS`` rounds, one after another) from the seconds per round.
"""

from __future__ import annotations

from collections import defaultdict
from statistics import mean
from time import perf_counter
from unittest import mock

import torch

import fltutor.federation
from common import (benchmark_parser, parse_benchmark_args, positive_int, print_machine,
                    synchronize, synthetic_mnist, table, timed, timed_rounds)
from fltutor.defenses.dp import DPConfig
from fltutor.federation import Federation
from fltutor.recipes.crpa import CRPA_PROFILES, CRPAConfig

SCALES = tuple(CRPA_PROFILES)
MNIST_TEST_IMAGES = 10_000  # the paper profile's max_test=None: the whole MNIST test set
PARTS = ["honest", "GAN", "poisoned", "aggregation", "evaluation", "other"]
#: The rounds of the study's Figure 4: 2 datasets x 90 class pairs x 3 seeds x 300 rounds.
FIGURE_4_ROUNDS = 2 * 90 * 3 * 300
HEADER = ["scale", "device", "DP", "images/client", *PARTS, "s/round", "DP / no DP",
          "training DP / no DP"]


class Stopwatch:
    """Seconds spent inside chosen methods of chosen objects, summed per part of a round."""

    def __init__(self, device: torch.device):
        self.device = device
        self.seconds: defaultdict[str, float] = defaultdict(float)

    def timer(self, function, part: str):
        """``function``, adding the seconds of every call to ``part``."""
        def timed_call(*args, **kwargs):
            synchronize(self.device)
            start = perf_counter()
            result = function(*args, **kwargs)
            synchronize(self.device)
            self.seconds[part] += perf_counter() - start
            return result

        return timed_call

    def wrap(self, owner, method: str, part: str) -> None:
        """Time ``owner.method`` from now on (an instance attribute hides the class's method)."""
        setattr(owner, method, self.timer(getattr(owner, method), part))


def timed_federation(config: CRPAConfig, data, device: torch.device):
    """A CRPA federation whose clients, attacker and server report to a ``Stopwatch``."""
    federation = Federation.build(config, data=data)
    watch = Stopwatch(device)
    attacker = federation.clients[config.attacker]
    for client in federation.clients:
        if client is not attacker:
            watch.wrap(client, "local_update", "honest")
    watch.wrap(attacker, "local_update", "attacker")  # GAN and poisoned training together
    for method in ("train_round", "keep_preview", "generate"):
        watch.wrap(attacker.reconstruction, method, "GAN")
    watch.wrap(federation, "aggregate", "aggregation")
    return federation, watch


def round_parts(federation, watch: Stopwatch) -> dict[str, float]:
    """Run one round; its seconds in all (``round``) and in each of ``PARTS``."""
    watch.seconds.clear()
    evaluate = watch.timer(fltutor.federation.evaluate, "evaluation")
    with mock.patch.object(fltutor.federation, "evaluate", evaluate):
        total = timed(federation.run_round, watch.device)
    parts = dict(watch.seconds)
    parts["poisoned"] = parts.pop("attacker") - parts["GAN"]
    parts["other"] = total - sum(parts.values())
    return {**parts, "round": total}


def benchmark(scale: str, device: torch.device, rounds: int, max_per_class: int | None):
    """Mean seconds per round and per part, without and with DP, after one warm-up round each.

    The attacker attacks from the first round (``attack_start_round=1``): every timed round is a
    round of the attack, whichever round the profile starts it at.
    """
    config = CRPAConfig.from_profile(scale, device=str(device), attack_start_round=1)
    if max_per_class:
        config = config.replace(max_per_class=min(max_per_class, config.max_per_class))
    data = synthetic_mnist(config.max_per_class, config.max_test or MNIST_TEST_IMAGES)
    variants = {"no": timed_federation(config, data, device),
                "yes": timed_federation(config.replace(defenses=(DPConfig(),)), data, device)}
    seconds = {name: [] for name in variants}
    for _ in range(1 + rounds):  # the first round of each is a warm-up, not counted
        for name, (federation, watch) in variants.items():
            seconds[name].append(round_parts(federation, watch))
    return config, {name: {part: mean(r[part] for r in runs[1:]) for part in [*PARTS, "round"]}
                    for name, runs in seconds.items()}


def profile_settings(scale: str) -> str:
    """The settings of profile ``scale`` that set the cost of a round, in words."""
    config = CRPAConfig.from_profile(scale)
    gan_steps = f"{config.gan.steps} steps" if config.gan.steps else "one epoch in batches"
    return (f"{scale}: batch {config.batch_size}, {config.poison_count} poisoned images, "
            f"GAN {gan_steps} of {config.gan.batch_size}")


def main() -> None:
    parser = benchmark_parser(__doc__.split("\n\n")[0], SCALES)
    parser.add_argument("--max-per-class", type=positive_int,
                        help="at most this many training images per class (a short smoke test; "
                             "the table shows the images per client)")
    args, scales, devices = parse_benchmark_args(parser, SCALES)
    print_machine(args.markdown)
    print(f"Settings: the CRPAConfig profiles ({'; '.join(profile_settings(s) for s in scales)}); "
          "10 clients, one class each, client 0 the CRPA attacker, attacking every timed round; "
          "DP = DPConfig() on every client; synthetic random 1x28x28 images.\n")
    rows, projections = [], []
    for scale in scales:
        for name in devices:
            rounds = timed_rounds(args.rounds, scale, name)
            config, seconds = benchmark(scale, torch.device(name), rounds, args.max_per_class)
            ratio = seconds["yes"]["round"] / seconds["no"]["round"]
            training_ratio = seconds["yes"]["honest"] / seconds["no"]["honest"]
            for dp, s in seconds.items():
                ratios = [f"{ratio:.2f}", f"{training_ratio:.2f}"] if dp == "yes" else ["", ""]
                rows.append([scale, name, dp, str(config.max_per_class),
                             *(f"{s[part]:.3f}" for part in PARTS), f"{s['round']:.3f}", *ratios])
            print(f"  {scale} on {name}: {rounds} timed round(s) done", flush=True)
            if scale == "paper" and not args.max_per_class:
                hours = {dp: FIGURE_4_ROUNDS * s["round"] / 3600 for dp, s in seconds.items()}
                projections.append(f"Figure 4 of the study ({FIGURE_4_ROUNDS:,} paper-scale rounds) "
                                   f"on {name}: {hours['no']:,.1f} h without DP, "
                                   f"{hours['yes']:,.1f} h with DP-SGD, one run after another")
    print()
    print(table(HEADER, rows, args.markdown, text_columns=3))
    for line in projections:
        print(f"\n{line}")


if __name__ == "__main__":
    main()
