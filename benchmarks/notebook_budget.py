"""Each notebook's kernel CPU seconds, peak memory and slowest cell, against the course's budgets.

What it measures: each notebook (all, or those named) runs once, top to bottom, in a fresh
kernel started by nbclient, the library behind ``jupyter nbconvert --execute``. For the kernel
process it reads from Linux's ``/proc`` the CPU time of all its threads (user + system, plus any
child processes it waited for) and its peak resident memory (``VmHWM``, the high-water mark of
the memory it really held), for the whole notebook and for every code cell.

The budgets hold for the quick profile on an idle two-core machine: a course runs on Binder and
on students' laptops, and CI runs every notebook on every change. On a busy machine the wall
seconds grow with the load (the load average is printed); CPU seconds and the peak barely move.
So a cell is judged on the kernel's CPU seconds in it: for a cell that computes, they bound the
seconds it takes on an idle machine (torch's threads only make the wall time shorter). Its wall
seconds are listed too, for a cell that waits rather than computes.

The test suite asserts the peak only, and runs nothing twice for it: ``notebooks/conftest.py``
reads the kernel that nbval started for its own run, and prints this table in pytest's summary.
Cells are numbered as nbval numbers them (code cells only, from 0): ``Cell 7`` here is the test
``notebooks/NAME.ipynb::Cell 7`` there.

    python benchmarks/notebook_budget.py                        # every notebook in notebooks/
    python benchmarks/notebook_budget.py --notebooks 00_start_here,01_federated_learning --markdown
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError

from common import positive_int, print_machine, table

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"

CPU_BUDGET_S = 180  # each notebook: at most 3 CPU-minutes of its kernel, all threads together
CELL_BUDGET_S = 120  # each cell: at most 2 minutes, so no student waits longer at one step
# Binder gives a whole session 2 GB; the Jupyter server, its extensions and the notebook's
# widgets take a few hundred MB of that, so a kernel that holds more than 1.5 GiB is killed in
# the middle of the lesson. The test suite fails a notebook whose kernel peaks above this.
PEAK_MEMORY_MIB = 1536
# A student who also moves every control of a notebook (a second dataset, more runs) needs more;
# the browser pass holds that peak below what a Binder session has in all, 2 GiB.
BINDER_SESSION_MIB = 2048


@dataclass
class KernelUsage:
    """What a kernel process has used so far: CPU seconds (all threads) and peak resident MiB."""

    cpu_s: float
    peak_mib: float


def kernel_pid(kernel_manager) -> int | None:
    """The process id of the kernel a jupyter_client ``KernelManager`` started on this machine.

    None for a kernel elsewhere (a remote provisioner has no local process to read).
    """
    return getattr(kernel_manager.provisioner, "pid", None)


def kernel_usage(pid: int) -> KernelUsage | None:
    """CPU seconds and peak resident memory of process ``pid``; None where ``/proc`` cannot tell.

    Linux keeps both per process: ``VmHWM`` in ``/proc/PID/status`` (kB) and the clock ticks
    spent in ``/proc/PID/stat`` (see ``man 5 proc``). Other systems have no ``/proc``.
    """
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    peak_kib = [int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")]
    if not peak_kib:
        return None
    # The fields after the command name, which is in parentheses and may itself hold spaces:
    # fields[0] is field 3 of proc(5), so utime, stime, cutime and cstime (14-17) are 11-14.
    fields = stat.rsplit(")", 1)[1].split()
    ticks = sum(int(value) for value in fields[11:15])
    return KernelUsage(cpu_s=ticks / os.sysconf("SC_CLK_TCK"), peak_mib=peak_kib[0] / 1024)


def kernel_cpu_s(pid: int | None) -> float | None:
    """The kernel's CPU seconds so far, or None where they cannot be read."""
    usage = kernel_usage(pid) if pid is not None else None
    return usage.cpu_s if usage is not None else None


@dataclass
class CellTime:
    """One code cell: wall seconds, and the kernel's CPU seconds in it (None: not measured)."""

    wall_s: float | None
    cpu_s: float | None

    @classmethod
    def between(cls, began: float, cpu_before: float | None, pid: int | None) -> "CellTime":
        """The cell that started at ``perf_counter()`` ``began``, with the kernel's CPU then."""
        wall_s, cpu_after = time.perf_counter() - began, kernel_cpu_s(pid)
        both = cpu_before is not None and cpu_after is not None
        return cls(wall_s, cpu_after - cpu_before if both else None)

    @property
    def cost_s(self) -> float:
        """What the cell budget is judged on: CPU seconds where known (see the module's text)."""
        return self.cpu_s if self.cpu_s is not None else self.wall_s


@dataclass
class NotebookRun:
    """One notebook's run: wall seconds from the kernel's start, its code cells, kernel usage."""

    name: str
    wall_s: float
    cells: list[CellTime] = field(default_factory=list)
    usage: KernelUsage | None = None
    failed_cell: int | None = None  # the code cell that raised or timed out, if one did

    def slowest_cell(self) -> int | None:
        return max(range(len(self.cells)), key=lambda n: self.cells[n].cost_s, default=None)

    def over_budget(self, peak_ceiling_mib: float = PEAK_MEMORY_MIB) -> list[str]:
        """The budgets this run broke: some of ``CPU``, ``cell``, ``memory`` (empty: none)."""
        slowest = self.slowest_cell()
        over = []
        if self.usage is not None and self.usage.cpu_s > CPU_BUDGET_S:
            over.append("CPU")
        if slowest is not None and self.cells[slowest].cost_s > CELL_BUDGET_S:
            over.append("cell")
        if self.usage is not None and self.usage.peak_mib > peak_ceiling_mib:
            over.append("memory")
        return over

    def row(self, peak_ceiling_mib: float = PEAK_MEMORY_MIB) -> list[str]:
        over = self.over_budget(peak_ceiling_mib)
        verdict = "over: " + ", ".join(over) if over else "within"
        if self.usage is None:
            verdict += " (CPU and memory not measured)"
        if self.failed_cell is not None:
            verdict = f"Cell {self.failed_cell} failed; " + verdict
        slowest = self.slowest_cell()
        cpu_s, peak_mib = (self.usage.cpu_s, self.usage.peak_mib) if self.usage else (None, None)
        cell = self.cells[slowest] if slowest is not None else CellTime(None, None)
        return [self.name, verdict, "" if slowest is None else f"Cell {slowest}",
                str(len(self.cells)), figure(self.wall_s, 0), figure(cpu_s), figure(peak_mib, 0),
                figure(cell.cpu_s), figure(cell.wall_s)]


def figure(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


HEADER = ["notebook", "budget", "slowest cell", "code cells", "wall s", "kernel CPU s",
          "peak MiB", "slowest cell CPU s", "slowest cell wall s"]


def budgets_line(peak_ceiling_mib: float = PEAK_MEMORY_MIB) -> str:
    return (f"Budgets: {CPU_BUDGET_S} kernel CPU s per notebook, {CELL_BUDGET_S} s per cell "
            f"(judged on its kernel CPU s), {peak_ceiling_mib:,.0f} MiB kernel peak.")


def budget_table(runs: list[NotebookRun], markdown: bool,
                 peak_ceiling_mib: float = PEAK_MEMORY_MIB) -> str:
    return table(HEADER, [run.row(peak_ceiling_mib) for run in runs], markdown, text_columns=3)


def run_notebook(path: Path, cell_timeout: int) -> NotebookRun:
    """Run the notebook at ``path`` once in a fresh kernel (cwd: its folder), timing each cell."""
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=cell_timeout,
                            resources={"metadata": {"path": str(path.parent)}})
    run = NotebookRun(path.stem, wall_s=0.0)
    started = time.perf_counter()
    with client.setup_kernel(stderr=subprocess.DEVNULL):  # the kernel's warnings: not ours
        pid = kernel_pid(client.km)
        code_cells = [(i, c) for i, c in enumerate(notebook.cells) if c.cell_type == "code"]
        for number, (index, cell) in enumerate(code_cells):
            began, cpu_before = time.perf_counter(), kernel_cpu_s(pid)
            try:
                client.execute_cell(cell, index)
            except (CellExecutionError, CellTimeoutError):  # the table says which cell
                run.failed_cell = number
            run.cells.append(CellTime.between(began, cpu_before, pid))
            if run.failed_cell is not None:
                break
        run.usage = kernel_usage(pid) if pid is not None else None
    run.wall_s = time.perf_counter() - started
    return run


def notebook_options(parser: argparse.ArgumentParser) -> None:
    """The options of every script that runs notebooks: which ones, where, and the table's form."""
    parser.add_argument("--notebooks", help="comma-separated names without .ipynb (default: all)")
    parser.add_argument("--folder", type=Path, default=NOTEBOOKS,
                        help="where the notebooks are (default: the repository's notebooks/)")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")


def chosen_notebooks(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[str]:
    """The names ``--notebooks`` chose in ``--folder``; exit code 2 for a name not there."""
    known = sorted(path.stem for path in args.folder.glob("*.ipynb"))
    if not known:
        parser.exit(2, f"folder='{args.folder}' is not allowed: it must be a folder that holds "
                       f"notebooks (.ipynb)\n")
    chosen = args.notebooks.split(",") if args.notebooks else known
    if not set(chosen) <= set(known):
        parser.exit(2, f"notebooks={args.notebooks!r} is not allowed: use names from "
                       f"{', '.join(known)} (the notebooks in {args.folder})\n")
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    notebook_options(parser)
    parser.add_argument("--cell-timeout", type=positive_int, default=900,
                        help="seconds a cell may run before it counts as failed (default 900, "
                             "as in the test suite)")
    args = parser.parse_args()
    chosen = chosen_notebooks(parser, args)

    print_machine(args.markdown)
    print(budgets_line() + " Each notebook runs once in a fresh kernel.\n")
    runs = []
    for name in chosen:
        run = run_notebook(args.folder / f"{name}.ipynb", args.cell_timeout)
        runs.append(run)
        figures = (f"; kernel CPU {run.usage.cpu_s:.0f} s, peak {run.usage.peak_mib:,.0f} MiB"
                   if run.usage else "")
        print(f"  {name}: done in {run.wall_s:.0f} s{figures}", flush=True)
    print()
    print(budget_table(runs, args.markdown))
    if any(run.failed_cell is not None for run in runs):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
