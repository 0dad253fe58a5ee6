"""``fltutor gallery``: bad input stops it in one line before any work; a tiny gallery holds six
readable PNGs and a gallery.json; the same seed draws the same figures.

The figures' runs are shrunk here (``TINY``: two or three rounds of a few images per class); the
command's code path is the one the README's gallery is made with.
"""

from __future__ import annotations

import dataclasses
import io
import json
import subprocess
import sys

import pytest
from PIL import Image

import fltutor.gallery as gallery
from helpers import run_cli

#: Each figure's settings shrunk to a few seconds on one CPU core.
TINY = {"gan_samples": dict(max_per_class=20, max_test=100, num_rounds=3, attack_start_round=2,
                            gan=dict(steps=2)),
        "aaa_matrix": dict(pairs=((4, 9),), max_per_class=20, max_test=100, num_rounds=2,
                           attack_start_round=2, gan=dict(steps=2)),
        "robust_kept": dict(max_per_class=10, max_test=100, num_rounds=2),
        "inversion": dict(batch_size=2, iterations=5),
        "curious": dict(max_per_class=10, max_test=100, num_rounds=2,
                        curious_options=dict(rounds=(1, 2), iterations=5))}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def tiny_figures(monkeypatch) -> None:
    """Every figure of ``FIGURES`` with its ``TINY`` settings (as the command sees them)."""
    for name, settings in TINY.items():
        figure = gallery.FIGURES[name]
        monkeypatch.setitem(gallery.FIGURES, name, dataclasses.replace(
            figure, settings={**figure.settings, **settings}))


@pytest.fixture
def no_drawing(monkeypatch):
    """Any figure's run fails the test: for checks that must stop the command before it."""
    def refuse(prepared):
        raise AssertionError("a figure was drawn")

    for name, figure in gallery.FIGURES.items():
        monkeypatch.setitem(gallery.FIGURES, name, dataclasses.replace(figure, draw=refuse))


@pytest.fixture(scope="module")
def tiny_gallery(tmp_path_factory):
    """``fltutor gallery --out DIR --device cpu --seed 3``, tiny: (DIR, exit code, stdout)."""
    out = tmp_path_factory.mktemp("gallery") / "out"
    with pytest.MonkeyPatch.context() as monkeypatch:
        tiny_figures(monkeypatch)
        capture = io.StringIO()
        monkeypatch.setattr(sys, "stdout", capture)
        code = run_cli_plain(["gallery", "--out", str(out), "--device", "cpu", "--seed", "3"])
    return out, code, capture.getvalue()


def run_cli_plain(argv: list[str]) -> int:
    from fltutor.cli import main

    try:
        return main(argv)
    except SystemExit as exit:
        return exit.code


def bad_cases(tmp_path) -> dict[str, tuple[list[str], str]]:
    existing_file = tmp_path / "a_file"
    existing_file.write_text("not a folder")
    (tmp_path / "empty").mkdir()
    return {"unknown device": (["--device", "foo"], "device='foo'"),
            "absent GPU": (["--device", "cuda:99"], "device='cuda:99'"),
            "negative seed": (["--seed", "-1"], "seed=-1"),
            "seed not a number": (["--seed", "1.5"], "invalid int value: '1.5'"),
            "out is a file": (["--out", str(existing_file)], "not an existing file"),
            "out under a file": (["--out", str(existing_file / "sub")], "lies under the file"),
            "empty out": (["--out", ""], "'' is not allowed"),
            "no privacy sweep": (["--privacy-sweep", str(tmp_path / "empty")], "privacy_sweep=")}


BAD = ["unknown device", "absent GPU", "negative seed", "seed not a number", "out is a file",
       "out under a file", "empty out", "no privacy sweep"]


@pytest.mark.parametrize("case", BAD)
def test_bad_input_is_exit_2_and_one_line_before_any_work(case, tmp_path, no_drawing, capsys):
    arguments, named = bad_cases(tmp_path)[case]
    out = tmp_path / "out"
    code, stdout, err = run_cli(["gallery", "--out", str(out), *arguments], capsys)
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert named in err, err
    assert not out.exists() and stdout == ""


def test_the_real_command_exits_2_without_a_traceback(tmp_path):
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "fltutor.cli", "gallery", "--out", str(out),
                             "--seed", "-1"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "fltutor: error: seed=-1 is not allowed: it must be an integer >= 0 and <= "
        f"{gallery.MAX_SEED}"]
    assert not out.exists()


@pytest.mark.parametrize("call, named", [
    (lambda out: gallery.make_gallery(out, seed=True), "seed=True"),
    (lambda out: gallery.make_gallery(out, names=["gan"]), "names=['gan']"),
    (lambda out: gallery.make_gallery(out, settings={"gan": {}}), "settings=['gan']"),
    (lambda out: gallery.make_gallery(out, settings={"inversion": {"batch_size": 0}}),
     "batch_size=0"),
    (lambda out: gallery.make_gallery(out, settings={"aaa_matrix": {"pairs": ((4, 9), (4, 9))}}),
     "pairs="),
    (lambda out: gallery.make_gallery(out, settings={"aaa_matrix": {"pairs": ((4, 4),)}}),
     "target_class=4"),
], ids=["seed", "names", "settings", "inversion", "pairs twice", "pair of one class"])
def test_a_bad_python_value_is_one_valueerror_before_any_work(call, named, tmp_path, no_drawing):
    with pytest.raises(ValueError, match="is not allowed") as error:
        call(tmp_path / "out")
    assert named in str(error.value) and "\n" not in str(error.value)
    assert not (tmp_path / "out").exists()


def test_the_command_writes_six_figures_and_the_record_and_nothing_else(tiny_gallery):
    out, code, stdout = tiny_gallery
    assert code == 0
    files = [figure.file for figure in gallery.FIGURES.values()]
    assert sorted(path.name for path in out.iterdir()) == sorted([*files, gallery.RECORD])
    assert stdout.strip().splitlines()[-1].startswith(", ".join(files) + " and gallery.json in")


@pytest.mark.parametrize("name", list(gallery.FIGURES))
def test_each_figure_is_a_readable_png_recorded_with_its_settings(name, tiny_gallery):
    out, _, _ = tiny_gallery
    figure = gallery.FIGURES[name]
    path = out / figure.file
    assert path.read_bytes().startswith(PNG_SIGNATURE)
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        width, height = image.size
        colours = len(set(image.convert("L").getdata()))
    assert width >= 300 and height >= 150 and colours > 10  # drawn, not a blank canvas
    assert path.stat().st_size < 150_000
    record = json.loads((out / gallery.RECORD).read_text())
    assert (record["seed"], record["device"]) == (3, "cpu")
    entry = record["figures"][name]
    assert entry["file"] == figure.file and entry["notebook"] == figure.notebook
    assert entry["settings"] == json.loads(json.dumps(gallery.shown(
        {**figure.settings, **TINY.get(name, {})})))
    assert entry["results"] and len(entry["data_digest"]) == 16
    assert entry["seconds"] >= 0


def test_the_record_names_no_folder_of_this_machine(tiny_gallery):
    out, _, _ = tiny_gallery
    text = (out / gallery.RECORD).read_text()
    assert str(gallery.SHIPPED_PRIVACY_SWEEP.parent) not in text and str(out) not in text
    assert json.loads(text)["figures"]["privacy_frontier"]["settings"]["sweep"] == \
        "notebooks/results/privacy_quick"


def test_the_same_seed_draws_the_same_figures_and_another_seed_others(tmp_path):
    names = ["robust_kept", "inversion"]

    def draw(folder: str, seed: int) -> tuple[dict, dict]:
        record = gallery.make_gallery(tmp_path / folder, seed=seed, device="cpu", settings=TINY,
                                      names=names, progress=False)
        pngs = {name: (tmp_path / folder / gallery.FIGURES[name].file).read_bytes()
                for name in names}
        return {name: record["figures"][name]["data_digest"] for name in names}, pngs

    first, again, other = draw("first", 0), draw("again", 0), draw("other", 1)
    assert first == again  # the same numbers drawn, and the same pictures, byte for byte
    assert all(other[0][name] != first[0][name] for name in names)
