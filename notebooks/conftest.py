"""Each notebook's kernel is measured while nbval runs it: its peak memory asserted, times listed.

nbval runs a notebook's code cells as test items, one after another, in one kernel. Right after
the last cell, one more item, ``NAME.ipynb::kernel peak memory``, reads that kernel's peak
resident memory and CPU time and fails if the peak is above ``PEAK_MEMORY_MIB`` (why 1.5 GiB:
see ``benchmarks/notebook_budget.py``). Memory is stable enough to assert; time is not (it
follows the machine and its load), so pytest's summary lists each notebook's wall and CPU
seconds, peak and slowest cell for CI's log instead. No notebook runs twice for this.

``FLTUTOR_NOTEBOOK_PEAK_MIB`` sets a different ceiling for one run, for example the one a
smaller machine leaves: ``FLTUTOR_NOTEBOOK_PEAK_MIB=1000 python -m pytest notebooks``.

Where Chromium and playwright are installed, ``test_in_browser.py`` runs each notebook in
JupyterLab in a real browser instead, and nbval's items for that notebook are deselected: one
pass proves both that the code runs and that the student sees it work, under the same memory
ceiling and in the same table. ``FLTUTOR_BROWSER`` chooses: ``auto`` (default), ``off`` (nbval
only) or ``required`` (fail, rather than fall back to nbval, where the browser cannot run).
"""

from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path

import pytest
from nbval.plugin import IPyNbCell

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import notebook_browser  # noqa: E402
from notebook_budget import (PEAK_MEMORY_MIB, CellTime, NotebookRun,  # noqa: E402
                             budget_table, budgets_line, kernel_cpu_s, kernel_pid, kernel_usage)

CEILING_VARIABLE = "FLTUTOR_NOTEBOOK_PEAK_MIB"
CEILING = pytest.StashKey[float]()  # MiB
MEASURED = pytest.StashKey[dict]()  # a notebook's node id -> its KernelPeakMemory item
BROWSER_RUNS = pytest.StashKey[list]()  # the BrowserRun of every notebook the browser ran


def browser_mode() -> tuple[str, str | None]:
    """``notebook_browser.browser_mode``; a bad ``$FLTUTOR_BROWSER`` stops the run at once."""
    try:
        return notebook_browser.browser_mode()
    except ValueError as bad:
        raise pytest.UsageError(str(bad)) from None


def peak_ceiling_mib() -> float:
    """``PEAK_MEMORY_MIB``, or the ceiling that ``$FLTUTOR_NOTEBOOK_PEAK_MIB`` sets."""
    text = os.environ.get(CEILING_VARIABLE, "")
    if not text:
        return PEAK_MEMORY_MIB
    try:
        ceiling = float(text)
    except ValueError:
        ceiling = math.nan
    if not (math.isfinite(ceiling) and ceiling > 0):
        raise pytest.UsageError(f"{CEILING_VARIABLE}={text!r} is not allowed: it must be a "
                                f"finite number of MiB > 0 (default {PEAK_MEMORY_MIB})")
    return ceiling


class KernelPeakMemory(pytest.Item):
    """Runs after a notebook's last cell: its kernel's peak resident memory against the ceiling."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.started: float | None = None  # set as the first cell's setup starts the kernel
        self.cells: list[CellTime] = []
        self.run: NotebookRun | None = None  # what the summary table shows

    def runtest(self) -> None:
        kernel = self.parent.kernel
        if kernel is None or not kernel.is_alive():
            pytest.skip("the kernel stopped before the last cell ended: nothing left to measure")
        pid = kernel_pid(kernel.km)
        usage = kernel_usage(pid) if pid is not None else None
        self.run = NotebookRun(self.path.stem, time.perf_counter() - self.started, self.cells,
                               usage)
        if usage is None:
            pytest.skip("the kernel's peak memory cannot be read here: it needs Linux's /proc")
        ceiling = self.config.stash[CEILING]
        if usage.peak_mib > ceiling:
            pytest.fail(f"{self.path.name}: the kernel's peak resident memory was "
                        f"{usage.peak_mib:,.0f} MiB, above the ceiling of {ceiling:,.0f} MiB: "
                        f"run lighter settings in the notebook", pytrace=False)

    def reportinfo(self):
        return self.path, None, f"{self.path.name}: kernel peak memory"


def pytest_configure(config: pytest.Config) -> None:
    config.stash[CEILING] = peak_ceiling_mib()  # a bad value stops the run before any kernel
    config.stash[MEASURED] = {}
    config.stash[BROWSER_RUNS] = []
    browser_mode()  # likewise


def run_in_browser(items: list[pytest.Item]) -> set[str]:
    """The notebooks (file names) whose browser test is selected and will run."""
    if browser_mode()[1] is not None:
        return set()
    return {item.callspec.params["notebook"] for item in items
            if getattr(item, "originalname", None) == "test_notebook_in_browser"}


@pytest.hookimpl(trylast=True)  # after -k and -m have deselected what they deselect
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item]) -> None:
    """Leave to the browser the notebooks it runs; put a ``KernelPeakMemory`` item after the
    last cell of every other notebook that nbval runs whole."""
    in_browser = run_in_browser(items)
    by_browser = [item for item in items
                  if isinstance(item, IPyNbCell) and item.path.name in in_browser]
    if by_browser:
        config.hook.pytest_deselected(items=by_browser)
        items[:] = [item for item in items if item not in by_browser]
    last_cell = {}  # notebook node -> (index of its last selected cell, number of cells selected)
    for index, item in enumerate(items):
        if isinstance(item, IPyNbCell):
            count = last_cell.get(item.parent, (0, 0))[1]
            last_cell[item.parent] = (index, count + 1)
    for notebook, (index, selected) in last_cell.items():
        code_cells = sum(cell.cell_type == "code" for cell in notebook.nb.cells)
        if selected == code_cells:  # a notebook run in part says nothing about its peak
            config.stash[MEASURED][notebook.nodeid] = KernelPeakMemory.from_parent(
                notebook, name="kernel peak memory")
    for notebook, (index, _) in reversed(last_cell.items()):  # from the end: indices stay right
        if notebook.nodeid in config.stash[MEASURED]:
            items.insert(index + 1, config.stash[MEASURED][notebook.nodeid])


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item):
    measure = item.config.stash[MEASURED].get(getattr(item.parent, "nodeid", None))
    if isinstance(item, IPyNbCell) and measure is not None and measure.started is None:
        measure.started = time.perf_counter()  # the first cell's setup starts the kernel
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    measure = item.config.stash[MEASURED].get(getattr(item.parent, "nodeid", None))
    if not isinstance(item, IPyNbCell) or measure is None:
        return (yield)
    kernel = item.parent.kernel
    pid = kernel_pid(kernel.km) if kernel is not None and kernel.is_alive() else None
    began, cpu_before = time.perf_counter(), kernel_cpu_s(pid)
    try:
        return (yield)
    finally:
        measure.cells.append(CellTime.between(began, cpu_before, pid))


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    by_nbval = [m.run for m in config.stash.get(MEASURED, {}).values() if m.run is not None]
    browser_runs = config.stash.get(BROWSER_RUNS, [])
    in_browser = [run.budget for run in browser_runs if run.budget is not None]
    ceiling = config.stash.get(CEILING, PEAK_MEMORY_MIB)
    for runs, how in [(by_nbval, "under nbval; wall s includes the kernel's start"),
                      (in_browser, "in JupyterLab in Chromium, Run All; wall s includes opening "
                                   "the page, cell seconds are wall seconds")]:
        if runs:
            terminalreporter.write_sep("-", "notebook budgets")
            terminalreporter.write_line(f"{budgets_line(ceiling)} Measured {how}.")
            for line in budget_table(runs, False, ceiling).splitlines():
                terminalreporter.write_line(line)
    played = [f"{run.notebook} {run.peak_with_controls_mib:,.0f}" for run in browser_runs
              if run.peak_with_controls_mib is not None]
    if played:
        terminalreporter.write_line("Kernel peak MiB once every control had moved: " +
                                    ", ".join(played))
