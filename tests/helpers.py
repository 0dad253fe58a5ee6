"""Helpers shared by the test modules (plain functions; fixtures live in conftest.py)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

from fltutor.cli import main
from fltutor.recipes.crpa import run_crpa


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of ``fltutor ARGV`` run in this process."""
    try:
        code = main(argv)
    except SystemExit as exit:  # argparse's own errors and --version
        code = exit.code
    out, err = capsys.readouterr()
    return code, out, err


def record_runs(monkeypatch, runner: Callable[..., dict] = run_crpa) -> list[str]:
    """Wrap a recipe's run function (the one a sweep calls per run, ``run_crpa`` by default) in
    its module; the returned list fills with the names of the runs it really does."""
    done: list[str] = []

    def counting_runner(config, out_dir, *args, **kwargs):
        done.append(Path(out_dir).name)
        return runner(config, out_dir, *args, **kwargs)

    monkeypatch.setattr(sys.modules[runner.__module__], runner.__name__, counting_runner)
    return done


def replace_runs(monkeypatch, replacement: Callable[..., dict],
                 runner: Callable[..., dict] = run_crpa) -> None:
    """Put ``replacement`` in the place of a recipe's run function (to fail or stop a sweep)."""
    monkeypatch.setattr(sys.modules[runner.__module__], runner.__name__, replacement)


def forbid_runs(monkeypatch, runner: Callable[..., dict] = run_crpa) -> None:
    """Make any run of ``runner`` fail the test: for checks that must stop a sweep before its
    first run."""
    def no_run(config, out_dir, *args, **kwargs):
        raise AssertionError(f"a run started: {out_dir}")

    replace_runs(monkeypatch, no_run, runner)
