"""The benchmarks still run against the current package (a smoke test: no timing is checked).

A benchmark is only run by hand, so a change to the package can break it unnoticed; this runs
each one at its smallest scale and checks that it prints a full table of positive numbers.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def run_benchmark(script: str, *options: str) -> list[list[str]]:
    """Run ``benchmarks/SCRIPT`` on the CPU with ``--markdown``; the rows of its table."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, script, "--device", "cpu", "--markdown", *options],
                          cwd=BENCHMARKS, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    table = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in table[2:]]


def test_crpa_benchmark_times_every_part_with_and_without_dp():
    rows = run_benchmark("bench_crpa.py", "--scales", "quick", "--rounds", "1",
                         "--max-per-class", "5")
    assert [row[:3] for row in rows] == [["quick", "cpu", "no"], ["quick", "cpu", "yes"]]
    for row in rows:
        parts, per_round = [float(cell) for cell in row[4:10]], float(row[10])
        assert parts[0] > 0 and parts[1] > 0  # honest training and the GAN were timed
        assert per_round == pytest.approx(sum(parts), abs=0.01)
    assert float(rows[1][11]) > 0  # DP / no DP


def test_fedavg_benchmark_times_engine_and_loop():
    rows = run_benchmark("bench_fedavg.py", "--scales", "quick", "--rounds", "1")
    assert sorted(row[2] for row in rows) == ["engine", "plain loop"]
    assert all(float(row[4]) > 0 for row in rows)  # seconds per round
    assert all(float(row[6]) > 0 for row in rows if row[2] == "engine")  # plain / engine
