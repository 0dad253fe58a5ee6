"""The fltutor command: environment info, dataset download, and experiments to disk.

Bad input stops the command before any work, with exit code 2 and one line that names the value
and what is allowed (no traceback).

The help and those refusals come at once: this module imports torch, Opacus and matplotlib only
inside the command that runs (``command_*``), and takes the names a command accepts from
``fltutor.names``, which lists every registry's names without importing torch.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from . import __version__, names
from .checks import OutputError

#: What each CRPA figure's sweep runs (``fltutor sweep FIGURE``).
FIGURE_HELP = {"figure4": "the AAA of every class pair at alpha 0 (the study's Figure 4)",
               "figure6": "AAA against the Dirichlet alpha (Figures 6 and 7)",
               "figure8": "DP-SGD on and off (Figure 8)"}


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit code 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


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
    parser.add_argument("--dataset", help=", ".join(names.DATASETS) + " (default: the "
                        "profile's, else mnist)")
    parser.add_argument("--profile", help="quick or paper (default: paper on a GPU, else quick); "
                        "fltutor curious and sweep backfire also have quick-fedsgd and "
                        "paper-fedsgd, their defaults")
    parser.add_argument("--rounds", type=int, help="number of rounds (default: the profile's)")
    parser.add_argument("--max-per-class", type=int,
                        help="training images kept per class (default: the profile's)")
    parser.add_argument("--max-test", type=int, help="test images kept (default: the profile's)")
    parser.add_argument("--seed", type=int, default=0,
                        help="random seed: the same seed repeats a CPU run exactly (default: 0)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument("--engine", default="auto",
                        help="how honest clients train: sequential, batched (all in one vmap "
                             "step) or auto (batched on CUDA, where it is faster; default)")
    parser.add_argument("--data-root", help="dataset folder (default: $FLTUTOR_DATA or a cache)")
    parser.add_argument("--fallback", action="store_true",
                        help="offline without data: use the small embedded digits dataset")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--force", action="store_true",
                        help="run again even if --out holds this run finished (kept otherwise)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def federation_settings(args: argparse.Namespace) -> dict:
    """The FedConfig fields that the shared options set (unset ones keep the profile's value)."""
    settings = dict(seed=args.seed, device=args.device, engine=args.engine,
                    data_root=args.data_root, allow_fallback=args.fallback)
    for option, name in (("dataset", "dataset"), ("rounds", "num_rounds"),
                         ("max_per_class", "max_per_class"), ("max_test", "max_test")):
        if getattr(args, option) is not None:
            settings[name] = getattr(args, option)
    return settings


def given(args: argparse.Namespace, *options: str) -> dict:
    """The options among ``options`` that the user set (the others keep the profile's values)."""
    return {name: getattr(args, name) for name in options if getattr(args, name) is not None}


def make_config(config_class, args: argparse.Namespace, default: str | None = None, **fields):
    """A validated config from the shared options plus ``fields``; says which profile it used
    (``default``, else ``default_profile``, when none was asked for)."""
    from .config import default_profile

    profile = args.profile if args.profile is not None else (default or
                                                             default_profile(args.device))
    config = config_class.from_profile(profile, **federation_settings(args), **fields)
    if args.profile is None:
        print(f"profile: {profile} (the default on this device; choose with --profile)")
    return config


def command_info(args: argparse.Namespace) -> None:
    from .environment import format_report, report

    print(format_report(report(args.root)))


def command_data_fetch(args: argparse.Namespace) -> None:
    from .data import DATASETS, fetch

    datasets = DATASETS.names() if args.dataset == "all" else [DATASETS.check(args.dataset)]
    for name in datasets:
        print(f"{name}: ready in {fetch(name, args.root)}")


def command_fedavg(args: argparse.Namespace) -> None:
    from .config import FedConfig
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


def add_seeds_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seeds", type=int, default=1,
                        help=f"seeds per setting, from --seed on (1 to {names.MAX_SWEEP_SEEDS})")


def add_clients_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clients", type=int, dest="num_clients", metavar="N",
                        help="number of clients (default: the profile's)")


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


def add_defense_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dp", choices=names.DEFENSES, metavar="DEFENSE",
                        help="%(choices)s: a defense on every client (default: none)")
    parser.add_argument("--dp-option", type=parse_option, action="append", default=[],
                        metavar="NAME=VALUE", help="a setting of the --dp defense, e.g. "
                        "noise_multiplier=0.5 or max_grad_norm=1.0")


def defense_parts(args: argparse.Namespace) -> tuple:
    """``(DEFENSES[--dp](**--dp-option),)``, else ``()``; ``--dp-option`` needs ``--dp``."""
    from .defenses import registered_defenses
    from .parts import DEFENSES, known_options

    options = option_dict(args.dp_option, "--dp-option")
    if args.dp is None:
        if options:
            name, value = next(iter(options.items()))
            raise ValueError(f"--dp-option {name}={value} is not allowed without --dp: choose "
                             f"the defense with --dp ({', '.join(registered_defenses())})")
        return ()
    registered_defenses()  # the defenses' modules file them in DEFENSES as they are imported
    spec = DEFENSES[args.dp]
    return (spec(**known_options(spec, options, "--dp-option")),)


def command_crpa(args: argparse.Namespace) -> None:
    from .recipes.crpa import CRPAConfig, run_crpa

    if args.no_poison and args.attack not in (None, "reconstruction"):
        raise ValueError(f"attack={args.attack!r} is not allowed with --no-poison, which means "
                         f"attack='reconstruction'")
    attack = "reconstruction" if args.no_poison else "crpa" if args.attack is None else args.attack
    config = make_config(CRPAConfig, args, generate_class=args.generate, target_class=args.target,
                         attack=attack, alpha=args.alpha, free_rider=args.free_rider,
                         defenses=dp_defenses(args),
                         **given(args, "poison_count", "attack_start_round"))
    summary = run_crpa(config, args.out, progress=not args.no_progress,
                       force=args.force)["summary"]
    print(f"AAA {summary['aaa']:.4f}, final test accuracy {summary['final_test_accuracy']:.4f} "
          f"after {summary['rounds']} rounds ({summary['total_seconds']:.1f} s)"
          + (f", epsilon {summary['epsilon']:.3g}" if summary.get("epsilon") else "")
          + f"; results in {args.out}")


def parse_option(text: str) -> tuple[str, Any]:
    """``"z=1.5"`` -> ``("z", 1.5)``: one option of an attack or an aggregation rule.

    The value is read as JSON when it is a number, ``true``, ``false`` or ``null``; any other
    value is a text (``perturbation=std``).

    >>> [parse_option(text) for text in ("z=1.5", "omniscient=false", "perturbation=std")]
    [('z', 1.5), ('omniscient', False), ('perturbation', 'std')]
    """
    match = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)=(.*)", text)
    if match is None:
        raise argparse.ArgumentTypeError(f"option={text!r} is not allowed: use NAME=VALUE, "
                                         f"e.g. num_malicious=2")
    name, value = match.groups()
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        return name, value
    return name, parsed if parsed is None or isinstance(parsed, (bool, int, float)) else value


def option_dict(options: list[tuple[str, Any]], flag: str) -> dict[str, Any]:
    """The options given with ``flag``, each name once."""
    named = [name for name, _ in options]
    twice = sorted({name for name in named if named.count(name) > 1})
    if twice:
        raise ValueError(f"{flag} {twice[0]}=... is not allowed twice: give each option once")
    return dict(options)


def data_split(args: argparse.Namespace) -> dict:
    """``--alpha`` given: a Dirichlet split with that alpha; else the profile's split."""
    return {} if args.alpha is None else dict(partition="dirichlet", alpha=args.alpha)


def rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def command_byzantine(args: argparse.Namespace) -> None:
    from .recipes.byzantine import ByzantineConfig, run_byzantine

    attack_options = option_dict(args.attack_option, "--attack-option")
    config = make_config(ByzantineConfig, args, attack=args.attack, malicious=args.malicious,
                         attack_options=attack_options, collude=not args.no_collude,
                         aggregator=args.aggregator,
                         aggregator_options=option_dict(args.aggregator_option,
                                                        "--aggregator-option"),
                         **given(args, "num_clients"), **data_split(args))
    summary = run_byzantine(config, args.out, progress=not args.no_progress,
                            force=args.force)["summary"]
    backdoor = summary.get("final_backdoor_success")
    print(f"final test accuracy {summary['final_test_accuracy']:.4f} after {summary['rounds']} "
          f"rounds ({summary['total_seconds']:.1f} s); {config.aggregator.name} left out "
          f"{rate(summary['mean_detection_tpr'])} of the malicious updates and "
          f"{rate(summary['mean_detection_fpr'])} of the honest ones (mean over rounds)"
          + (f"; backdoor success {backdoor:.4f}" if backdoor is not None else "")
          + f"; results in {args.out}")


def curious_profile(args: argparse.Namespace) -> str:
    """The curious client's default profile: the FedSGD one of the device's scale, where the
    study's theory holds (``quick-fedsgd`` on a CPU, ``paper-fedsgd`` on a GPU)."""
    from .config import default_profile

    return default_profile(args.device) + "-fedsgd"


def parse_rounds(options: dict) -> dict:
    """``rounds=1,10,50`` on the command line is a text: the list of round numbers it names."""
    text = options.get("rounds")
    if isinstance(text, (int, str)):
        parts = str(text).split(",")
        if not all(part.strip().isdigit() for part in parts):
            raise ValueError(f"rounds={text!r} is not allowed: it must be round numbers "
                             f"separated by commas, e.g. rounds=1,10,50")
        options = {**options, "rounds": tuple(int(part) for part in parts)}
    return options


def curious_settings(args: argparse.Namespace) -> dict:
    """The curious command's own options, as ``CuriousConfig`` fields (unset: the profile's)."""
    return {**given(args, "num_clients", "aggregator", "mode", "batch_size", "model", "lr",
                    "colluders"),
            "curious_options": parse_rounds(option_dict(args.curious_option,
                                                        "--curious-option"))}


def command_curious(args: argparse.Namespace) -> None:
    from .recipes.curious import CuriousConfig, run_curious

    config = make_config(CuriousConfig, args, curious_profile(args), poison=args.poison,
                         poison_options=option_dict(args.poison_option, "--poison-option"),
                         aggregator_options=option_dict(args.aggregator_option,
                                                        "--aggregator-option"),
                         defenses=defense_parts(args), **curious_settings(args),
                         **data_split(args))
    summary = run_curious(config, args.out, progress=not args.no_progress,
                          force=args.force)["summary"]
    if "first_curious_rmse" not in summary:
        print(f"the curious client reconstructed nothing a peer sent (its own update was all the "
              f"server kept, or the model diverged); results in {args.out}")
        return
    print(f"curious client's RMSE to the images of the round's gradient (pixels in [-1, 1]; "
          f"lower: more leaked): {summary['first_curious_rmse']:.4f} in its first round against "
          f"{summary['first_control_rmse']:.4f} for the best guess without the gradient (gain "
          f"{summary['first_gain']:+.4f}), last {summary['final_curious_rmse']:.4f} against "
          f"{summary['final_control_rmse']:.4f} (gain {summary['final_gain']:+.4f}); final test "
          f"accuracy {summary['final_test_accuracy']:.4f} after {summary['rounds']} rounds "
          f"({summary['total_seconds']:.1f} s); results in {args.out}")


def parse_alpha(text: str) -> float | None:
    """A data split of a robustness sweep: ``iid`` (None), or a Dirichlet alpha."""
    if text == "iid":
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"alpha={text!r} is not allowed: use iid or a number "
                                         f"(a Dirichlet alpha), e.g. iid 0.1") from None


def command_sweep_robustness(args: argparse.Namespace) -> None:
    from .recipes.byzantine import ByzantineConfig
    from .sweep import ROBUSTNESS_FILES, run_robustness

    # the sweep's shared settings; every run sets its own attack, rule, attackers and split
    base = make_config(ByzantineConfig, args, attack="none", malicious=0,
                       **given(args, "num_clients"))
    results = run_robustness(base, args.out, attacks=args.attacks, aggregators=args.aggregators,
                             malicious=args.malicious, alphas=args.alphas, seeds=args.seeds,
                             progress=not args.no_progress, force=args.force)
    figures = ", ".join(file for file in ROBUSTNESS_FILES.values()
                        if (Path(args.out) / file).exists())
    print(f"{len(results)} runs in {args.out}/results.jsonl; figures {figures} in {args.out}")


def command_sweep(args: argparse.Namespace) -> None:
    from .recipes.crpa import CRPAConfig
    from .sweep import FIGURE_FILES, run_sweep

    config = make_config(CRPAConfig, args, **given(args, "attack_start_round"))
    results = run_sweep(args.figure, config, args.out, seeds=args.seeds, pairs=args.pairs,
                        progress=not args.no_progress, force=args.force)
    figures = ", ".join(FIGURE_FILES[args.figure])
    print(f"{len(results)} runs in {args.out}/results.jsonl; figures {figures} in {args.out}")


def command_sweep_backfire(args: argparse.Namespace) -> None:
    from .backfire import BACKFIRE_FILES, backfire_table, format_table, run_backfire
    from .recipes.curious import CuriousConfig

    # the sweep's shared settings; every run sets its own defenses, rule, poisoning and seed
    base = make_config(CuriousConfig, args, curious_profile(args), **given(args, "num_clients"))
    results = run_backfire(base, args.out, defenses=args.defenses, poison=args.poison,
                           seeds=args.seeds, progress=not args.no_progress, force=args.force)
    print(format_table(backfire_table(results)))
    print(f"{len(results)} runs in {args.out}/results.jsonl; {', '.join(BACKFIRE_FILES)} in "
          f"{args.out} (diff < 0: the defense helped the curious client)")


def command_sweep_privacy(args: argparse.Namespace) -> None:
    from .config import default_profile
    from .privacy import (PRIVACY_FILES, attack_stops, format_privacy_table, privacy_table,
                          run_privacy)

    profile = args.profile if args.profile is not None else default_profile(args.device)
    shared = dict(device=args.device, data_root=args.data_root, allow_fallback=args.fallback,
                  **given(args, "dataset"))
    results = run_privacy(args.out, kinds=args.kinds, noises=args.noises, clips=args.clips,
                          scenarios=args.scenarios, seeds=args.seeds, seed=args.seed,
                          profile=profile, shared=shared, progress=not args.no_progress,
                          force=args.force)
    print(format_privacy_table(privacy_table(results)))
    for stop in attack_stops(results):
        where = ("never stopped" if stop["stops_at_epsilon"] is None else
                 f"stopped at epsilon {stop['stops_at_epsilon']:.3g} (sigma {stop['noise']:g}, "
                 f"clean accuracy {stop['clean_accuracy']:.3f})")
        print(f"{stop['scenario']} under {stop['kind']}: {where}")
    print(f"{len(results)} runs in {args.out}/results.jsonl; {', '.join(PRIVACY_FILES)} in "
          f"{args.out}")


def command_invert(args: argparse.Namespace) -> None:
    from .recipes.inversion import InversionConfig, run_inversion

    if args.local_lr is not None and not args.local_steps:  # a gradient takes no local step
        raise ValueError(f"--local-lr={args.local_lr} is not allowed without --local-steps S "
                         f"(S > 0): the client sends a gradient, with no learning rate")
    config = InversionConfig(method=args.method, model=args.model, dataset=args.dataset,
                             batch_size=args.batch_size, seed=args.seed, device=args.device,
                             data_root=args.data_root, allow_fallback=args.fallback,
                             **given(args, "iterations", "local_steps", "local_lr",
                                     "trained_rounds", "first_image"))
    summary = run_inversion(config, args.out, progress=False, force=args.force)["summary"]
    print(f"{config.method} on {config.model}, batch {config.batch_size}: PSNR "
          f"{summary['psnr']:.1f} dB, SSIM {summary['ssim']:.3f}, labels "
          f"{summary['label_accuracy']:.0%} right after {summary['iterations_run']} iterations "
          f"({summary['total_seconds']:.1f} s); results in {args.out}")


def add_invert_command(commands) -> None:
    invert = commands.add_parser("invert", help="gradient inversion: DLG, iDLG or Inverting "
                                 "Gradients on one batch of test images")
    invert.add_argument("--method", required=True, choices=names.INVERSION_METHODS,
                        metavar="METHOD", help="%(choices)s")
    invert.add_argument("--model", required=True, choices=names.MODELS,
                        metavar="MODEL", help="%(choices)s")
    invert.add_argument("--dataset", default="mnist", help=", ".join(names.DATASETS))
    invert.add_argument("--batch-size", type=int, required=True, help="images in the batch")
    invert.add_argument("--iterations", type=int, help="optimiser steps (default: the "
                        "method's: 300 for DLG and iDLG, 1000 for IG)")
    invert.add_argument("--local-steps", type=int, help="0: the client sends a gradient "
                        "(FedSGD, the default); S: its update after S local steps (FedAvg)")
    invert.add_argument("--local-lr", type=float, help="the client's local learning rate "
                        "(with --local-steps; default 0.1)")
    invert.add_argument("--trained-rounds", type=int, help="train the model R FedAvg rounds "
                        "before the attack (default: 0, untrained)")
    invert.add_argument("--first-image", type=int, help="the batch starts at this test image "
                        "(default: 0)")
    invert.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    invert.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    invert.add_argument("--data-root", help="dataset folder (default: $FLTUTOR_DATA or a cache)")
    invert.add_argument("--fallback", action="store_true",
                        help="offline without data: use the small embedded digits dataset")
    invert.add_argument("--out", required=True, type=folder, help="output directory")
    invert.add_argument("--force", action="store_true",
                        help="run again even if --out holds this run finished")
    invert.set_defaults(handler=command_invert)


def command_gallery(args: argparse.Namespace) -> None:
    from .gallery import RECORD, make_gallery

    settings = {"privacy_frontier": {"sweep": Path(args.privacy_sweep)}} if args.privacy_sweep \
        else {}
    record = make_gallery(args.out, seed=args.seed, device=args.device, data_root=args.data_root,
                          settings=settings)
    files = ", ".join(figure["file"] for figure in record["figures"].values())
    print(f"{files} and {RECORD} in {args.out} ({record['total_seconds']:.0f} s)")


def add_gallery_command(commands) -> None:
    gallery = commands.add_parser("gallery", help="the README's gallery: five figures from "
                                  "small, seeded quick-profile runs, and gallery.json")
    gallery.add_argument("--out", required=True, type=folder, help="output directory")
    gallery.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    gallery.add_argument("--seed", type=int, default=0,
                         help="random seed: the same seed repeats the figures on a CPU "
                              "(default: 0)")
    gallery.add_argument("--data-root", type=folder,
                         help="dataset folder (default: $FLTUTOR_DATA or a cache)")
    gallery.add_argument("--privacy-sweep", type=folder, metavar="FOLDER",
                         help="the privacy sweep whose frontier is drawn (default: the one "
                              "shipped in notebooks/results/privacy_quick)")
    gallery.set_defaults(handler=command_gallery)


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
    fetch.add_argument("--dataset", default="all", help=", ".join([*names.DATASETS, "all"]))
    fetch.add_argument("--root", type=folder,
                       help="where to put them (default: $FLTUTOR_DATA or a cache)")
    fetch.set_defaults(handler=command_data_fetch)

    fedavg = commands.add_parser("fedavg", help="train a model with federated averaging")
    add_federation_options(fedavg)
    fedavg.add_argument("--clients", type=int, default=10, help="number of clients (default: 10)")
    fedavg.add_argument("--partition", default="iid", help=", ".join(names.PARTITIONS))
    fedavg.add_argument("--alpha", type=float, default=1.0, help="Dirichlet concentration")
    fedavg.add_argument("--exclude", type=parse_exclude, default={},
                        help="classes a client must not hold, e.g. '0:4,9;3:1'")
    fedavg.add_argument("--mode", default="fedavg", help=" or ".join(names.MODES))
    fedavg.set_defaults(handler=command_fedavg)

    crpa = commands.add_parser("crpa", help="the combined reconstruction-and-poisoning attack")
    add_federation_options(crpa)
    crpa.add_argument("--generate", type=int, required=True, help="class G to reconstruct")
    crpa.add_argument("--target", type=int, required=True, help="class T to label it as")
    crpa.add_argument("--alpha", type=float, default=0.0,
                      help="Dirichlet concentration (0: one class per client, the default)")
    crpa.add_argument("--attack", choices=names.CRPA_ATTACKS, metavar="ATTACK",
                      help="%(choices)s (default: crpa; none: the control run)")
    crpa.add_argument("--poison-count", type=int, help="generated images per round")
    add_start_round_option(crpa)
    crpa.add_argument("--no-poison", action="store_true",
                      help="reconstruction only (same as --attack reconstruction)")
    crpa.add_argument("--free-rider", action="store_true", help="the attacker holds no data")
    add_dp_options(crpa)
    crpa.set_defaults(handler=command_crpa)

    byzantine = commands.add_parser("byzantine",
                                    help="malicious clients against an aggregation rule")
    add_federation_options(byzantine)
    add_clients_option(byzantine)
    byzantine.add_argument("--attack", required=True, choices=names.BYZANTINE_ATTACKS,
                           metavar="ATTACK", help="%(choices)s")
    byzantine.add_argument("--malicious", type=int, required=True,
                           help="number of malicious clients (clients 0 to K - 1)")
    byzantine.add_argument("--aggregator", required=True, choices=names.AGGREGATORS,
                           metavar="RULE", help="%(choices)s")
    byzantine.add_argument("--alpha", type=float,
                           help="Dirichlet concentration (default: the profile's split, IID)")
    byzantine.add_argument("--attack-option", type=parse_option, action="append", default=[],
                           metavar="NAME=VALUE", help="an option of the attack, e.g. scale=2")
    byzantine.add_argument("--aggregator-option", type=parse_option, action="append",
                           default=[], metavar="NAME=VALUE",
                           help="an option of the rule, e.g. num_malicious=2 (a rule that has "
                                "num_malicious gets --malicious unless told otherwise)")
    byzantine.add_argument("--no-collude", action="store_true",
                           help="each malicious client attacks on its own (default: together)")
    byzantine.set_defaults(handler=command_byzantine)

    curious = commands.add_parser("curious", help="a curious client reconstructs its peers' "
                                  "images from the global models (and may poison)")
    add_federation_options(curious)
    add_clients_option(curious)
    curious.add_argument("--alpha", type=float,
                         help="Dirichlet concentration (default: the profile's, 0.5)")
    curious.add_argument("--poison", default="none", choices=names.POISONING_ATTACKS,
                         metavar="ATTACK", help="%(choices)s: what the curious client also does "
                         "to slow the training (default: none)")
    curious.add_argument("--poison-option", type=parse_option, action="append", default=[],
                         metavar="NAME=VALUE", help="an option of the poisoning, e.g. scale=2")
    curious.add_argument("--curious-option", type=parse_option, action="append", default=[],
                         metavar="NAME=VALUE", help="a reconstruction setting, e.g. "
                         "rounds=1,10,50 (reconstruct in those rounds only), every=2, "
                         "iterations=200 or prior=autoencoder")
    curious.add_argument("--mode", choices=names.MODES, help="fedsgd (one SGD step on a fresh "
                         "minibatch a round) or fedavg (default: the profile's)")
    curious.add_argument("--batch-size", type=int, help="images in a client's minibatch, B "
                         "(default: the profile's; in FedSGD at most a client's images)")
    curious.add_argument("--model", choices=names.MODELS, metavar="MODEL",
                         help="%(choices)s (default: the profile's, lenet5: the study's "
                         "LeNet-5, 61,706 weights)")
    curious.add_argument("--lr", type=float, help="the clients' learning rate (default: the "
                         "profile's)")
    curious.add_argument("--colluders", type=int, help="curious clients that collude, clients "
                         "0 to N-1 (default: 1)")
    curious.add_argument("--aggregator", choices=names.AGGREGATORS, metavar="RULE",
                         help="%(choices)s (default: mean)")
    curious.add_argument("--aggregator-option", type=parse_option, action="append", default=[],
                         metavar="NAME=VALUE", help="an option of the rule, e.g. num_malicious=2 "
                         "(default num_malicious: 1, the curious client)")
    add_defense_options(curious)
    curious.set_defaults(handler=command_curious)

    sweep = commands.add_parser("sweep", help="resumable sweeps: the CRPA study's figures, "
                                "attacks against aggregation rules, defenses against a curious "
                                "client, DP against every attack")
    figures = sweep.add_subparsers(dest="figure", required=True, metavar="SWEEP",
                                   help="what to sweep (fltutor sweep SWEEP --help: its options)")
    for figure in names.FIGURES:
        crpa_sweep = figures.add_parser(figure, help=FIGURE_HELP[figure])
        add_federation_options(crpa_sweep)
        add_start_round_option(crpa_sweep)
        add_seeds_option(crpa_sweep)
        crpa_sweep.add_argument("--pairs", type=parse_pairs, help="class pairs G:T,... "
                                "(default: the figure's own: all for figure4, else the extremes "
                                "of a figure4 sweep)")
        crpa_sweep.set_defaults(handler=command_sweep)

    robustness = figures.add_parser("robustness", help="attacks x aggregation rules x malicious "
                                    "clients x data splits: heatmaps of accuracy and backdoor")
    add_federation_options(robustness)
    add_clients_option(robustness)
    add_seeds_option(robustness)
    robustness.add_argument("--attacks", nargs="+", choices=names.BYZANTINE_ATTACKS,
                            metavar="ATTACK", help="%(choices)s (default: all)")
    robustness.add_argument("--aggregators", nargs="+", choices=names.AGGREGATORS,
                            metavar="RULE", help="%(choices)s (default: all)")
    robustness.add_argument("--malicious", nargs="+", type=int, default=[1, 3], metavar="K",
                            help="numbers of malicious clients (default: 1 3)")
    robustness.add_argument("--alphas", nargs="+", type=parse_alpha, default=[None],
                            metavar="ALPHA", help="data splits: iid or a Dirichlet alpha "
                            "(default: iid)")
    robustness.set_defaults(handler=command_sweep_robustness)

    backfire = figures.add_parser("backfire", help="the curious client's RMSE under defenses, "
                                  "with and without its poisoning: do defenses backfire?")
    add_federation_options(backfire)
    add_clients_option(backfire)
    add_seeds_option(backfire)
    backfire.add_argument("--defenses", nargs="+", metavar="LABEL",
                          help="none, a defense (record-dp, local-dp, client-dp), a rule (krum, "
                               "median, ...) or one of each joined by + (default: "
                               + " ".join(names.BACKFIRE_DEFENSES) + "); none is always run")
    backfire.add_argument("--poison", default=names.BACKFIRE_POISON, metavar="ATTACK",
                          help="the curious client's poisoning in the poisoned runs (default: "
                               "%(default)s)")
    backfire.set_defaults(handler=command_sweep_backfire)

    privacy = figures.add_parser("privacy", help="DP kind x noise x clipping norm against every "
                                 "attack: epsilon, accuracy and each attack's success")
    privacy.add_argument("--profile", help="quick or paper (default: paper on a GPU, else quick)")
    privacy.add_argument("--kinds", nargs="+", choices=names.PRIVACY_KINDS,
                         metavar="KIND", help="%(choices)s (default: every DP kind; none, the "
                         "reference, is always run)")
    privacy.add_argument("--noises", nargs="+", type=float, metavar="SIGMA",
                         help="noise multipliers (default: each kind's grid)")
    privacy.add_argument("--clips", nargs="+", type=float, metavar="C",
                         help="clipping norms (default: each kind's grid)")
    privacy.add_argument("--scenarios", nargs="+", choices=names.PRIVACY_SCENARIOS,
                         metavar="SCENARIO", help="%(choices)s (default: all)")
    privacy.add_argument("--dataset", help=", ".join(names.DATASETS) + " (default: the "
                         "profile's, else mnist)")
    privacy.add_argument("--seed", type=int, default=0, help="first seed (default: 0)")
    add_seeds_option(privacy)
    privacy.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    privacy.add_argument("--data-root", help="dataset folder (default: $FLTUTOR_DATA or a cache)")
    privacy.add_argument("--fallback", action="store_true",
                         help="offline without data: use the small embedded digits dataset")
    privacy.add_argument("--out", required=True, help="output directory")
    privacy.add_argument("--force", action="store_true", help="run the planned runs again")
    privacy.add_argument("--no-progress", action="store_true", help="no progress bar")
    privacy.set_defaults(handler=command_sweep_privacy)

    add_invert_command(commands)
    add_gallery_command(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .data import DataUnavailableError  # after the parse: torch comes with it

    try:
        args.handler(args)
    except ValueError as error:
        print(f"fltutor: error: {error}", file=sys.stderr)
        return 2
    except DataUnavailableError as error:  # the way out in this command's terms
        fallback = "--fallback" if hasattr(args, "fallback") else None
        print(f"fltutor: error: {error.explain(fallback)}", file=sys.stderr)
        return 1
    except OutputError as error:  # a full disk: the files written before are kept
        print(f"fltutor: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("fltutor: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
