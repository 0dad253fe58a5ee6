"""How many threads torch may start: as many as the CPUs this process may really use.

In a container with a CPU quota (Binder, CI) torch would start one thread per *host* core.
``fltutor.config`` calls ``fit_threads_to_cpus`` as it is imported, since every run starts from a
config; ``import fltutor`` alone imports no torch, so that the command line's help comes at once.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch


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
    allowed = cpu_allowance()
    if torch.get_num_threads() > allowed:
        torch.set_num_threads(allowed)
    return torch.get_num_threads()
