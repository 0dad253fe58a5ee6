"""The CRPA runs repeat the numbers they gave before the federation became a composition of parts.

``fixtures/crpa_before_redesign.json`` was recorded with the kit as it was before the redesign:
seeded quick runs of every CRPA attack, the control and a DP run, on the shared MNIST subset. Each
round's metrics and the summary (all but the seconds) must come out the same, number for number
(counts exactly; losses and scores to float32 rounding, as a BLAS may sum in another order).
"""

import json
from pathlib import Path

import pytest

from fltutor.defenses.dp import DPConfig
from fltutor.recipes.crpa import CRPAConfig, run_crpa

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "crpa_before_redesign.json").read_text())
SMALL = dict(max_per_class=40, max_test=200, num_rounds=4, attack_start_round=2, poison_count=10,
             gan=dict(steps=2, batch_size=8), device="cpu", seed=3)
RUNS = {"crpa": dict(attack="crpa"), "none": dict(attack="none"),
        "crpa-dp": dict(attack="crpa", defenses=(DPConfig(),)),
        "label-flip": dict(attack="label-flip"),
        "reconstruction": dict(attack="reconstruction", alpha=0.5)}


@pytest.mark.parametrize("name", RUNS)
def test_a_crpa_run_gives_the_numbers_it_gave_before_the_redesign(name, tmp_path):
    metrics = run_crpa(CRPAConfig.from_profile("quick", **SMALL, **RUNS[name]), tmp_path / name,
                       progress=False)
    before = FIXTURE[name]
    assert len(metrics["rounds"]) == len(before["rounds"])
    for now, then in zip(metrics["rounds"], before["rounds"]):
        assert flat({key: now[key] for key in then}) == pytest.approx(flat(then), rel=1e-5)
    summary = {key: metrics["summary"][key] for key in before["summary"]}
    assert flat(summary) == pytest.approx(flat(before["summary"]), rel=1e-5)


def flat(value, path="") -> dict:
    """``{"confusion/2/3": 7, ...}``: every number of a nested JSON value, by where it sits."""
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in flat(item, f"{path}/{key}").items()}
    if isinstance(value, list):
        return {k: v for i, item in enumerate(value) for k, v in flat(item, f"{path}/{i}").items()}
    return {path: value}
