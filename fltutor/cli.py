"""The ``fltutor`` command: environment info, dataset download, and experiments to disk.

Bad input stops the command before any work, with exit code 2 and one line that names the value
and what is allowed (no traceback).
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

from . import __version__
from .config import FedConfig, default_profile, resolve_device
from .data import DATASETS, DataUnavailableError, default_root


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit code 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def parse_exclude(text: str) -> dict[int, tuple[int, ...]]:
    """``"0:4,9;3:1"`` -> ``{0: (4, 9), 3: (1,)}`` (client: classes it must not hold)."""
    try:
        pairs = [item.split(":") for item in text.split(";") if item]
        return {int(client): tuple(int(c) for c in classes.split(",")) for client, classes in pairs}
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"exclude={text!r} is not allowed: use CLIENT:CLASS,CLASS;CLIENT:CLASS") from None


def add_federation_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by every command that runs a federation."""
    parser.add_argument("--dataset", default="mnist", help=", ".join(DATASETS.names()))
    parser.add_argument("--profile", help="quick or paper (default: paper on a GPU, else quick)")
    parser.add_argument("--rounds", type=int, help="number of rounds (default: the profile's)")
    parser.add_argument("--max-per-class", type=int,
                        help="training images kept per class (default: the profile's)")
    parser.add_argument("--max-test", type=int, help="test images kept (default: the profile's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument("--data-root", help="dataset folder (default: $FLTUTOR_DATA or a cache)")
    parser.add_argument("--fallback", action="store_true",
                        help="offline without data: use the small embedded digits dataset")
    parser.add_argument("--out", required=True, help="output directory")
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


def make_config(config_class, args: argparse.Namespace, **fields):
    """A validated config from the shared options plus ``fields``; says which profile it used."""
    profile = args.profile or default_profile(args.device)
    config = config_class.from_profile(profile, **federation_settings(args), **fields)
    if args.profile is None:
        print(f"profile: {profile} (the default on this device; choose with --profile)")
    return config


def command_info(args: argparse.Namespace) -> None:
    import torch
    import torchvision

    print(f"fltutor {__version__}, Python {platform.python_version()}, torch {torch.__version__}, "
          f"torchvision {torchvision.__version__}")
    try:
        import opacus

        print(f"opacus {opacus.__version__}")
    except ImportError:
        print("opacus: not installed (differential privacy is unavailable)")
    device = resolve_device("auto")
    print(f"device: {device}; default profile: {default_profile()}")
    if device.type == "cuda":
        print(f"GPU: {torch.cuda.get_device_name(device)}")
    root = Path(args.root) if args.root else default_root()
    print(f"data root: {root}")
    for name in DATASETS:
        spec = DATASETS[name]
        present = all((root / spec.torchvision_name / "raw" / f).exists() for f in
                      ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte"))
        print(f"  {name}: {'present' if present else 'not present (downloaded on first use)'}")
    print("offline fallback: scikit-learn's 8x8 digits, upscaled to 28x28")


def command_data_fetch(args: argparse.Namespace) -> None:
    from .data import fetch

    names = DATASETS.names() if args.dataset == "all" else [DATASETS.check(args.dataset)]
    for name in names:
        print(f"{name}: ready in {fetch(name, args.root)}")


def command_fedavg(args: argparse.Namespace) -> None:
    from .experiments import run_fedavg

    config = make_config(FedConfig, args, num_clients=args.clients, partition=args.partition,
                         alpha=args.alpha, exclude=args.exclude, mode=args.mode)
    summary = run_fedavg(config, args.out, progress=not args.no_progress)["summary"]
    print(f"final test accuracy {summary['final_test_accuracy']:.4f} after {summary['rounds']} "
          f"rounds ({summary['total_seconds']:.1f} s); results in {args.out}")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="fltutor", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"fltutor {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    info = commands.add_parser("info", help="versions, device and where the data comes from")
    info.add_argument("--root", help="data folder to inspect")
    info.set_defaults(handler=command_info)

    data = commands.add_parser("data", help="dataset management")
    data_commands = data.add_subparsers(dest="data_command", required=True)
    fetch = data_commands.add_parser("fetch", help="download datasets for offline use")
    fetch.add_argument("--dataset", default="all", help=", ".join([*DATASETS.names(), "all"]))
    fetch.add_argument("--root", help="where to put them (default: $FLTUTOR_DATA or a cache)")
    fetch.set_defaults(handler=command_data_fetch)

    fedavg = commands.add_parser("fedavg", help="train a model with federated averaging")
    add_federation_options(fedavg)
    fedavg.add_argument("--clients", type=int, default=10)
    fedavg.add_argument("--partition", default="iid", help="iid, dirichlet, one-class or shards")
    fedavg.add_argument("--alpha", type=float, default=1.0, help="Dirichlet concentration")
    fedavg.add_argument("--exclude", type=parse_exclude, default={},
                        help="classes a client must not hold, e.g. '0:4,9'")
    fedavg.add_argument("--mode", default="fedavg", help="fedavg or fedsgd")
    fedavg.set_defaults(handler=command_fedavg)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.handler(args)
    except ValueError as error:
        print(f"fltutor: error: {error}", file=sys.stderr)
        return 2
    except DataUnavailableError as error:
        print(f"fltutor: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("fltutor: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
