"""What this machine offers fltutor: package versions, compute device, default profile, data.

The first notebook and ``fltutor info`` both print this report, so a student and an instructor
see the same facts when something behaves differently on their machines.

>>> report()["default profile"] in ("quick", "paper")
True
"""

from __future__ import annotations

import math
import os
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


def cpu_allowance() -> int:
    """How many CPUs this process may really use: its cgroup quota, else its affinity mask.

    A container (a Binder pod, a CI runner) often has a CPU quota far below the host's core
    count, which is what torch sees.
    """
    allowed = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    for quota_file, period_file in (("/sys/fs/cgroup/cpu.max", None),
                                    ("/sys/fs/cgroup/cpu/cpu.cfs_quota_us",
                                     "/sys/fs/cgroup/cpu/cpu.cfs_period_us")):
        try:
            fields = Path(quota_file).read_text().split()
            quota = fields[0]
            period = fields[1] if period_file is None else Path(period_file).read_text().strip()
        except (OSError, IndexError):
            continue
        if quota not in ("max", "-1"):
            allowed = min(allowed, max(1, math.ceil(int(quota) / int(period))))
        break
    return max(1, allowed or 1)


def fit_threads_to_cpus() -> int:
    """Cap torch's thread count at ``cpu_allowance()``; returns the thread count in use.

    With more threads than CPUs, torch's threads wait on each other: a federated round on a
    two-CPU machine can take ten times longer than with one thread per CPU.
    """
    import torch

    allowed = cpu_allowance()
    if torch.get_num_threads() > allowed:
        torch.set_num_threads(allowed)
    return torch.get_num_threads()


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
        "torch threads": str(torch.get_num_threads()),
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


#: glibc's ``mallopt`` parameter for the size from which an allocation gets pages of its own.
M_MMAP_THRESHOLD = -3


def return_large_blocks(threshold_bytes: int = 4 << 20) -> bool:
    """Have glibc give freed blocks of ``threshold_bytes`` or more back to the system at once.

    Why: glibc raises that threshold by itself after the first large block is freed, so that
    later activations of a few megabytes come from the heap, and a heap freed in scattered
    pieces is not given back. A notebook that trains one federation after another then keeps
    growing (notebook 04: 1.60 GB at its peak, 1.41 GB with a fixed 4 MB threshold, at some
    more system time). Linux with glibc only: elsewhere it does nothing and returns False.
    """
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, threshold_bytes))
    except (OSError, AttributeError):
        return False
