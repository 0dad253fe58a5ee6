"""What the benchmarks here share: synthetic data, GPU-aware timing, the machine, options, tables.

Each benchmark is a script (``python benchmarks/bench_*.py``); Python puts this folder on the
import path, so they import this module as ``common``.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch

from fltutor.data import DATASETS, Data


def synthetic_mnist(per_class: int, test_images: int, seed: int = 0) -> Data:
    """Random images of MNIST's shape in [-1, 1]: ``per_class`` training images per class.

    The time a round takes does not depend on the pixel values, and the paper scale (5,000
    images per class) needs more images than a small local copy of MNIST holds.
    """
    gen = torch.Generator().manual_seed(seed)
    num_classes = DATASETS["mnist"].num_classes
    images = lambda n: torch.rand(n, 1, 28, 28, generator=gen) * 2 - 1  # noqa: E731
    train_y = torch.arange(num_classes).repeat_interleave(per_class)
    test_y = torch.randint(num_classes, (test_images,), generator=gen)
    return Data("mnist", images(len(train_y)), train_y, images(test_images), test_y,
                DATASETS["mnist"].class_names, "synthetic random images")


def synchronize(device: torch.device) -> None:
    """Wait for the GPU's queued work, so a clock read afterwards includes it (no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(step, device: torch.device) -> float:
    """Wall-clock seconds of ``step()``, waiting for the GPU to finish its queued work."""
    synchronize(device)
    start = time.perf_counter()
    step()
    synchronize(device)
    return time.perf_counter() - start


def timed_aggregation(federation, seconds: list[float]) -> None:
    """Wrap ``federation``'s aggregation (the rule, with any server-side defense around it) in a
    clock: each call appends its seconds to ``seconds``."""
    aggregate = federation.aggregate

    def clocked(updates, weights):
        start = time.perf_counter()
        result = aggregate(updates, weights)
        seconds.append(time.perf_counter() - start)
        return result

    federation.aggregate = clocked


def machine() -> list[str]:
    """CPU model, cores, threads, load, GPU and torch version: what the numbers depend on."""
    cpu = platform.processor() or platform.machine()
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as info:
            names = [line.split(":", 1)[1].strip() for line in info if line.startswith("model name")]
        cpu = names[0] if names else cpu
    load = f", load average {load_average()}"
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "none"
    return [f"CPU: {cpu}, {os.cpu_count()} cores, torch uses {torch.get_num_threads()} threads{load}",
            f"GPU: {gpu}", f"torch {torch.__version__}, Python {platform.python_version()}"]


def load_average() -> str:
    """The system's load average over the last minute, where the OS tells it (not on Windows)."""
    return f"{os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else "unknown"


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed: it must be an integer >= 1")
    return int(text)


ROUNDS_HELP = "timed rounds after one warm-up (default 3; 1 for paper on CPU)"


def benchmark_parser(description: str, scales, rounds_help: str = ROUNDS_HELP
                     ) -> argparse.ArgumentParser:
    """The options every benchmark takes: --device, --scales, --rounds, --threads, --markdown.
    ``rounds_help`` says what ``--rounds`` counts where a benchmark times something else."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                        help="auto: the CPU, and the GPU too when there is one")
    parser.add_argument("--scales", default=",".join(scales),
                        help="comma-separated: " + ", ".join(scales))
    parser.add_argument("--rounds", type=positive_int,
                        help=rounds_help)
    parser.add_argument("--threads", type=positive_int, help="CPU threads for torch (default: torch's)")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    return parser


def parse_benchmark_args(parser: argparse.ArgumentParser, scales):
    """Parse and check the options; set torch's threads. Returns (args, scales, devices)."""
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    chosen = args.scales.split(",")
    if not set(chosen) <= set(scales):
        parser.error(f"scales={args.scales!r} is not allowed: use names from {', '.join(scales)}")
    return args, chosen, chosen_devices(parser, args.device)


def chosen_devices(parser: argparse.ArgumentParser, device: str) -> list[str]:
    """The devices ``--device`` names: ``auto`` is the CPU and the GPU when there is one."""
    if device == "cuda" and not torch.cuda.is_available():
        parser.error("device='cuda' is not allowed: this machine has no CUDA GPU")
    return {"auto": ["cpu"] + (["cuda"] if torch.cuda.is_available() else []),
            "cpu": ["cpu"], "cuda": ["cuda"]}[device]


def chosen_names(parser: argparse.ArgumentParser, option: str, text: str, allowed) -> list[str]:
    """The comma-separated names of ``--option``, each checked against ``allowed``."""
    names = text.split(",")
    if not set(names) <= set(allowed):
        parser.error(f"{option}={text!r} is not allowed: use names from {', '.join(allowed)}")
    return names


def timed_rounds(requested: int | None, scale: str, device: str) -> int:
    """``--rounds`` if given; else 3, or 1 for the paper scale on the CPU (minutes per round)."""
    return requested or (1 if scale == "paper" and device == "cpu" else 3)


def print_machine(markdown: bool) -> None:
    for line in machine():
        print(f"- {line}" if markdown else line)


def table(header: list[str], rows: list[list[str]], markdown: bool, text_columns: int) -> str:
    """Rows under a header, as Markdown or aligned plain text; after ``text_columns``, numbers."""
    if markdown:
        align = ["---"] * text_columns + ["---:"] * (len(header) - text_columns)
        return "\n".join("| " + " | ".join(row) + " |" for row in [header, align, *rows])
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(cell.rjust(w) for cell, w in zip(row, widths))
                     for row in [header, *rows])
