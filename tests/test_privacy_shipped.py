"""The privacy sweep that ships with notebook 07 (``notebooks/results/privacy_quick``) is whole
and current: every setting of the default grid in every scenario, made with the settings the code
would use today, and a fresh run of some of it gives the shipped numbers again.

When one of these fails after a change to a scenario, remake the folder with the command in
notebook 07 (``fltutor sweep privacy --profile quick --device cpu --out
notebooks/results/privacy_quick``; a folder of other settings is refused, so empty it first).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from fltutor.privacy import (PRIVACY_FILES, PRIVACY_RESULTS, SCENARIOS, attack_stops, dp_kinds,
                             privacy_table, run_privacy, settings_of, sweep_settings)

SHIPPED = Path(__file__).resolve().parents[1] / "notebooks" / "results" / "privacy_quick"
#: What ``fltutor sweep privacy --profile quick --device cpu`` shares with every run.
CLI_SHARED = dict(device="cpu", data_root=None, allow_fallback=False)


@pytest.fixture(scope="module")
def shipped() -> list[dict]:
    return PRIVACY_RESULTS.read(SHIPPED)


def test_the_shipped_sweep_holds_every_default_setting_in_every_scenario_once(shipped):
    wanted = {(kind, noise, clip, scenario, 0) for kind, noise, clip in settings_of(
        ["none", *dp_kinds()], None, None) for scenario in SCENARIOS}
    held = [(r["kind"], r["noise"], r["clip"], r["scenario"], r["seed"]) for r in shipped]
    assert len(held) == len(set(held)) == len(wanted) == 70
    assert set(held) == wanted
    assert all(r["rounds"] >= 1 and r["final_test_accuracy"] is not None for r in shipped)


def test_the_shipped_sweep_was_made_with_todays_scenario_settings():
    held = json.loads((SHIPPED / "sweep.json").read_text())
    assert held == json.loads(json.dumps(sweep_settings("quick", CLI_SHARED)))


def test_the_shipped_tables_are_those_of_the_shipped_results(shipped):
    assert all((SHIPPED / name).is_file() for name in PRIVACY_FILES)
    assert json.loads((SHIPPED / "privacy_table.json").read_text()) == json.loads(
        json.dumps(privacy_table(shipped)))
    assert json.loads((SHIPPED / "attack_stops.json").read_text()) == json.loads(
        json.dumps(attack_stops(shipped)))


def test_a_fresh_run_of_shipped_settings_gives_their_numbers_again(shipped, tmp_path):
    """The clean federation under local DP and the server's inversion under it, rerun here
    (about 15 s). Threads change float sums a little: accuracy to 0.02, PSNR to 1 dB."""
    fresh = run_privacy(tmp_path, kinds=["local-dp"], noises=[0.003], clips=[0.5],
                        scenarios=["clean", "inversion"], profile="quick", shared=CLI_SHARED,
                        progress=False)
    by_key = {(r["kind"], r["noise"], r["scenario"]): r for r in shipped}
    for run in fresh:
        key = (run["kind"], run["noise"], run["scenario"])
        expected = by_key[key]
        assert run["epsilon"] == pytest.approx(expected["epsilon"], rel=1e-6), key
        assert math.isclose(run["final_test_accuracy"], expected["final_test_accuracy"],
                            abs_tol=0.02), key
        if run["scenario"] == "inversion":
            assert abs(run["success"] - expected["success"]) < 1.0, key
    assert {r["scenario"] for r in fresh} == {"clean", "inversion"}
