"""Seeded CRPA runs repeat the numbers they were recorded with: a regression record.

``fixtures/crpa_reference.json`` holds seeded quick runs of every CRPA attack, the control and a
DP run on the shared MNIST subset, recorded with the kit as it stands since the CRPA networks went
channels-last and dropout draws its mask in logical order (both change the random stream, so the
record before them no longer applies). Each round's metrics and the summary (all but the seconds)
must come out the same, up to rounding. A change that moves them on purpose re-records the file
(``python tests/test_crpa_reference.py``); any other change that moves them is a bug.

On the machine it was recorded on the runs repeat it number for number. Another CPU (an AMD
rather than an Intel one, say) takes other vectorised kernels that round differently; over a few
rounds of GAN and local training that moves a score in its second or third digit and flips a
borderline test image or two. So counts may differ by ``COUNT_SLACK`` images (and a class's
accuracy by as many of its test images), other numbers by ``RELATIVE_SLACK`` of their value: far less than any change of behaviour moves them (a CRPA
and a control run differ by dozens of images in the attacked row).
"""

import json
import tempfile
from pathlib import Path

import pytest
import torch

from fltutor.defenses.dp import DPConfig
from fltutor.recipes.crpa import CRPAConfig, run_crpa

FIXTURE_PATH = Path(__file__).parent / "fixtures" / "crpa_reference.json"
FIXTURE = json.loads(FIXTURE_PATH.read_text())
SMALL = dict(max_per_class=40, max_test=200, num_rounds=4, attack_start_round=2, poison_count=10,
             gan=dict(steps=2, batch_size=8), device="cpu", seed=3)
COUNT_SLACK = 2
RELATIVE_SLACK = 0.05
RUNS = {"crpa": dict(attack="crpa"), "none": dict(attack="none"),
        "crpa-dp": dict(attack="crpa", defenses=(DPConfig(),)),
        "label-flip": dict(attack="label-flip"),
        "reconstruction": dict(attack="reconstruction", alpha=0.5)}


@pytest.mark.parametrize("name", RUNS)
def test_a_seeded_crpa_run_gives_the_numbers_it_was_recorded_with(name, tmp_path):
    before = FIXTURE[name]
    now = held_to(run(name, tmp_path), before)
    assert len(now["rounds"]) == len(before["rounds"])
    for round_now, round_then in zip(now["rounds"], before["rounds"]):
        assert_close(flat(round_now), flat(round_then))
    assert_close(flat(now["summary"]), flat(before["summary"]))


def run(name: str, out: Path) -> dict:
    """One of ``RUNS`` at the ``SMALL`` settings, written under ``out``."""
    return run_crpa(CRPAConfig.from_profile("quick", **SMALL, **RUNS[name]), out / name,
                    progress=False)


def held_to(metrics: dict, record: dict) -> dict:
    """The part of a run's ``metrics`` that ``record`` holds: its keys of every round and of the
    summary (the seconds are left out, as they differ from run to run)."""
    return {"rounds": [{key: r[key] for key in record["rounds"][0]} for r in metrics["rounds"]],
            "summary": {key: metrics["summary"][key] for key in record["summary"]}}


def record(path: Path, out: Path) -> None:
    """Re-record the fixture: every run's rounds and summary, with the keys the fixture holds."""
    recorded = {name: held_to(run(name, out), FIXTURE[name]) for name in RUNS}
    path.write_text(json.dumps(recorded, indent=1) + "\n")


def assert_close(now: dict, then: dict) -> None:
    """Same keys; counts within ``COUNT_SLACK``, a class's accuracy within ``COUNT_SLACK`` of its
    test images, other numbers within ``RELATIVE_SLACK``."""
    assert now.keys() == then.keys()
    for key, value in then.items():
        if isinstance(value, int) and not isinstance(value, bool):
            assert abs(now[key] - value) <= COUNT_SLACK, (key, now[key], value)
        elif key.startswith("/per_class_accuracy/"):  # one image of 20-odd moves it by 0.04
            label = key.rsplit("/", 1)[1]
            images = sum(v for k, v in then.items() if k.startswith(f"/confusion/{label}/"))
            assert abs(now[key] - value) <= COUNT_SLACK / images + 1e-6, (key, now[key], value)
        else:
            assert now[key] == pytest.approx(value, rel=RELATIVE_SLACK, abs=1e-3), key


def flat(value, path="") -> dict:
    """``{"confusion/2/3": 7, ...}``: every number of a nested JSON value, by where it sits."""
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in flat(item, f"{path}/{key}").items()}
    if isinstance(value, list):
        return {k: v for i, item in enumerate(value) for k, v in flat(item, f"{path}/{i}").items()}
    return {path: value}


if __name__ == "__main__":
    torch.set_num_threads(1)  # as the suite runs (conftest.py): the thread count moves float sums
    with tempfile.TemporaryDirectory() as scratch:
        record(FIXTURE_PATH, Path(scratch))
