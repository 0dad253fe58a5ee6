"""The browser pass (``benchmarks/notebook_browser.py``) against notebooks built to break it.

A checker that never fails proves nothing, so each kind of break a student would meet is built
here on purpose, in a notebook of two or three cells, next to a notebook that works: a cell that
raises, a widget whose JavaScript model the page cannot load, a slider that redraws nothing, a
button wired to nothing, and a long cell that shows no progress. The pass must pass the working
notebook (moving its every control) and name each break. Runs where the browser pass runs (``$FLTUTOR_BROWSER``, see
``notebooks/conftest.py``); it fails rather than skips where that is ``required``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import notebook_browser  # noqa: E402

WORKING = [
    "import ipywidgets as w\nfrom IPython.display import display",
    # a slider that redraws its output itself
    "digit = w.IntSlider(3, min=0, max=9, description='digit')\nshown = w.Output()\n"
    "def draw(change=None):\n    shown.clear_output()\n"
    "    with shown:\n        print('the digit is', digit.value)\n"
    "digit.observe(draw, names='value')\ndraw()\ndisplay(w.VBox([digit, shown]))",
    # a setting that a button reads: nothing changes until the button runs
    "choice = w.Dropdown(options=['median', 'mean'], description='rule')\n"
    "run = w.Button(description='run')\nruns = w.Output()\n"
    "def go(_):\n    runs.clear_output()\n"
    "    with runs:\n        print('ran with', choice.value)\n"
    "run.on_click(go)\ndisplay(w.VBox([choice, run, runs]))",
    # a long cell that shows its progress and the time left
    "import time\nfrom tqdm.auto import tqdm\nfor _ in tqdm(range(8), desc='rounds'):\n"
    "    time.sleep(0.5)",
]
LONG_CELL_S = 3  # here; the course's notebooks are held to notebook_browser.LONG_CELL_S

BROKEN = {
    "raises": (["x = 1", "assert x == 2, 'x is not two'", "print('never reached')"],
               ["Cell 1 raised AssertionError: x is not two"]),
    "missing_model": (
        ["import ipywidgets as w\nfrom traitlets import Unicode\n"
         "class NoSuchWidget(w.DOMWidget):\n"
         "    _model_module = Unicode('fltutor-no-such-module').tag(sync=True)\n"
         "    _model_name = Unicode('NoSuchModel').tag(sync=True)\n"
         "    _view_module = Unicode('fltutor-no-such-module').tag(sync=True)\n"
         "    _view_name = Unicode('NoSuchView').tag(sync=True)\n"
         "NoSuchWidget()"],
        ["Cell 0: 1 widget(s) drawn as ipywidgets' error box",
         "the browser could not make a widget"]),
    "deaf_controls": (
        ["import ipywidgets as w\nw.IntSlider(2, description='alone')",
         "w.Button(description='does nothing')"],
        ["Cell 0 slider 'alone': changing it changed nothing in the output",
         "Cell 1 button 'does nothing': clicking it changed nothing in the output"]),
    "silent_long_cell": (["import time\ntime.sleep(4)"],
                         ["Cell 0 ran 4 s without showing its progress and the time left"]),
}


def write_notebook(folder: Path, name: str, sources: list[str]) -> None:
    notebook = new_notebook(cells=[new_code_cell(source) for source in sources])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
    nbformat.write(notebook, folder / f"{name}.ipynb")


@pytest.fixture(scope="module")
def checked(tmp_path_factory) -> dict[str, notebook_browser.BrowserRun]:
    mode, reason = notebook_browser.browser_mode()
    if reason is not None and mode == "required":
        pytest.fail(f"FLTUTOR_BROWSER=required, but the browser pass cannot run: {reason}",
                    pytrace=False)
    if reason is not None:
        pytest.skip(f"browser pass off: {reason}")
    folder = tmp_path_factory.mktemp("notebooks")
    write_notebook(folder, "working", WORKING)
    for name, (sources, _) in BROKEN.items():
        write_notebook(folder, name, sources)
    shots = tmp_path_factory.mktemp("screenshots")
    with notebook_browser.Chromium() as browser, notebook_browser.JupyterLab(folder) as lab:
        return {name: notebook_browser.check_notebook(browser, lab, f"{name}.ipynb", shots,
                                                      timeout_s=120, long_cell_s=LONG_CELL_S)
                for name in ["working", *BROKEN]}


def test_a_working_notebook_passes_with_every_control_moved(checked):
    working = checked["working"]
    assert working.problems == []
    assert working.changed == [
        "Cell 1 slider 'digit': the output changed",
        "Cell 2 dropdown 'rule': the output changed after 'run' ran",
        "Cell 2 button 'run': the output changed",
    ]
    assert working.budget.usage is None or working.budget.usage.peak_mib > 0
    assert all(path.stat().st_size > 0 for path in working.screenshots)


@pytest.mark.parametrize("name", list(BROKEN))
def test_each_break_is_named(checked, name):
    problems = checked[name].problems
    for expected in BROKEN[name][1]:
        assert any(problem.startswith(expected) for problem in problems), (expected, problems)
