"""Every notebook in JupyterLab in Chromium, each control moved: ``benchmarks/notebook_browser.py``.

Where the browser pass can run (Chromium and playwright installed), it runs each notebook in
place of nbval's run of the same notebook: a traceback in any cell fails it just as nbval would,
and it also fails a widget the page cannot draw or a control that changes nothing. Its kernel's
peak memory after Run All is held to the same ceiling, and its figures go into the same
"notebook budgets" table; once every control has moved, the peak must still fit a Binder
session (2 GiB). ``$FLTUTOR_BROWSER`` chooses (see ``notebooks/conftest.py``): ``auto`` (the default: the
browser where it can run, nbval elsewhere), ``off`` (nbval only) or ``required`` (CI: a
machine without the browser fails instead of falling back). Screenshots go to
``$FLTUTOR_SCREENSHOTS`` (default: ``browser-screenshots/`` at the repository's root).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from notebook_budget import BINDER_SESSION_MIB
from notebooks.conftest import BROWSER_RUNS, CEILING, browser_mode, notebook_browser

HERE = Path(__file__).resolve().parent
SCREENSHOTS = Path(os.environ.get("FLTUTOR_SCREENSHOTS", HERE.parent / "browser-screenshots"))


@pytest.fixture(scope="module")
def lab():
    """One Chromium and one JupyterLab (on a scratch copy of this folder) for every notebook."""
    with notebook_browser.Chromium() as browser, notebook_browser.JupyterLab(HERE) as server:
        yield browser, server


@pytest.mark.parametrize("notebook", sorted(path.name for path in HERE.glob("*.ipynb")))
def test_notebook_in_browser(notebook, request):
    mode, reason = browser_mode()
    if reason is not None and mode == "required":
        pytest.fail(f"FLTUTOR_BROWSER=required, but the browser pass cannot run: {reason}",
                    pytrace=False)
    if reason is not None:
        pytest.skip(f"browser pass off ({reason}): nbval runs {notebook} instead")
    browser, server = request.getfixturevalue("lab")
    result = notebook_browser.check_notebook(browser, server, notebook, SCREENSHOTS)
    request.config.stash[BROWSER_RUNS].append(result)
    assert not result.problems, result.report()
    ceiling = request.config.stash[CEILING]
    usage = result.budget.usage
    assert usage is not None or mode != "required", "the kernel's memory could not be read"
    if usage is not None and usage.peak_mib > ceiling:
        pytest.fail(f"{notebook}: the kernel's peak resident memory after Run All was "
                    f"{usage.peak_mib:,.0f} MiB, above the ceiling of {ceiling:,.0f} MiB: run "
                    f"lighter settings in the notebook", pytrace=False)
    played = result.peak_with_controls_mib
    if played is not None and played > BINDER_SESSION_MIB:
        pytest.fail(f"{notebook}: with every control moved, the kernel's peak resident memory "
                    f"was {played:,.0f} MiB, above a Binder session's "
                    f"{BINDER_SESSION_MIB:,.0f} MiB: make its explorers lighter", pytrace=False)
