"""What this machine offers fltutor: package versions, compute device, default profile, data.

The first notebook and ``fltutor info`` both print this report, so a student and an instructor
see the same facts when something behaves differently on their machines.

>>> report()["default profile"] in ("quick", "paper")
True
"""

from __future__ import annotations

import platform
from importlib import metadata
from pathlib import Path

from . import __version__
from .config import default_profile, resolve_device
from .data import DATASETS, FALLBACK_SOURCE, default_root

#: Files that torchvision's MNIST-style readers need on disk (same names for Fashion-MNIST).
RAW_FILES = ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte")


def package_version(name: str) -> str:
    """The installed version of ``name``, or ``"not installed"``."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def dataset_present(name: str, root: Path) -> bool:
    """True when dataset ``name`` is on disk under ``root`` in torchvision's layout."""
    folder = root / DATASETS[name].torchvision_name / "raw"
    return all((folder / file).exists() for file in RAW_FILES)


def report(root: str | Path | None = None) -> dict[str, str]:
    """The environment as ``{what: value}`` lines, in reading order.

    ``root`` is the data folder to inspect (default: ``$FLTUTOR_DATA``, else the user's cache).
    """
    import torch

    device = resolve_device("auto")
    root = Path(root) if root is not None else default_root()
    lines = {
        "fltutor": __version__,
        "python": platform.python_version(),
        **{name: package_version(name) for name in ("torch", "torchvision", "opacus")},
        "device": str(device),
    }
    if device.type == "cuda":
        lines["gpu"] = torch.cuda.get_device_name(device)
    lines["default profile"] = default_profile()
    lines["data root"] = str(root)
    for name in DATASETS:
        lines[name] = ("present" if dataset_present(name, root)
                       else "not present (downloaded on first use)")
    lines["offline fallback"] = FALLBACK_SOURCE
    return lines


def format_report(lines: dict[str, str]) -> str:
    """The report as aligned ``what: value`` text lines."""
    width = max(map(len, lines))
    return "\n".join(f"{what + ':':<{width + 1}} {value}" for what, value in lines.items())
