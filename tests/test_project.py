"""The project's promises outside the package: the README's test command is what CI runs, every
environment file installs the same packages, committed notebooks carry no outputs, and that test
run checks every notebook's peak memory.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: no TOML reader in the standard library
    tomllib = None

ROOT = Path(__file__).resolve().parent.parent
ENVIRONMENT_FILES = [ROOT / "environment.yml", ROOT / "binder" / "environment.yml"]


def fenced_bash_lines(markdown: str) -> list[str]:
    """The lines inside the ```bash blocks of a Markdown text."""
    blocks = re.findall(r"^```bash\n(.*?)^```", markdown, flags=re.MULTILINE | re.DOTALL)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


def package_name(requirement: str) -> str:
    """``"torch>=2.1"`` -> ``"torch"``: the name alone, normalised as pip does (PEP 503)."""
    name = re.match(r"[A-Za-z0-9._-]+", requirement.strip()).group(0)
    return re.sub(r"[-_.]+", "-", name).lower()


def pyproject_packages() -> set[str]:
    """The packages of the core and of the test extra; an extra of fltutor's own that the test
    extra names (``fltutor[flower]``) counts as the packages it installs."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    requirements = list(project["dependencies"])
    for requirement in extras["test"]:
        own_extra = re.fullmatch(r"fltutor\[([a-z-]+)\]", requirement)
        requirements += extras[own_extra.group(1)] if own_extra else [requirement]
    return {package_name(r) for r in requirements}


def pip_section(environment_yml: str) -> list[str]:
    """The entries under ``- pip:`` in a conda environment file (a line-based reading)."""
    entries, inside, pip_indent = [], False, 0
    for line in environment_yml.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        indent = len(line) - len(line.lstrip())
        if stripped == "- pip:":
            inside, pip_indent = True, indent
        elif inside and indent > pip_indent and stripped.startswith("- "):
            entries.append(stripped[2:].strip())
        elif inside:
            inside = False
    return entries


def test_readme_test_command_is_what_ci_runs():
    commands = [line for line in fenced_bash_lines((ROOT / "README.md").read_text())
                if "pytest" in line]
    assert commands, "README.md shows no test command"
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    for command in commands:
        assert command in ci_lines


@pytest.mark.parametrize("path", ENVIRONMENT_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_environment_files_install_the_pyproject_packages(path):
    if tomllib is None:
        pytest.skip("reading pyproject.toml needs Python 3.11's tomllib")
    entries = pip_section(path.read_text())
    packages = {package_name(e) for e in entries if not e.startswith("-")}
    assert packages == pyproject_packages()
    assert "python=3.11" in path.read_text()


def test_binder_takes_cpu_builds_of_torch():
    assert pip_section((ROOT / "binder" / "environment.yml").read_text())[0] == (
        "--extra-index-url https://download.pytorch.org/whl/cpu")


def test_binder_badge_opens_the_first_notebook_of_this_repository():
    if tomllib is None:
        pytest.skip("reading pyproject.toml needs Python 3.11's tomllib")
    badge = re.search(r"\(https://mybinder\.org/v2/gh/([^/]+/[^/]+)/HEAD\?labpath=([^)]+)\)",
                      (ROOT / "README.md").read_text())
    assert badge, "README.md has no Binder badge"
    repository = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"][
        "Repository"]
    assert repository == f"https://github.com/{badge.group(1)}"
    assert badge.group(2).replace("%2F", "/") == "notebooks/00_start_here.ipynb"
    assert (ROOT / "notebooks" / "00_start_here.ipynb").is_file()


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_binder_scripts_are_executable_and_start_runs_the_server_command():
    for script in ("postBuild", "start"):
        assert os.access(ROOT / "binder" / script, os.X_OK), f"binder/{script} is not executable"
    environment = {k: v for k, v in os.environ.items() if k != "FLTUTOR_DATA"}
    result = subprocess.run(["bash", str(ROOT / "binder" / "start"), sys.executable, "-c",
                             "import os; print(os.environ['FLTUTOR_DATA'])"],
                            capture_output=True, text=True, env=environment, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith(".fltutor-data")


def committed_notebooks() -> list[Path]:
    """Notebooks that git tracks (all notebooks on disk when this is not a git checkout)."""
    try:
        listed = subprocess.run(["git", "ls-files", "--", "notebooks/*.ipynb"], cwd=ROOT,
                                capture_output=True, text=True, check=True, timeout=60).stdout
        return [ROOT / name for name in listed.split()]
    except (OSError, subprocess.SubprocessError):
        return sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("browser", ["off", "auto"])
def test_every_committed_notebook_gets_its_peak_memory_check(browser):
    # Collected as the README's test command collects (pyproject's options, from the root), with
    # tests/conftest.py among the doctest modules: two files named conftest.py must not clash.
    # Each notebook runs once: under nbval, or in the browser where the browser pass runs (its
    # test holds the kernel to the same ceiling), never both.
    done = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q",
                           "tests/conftest.py", "notebooks"], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, env={**os.environ, "FLTUTOR_BROWSER": browser})
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    by_nbval = {line.split("::")[0] for line in lines if line.endswith("::kernel peak memory")}
    in_browser = {f"notebooks/{line.split('[')[1].rstrip(']')}" for line in lines
                  if "::test_notebook_in_browser[" in line}
    cells_left = {line.split("::")[0] for line in lines if "::Cell " in line}
    expected = {f"notebooks/{path.name}" for path in committed_notebooks()}
    assert in_browser == expected  # collected in every mode; it skips where nbval runs instead
    browser_runs = browser == "auto" and notebook_browser_missing() is None
    assert by_nbval == (set() if browser_runs else expected)
    assert cells_left == by_nbval


def notebook_browser_missing() -> str | None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import notebook_browser
    return notebook_browser.missing()


def test_committed_notebooks_have_no_outputs():
    dirty = []
    for path in committed_notebooks():
        cells = json.loads(path.read_text())["cells"]
        for number, cell in enumerate(cells):
            if cell["cell_type"] == "code" and (cell.get("outputs") or
                                                cell.get("execution_count") is not None):
                dirty.append(f"{path.name} cell {number}")
    assert not dirty, "strip the outputs of: " + ", ".join(dirty)


def test_readme_lab_command_serves_the_repository_and_opens_the_first_notebook():
    # Served from notebooks/, the lab could not open the package source the notebooks cite.
    commands = [line for line in fenced_bash_lines((ROOT / "README.md").read_text())
                if "jupyter lab" in line]
    assert commands, "README.md shows no command that opens the lab"
    arguments = commands[0].split("jupyter lab", 1)[1].split()
    assert "--ServerApp.root_dir=." in arguments
    opened = [a for a in arguments if a.endswith(".ipynb")]
    assert opened == ["notebooks/00_start_here.ipynb"] and (ROOT / opened[0]).is_file()
