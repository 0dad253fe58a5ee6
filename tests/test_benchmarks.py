"""The benchmarks still run against the current package (a smoke test: no timing is checked).

A benchmark is only run by hand, so a change to the package can break it unnoticed; this runs
each one at its smallest scale and checks that it prints a full table of positive numbers. The
notebook budget, and the memory check that notebooks/conftest.py adds to nbval's run, are tried
on tiny notebooks written here, not on the course's (those take minutes).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"


def run_benchmark(script: str, *options: str) -> list[list[str]]:
    """Run ``benchmarks/SCRIPT`` on the CPU with ``--markdown``; the rows of its table."""
    return markdown_rows(benchmark_output(script, *options))


def benchmark_output(script: str, *options: str) -> str:
    """What ``benchmarks/SCRIPT`` prints on the CPU with ``--markdown``, once it succeeded."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, script, "--device", "cpu", "--markdown", *options],
                          cwd=BENCHMARKS, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return done.stdout


def markdown_rows(text: str, start: int = 2) -> list[list[str]]:
    """The rows (under the header and its rule) of the Markdown table in ``text``; with
    ``start=0``, the header and the rule too."""
    table = [line for line in text.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in table[start:]]


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


def test_aggregators_benchmark_times_every_rule():
    from fltutor.aggregators import AGGREGATORS

    rows = run_benchmark("bench_aggregators.py", "--quick", "--rounds", "1")
    assert [row[3] for row in rows] == ["10", "30"]  # clients
    assert all(len(row) == 4 + len(AGGREGATORS.names()) for row in rows)
    assert all(float(cell) > 0 for row in rows for cell in row[4:])


def test_byzantine_benchmark_times_every_scenario_and_its_rule():
    rows = run_benchmark("bench_byzantine.py", "--rounds", "1", "--max-per-class", "3",
                         "--model", "classifier")
    assert ["cpu", "3 x sign-flip", "krum"] in [row[:3] for row in rows]
    for row in rows:
        per_round, rule = float(row[3]), float(row[4])
        assert 0 < rule < per_round  # the aggregation is timed inside the round


def test_inversion_benchmark_reports_every_method_image_by_image():
    rows = run_benchmark("bench_inversion.py", "--images", "2", "--iterations", "2")
    assert [row[:4] for row in rows] == [["dlg", "lenet-dlg", "cpu", "2"],
                                         ["idlg", "lenet-dlg", "cpu", "2"],
                                         ["ig", "lenet5-wide", "cpu", "2"]]
    for row in rows:
        assert row[4].endswith("%") and float(row[7]) > 0  # share reached, median PSNR
    assert rows[1][8] == "100%"  # iDLG's label is exact


def test_curious_benchmark_times_every_attack_at_its_number_of_dummies():
    rows = run_benchmark("bench_curious.py", "--rounds", "1", "--max-per-class", "5",
                         "--iterations", "2")
    assert [row[:5] for row in rows] == [["cpu", "pixels", "1", "9", "2"],
                                         ["cpu", "pixels", "2", "18", "2"],
                                         ["cpu", "autoencoder", "1", "9", "2"]]
    for row in rows:
        assert all(float(cell) > 0 for cell in row[5:])  # build, reconstruction, round


def test_the_curious_study_tables_every_round_it_reconstructed_in(tmp_path):
    rows = run_benchmark("study_curious.py", "--out", str(tmp_path), "--seeds", "2",
                         "--conditions", "B=1", "sign-flip", "--rounds", "10",
                         "--max-per-class", "10", "--iterations", "3")
    # one row per condition and reconstructed round (the profile's rounds 1 and 10)
    assert [row[:2] for row in rows] == [["B=1", "1"], ["B=1", "10"], ["sign-flip", "1"],
                                         ["sign-flip", "10"]]
    for row in rows:
        rmse, control, gain, accuracy = (float(cell.split(" [")[0]) for cell in row[2:])
        assert 0 < rmse <= 2 and 0 < control <= 2 and 0 <= accuracy <= 1
        assert abs(gain - (control - rmse)) < 2e-3  # the mean gain is the means' difference
    assert len(list(tmp_path.iterdir())) == 4  # a folder per condition and seed, kept to resume


def test_client_dp_benchmark_times_rounds_with_and_without_client_level_dp():
    rows = run_benchmark("bench_client_dp.py", "--rounds", "1", "--max-per-class", "5")
    assert [row[:2] for row in rows] == [["cpu", "no DP"], ["cpu", "client-dp fixed"],
                                         ["cpu", "client-dp adaptive"]]
    for row in rows:
        round_s, aggregation_s, ratio = (float(cell) for cell in row[2:])
        assert 0 < aggregation_s < round_s and ratio > 0  # the aggregation is inside the round
    assert float(rows[0][4]) == 1  # no DP against itself


def test_dp_benchmark_times_every_grad_sample_mode_against_a_plain_step():
    output = benchmark_output("bench_dp.py", "--models", "lenet5", "--batches", "32",
                              "--rounds", "1")
    header, _, *rows = markdown_rows(output, start=0)
    modes = ["hooks", "functorch", "ew", "ghost"]
    assert header[4:] == ["plain s", *(f"{mode} {what}" for mode in modes for what in "sx")]
    assert [row[:4] for row in rows] == [["cpu", "lenet5", "61,706", "32"]]
    assert all(float(cell) > 0 for cell in rows[0][4:])  # no mode fails on LeNet-5; ratios > 0


@pytest.mark.parametrize("options, message", [
    ([], "--reference is missing: give the folder of a checkout of the CRPA study's repository "
         "(the one that holds experiments/)"),
    (["--reference", "no-such-folder", "--reference-python", sys.executable],
     "reference='no-such-folder' is not allowed: it has no experiments/federated_gan.py (give "
     "the folder of a checkout of the CRPA study's repository)"),
])
def test_reference_benchmark_refuses_a_missing_or_wrong_checkout_in_one_line(options, message):
    done = subprocess.run([sys.executable, "bench_vs_reference.py", *options], cwd=BENCHMARKS,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [message]  # no usage, no traceback
    assert done.stdout == ""


def tiny_notebook(folder: Path, name: str, *sources: str) -> None:
    """Write ``folder/NAME.ipynb`` with one markdown cell and a code cell per source."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    cells = [new_markdown_cell(f"# {name}")] + [new_code_cell(source) for source in sources]
    kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(new_notebook(cells=cells, metadata={"kernelspec": kernelspec}),
                   folder / f"{name}.ipynb")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads Linux's /proc")
def test_notebook_budget_measures_the_kernel_that_ran_the_cells(tmp_path):
    # 400 MiB written byte by byte is resident in the kernel, far above this test's own process
    tiny_notebook(tmp_path, "heavy", "import time\ntime.sleep(1.5)",
                  "block = b'x' * (400 * 2**20)\ndel block",
                  "total = sum(i * i for i in range(3 * 10**7))")
    tiny_notebook(tmp_path, "light", "x = 1")
    done = subprocess.run([sys.executable, "notebook_budget.py", "--folder", str(tmp_path),
                           "--markdown"], cwd=BENCHMARKS, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    rows = {row[0]: row for row in markdown_rows(done.stdout)}
    assert sorted(rows) == ["heavy", "light"]
    name, budget, slowest, cells, *figures = rows["heavy"]
    wall, cpu, peak, slowest_cpu, slowest_wall = [float(f.replace(",", "")) for f in figures]
    assert (budget, slowest, cells) == ("within", "Cell 2", "3")  # the sum computes; sleep waits
    assert wall >= 1.5  # the sleep
    assert 0.2 < slowest_cpu <= slowest_wall + 0.05 and slowest_cpu < cpu
    assert peak >= 400
    assert float(rows["light"][6].replace(",", "")) < 300  # each notebook has a kernel of its own


def test_notebook_budget_refuses_an_unknown_notebook_in_one_line(tmp_path):
    tiny_notebook(tmp_path, "only", "x = 1")
    done = subprocess.run([sys.executable, "notebook_budget.py", "--folder", str(tmp_path),
                           "--notebooks", "only,missing"], cwd=BENCHMARKS, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [f"notebooks='only,missing' is not allowed: use names "
                                        f"from only (the notebooks in {tmp_path})"]
    assert done.stdout == ""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads Linux's /proc")
def test_nbval_run_fails_the_notebook_whose_kernel_peaks_above_the_ceiling(tmp_path):
    # The repository's layout in miniature: the conftest, the module it imports, two notebooks.
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # this folder is the root, not the repo
    skip = shutil.ignore_patterns("*.ipynb", "__pycache__", "test_in_browser.py")
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks", ignore=skip)
    shutil.copytree(BENCHMARKS, tmp_path / "benchmarks", ignore=skip)
    tiny_notebook(tmp_path / "notebooks", "light", "x = 1", "y = x + 1")
    tiny_notebook(tmp_path / "notebooks", "heavy", "block = b'x' * (300 * 2**20)", "del block")
    env = {**os.environ, "FLTUTOR_NOTEBOOK_PEAK_MIB": "250",  # the light kernel holds ~60 MiB
           "FLTUTOR_BROWSER": "off"}  # nbval's own check (the browser pass has the same ceiling)
    done = subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "-p", "no:cacheprovider",
                           "-v", "notebooks"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)
    lines = done.stdout.splitlines()
    assert done.returncode == 1, done.stdout + done.stderr
    for notebook, outcome in [("light", "PASSED"), ("heavy", "FAILED")]:
        assert any(line.startswith(f"notebooks/{notebook}.ipynb::kernel peak memory {outcome}")
                   for line in lines)
    failure = [line for line in lines if line.startswith("heavy.ipynb: the kernel's peak")]
    assert len(failure) == 1 and failure[0].endswith(
        "above the ceiling of 250 MiB: run lighter settings in the notebook")
    assert "1 failed, 5 passed" in lines[-1]  # the four cells and the light notebook's peak
    summary = [line.split() for line in done.stdout.split("notebook budgets", 1)[1].splitlines()]
    assert ["heavy", "over:", "memory"] in [words[:3] for words in summary]
    assert ["light", "within"] in [words[:2] for words in summary]
