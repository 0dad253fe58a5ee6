"""The fltutor command: environment info, dataset download, and experiments to disk.

Bad input stops the command before any work, with exit code 2 and one line that names the value
and what is allowed (no traceback).
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import Callable, Iterable

from . import __version__
from .config import MODES, FedConfig, default_profile
from .data import DATASETS, DataUnavailableError
from .partition import PARTITIONS
from .sweep import FIGURES, MAX_SWEEP_SEEDS


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit code 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


class RegistryNames:
    """A registry's names for argparse's ``choices``, read only when argparse needs them.

    argparse reads choices to check a value and to print help; the registries of attacks and
    aggregators fill as their modules are imported, which takes seconds (the GAN's imports), and
    ``fltutor info`` should not wait for that. Give the option a ``metavar``, or argparse reads
    the choices as the option is added.
    """

    def __init__(self, names: Callable[[], Iterable[str]]):
        self.names = names

    def __iter__(self):
        return iter(self.names())

    def __contains__(self, name: object) -> bool:
        return name in self.names()


def crpa_attacks() -> tuple[str, ...]:
    from .recipes.crpa import CRPA_ATTACKS

    return CRPA_ATTACKS


def parse_exclude(text: str) -> dict[int, tuple[int, ...]]:
    """``"0:4,9;3:1"`` -> ``{0: (4, 9), 3: (1,)}`` (client: classes it must not hold).

    A client named twice keeps all the classes it was given: ``"0:4;0:9"`` is ``{0: (4, 9)}``.
    Anything but digits, colons, commas and semicolons is refused (no signs, no spaces).

    >>> parse_exclude("0:4;0:9,4")
    {0: (4, 9)}
    """
    items = [item for item in text.split(";") if item]
    if not all(re.fullmatch(r"[0-9]+:[0-9]+(,[0-9]+)*", item) for item in items):
        raise argparse.ArgumentTypeError(
            f"exclude={text!r} is not allowed: use CLIENT:CLASS,CLASS;CLIENT:CLASS, e.g. 0:4,9")
    exclude: dict[int, tuple[int, ...]] = {}
    for item in items:
        client, classes = item.split(":")
        kept_away = [*exclude.get(int(client), ()), *map(int, classes.split(","))]
        exclude[int(client)] = tuple(dict.fromkeys(kept_away))
    return exclude


def folder(text: str) -> str:
    """A folder option's value, never empty (an unset shell variable, not the current folder)."""
    if not text:
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed: it must be a folder path")
    return text


def add_federation_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by every command that runs a federation."""
    parser.add_argument("--dataset", default="mnist", help=", ".join(DATASETS.names()))
    parser.add_argument("--profile", help="quick or paper (default: paper on a GPU, else quick)")
    parser.add_argument("--rounds", type=int, help="number of rounds (default: the profile's)")
    parser.add_argument("--max-per-class", type=int,
                        help="training images kept per class (default: the profile's)")
    parser.add_argument("--max-test", type=int, help="test images kept (default: the profile's)")
    parser.add_argument("--seed", type=int, default=0,
                        help="random seed: the same seed repeats a CPU run exactly (default: 0)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument("--data-root", help="dataset folder (default: $FLTUTOR_DATA or a cache)")
    parser.add_argument("--fallback", action="store_true",
                        help="offline without data: use the small embedded digits dataset")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--force", action="store_true",
                        help="run again even if --out holds this run finished (kept otherwise)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def federation_settings(args: argparse.Namespace) -> dict:
    """The FedConfig fields that the shared options set (unset ones keep the profile's value)."""
    settings = dict(dataset=args.dataset, seed=args.seed, device=args.device,
                    data_root=args.data_root, allow_fallback=args.fallback)
    for option, name in (("rounds", "num_rounds"), ("max_per_class", "max_per_class"),
                         ("max_test", "max_test")):
        if getattr(args, option) is not None:
            settings[name] = getattr(args, option)
    return settings


def given(args: argparse.Namespace, *names: str) -> dict:
    """The options among ``names`` that the user set (the others keep the profile's values)."""
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def make_config(config_class, args: argparse.Namespace, **fields):
    """A validated config from the shared options plus ``fields``; says which profile it used."""
    profile = args.profile if args.profile is not None else default_profile(args.device)
    config = config_class.from_profile(profile, **federation_settings(args), **fields)
    if args.profile is None:
        print(f"profile: {profile} (the default on this device; choose with --profile)")
    return config


def command_info(args: argparse.Namespace) -> None:
    from .environment import format_report, report

    print(format_report(report(args.root)))


def command_data_fetch(args: argparse.Namespace) -> None:
    from .data import fetch

    names = DATASETS.names() if args.dataset == "all" else [DATASETS.check(args.dataset)]
    for name in names:
        print(f"{name}: ready in {fetch(name, args.root)}")


def command_fedavg(args: argparse.Namespace) -> None:
    from .experiments import run_fedavg

    config = make_config(FedConfig, args, num_clients=args.clients, partition=args.partition,
                         alpha=args.alpha, exclude=args.exclude, mode=args.mode)
    summary = run_fedavg(config, args.out, progress=not args.no_progress,
                         force=args.force)["summary"]
    print(f"final test accuracy {summary['final_test_accuracy']:.4f} after {summary['rounds']} "
          f"rounds ({summary['total_seconds']:.1f} s); results in {args.out}")


def parse_pairs(text: str) -> list[tuple[int, int]]:
    """``"4:9,7:5"`` -> ``[(4, 9), (7, 5)]`` (generate_class: target_class).

    A pair named twice is refused (it would run once: a typo for another pair, most likely), and
    so is anything but digits, colons and commas (no signs, no spaces).

    >>> parse_pairs("4:9,7:5")
    [(4, 9), (7, 5)]
    """
    items = text.split(",")
    pairs = [tuple(map(int, item.split(":"))) for item in items
             if re.fullmatch(r"[0-9]+:[0-9]+", item)]
    if len(pairs) != len(items) or len(set(pairs)) != len(pairs):
        raise argparse.ArgumentTypeError(f"pairs={text!r} is not allowed: use G:T,G:T with "
                                         f"each pair once, e.g. 4:9,7:5")
    return pairs


def add_start_round_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--start-round", type=int, dest="attack_start_round", metavar="ROUND",
                        help="first round of the attack (default: the profile's, scaled to "
                             "--rounds: round 10 of 40 in quick, round 1 in paper)")


def add_dp_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dp", action="store_true", help="DP-SGD on every client (Opacus)")
    parser.add_argument("--noise-multiplier", type=float,
                        help="DP-SGD noise multiplier (default: the study's 0.3)")
    parser.add_argument("--max-grad-norm", type=float,
                        help="DP-SGD per-sample clipping norm (default: the study's 1.5)")


def dp_defenses(args: argparse.Namespace) -> tuple:
    """``(DPConfig(...),)`` from ``--dp`` and its parameters, else ``()``; they need ``--dp``."""
    given = {name: getattr(args, name) for name in ("noise_multiplier", "max_grad_norm")
             if getattr(args, name) is not None}
    if not args.dp:
        if given:
            option = "--" + next(iter(given)).replace("_", "-")
            raise ValueError(f"{option}={next(iter(given.values()))} is not allowed without "
                             f"--dp: add --dp to train with DP-SGD")
        return ()
    from .defenses.dp import DPConfig

    return (DPConfig(**given),)


def command_crpa(args: argparse.Namespace) -> None:
    from .recipes.crpa import CRPAConfig, run_crpa

    if args.no_poison and args.attack not in (None, "reconstruction"):
        raise ValueError(f"attack={args.attack!r} is not allowed with --no-poison, which means "
                         f"attack='reconstruction'")
    attack = "reconstruction" if args.no_poison else "crpa" if args.attack is None else args.attack
    config = make_config(CRPAConfig, args, generate_class=args.generate, target_class=args.target,
                         attack=attack, alpha=args.alpha, free_rider=args.free_rider,
                         defenses=dp_defenses(args), **given(args, "poison_count", "attack_start_round"))
    summary = run_crpa(config, args.out, progress=not args.no_progress,
                       force=args.force)["summary"]
    print(f"AAA {summary['aaa']:.4f}, final test accuracy {summary['final_test_accuracy']:.4f} "
          f"after {summary['rounds']} rounds ({summary['total_seconds']:.1f} s)"
          + (f", epsilon {summary['epsilon']:.3g}" if summary.get("epsilon") else "")
          + f"; results in {args.out}")


def command_sweep(args: argparse.Namespace) -> None:
    from .recipes.crpa import CRPAConfig
    from .sweep import FIGURE_FILES, run_sweep

    config = make_config(CRPAConfig, args, **given(args, "attack_start_round"))
    results = run_sweep(args.figure, config, args.out, seeds=args.seeds, pairs=args.pairs,
                        progress=not args.no_progress, force=args.force)
    figures = ", ".join(FIGURE_FILES[args.figure])
    print(f"{len(results)} runs in {args.out}/results.jsonl; figures {figures} in {args.out}")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="fltutor", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"fltutor {__version__}")
    commands = parser.add_subparsers(dest="command", required=True,
                                     help="what to do (fltutor COMMAND --help: its options)")

    info = commands.add_parser("info", help="versions, device and where the data comes from")
    info.add_argument("--root", type=folder, help="data folder to inspect")
    info.set_defaults(handler=command_info)

    data = commands.add_parser("data", help="dataset management")
    data_commands = data.add_subparsers(dest="data_command", required=True,
                                        help="what to do with the datasets")
    fetch = data_commands.add_parser("fetch", help="download datasets for offline use")
    fetch.add_argument("--dataset", default="all", help=", ".join([*DATASETS.names(), "all"]))
    fetch.add_argument("--root", type=folder,
                       help="where to put them (default: $FLTUTOR_DATA or a cache)")
    fetch.set_defaults(handler=command_data_fetch)

    fedavg = commands.add_parser("fedavg", help="train a model with federated averaging")
    add_federation_options(fedavg)
    fedavg.add_argument("--clients", type=int, default=10, help="number of clients (default: 10)")
    fedavg.add_argument("--partition", default="iid", help=", ".join(PARTITIONS.names()))
    fedavg.add_argument("--alpha", type=float, default=1.0, help="Dirichlet concentration")
    fedavg.add_argument("--exclude", type=parse_exclude, default={},
                        help="classes a client must not hold, e.g. '0:4,9;3:1'")
    fedavg.add_argument("--mode", default="fedavg", help=" or ".join(MODES))
    fedavg.set_defaults(handler=command_fedavg)

    crpa = commands.add_parser("crpa", help="the combined reconstruction-and-poisoning attack")
    add_federation_options(crpa)
    crpa.add_argument("--generate", type=int, required=True, help="class G to reconstruct")
    crpa.add_argument("--target", type=int, required=True, help="class T to label it as")
    crpa.add_argument("--alpha", type=float, default=0.0,
                      help="Dirichlet concentration (0: one class per client, the default)")
    crpa.add_argument("--attack", choices=RegistryNames(crpa_attacks), metavar="ATTACK",
                      help="%(choices)s (default: crpa; none: the control run)")
    crpa.add_argument("--poison-count", type=int, help="generated images per round")
    add_start_round_option(crpa)
    crpa.add_argument("--no-poison", action="store_true",
                      help="reconstruction only (same as --attack reconstruction)")
    crpa.add_argument("--free-rider", action="store_true", help="the attacker holds no data")
    add_dp_options(crpa)
    crpa.set_defaults(handler=command_crpa)

    sweep = commands.add_parser("sweep", help="the CRPA study's figures, resumable")
    sweep.add_argument("figure", choices=FIGURES,
                       help="figure4 (all pairs), figure6 (alphas) or figure8 (DP)")
    add_federation_options(sweep)
    add_start_round_option(sweep)
    sweep.add_argument("--seeds", type=int, default=1,
                       help=f"seeds per setting, from --seed on (1 to {MAX_SWEEP_SEEDS})")
    sweep.add_argument("--pairs", type=parse_pairs, help="class pairs G:T,... (default: the "
                       "figure's own: all for figure4, else the extremes of a figure4 sweep)")
    sweep.set_defaults(handler=command_sweep)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.handler(args)
    except ValueError as error:
        print(f"fltutor: error: {error}", file=sys.stderr)
        return 2
    except DataUnavailableError as error:  # the way out in this command's terms
        fallback = "--fallback" if hasattr(args, "fallback") else None
        print(f"fltutor: error: {error.explain(fallback)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("fltutor: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
