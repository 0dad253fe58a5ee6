"""What this machine offers fltutor: package versions, compute device, default profile, data.

The first notebook and ``fltutor info`` both print this report, so a student and an instructor
see the same facts when something behaves differently on their machines. For each dataset it says
whether the data can be had: present (and intact), damaged, downloadable, or not (offline: the
download server did not answer a short probe).

>>> report()["default profile"] in ("quick", "paper")
True
"""

from __future__ import annotations

import platform
import socket
from importlib import metadata
from pathlib import Path
from urllib.parse import urlparse

from . import __version__
from .config import default_profile, resolve_device
from .data import (DATASETS, FALLBACK_SOURCE, DataCorruptError, check_idx_pair, data_folder,
                   idx_files)

#: How long ``fltutor info`` waits for a download server before calling the machine offline.
PROBE_SECONDS = 3.0


def package_version(name: str) -> str:
    """The installed version of ``name``, or ``"not installed"``."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def download_server(name: str) -> tuple[str, int]:
    """Host and port of the first server torchvision downloads dataset ``name`` from."""
    import torchvision

    mirror = urlparse(getattr(torchvision.datasets, DATASETS[name].torchvision_name).mirrors[0])
    return mirror.hostname, mirror.port or (443 if mirror.scheme == "https" else 80)


def can_reach(host: str, port: int, timeout: float = PROBE_SECONDS) -> bool:
    """True when a TCP connection to ``host:port`` opens within ``timeout`` seconds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def dataset_state(name: str, root: Path) -> str:
    """Whether dataset ``name`` can be had: present (and intact), damaged, downloadable, or not.

    Only a missing dataset costs a network probe (``can_reach``: one connection attempt,
    ``PROBE_SECONDS`` at most).
    """
    spec = DATASETS[name]
    files = [path for train in (True, False) for path in idx_files(spec, root, train)]
    if all(path.exists() for path in files):
        try:
            for train in (True, False):
                check_idx_pair(spec, root, train)
        except DataCorruptError as error:
            return f"present but damaged: {error}"
        return "present"
    host, port = download_server(name)
    if can_reach(host, port):
        return (f"not present; {host} answers, so it downloads on first use (or now: "
                f"fltutor data fetch)")
    return (f"not present, and it cannot be downloaded: {host} did not answer (offline?); copy a "
            f"folder made by 'fltutor data fetch' here, or use the fallback (--fallback)")


def report(root: str | Path | None = None) -> dict[str, str]:
    """The environment as ``{what: value}`` lines, in reading order.

    ``root`` is the data folder to inspect (default: ``$FLTUTOR_DATA``, else the user's cache).
    """
    import torch

    device = resolve_device("auto")
    root = data_folder(root)
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
        lines[name] = dataset_state(name, root)
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
