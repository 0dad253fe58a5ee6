"""The README's gallery: six figures the kit draws from its own small, seeded runs.

``make_gallery(out_dir, seed, device)`` is the ``fltutor gallery`` command. It writes, into
``out_dir``, one PNG per figure of ``FIGURES`` and ``gallery.json``: the seed, the device, and
for every figure the settings that made it, its headline numbers, a digest of the data it draws
(the same seed on a CPU gives the same digests) and the seconds it took.

==================  =========================================================  ===========
file                what it shows                                              notebook
==================  =========================================================  ===========
gan_samples.png     a GAN attacker's samples of a class it never held, by      02
                    round (``recipes.crpa``, ``viz.samples_over_rounds``)
aaa_matrix.png      the CRPA's attack accuracy on a few class pairs, run by    04
                    the figure-4 sweep at preview size (``viz.aaa_matrix``)
robust_kept.png     which clients Krum kept against two Byzantine attacks      05
                    (``recipes.byzantine``, ``widgets.kept_grids``)
inversion.png       a batch of test images recovered from one gradient         06
                    (``recipes.inversion``, ``viz.reconstruction_pairs``)
curious.png         a curious client's reconstructions of its peers' images    06
                    beside the true images of the round's gradient
                    (``recipes.curious``, ``viz.reconstruction_pairs``)
privacy_frontier    epsilon against every attack's success, read from the      07
.png                shipped privacy sweep (``privacy.frontier_figure``)
==================  =========================================================  ===========

Every figure is two steps: ``prepare`` makes and checks what it will run (configs, the sweep's
results), ``draw`` runs it and returns the figure with its record. All figures are prepared
before the first one is drawn, so a bad value stops the command before any work. The runs are
the notebooks' own, at the ``quick`` profile and on the given seed: about three minutes on two
CPU cores in all.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from .checks import MAX_SEED, check, check_int
from .config import resolve_device
from .experiments import atomic_write, usable_out_dir, write_json

#: Where the privacy sweep shipped with the course lies (notebook 07 reads it too).
SHIPPED_PRIVACY_SWEEP = Path(__file__).resolve().parent.parent / "notebooks" / "results" / \
    "privacy_quick"
#: The gallery's record of what made it.
RECORD = "gallery.json"
#: The PNGs' resolution and colours: sharp enough to read in a README, small enough (tens of KB)
#: to keep in the repository.
DPI = 80
COLORS = 256


@dataclass
class Drawn:
    """A figure and its record: headline numbers, and ``data``, the values it draws (hashed
    into the record's ``data_digest`` to show that a seed repeats)."""

    figure: Any
    numbers: dict
    data: Any


def digest(data: Any) -> str:
    """A short SHA-256 of tensors, arrays and JSON-ready values (nested in lists, tuples, dicts).

    >>> digest([1, 2.5, {"x": torch.zeros(2)}]) == digest([1, 2.5, {"x": torch.zeros(2)}])
    True
    >>> digest(torch.zeros(2)) == digest(torch.ones(2))
    False
    """
    hasher = hashlib.sha256()

    def feed(value: Any) -> None:
        if isinstance(value, torch.Tensor):
            hasher.update(value.detach().cpu().contiguous().numpy().tobytes())
        elif isinstance(value, dict):
            for key in sorted(value, key=str):
                feed(str(key))
                feed(value[key])
        elif isinstance(value, (list, tuple)):
            for item in value:
                feed(item)
        else:
            hasher.update(json.dumps(value).encode())

    feed(data)
    return hasher.hexdigest()[:16]


def save_png(figure, path: Path) -> None:
    """``figure`` as a small PNG of ``DPI`` dots per inch, written atomically; the figure is
    released. A figure without colour is saved in grey levels (exactly), any other with a
    palette of ``COLORS`` colours: a third of the size of matplotlib's RGBA, and it looks the
    same."""
    import io

    import matplotlib.pyplot as plt
    from PIL import Image, ImageChops

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    plt.close(figure)
    image = Image.open(buffer).convert("RGB")
    red, green, blue = image.split()
    grey = not ImageChops.difference(red, green).getbbox() and \
        not ImageChops.difference(green, blue).getbbox()
    image = image.convert("L") if grey else image.quantize(colors=COLORS)
    atomic_write(path, lambda temporary: image.save(temporary, format="PNG", optimize=True))


def shared(seed: int, device: str, data_root: str | None) -> dict:
    """The settings every run of the gallery shares."""
    return dict(seed=seed, device=device, data_root=data_root)


# --- (a) the GAN attacker's samples ------------------------------------------------------------

#: Notebook 02's run: client 0 trains a GAN on the global model from round 8 of 20, never holding
#: a 4 (the reconstruction half of the CRPA attacker; it does not poison).
GAN_SAMPLES = dict(attack="reconstruction", num_rounds=20, attack_start_round=8,
                   gan=dict(steps=15))


def prepare_gan_samples(common: dict, settings: dict):
    from .recipes.crpa import CRPAConfig

    return CRPAConfig.from_profile("quick", **common, **settings)


def draw_gan_samples(config) -> Drawn:
    from .recipes.crpa import generated_samples
    from .viz import samples_over_rounds
    from .widgets import real_images, run_attack

    federation = run_attack(config, progress=False)
    data, g = federation.data, config.generate_class
    name = data.class_names[g]
    previews = generated_samples(federation)
    figure = samples_over_rounds(previews, real=real_images(data, g), real_label=f"real {name}",
                                 title=f"client {config.attacker} never holds a {name}: its GAN's "
                                       f"samples of {name} by round (attack from round "
                                       f"{config.attack_start_round})")
    numbers = {"generate_class": g, "preview_rounds": [p["round"] for p in previews],
               "final_test_accuracy": federation.history[-1]["test_accuracy"]}
    return Drawn(figure, numbers, [p["images"] for p in previews])


# --- (b) the AAA matrix --------------------------------------------------------------------------

#: Notebook 04's preview of the figure-4 sweep (60 images per class, 8 rounds, the attack from
#: round 4, 5 generator steps a round), on three pairs and their mirrors; the control run (no
#: attacker) of the first pair is the yardstick.
AAA_MATRIX = dict(pairs=((4, 9), (9, 4), (7, 1), (1, 7), (3, 8), (8, 3)), max_per_class=60,
                  max_test=500, num_rounds=8, attack_start_round=4, gan=dict(steps=5))


def prepare_aaa_matrix(common: dict, settings: dict):
    from .recipes.crpa import CRPAConfig

    settings = dict(settings)
    pairs = [tuple(pair) for pair in settings.pop("pairs")]
    check(len(pairs) >= 1 and len(set(pairs)) == len(pairs), "pairs", pairs,
          "one or more class pairs (G, T), each once")
    base = CRPAConfig.from_profile("quick", attack="crpa", **common, **settings)
    for g, t in pairs:  # every pair's run checked now, not when the sweep reaches it
        base.replace(generate_class=g, target_class=t)
    control = base.replace(attack="none", generate_class=pairs[0][0], target_class=pairs[0][1])
    return base, pairs, control


def draw_aaa_matrix(prepared) -> Drawn:
    import tempfile

    from .metrics import aaa
    from .sweep import run_sweep
    from .viz import aaa_matrix, pair_aaa, pair_name
    from .widgets import run_attack

    base, pairs, control = prepared
    with tempfile.TemporaryDirectory(prefix="fltutor-gallery-") as scratch:
        results = run_sweep("figure4", base, scratch, pairs=pairs, progress=False)
    control_run = run_attack(control, progress=False)
    values = pair_aaa(results)
    names = list(control_run.data.class_names)
    no_attack = aaa(control_run.history)
    first = pair_name(pairs[0], names)
    accuracies = [r["final_test_accuracy"] for r in results]
    figure = aaa_matrix(values, names, len(names),
                        title=f"CRPA preview: {len(pairs)} pairs, 1 seed, {base.num_rounds} rounds "
                              f"(blank: not run)\nno attacker: AAA {no_attack:.2f} for {first}; "
                              f"test accuracy {min(accuracies):.2f} to {max(accuracies):.2f}")
    numbers = {"aaa": {pair_name(pair, names): value for pair, value in values.items()},
               f"aaa_without_attacker_{first}": no_attack,
               "final_test_accuracy": {pair_name((r["generate_class"], r["target_class"]), names):
                                       r["final_test_accuracy"] for r in results}}
    return Drawn(figure, numbers, sorted(values.items()))


# --- (c) who robust aggregation kept -------------------------------------------------------------

#: Notebook 05's Krum against 3 of 10 clients flipping their update's sign, then running ALIE
#: (a little is enough): the first is always left out, the second gets an attacker kept.
ROBUST_KEPT = dict(model="lenet5", aggregator="krum", malicious=3, attacks=("sign-flip", "alie"))


def prepare_robust_kept(common: dict, settings: dict):
    from .recipes.byzantine import ByzantineConfig
    from .widgets import byzantine_label

    settings = dict(settings)
    attacks = settings.pop("attacks")
    configs = [ByzantineConfig.from_profile("quick", attack=attack, **common, **settings)
               for attack in attacks]
    return {byzantine_label(config): config for config in configs}


def draw_robust_kept(configs: dict) -> Drawn:
    from .federation import Federation
    from .recipes.byzantine import history_summary
    from .widgets import kept_grids

    histories = {}
    for label, config in configs.items():
        federation = Federation.build(config)
        federation.run(progress=False)
        histories[label] = federation.history
    numbers = {label: history_summary(history) for label, history in histories.items()}
    titled = {label: f"{label}: final accuracy {numbers[label]['final_test_accuracy']:.2f}"
              for label in configs}
    figure = kept_grids({titled[label]: history for label, history in histories.items()},
                        {titled[label]: config for label, config in configs.items()})
    rule = next(iter(configs.values())).aggregator.name
    figure.suptitle(f"who {rule} kept, round by round (red client numbers: the attackers)")
    kept = {label: [r["kept"] for r in history] for label, history in histories.items()}
    return Drawn(figure, numbers, [kept, numbers])


# --- (d) a gradient-inversion reconstruction -----------------------------------------------------

#: Notebook 06's Inverting Gradients on an untrained LeNet-5 (wide), a batch of 4 test images,
#: from one FedSGD gradient.
INVERSION = dict(method="ig", model="lenet5-wide", batch_size=4, iterations=300)


def prepare_inversion(common: dict, settings: dict):
    from .recipes.inversion import InversionConfig

    return InversionConfig(**common, **settings)


#: The methods' names in the figure's title.
METHOD_NAMES = {"dlg": "DLG", "idlg": "iDLG", "ig": "Inverting Gradients"}


def draw_inversion(config) -> Drawn:
    from .recipes.inversion import invert_test_batch, load_for, victim_model

    data = load_for(config)
    model, _ = victim_model(config, data)
    batch = invert_test_batch(config, model, data)
    scores = batch.scores
    figure = batch.figure(f"what the server recovers from their gradient: PSNR "
                          f"{scores['psnr']:.1f} dB, SSIM {scores['ssim']:.2f}")
    figure.suptitle(f"gradient inversion: {METHOD_NAMES.get(config.method, config.method)}, "
                    f"{batch.result.iterations} steps, untrained {config.model}")
    figure.set_size_inches(6.4, 3.4)  # room for the titles beside a few images
    figure.tight_layout()
    numbers = {key: scores[key] for key in ("psnr", "ssim", "label_accuracy")}
    return Drawn(figure, numbers, batch.result.images)


# --- (e) the curious client's reconstructions ----------------------------------------------------

#: Notebook 06's curious client (``quick-fedsgd``: 10 clients, FedSGD, one image each a round):
#: its reconstructions of round 1, then the scores of round 50, when the model has learnt.
CURIOUS = dict(num_rounds=50, curious_options=dict(rounds=(1, 50)))


def prepare_curious(common: dict, settings: dict):
    from .recipes.curious import CuriousConfig

    return CuriousConfig.from_profile("quick-fedsgd", **common, **settings)


def draw_curious(config) -> Drawn:
    from .curious_widgets import run_curious_live
    from .data import load

    data = load(config.dataset, config.data_root, max_per_class=config.max_per_class,
                max_test=config.max_test, device=resolve_device(config.device))
    run = run_curious_live(config, data, progress=False)
    first, last = (run.reconstruction(r) for r in (min(run.reconstructions),
                                                    max(run.reconstructions)))
    figure = run.figure(first.round)
    figure.suptitle(f"a curious client's round-{first.round} reconstructions of its 9 peers' "
                    f"images (FedSGD, B = {config.batch_size})")
    figure.set_size_inches(7.2, 3.4)
    figure.tight_layout()
    numbers = {f"round_{shown.round}_{key}": round(shown.scores[key], 4)
               for shown in (first, last) for key in ("rmse", "control_rmse", "gain")}
    return Drawn(figure, numbers, first.images)


# --- (f) the privacy frontier --------------------------------------------------------------------

#: The privacy sweep shipped with the course (``fltutor sweep privacy --profile quick``): read,
#: not run, so the seed and the device do not change it.
PRIVACY_FRONTIER = dict(sweep=SHIPPED_PRIVACY_SWEEP)


def prepare_privacy_frontier(common: dict, settings: dict):
    from .privacy import PRIVACY_RESULTS

    sweep = Path(settings["sweep"])
    results = PRIVACY_RESULTS.read(sweep) if sweep.is_dir() else []
    check(bool(results), "privacy_sweep", str(sweep), "a folder holding a privacy sweep's "
          "results.jsonl (fltutor sweep privacy --out FOLDER)")
    return results


def draw_privacy_frontier(results: list[dict]) -> Drawn:
    from .privacy import frontier_figure

    numbers = {"runs": len(results), "scenarios": sorted({r["scenario"] for r in results}),
               "kinds": sorted({r["kind"] for r in results})}
    return Drawn(frontier_figure(results), numbers, results)


# --- the gallery ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Figure:
    """One figure of the gallery: its file, the notebook that teaches it, its settings, and the
    two steps that make it: ``prepare(common, settings)`` checks and returns what ``draw`` runs."""

    file: str
    notebook: str
    settings: dict
    prepare: Callable[[dict, dict], Any]
    draw: Callable[[Any], Drawn]
    runs: bool = True  # False: read from files, the seed and the device play no part


FIGURES: dict[str, Figure] = {
    "gan_samples": Figure("gan_samples.png", "02_gan_reconstruction.ipynb", GAN_SAMPLES,
                          prepare_gan_samples, draw_gan_samples),
    "aaa_matrix": Figure("aaa_matrix.png", "04_crpa.ipynb", AAA_MATRIX, prepare_aaa_matrix,
                         draw_aaa_matrix),
    "robust_kept": Figure("robust_kept.png", "05_robust_aggregation.ipynb", ROBUST_KEPT,
                          prepare_robust_kept, draw_robust_kept),
    "inversion": Figure("inversion.png", "06_gradient_inversion.ipynb", INVERSION,
                        prepare_inversion, draw_inversion),
    "curious": Figure("curious.png", "06_gradient_inversion.ipynb", CURIOUS, prepare_curious,
                      draw_curious),
    "privacy_frontier": Figure("privacy_frontier.png", "07_dp_tradeoffs.ipynb", PRIVACY_FRONTIER,
                               prepare_privacy_frontier, draw_privacy_frontier, runs=False),
}


def shown(value: Any) -> Any:
    """A setting as gallery.json records it: a folder by its last three parts, not by a path
    of this machine."""
    if isinstance(value, Path):
        return "/".join(value.parts[-3:])
    if isinstance(value, dict):
        return {key: shown(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [shown(item) for item in value]
    return value


def make_gallery(out_dir: str | Path, seed: int = 0, device: str = "auto",
                 data_root: str | None = None, settings: dict[str, dict] | None = None,
                 names: list[str] | None = None, progress: bool = True) -> dict:
    """Draw the figures ``names`` (default: all of ``FIGURES``) into ``out_dir``; the record.

    ``settings`` changes figures' settings by name (``{"inversion": {"iterations": 20}}``): the
    tests draw tiny figures that way. Every value is checked, and every figure prepared, before
    the first run; each PNG and then ``gallery.json`` is written atomically.

    On a CPU the runs take one thread, as in the notebooks: these models gain little from a
    second, and on two cores shared with other work the GAN's run took 458 s with two threads
    and 73 s with one (one measurement each). One thread everywhere also takes the number of
    cores out of what a seed's numbers depend on.
    """
    check_int("seed", seed, 0, MAX_SEED)
    device = str(resolve_device(device))
    out = usable_out_dir(out_dir)
    names = list(FIGURES) if names is None else list(names)
    check(bool(names) and all(name in FIGURES for name in names), "names", names,
          f"some of {', '.join(FIGURES)}")
    settings = settings or {}
    check(set(settings) <= set(FIGURES), "settings", sorted(settings),
          f"settings of {', '.join(FIGURES)}")
    chosen = {name: {**FIGURES[name].settings, **settings.get(name, {})} for name in names}
    common = shared(seed, device, data_root)
    prepared = {name: FIGURES[name].prepare(common, chosen[name]) for name in names}

    threads = 1 if device == "cpu" else torch.get_num_threads()
    record = {"command": f"fltutor gallery --out DIR --device {device} --seed {seed}",
              "seed": seed, "device": device, "threads": threads, "torch": torch.__version__,
              "figures": {}}
    started, threads_before = time.perf_counter(), torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for name in names:
            record["figures"][name] = draw_one(name, prepared[name], chosen[name], out, progress)
    finally:
        torch.set_num_threads(threads_before)
    record["total_seconds"] = round(time.perf_counter() - started, 1)
    write_json(out / RECORD, record)
    return record


def draw_one(name: str, prepared: Any, settings: dict, out: Path, progress: bool) -> dict:
    """Draw figure ``name`` from what ``prepare`` made, save it into ``out``; its record."""
    figure, start = FIGURES[name], time.perf_counter()
    drawn = figure.draw(prepared)
    save_png(drawn.figure, out / figure.file)
    seconds = round(time.perf_counter() - start, 1)
    if progress:
        print(f"{figure.file} ({figure.notebook}): {seconds:.0f} s", flush=True)
    return {"file": figure.file, "notebook": figure.notebook,
            "profile": "quick" if figure.runs else None, "settings": shown(settings),
            "results": drawn.numbers, "data_digest": digest(drawn.data), "seconds": seconds}
