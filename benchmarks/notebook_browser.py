"""The notebooks as a student meets them: JupyterLab in a real browser, every control moved.

nbval proves that a notebook's code runs. It cannot see what the student sees: a widget whose
JavaScript model fails to load shows "Error displaying widget" in JupyterLab while its Python
cell ran fine, and a slider wired to nothing moves without redrawing anything. This pass opens
each notebook in JupyterLab in Chromium (driven by Playwright), and

1. runs it as a student does (Run All), waits for the kernel, and reports every error output
   (a traceback), every widget that failed to render (JupyterLab's "Error displaying widget",
   a widget view left as plain text, a widget model the browser could not load);
2. then, in every cell whose output holds controls, changes each control as a student would
   (another option of a drop-down, one step of a slider, a click on a check box or a button)
   and asserts that the cell's output changed: a new image, table or text. Controls that
   redraw nothing by themselves must be settings of the cell's first button (an explorer's
   "run"): the pass then clicks it and asserts that the output changed;
3. fails a cell that runs ``LONG_CELL_S`` seconds or more without showing, while it runs, its
   progress and the time left (a tqdm bar's "elapsed<left", or fltutor's "about N s left");
4. saves screenshots: the whole notebook after Run All, and every widget cell after each change;
5. reads the kernel's CPU seconds and peak resident memory from Linux's ``/proc`` and each cell's
   seconds from the timings JupyterLab records, for the same budget table as
   ``notebook_budget.py``: the budgets measured in a real browser. The peak is read twice:
   after Run All (the notebook's budget, as under nbval) and after every control was moved
   (what a student who plays with every widget needs: it must fit a Binder session).

The test suite runs it (``notebooks/test_in_browser.py``) in place of nbval's execution of the
same notebooks, so that one pass proves both; ``tests/test_browser_pass.py`` shows it failing on
deliberately broken notebooks. By hand:

    python benchmarks/notebook_browser.py --screenshots shots            # every notebook
    python benchmarks/notebook_browser.py --notebooks 00_start_here --screenshots shots

It needs Chromium (Debian's ``chromium`` package; ``$FLTUTOR_CHROMIUM`` names another
executable) and the Python package ``playwright``; it downloads no browser of its own.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from common import positive_int
from notebook_budget import (CellTime, NotebookRun, budget_table, budgets_line, chosen_notebooks,
                             kernel_usage, notebook_options)

CHROMIUM_VARIABLE = "FLTUTOR_CHROMIUM"
BROWSER_VARIABLE = "FLTUTOR_BROWSER"
BROWSER_MODES = ("auto", "off", "required")
# Chromium on a machine without a display or a network of its own: no GPU, no sandbox (CI runs
# as root), and none of the background connections that a closed network refuses.
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--disable-quic", "--disable-dev-shm-usage"]
# JupyterLab's settings for the pass: every cell in the page (no virtual scrolling, so every
# output can be found and drawn), cell timings recorded, no autosave and no news pop-ups.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none", "recordTiming": True},
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false",
                                                    "checkForUpdates": False},
}
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
# What the browser's console says when a widget's model or view cannot be made.
WIDGET_CONSOLE_ERROR = re.compile(r"widget|model|comm", re.IGNORECASE)
VIEWPORT = {"width": 1280, "height": 900}  # a laptop's screen
QUIET_S = 1.0
# A cell that runs this long must show its progress and the time left while it runs: a student
# waiting that long needs to know whether to wait. (Wall seconds on the machine the pass runs
# on; the notebooks' own budgets keep cells far shorter on an idle two-core machine.)
LONG_CELL_S = 30  # the kernel must stay idle this long before a run counts as finished


def chromium_path() -> str | None:
    """Where Chromium is: ``$FLTUTOR_CHROMIUM``, else ``chromium`` or ``chromium-browser``."""
    named = os.environ.get(CHROMIUM_VARIABLE)
    if named:
        return named if Path(named).is_file() else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


def missing() -> str | None:
    """Why the pass cannot run here (a sentence), or None when it can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the Python package playwright is not installed (pip install playwright)"
    if chromium_path() is None:
        where = os.environ.get(CHROMIUM_VARIABLE)
        return (f"{CHROMIUM_VARIABLE}={where!r} is not a file" if where else
                "no Chromium found (install Debian's chromium package, or set "
                f"{CHROMIUM_VARIABLE} to its executable)")
    return None


def browser_mode() -> tuple[str, str | None]:
    """``$FLTUTOR_BROWSER`` (auto, off or required) and, when the pass will not run, why (None:
    it will). ``required`` asks a caller to fail, not fall back, where that reason is not None."""
    mode = os.environ.get(BROWSER_VARIABLE, "") or "auto"
    if mode not in BROWSER_MODES:
        raise ValueError(f"{BROWSER_VARIABLE}={mode!r} is not allowed: use one of "
                         f"{', '.join(BROWSER_MODES)} (default auto)")
    return mode, f"{BROWSER_VARIABLE}=off" if mode == "off" else missing()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class JupyterLab:
    """A JupyterLab server on a free local port, serving a scratch copy of a notebooks folder.

    The copy keeps the repository's notebooks free of outputs whatever the browser does, and the
    notebooks still find what they read beside them (``results/``). Kernels get
    ``kernel_threads`` threads for torch (None: torch's default, one per core). The server exposes its
    application object to the page (``window.jupyterapp``), so the pass can ask the notebook's
    model which cells ran and what they printed, instead of guessing from the pixels.
    """

    def __init__(self, folder: Path, kernel_threads: int | None = None,
                 startup_timeout_s: float = 120):
        self.scratch = Path(tempfile.mkdtemp(prefix="fltutor-browser-"))
        self.root = self.scratch / "notebooks"
        shutil.copytree(folder, self.root, ignore=shutil.ignore_patterns(
            ".ipynb_checkpoints", "__pycache__", "conftest.py", "test_*.py", "__init__.py"))
        settings = self.scratch / "settings"
        for plugin, values in LAB_SETTINGS.items():
            path = settings / f"{plugin}.jupyterlab-settings"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values))
        self.port, self.token = free_port(), secrets.token_hex(16)
        # The kernel draws with the notebook's inline backend, not the one a test run chose.
        environment = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
        environment.update(JUPYTERLAB_SETTINGS_DIR=str(settings),
                           JUPYTERLAB_WORKSPACES_DIR=str(self.scratch / "workspaces"))
        if kernel_threads is not None:  # fewer threads where other work shares the cores
            environment.update(OMP_NUM_THREADS=str(kernel_threads),
                               MKL_NUM_THREADS=str(kernel_threads))
        self.log = self.scratch / "server.log"
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root",
                 "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}",
                 f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={self.root}",
                 "--LabApp.expose_app_in_browser=True"],
                env=environment, stdout=log, stderr=subprocess.STDOUT)
        self.wait_until_up(startup_timeout_s)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def api(self, path: str):
        with urllib.request.urlopen(f"{self.base}/api/{path}?token={self.token}",
                                    timeout=10) as answer:
            return json.load(answer)

    def wait_until_up(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"JupyterLab stopped at start: {self.log.read_text()[-2000:]}")
            try:
                self.api("status")
                return
            except OSError:
                time.sleep(0.5)
        self.close()
        raise RuntimeError(f"JupyterLab did not answer within {timeout_s:.0f} s")

    def url(self, notebook: str) -> str:
        return f"{self.base}/lab/tree/{notebook}?token={self.token}&reset"

    def kernel_pid(self, notebook: str) -> int | None:
        """The process id of the kernel of ``notebook``'s session, read off ``/proc``."""
        kernels = [s["kernel"]["id"] for s in self.api("sessions") if s["path"] == notebook]
        if not kernels:
            return None
        for process in Path("/proc").glob("[0-9]*"):
            try:
                command = (process / "cmdline").read_bytes()
            except OSError:
                continue
            if f"kernel-{kernels[0]}.json".encode() in command:
                return int(process.name)
        return None

    def shut_down_kernels(self) -> None:
        for session in self.api("sessions"):
            request = urllib.request.Request(
                f"{self.base}/api/sessions/{session['id']}?token={self.token}", method="DELETE")
            urllib.request.urlopen(request, timeout=30).close()

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        shutil.rmtree(self.scratch, ignore_errors=True)

    def __enter__(self) -> "JupyterLab":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass
class BrowserRun:
    """What the pass found in one notebook: problems (empty: it passed) and what it did."""

    notebook: str
    problems: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)  # "control: what happened", in order
    screenshots: list[Path] = field(default_factory=list)
    budget: NotebookRun | None = None  # measured after Run All
    peak_with_controls_mib: float | None = None  # the kernel's peak once every control moved

    def report(self) -> str:
        lines = [f"{self.notebook}: " + ("passed" if not self.problems else
                                         f"{len(self.problems)} problem(s)")]
        lines += [f"  problem: {problem}" for problem in self.problems]
        lines += [f"  control: {change}" for change in self.changed]
        if self.peak_with_controls_mib is not None:
            lines.append(f"  kernel peak with every control moved: "
                         f"{self.peak_with_controls_mib:,.0f} MiB")
        return "\n".join(lines)


# The page-side half of the pass, run with page.evaluate. `notebook()` is the open notebook
# panel; cells are numbered as nbval numbers them (code cells only, from 0).
PAGE_SCRIPT = r"""
(() => {
  const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));
  const notebook = () => window.jupyterapp.shell.currentWidget;
  const codeCells = () => notebook().content.widgets.filter(cell => cell.model.type === 'code');
  const kernel = () => notebook().sessionContext.session?.kernel;
  const pending = () => codeCells().some(cell => (cell.promptNode?.textContent || '').includes('*'));
  const CONTROLS = ['.widget-slider', '.widget-dropdown', '.widget-checkbox', '.widget-toggle-buttons',
                    '.widget-toggle-button', '.widget-radio', '.widget-text', '.widget-inline-hbox input',
                    '.widget-button', '.widget-readout'];
  // What a student reads in a cell's output, without the controls themselves (a slider's own
  // readout changes when it moves; that is no new output): text and every picture.
  const fingerprint = node => {
    const copy = node.cloneNode(true);
    copy.querySelectorAll(CONTROLS.join(',')).forEach(control => control.remove());
    const pictures = [...copy.querySelectorAll('img')].map(img => img.src);
    const canvases = [...node.querySelectorAll('canvas')].map(canvas => canvas.toDataURL());
    const text = [copy.innerText, ...pictures, ...canvases].join('\u0000');
    let hash = 0;  // a 32-bit rolling hash: equal outputs, equal numbers
    for (let i = 0; i < text.length; i++) hash = (Math.imul(hash, 31) + text.charCodeAt(i)) | 0;
    return `${text.length}:${hash}`;
  };
  // tqdm's "[00:05<00:12, ...]" (elapsed<left), or fltutor's "about 12 s left".
  const PROGRESS = /<\d+:\d\d|\d+ s left/;
  const progressSeen = new Set();
  window.fltutorPass = {
    async ready() {
      while (!window.jupyterapp || !notebook() || !notebook().sessionContext) await sleep(200);
      await notebook().context.ready;
      await notebook().sessionContext.ready;
      while (kernel()?.status !== 'idle') await sleep(200);
    },
    // Starts Run All and returns at once (the command's promise ends with the last cell):
    // settle() watches the cells while they run.
    runAll() { window.jupyterapp.commands.execute('notebook:run-all-cells'); },
    // Resolves once the kernel has been idle, with no cell waiting to run, for quietMs. On
    // the way it notes each running cell that showed progress with the time left.
    async settle(quietMs) {
      let quietSince = null;
      for (;;) {
        await sleep(100);
        const running = codeCells().findIndex(cell => (cell.promptNode?.textContent || '').includes('*'));
        if (running >= 0 && PROGRESS.test(codeCells()[running].outputArea.node.innerText))
          progressSeen.add(running);
        if (kernel()?.status === 'idle' && !pending()) {
          quietSince = quietSince ?? Date.now();
          if (Date.now() - quietSince >= quietMs) return;
        } else {
          quietSince = null;
        }
      }
    },
    cells() {
      return codeCells().map(cell => ({
        count: cell.model.executionCount,
        timing: cell.model.getMetadata('execution') || null,
        outputs: cell.model.outputs.toJSON().map(output => ({
          type: output.output_type, ename: output.ename || null, evalue: output.evalue || null,
          widget: !!(output.data && output.data['""" + WIDGET_VIEW + r"""'])})),
        text: cell.outputArea.node.innerText,
        progress: progressSeen.has(codeCells().indexOf(cell)),
        widgetsDrawn: cell.outputArea.node.querySelectorAll('.jupyter-widgets').length,
      }));
    },
    // Tags every control in the cells' outputs with data-fltutor-control="cell.n" and lists them.
    controls() {
      const found = [];
      codeCells().forEach((cell, number) => {
        const selector = ['.widget-slider .noUi-handle', '.widget-dropdown select',
                          '.widget-checkbox input', '.widget-toggle-buttons button',
                          '.widget-radio-box input', '.widget-text input', 'button.widget-button',
                          'button.widget-toggle-button'].join(',');
        cell.outputArea.node.querySelectorAll(selector).forEach(element => {
          if (element.disabled || element.closest('.jupyter-widgets')?.classList.contains('mod-disabled')) return;
          if (element.matches('select') && element.options.length < 2) return;  // nothing to choose
          const id = `${number}.${found.filter(c => c.cell === number).length}`;
          element.setAttribute('data-fltutor-control', id);
          const widget = element.closest('.jupyter-widgets');
          const label = (widget?.querySelector('.widget-label')?.innerText || element.innerText ||
                         element.getAttribute('title') || '').trim();
          const kind = element.matches('select') ? 'dropdown'
                     : element.matches('.noUi-handle') ? 'slider'
                     : element.matches('input[type=checkbox]') ? 'checkbox'
                     : element.matches('input[type=radio]') ? 'radio'
                     : element.matches('input') ? 'text'
                     : element.closest('.widget-toggle-buttons') || element.matches('.widget-toggle-button')
                       ? 'toggle' : 'button';
          found.push({id, cell: number, kind, label,
                      options: kind === 'dropdown' ? element.options.length : null,
                      selected: kind === 'dropdown' ? element.selectedIndex : null,
                      atMax: kind === 'slider' && element.getAttribute('aria-valuenow') === element.getAttribute('aria-valuemax'),
                      pressed: element.classList.contains('mod-active') || element.checked || false});
        });
      });
      return found;
    },
    fingerprint(number) { return fingerprint(codeCells()[number].outputArea.node); },
    // JupyterLab's words for a widget it could not show, and ipywidgets' error box, per cell.
    widgetErrors() {
      return codeCells().flatMap((cell, number) => {
        const node = cell.outputArea.node;
        const boxes = node.querySelectorAll('.jupyter-widgets-error-widget').length;
        const words = (node.innerText.match(/Error displaying widget[^\n]*/g) || []);
        return [...words, ...(boxes ? [`${boxes} widget(s) drawn as ipywidgets' error box`] : [])]
          .map(text => `Cell ${number}: ${text}`);
      });
    },
    scrollToTop() {
      notebook().content.node.querySelectorAll('*').forEach(node => { if (node.scrollTop) node.scrollTop = 0; });
      notebook().content.node.scrollTop = 0;
    },
    // The height of all the cells: the notebook scrolls inside its panel, not the page.
    height() {
      const panes = notebook().content.node.querySelectorAll('.jp-WindowedPanel-inner, .jp-WindowedPanel-viewport');
      return Math.max(notebook().content.node.scrollHeight, ...[...panes].map(pane => pane.scrollHeight));
    },
  };
})()
"""


class NotebookPage:
    """One notebook open in the browser, and the pass's steps on it."""

    def __init__(self, browser, lab: JupyterLab, notebook: str, timeout_s: float):
        self.lab, self.notebook, self.timeout_ms = lab, notebook, timeout_s * 1000
        self.page = browser.new_page(viewport=VIEWPORT)
        self.page.set_default_timeout(self.timeout_ms)
        self.console_errors: list[str] = []
        self.page.on("console", self.listen)
        self.page.on("pageerror",
                     lambda error: self.console_errors.append(str(error).splitlines()[0]))
        self.page.goto(lab.url(notebook))
        self.page.wait_for_function("() => window.jupyterapp !== undefined")
        self.page.evaluate(PAGE_SCRIPT)
        self.call("ready")

    def listen(self, message) -> None:
        if message.type == "error" and WIDGET_CONSOLE_ERROR.search(message.text):
            self.console_errors.append(message.text.splitlines()[0])

    def call(self, step: str, *args):
        arguments = ", ".join(json.dumps(a) for a in args)
        return self.page.evaluate(f"async () => await window.fltutorPass.{step}({arguments})")

    def settle(self) -> None:
        self.page.wait_for_timeout(300)  # let a change reach the kernel before watching it
        self.call("settle", QUIET_S * 1000)

    def screenshot(self, path: Path, cell: int | None = None) -> Path:
        """The whole notebook, or the output of code cell ``cell``, drawn in a page tall enough
        to hold it whole (the notebook scrolls inside JupyterLab's panel, not the page)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.page.set_viewport_size({"width": VIEWPORT["width"],
                                     "height": min(int(self.call("height")) + 200, 30000)})
        try:
            if cell is None:
                self.call("scrollToTop")
                self.page.wait_for_timeout(200)
                self.page.screenshot(path=str(path))
            else:
                self.page.locator(".jp-Notebook .jp-CodeCell").nth(cell).locator(
                    ".jp-Cell-outputArea").first.screenshot(path=str(path))
        finally:
            self.page.set_viewport_size(VIEWPORT)
        return path

    def change_and_compare(self, control: dict) -> tuple[str, bool]:
        """Change ``control``, wait for the kernel; its cell's output before, and whether it
        changed."""
        before = self.call("fingerprint", control["cell"])
        self.change(control)
        self.settle()
        return before, self.call("fingerprint", control["cell"]) != before

    def change(self, control: dict) -> None:
        """Change one control as a student would: with the mouse or the keyboard."""
        element = self.page.locator(f"[data-fltutor-control='{control['id']}']")
        element.scroll_into_view_if_needed()
        if control["kind"] == "dropdown":  # the last option (the first, if the last is chosen):
            last = control["options"] - 1  # an explorer's cached runs tend to come first
            element.select_option(index=last if control["selected"] != last else 0)
        elif control["kind"] == "slider":
            element.focus()
            self.page.keyboard.press("ArrowLeft" if control["atMax"] else "ArrowRight")
        elif control["kind"] == "text":
            element.fill(element.input_value() + "1")
            element.press("Enter")
        else:  # check box, radio button, toggle, button
            element.click()


def check_notebook(browser, lab: JupyterLab, notebook: str, screenshots: Path | None = None,
                   timeout_s: float = 900, long_cell_s: float = LONG_CELL_S) -> BrowserRun:
    """Run one notebook of ``lab``'s folder in ``browser`` and check it (see the module's text);
    a cell that runs ``long_cell_s`` or more must show its progress."""
    result = BrowserRun(Path(notebook).stem)
    started = time.perf_counter()
    page = NotebookPage(browser, lab, notebook, timeout_s)
    shots = screenshots / result.notebook if screenshots is not None else None
    try:
        page.call("runAll")
        page.settle()
        cells = page.call("cells")
        pid = lab.kernel_pid(notebook)
        result.problems += rendering_problems(cells, page)
        usage, run_all_s = (kernel_usage(pid) if pid is not None else None,
                            time.perf_counter() - started)
        if shots is not None:
            result.screenshots.append(page.screenshot(shots / "after_run_all.png"))
        if not result.problems:  # a notebook that stopped half-way has no controls to trust
            move_every_control(page, result, shots)
        result.problems += silent_long_cells(cells, long_cell_s)
        after_controls = kernel_usage(pid) if pid is not None else None
        result.peak_with_controls_mib = after_controls.peak_mib if after_controls else None
        result.budget = NotebookRun(result.notebook, run_all_s,
                                    [CellTime(cell_seconds(cell["timing"]), None)
                                     for cell in cells if cell_seconds(cell["timing"])], usage)
        result.problems += [f"the browser could not make a widget: {text}"
                            for text in page.console_errors]
    finally:
        page.page.close()
        lab.shut_down_kernels()
    return result


def rendering_problems(cells: list[dict], page: NotebookPage) -> list[str]:
    """Tracebacks, cells Run All never reached, and widgets the page failed to draw."""
    problems = []
    for number, cell in enumerate(cells):
        for output in cell["outputs"]:
            if output["type"] == "error":
                problems.append(f"Cell {number} raised {output['ename']}: {output['evalue']} "
                                f"(its output: {cell['text'][:400]!r})")
        if cell["count"] is None and not any("Cell" in p and "raised" in p for p in problems):
            problems.append(f"Cell {number} did not run")
        views = sum(output["widget"] for output in cell["outputs"])
        if views and not cell["widgetsDrawn"]:
            problems.append(f"Cell {number}: {views} widget(s) shown as text, not drawn "
                            f"(no widget manager in the page?): {cell['text'][:120]!r}")
    problems += page.call("widgetErrors")
    return problems


def silent_long_cells(cells: list[dict], long_cell_s: float) -> list[str]:
    """Cells that ran ``long_cell_s`` or more without ever showing how long was left."""
    return [f"Cell {number} ran {seconds:.0f} s without showing its progress and the time left "
            f"(a tqdm bar, or a line 'about N s left')"
            for number, cell in enumerate(cells)
            if (seconds := cell_seconds(cell["timing"]) or 0) >= long_cell_s
            and not cell["progress"]]


def move_every_control(page: NotebookPage, result: BrowserRun, shots: Path | None) -> None:
    """Change each control in turn; fail a change after which the cell's output is the same.

    A control whose change redraws nothing by itself is a setting of the cell's run button (its
    first button): once all of the cell's controls have been changed, the pass clicks that
    button and fails those settings if the output is still what it was before them. One run
    for all of a cell's settings, not one each, since an explorer's run takes up to a minute on
    two cores; so a setting the run ignores goes unnoticed where the run draws anything new.
    The cell's other buttons are clicked last, once each.
    """
    controls = page.call("controls")
    for cell in sorted({control["cell"] for control in controls}):
        in_cell = [control for control in controls if control["cell"] == cell]
        buttons = [control for control in in_cell if control["kind"] == "button"]
        settings, before_settings = [], None  # the controls that wait for the run button
        for step, control in enumerate(c for c in in_cell if c not in buttons):
            before, changed = page.change_and_compare(control)
            if changed:
                result.changed.append(f"{describe(control)}: the output changed")
            elif buttons:
                settings.append(control)
                before_settings = before_settings or before
            else:
                result.problems.append(f"{describe(control)}: changing it changed nothing in the "
                                       f"output")
            save_shot(page, result, shots, cell, f"{step:02d}_{control['kind']}")
        for button in buttons:
            before, changed = page.change_and_compare(button)
            if settings and button is buttons[0]:
                changed = page.call("fingerprint", cell) != before_settings
                for control in settings:
                    if changed:
                        result.changed.append(f"{describe(control)}: the output changed after "
                                              f"{button['label']!r} ran")
                    else:
                        result.problems.append(f"{describe(control)}: changing it, then clicking "
                                               f"{button['label']!r}, changed nothing in the "
                                               f"output")
            if changed:
                result.changed.append(f"{describe(button)}: the output changed")
            else:
                result.problems.append(f"{describe(button)}: clicking it changed nothing in the "
                                       f"output")
            save_shot(page, result, shots, cell, f"button_{button['id']}")


def describe(control: dict) -> str:
    return f"Cell {control['cell']} {control['kind']} {control['label']!r}"


def save_shot(page: NotebookPage, result: BrowserRun, shots: Path | None, cell: int,
              step: str) -> None:
    if shots is not None:
        result.screenshots.append(page.screenshot(shots / f"cell{cell:02d}_{step}.png", cell))


def cell_seconds(timing: dict | None) -> float | None:
    """A cell's seconds from the timestamps JupyterLab records (``recordTiming``)."""
    if not timing or "shell.execute_reply" not in timing or "iopub.execute_input" not in timing:
        return None
    seconds = [datetime.fromisoformat(timing[key].replace("Z", "+00:00")).timestamp()
               for key in ("iopub.execute_input", "shell.execute_reply")]
    return seconds[1] - seconds[0]


class Chromium:
    """Playwright's Chromium, launched from the executable this machine has (no download)."""

    def __enter__(self):
        from playwright.sync_api import sync_playwright
        reason = missing()
        if reason is not None:
            raise RuntimeError(f"the browser pass cannot run: {reason}")
        self.playwright = sync_playwright().start()
        self.browser = self.playwright.chromium.launch(executable_path=chromium_path(),
                                                       args=CHROMIUM_FLAGS)
        return self.browser

    def __exit__(self, *exc) -> None:
        self.browser.close()
        self.playwright.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    notebook_options(parser)
    parser.add_argument("--screenshots", type=Path, help="a folder for the screenshots")
    parser.add_argument("--kernel-threads", type=positive_int, default=None,
                        help="torch threads in each kernel (default: one per core)")
    args = parser.parse_args()
    chosen = chosen_notebooks(parser, args)
    reason = missing()
    if reason is not None:
        parser.exit(2, f"the browser pass cannot run here: {reason}\n")

    print(budgets_line() + " Each notebook runs once, in JupyterLab in Chromium.\n")
    results = []
    with Chromium() as browser, JupyterLab(args.folder, args.kernel_threads) as lab:
        for name in chosen:
            result = check_notebook(browser, lab, f"{name}.ipynb", args.screenshots)
            results.append(result)
            print(result.report(), flush=True)
    print()
    print(budget_table([r.budget for r in results if r.budget], args.markdown))
    if any(result.problems for result in results):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
