"""Helpers shared by the test modules (plain functions; fixtures live in conftest.py)."""

from __future__ import annotations

from pathlib import Path

import fltutor.sweep as sweep
from fltutor.cli import main


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of ``fltutor ARGV`` run in this process."""
    try:
        code = main(argv)
    except SystemExit as exit:  # argparse's own errors and --version
        code = exit.code
    out, err = capsys.readouterr()
    return code, out, err


def record_runs(monkeypatch) -> list[str]:
    """Wrap the sweep's per-run function; the returned list fills with the runs it really does."""
    done: list[str] = []
    real_run_crpa = sweep.run_crpa

    def counting_run_crpa(config, out_dir, *args, **kwargs):
        done.append(Path(out_dir).name)
        return real_run_crpa(config, out_dir, *args, **kwargs)

    monkeypatch.setattr(sweep, "run_crpa", counting_run_crpa)
    return done
