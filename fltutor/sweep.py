"""Resumable sweeps: the CRPA study's figures (Becker et al. 2025, Figures 4, 6-8), and attacks
against aggregation rules.

A sweep is a list of runs whose configurations differ only in a few settings, its *key*: for the
CRPA figures the class pair (G, T), the Dirichlet alpha, DP on or off and the seed; for the
robustness sweep the attack, the aggregation rule, the number of malicious clients, the data
split and the seed. The sweep folder holds:

``sweep.json``     one JSON object: the settings all its runs share. A folder holding a sweep of
                   other settings is refused, naming the settings that differ.
``results.jsonl``  one JSON object per line, one line per finished run: its key, then its
                   numbers (``RESULT_FIELDS``, ``ROBUSTNESS_FIELDS``). Rewritten atomically, so
                   a kill at any moment leaves it whole.
``runs/NAME/``     each run's own folder (``fltutor.experiments``: metrics, figures, checkpoint).
``*.png``          the sweep's figures, drawn when the sweep is complete.

Started again, a sweep skips the runs already in ``results.jsonl`` and resumes the one that was
interrupted from its checkpoint: a finished sweep recomputes nothing, and only draws its figure
again. ``force=True`` (``--force``) runs the planned runs again and replaces their lines. Every
line is checked when read: a damaged or foreign line stops the sweep with one line naming the
file and the line, rather than being run again and appended twice. ``run_planned`` is that loop,
shared by every kind of sweep.

figure4     every ordered class pair at alpha = 0: the AAA matrix and its histogram (Fig. 4);
figure6     the alpha sweep {0, 0.05, 0.1, 0.2, 0.5, 1, 10} for the least, mean and most
            vulnerable pairs (Figs. 6 and 7);
figure8     DP-SGD on and off at alpha = 0 and alpha = 10 for the same pairs (Fig. 8);
robustness  attacks x aggregation rules x numbers of malicious clients x data splits
            (``fltutor.recipes.byzantine``): heatmaps of final accuracy and backdoor success.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from .checks import check, check_choice, check_int
from .config import FedConfig
from .data import DATASETS
from .experiments import (SETTINGS, atomic_write, check_fields, config_json, differences,
                          read_json, save_figure, unusable, usable_out_dir, write_json,
                          writing_to)
from .partition import STUDY_ALPHAS

if TYPE_CHECKING:  # the recipes are imported when a sweep runs: the GAN's imports take seconds
    from .recipes.byzantine import ByzantineConfig
    from .recipes.crpa import CRPAConfig

RESULTS = "results.jsonl"
#: Seeds per setting of a sweep: figure 4 with 100 seeds is already 9,000 runs.
MAX_SWEEP_SEEDS = 100


# --- what every sweep shares ---------------------------------------------------------------------

@dataclass(frozen=True)
class Results:
    """A sweep's ``results.jsonl``: one line per finished run, the fields of its ``key`` first.

    ``key`` is a frozen dataclass with a ``name`` (the run's folder under ``runs/``) whose fields
    tell one run from another; ``fields`` are every field of a line and what it must hold;
    ``command`` is the fltutor command whose folders hold such results (a folder is one
    command's: ``fltutor.experiments.refuse_other_command``).
    """

    key: type
    fields: dict[str, str]
    command: str

    def read(self, out_dir: Path) -> list[dict]:
        """The lines of ``out_dir``'s results.jsonl, each checked against ``fields``."""
        path = out_dir / RESULTS
        if not path.exists():
            return []
        try:
            lines = path.read_text().splitlines()
        except UnicodeDecodeError:
            raise unusable(path, "it is not text (damaged, or not written by fltutor)") from None
        results = []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                result = json.loads(line)
            except json.JSONDecodeError as error:
                raise unusable(path, f"line {number} is not valid JSON ({error})",
                               "delete that line (its run is then done again), or use another "
                               "--out") from None
            results.append(check_fields(path, result, self.fields, f"line {number}"))
        return results

    def record(self, out_dir: Path, result: dict) -> None:
        """Add one line to results.jsonl, replacing the line of the same run if any, atomically."""
        kept = [r for r in self.read(out_dir) if self.key_of(r) != self.key_of(result)]
        lines = [json.dumps(r) for r in [*kept, result]]
        atomic_write(out_dir / RESULTS, lambda tmp: Path(tmp).write_text("\n".join(lines) + "\n"))

    def key_of(self, result: dict):
        """The key of the run a line records."""
        return self.key(**{f.name: result[f.name] for f in dataclasses.fields(self.key)})


def check_base(base: Any, expected: type) -> None:
    """Refuse a sweep's ``base`` that is not an ``expected`` config (a dict, say), in one line
    rather than with an AttributeError from deep inside the sweep."""
    if not isinstance(base, expected):
        raise TypeError(f"base={type(base).__name__} is not allowed: it must be a "
                        f"{expected.__name__} ({expected.__name__}.from_profile(...) makes one)")


def shared_settings(base: FedConfig, per_run: tuple[str, ...]) -> dict:
    """The settings every run of a sweep shares: ``base`` without the fields set per run."""
    shared = config_json(base)
    for name in (*per_run, "exclude"):
        shared.pop(name, None)
    return shared


def claim_directory(out_dir: Path, settings: dict) -> None:
    """Record the sweep's settings, or refuse a directory that holds a different sweep."""
    path = out_dir / SETTINGS
    held = check_fields(path, read_json(path), {}) if path.exists() else settings
    differing = differences(held, settings)
    if differing:
        raise ValueError(f"out={str(out_dir)!r} is not allowed: it holds a sweep with other "
                         f"settings ({SETTINGS}): {', '.join(differing)}; use a new directory "
                         f"or the same settings")
    write_json(path, settings)


def run_planned(label: str, configs: dict, shared: dict, out_dir: Path, results: Results,
                run: Callable[..., dict], line: Callable[[Any, dict], dict],
                finish: Callable[[list[dict]], Any], progress: bool = True,
                force: bool = False) -> list[dict]:
    """The loop of every sweep: run each of ``configs`` (key -> config) not yet in results.jsonl.

    The sweep holds ``out_dir``'s lock throughout (``writing_to``), and claims the folder for
    the ``shared`` settings first. Each run goes to ``runs/NAME/`` through ``run(config, folder,
    progress=False, force=..., after_round=...)``, which resumes an interrupted run from its
    checkpoint; its line, ``line(key, summary)``, is recorded as soon as it finishes. Then
    ``finish(lines)`` draws the sweep's figures from every line of results.jsonl, which are
    returned. The progress bar counts runs and names the run and round in progress.
    """
    from tqdm.auto import tqdm

    check(isinstance(force, bool), "force", force, "True or False")
    check(isinstance(progress, bool), "progress", progress, "True or False")
    with writing_to(out_dir, results.command):
        claim_directory(out_dir, shared)
        finished = (set() if force else
                    {results.key_of(result) for result in results.read(out_dir)})
        keys = list(configs)
        todo = [key for key in keys if key not in finished]
        with tqdm(total=len(keys), initial=len(keys) - len(todo), desc=label, unit="run",
                  disable=not progress) as bar:
            for number, key in enumerate(todo, start=len(keys) - len(todo) + 1):
                where = f"run {number} of {len(keys)} ({key.name})"
                bar.set_postfix_str(f"{where}, starting")
                metrics = run(configs[key], out_dir / "runs" / key.name, progress=False,
                              force=force, after_round=lambda fed: bar.set_postfix_str(
                                  f"{where}, round {fed.rounds_done} of "
                                  f"{fed.config.num_rounds}"))
                results.record(out_dir, line(key, metrics["summary"]))
                bar.update(1)
        lines = results.read(out_dir)
        finish(lines)
    return lines


# --- the CRPA study's figures ---------------------------------------------------------------------

FIGURES = ("figure4", "figure6", "figure8")
#: The sweep-level figure files each figure's sweep writes into its folder.
FIGURE_FILES = {"figure4": ("aaa_matrix.png", "aaa_histogram.png"),
                "figure6": ("alpha_trend.png",),
                "figure8": ("dp_comparison.png",)}
#: The fields of a results.jsonl line, and what each must hold.
RESULT_FIELDS = {"generate_class": "an integer", "target_class": "an integer", "alpha": "a number",
                 "dp": "true or false", "seed": "an integer", "figure": "a text",
                 "aaa": "a number", "final_test_accuracy": "a number",
                 "epsilon": "a number or null", "rounds": "an integer", "seconds": "a number"}


@dataclass(frozen=True)
class RunKey:
    """What tells one run of a sweep from another."""

    generate_class: int
    target_class: int
    alpha: float
    dp: bool
    seed: int

    @property
    def name(self) -> str:
        return (f"G{self.generate_class}-T{self.target_class}-alpha{self.alpha:g}"
                f"-{'dp' if self.dp else 'nodp'}-seed{self.seed}")


CRPA_RESULTS = Results(RunKey, RESULT_FIELDS, "sweep figure4, figure6 or figure8")


def read_results(out_dir: Path) -> list[dict]:
    """The results of a CRPA sweep in ``out_dir`` (``figure4``, ``figure6``, ``figure8``)."""
    return CRPA_RESULTS.read(Path(out_dir))


def all_pairs(num_classes: int) -> list[tuple[int, int]]:
    """Every ordered pair (G, T) with G != T: 90 for ten classes."""
    return [(g, t) for g in range(num_classes) for t in range(num_classes) if g != t]


def extreme_pairs(results: list[dict]) -> list[tuple[int, int]]:
    """The least, the closest-to-mean and the most vulnerable pair of a figure-4 sweep."""
    aaa = pair_means(results, dp=False, alpha=0.0)
    if not aaa:
        return []
    pairs = sorted(aaa, key=aaa.get)
    mean = float(np.mean(list(aaa.values())))
    typical = min(pairs, key=lambda pair: abs(aaa[pair] - mean))
    return list(dict.fromkeys([pairs[0], typical, pairs[-1]]))


def plan(figure: str, num_classes: int, seeds: int, pairs: list[tuple[int, int]] | None,
         done: list[dict], first_seed: int = 0) -> list[RunKey]:
    """The runs of ``figure``: its pairs crossed with its alphas, DP settings and seeds.

    Figures 6 and 8 use ``pairs`` if given, else the least, mean and most vulnerable pairs
    of a figure-4 sweep already in the same directory.
    """
    check(figure in FIGURES, "figure", figure, "one of " + ", ".join(FIGURES))
    if figure == "figure4":
        pairs, alphas, dp_settings = pairs or all_pairs(num_classes), (0.0,), (False,)
    else:
        pairs = pairs or extreme_pairs(done)
        check(bool(pairs), "pairs", None, "given with --pairs G:T,... or taken from a figure4 "
              "sweep in the same directory (run that first)")
        alphas, dp_settings = (STUDY_ALPHAS, (False,)) if figure == "figure6" else ((0.0, 10.0),
                                                                                     (False, True))
    pairs = list(dict.fromkeys(pairs))  # a pair named twice is run once
    return [RunKey(g, t, alpha, dp, seed) for g, t in pairs for alpha in alphas
            for dp in dp_settings for seed in range(first_seed, first_seed + seeds)]


#: The fields a CRPA sweep sets per run; the others are the sweep's shared settings.
CRPA_PER_RUN = ("generate_class", "target_class", "alpha", "defenses", "seed")


def config_for(base: CRPAConfig, key: RunKey) -> CRPAConfig:
    """The configuration of one run: the base with the run's pair, alpha, seed and DP."""
    from .defenses.dp import DPConfig  # Opacus takes seconds to import: only when needed

    return base.replace(generate_class=key.generate_class, target_class=key.target_class,
                        alpha=key.alpha, seed=key.seed,
                        defenses=(DPConfig(),) if key.dp else ())


def run_sweep(figure: str, base: CRPAConfig, out_dir: str | Path, seeds: int = 1,
              pairs: list[tuple[int, int]] | None = None, progress: bool = True,
              force: bool = False) -> list[dict]:
    """Run (or resume) the sweep of ``figure`` around ``base``; returns all results so far.

    Every run's configuration, the folder and the files already in it are checked before the
    first run starts. When every planned run is done, the figure is drawn (``FIGURE_FILES``).
    """
    from .recipes.crpa import CRPAConfig, run_crpa

    check_base(base, CRPAConfig)
    check_int("seeds", seeds, 1, MAX_SWEEP_SEEDS)
    check(isinstance(force, bool), "force", force, "True or False")
    out_dir = usable_out_dir(out_dir, CRPA_RESULTS.command)
    keys = plan(figure, base.num_classes, seeds, pairs, CRPA_RESULTS.read(out_dir), base.seed)
    configs = {key: config_for(base, key) for key in keys}  # validates every run up front

    def line(key: RunKey, summary: dict) -> dict:
        return {**dataclasses.asdict(key), "figure": figure, "aaa": summary["aaa"],
                "final_test_accuracy": summary["final_test_accuracy"],
                "epsilon": summary.get("epsilon"), "rounds": summary["rounds"],
                "seconds": summary["total_seconds"]}

    def finish(results: list[dict]) -> None:
        draw_figure(figure, [r for r in results if r["figure"] == figure], out_dir,
                    DATASETS[base.dataset].class_names)

    return run_planned(figure, configs, shared_settings(base, CRPA_PER_RUN), out_dir,
                       CRPA_RESULTS, run_crpa, line, finish, progress, force)


def draw_figure(figure: str, results: list[dict], out_dir: Path,
                class_names: tuple[str, ...]) -> list[Path]:
    """Draw the sweep-level figure of ``figure`` from its results into ``out_dir``; the files."""
    from .viz import aaa_histogram, aaa_matrix, alpha_trend, dp_comparison

    names = list(class_names)
    drawings = {"figure4": (lambda: aaa_matrix(results, names, len(names)),
                            lambda: aaa_histogram(results)),
                "figure6": (lambda: alpha_trend(results, names),),
                "figure8": (lambda: dp_comparison(results, names),)}[figure]
    paths = [out_dir / file for file in FIGURE_FILES[figure]]
    for draw, path in zip(drawings, paths):
        save_figure(draw(), path)
    return paths


def pair_means(results: list[dict], dp: bool = False, alpha: float = 0.0) -> dict:
    """Mean AAA over seeds for every pair, at one alpha and DP setting."""
    groups: dict[tuple[int, int], list[float]] = {}
    for r in results:
        if r["dp"] == dp and r["alpha"] == alpha:
            groups.setdefault((r["generate_class"], r["target_class"]), []).append(r["aaa"])
    return {pair: float(np.mean(values)) for pair, values in groups.items()}


# --- Byzantine robustness: attacks against aggregation rules --------------------------------------

#: The robustness sweep's figure files: final accuracy, and backdoor success where measured.
ROBUSTNESS_FILES = {"final_test_accuracy": "accuracy_heatmap.png",
                    "final_backdoor_success": "backdoor_heatmap.png"}
#: The fields of a robustness sweep's results.jsonl line (``alpha`` null: IID data).
ROBUSTNESS_FIELDS = {"attack": "a text", "aggregator": "a text", "malicious": "an integer",
                     "alpha": "a number or null", "seed": "an integer",
                     "final_test_accuracy": "a number", "mean_detection_tpr": "a number or null",
                     "mean_detection_fpr": "a number or null",
                     "final_backdoor_success": "a number or null", "rounds": "an integer",
                     "seconds": "a number"}
#: The fields a robustness sweep sets per run; the others are the sweep's shared settings.
ROBUSTNESS_PER_RUN = ("attack", "aggregator", "malicious", "partition", "alpha", "seed")


@dataclass(frozen=True)
class RobustnessKey:
    """What tells one run of a robustness sweep from another (``alpha`` None: IID data)."""

    attack: str
    aggregator: str
    malicious: int
    alpha: float | None
    seed: int

    @property
    def name(self) -> str:
        split = "iid" if self.alpha is None else f"alpha{self.alpha:g}"
        return f"{self.attack}-{self.aggregator}-m{self.malicious}-{split}-seed{self.seed}"


ROBUSTNESS_RESULTS = Results(RobustnessKey, ROBUSTNESS_FIELDS, "sweep robustness")


def robustness_attacks() -> list[str]:
    """The attacks of Byzantine runs and robustness sweeps (``BYZANTINE_ATTACKS``), imported
    only when asked for: importing the recipe imports every attack (the GAN's imports take
    seconds)."""
    from .recipes.byzantine import BYZANTINE_ATTACKS

    return list(BYZANTINE_ATTACKS)


def robustness_config(base: ByzantineConfig, key: RobustnessKey) -> ByzantineConfig:
    """The configuration of one run: ``base`` with the run's attack, rule, number of malicious
    clients, data split and seed.

    It is made by ``ByzantineConfig.from_profile`` like any Byzantine run, so that a rule with a
    ``num_malicious`` option assumes the run's number of malicious clients.
    """
    settings = {f.name: getattr(base, f.name) for f in dataclasses.fields(base)}
    settings.pop("profile")
    split = (dict(partition="iid") if key.alpha is None
             else dict(partition="dirichlet", alpha=key.alpha))
    return type(base).from_profile(base.profile, **{
        **settings, **split, "attack": key.attack, "aggregator": key.aggregator,
        "malicious": key.malicious, "seed": key.seed})


def possible_runs(base: ByzantineConfig, keys: list[RobustnessKey]) -> dict:
    """``{key: config}`` for every run of the grid that can be done; a bad value stops it all.

    A grid crosses values that are each fine with combinations that are not: a robust rule
    withstands at most so many malicious clients among so many (Krum needs n > 2f + 2), and
    ALIE computes no perturbation at all for one attacker among six. Such runs are left out
    with a note, once per reason (the heatmap shows them grey). A run refused even without
    attack and with FedAvg's mean has a bad number of malicious clients or alpha: that stops
    the sweep before it starts, as an unknown attack or rule does.
    """
    from .aggregators import AGGREGATORS

    for key in keys:
        check_choice("attack", key.attack, robustness_attacks())
        AGGREGATORS.check(key.aggregator)
    configs, left_out = {}, {}
    for key in keys:
        try:
            configs[key] = robustness_config(base, key)
        except ValueError as error:
            robustness_config(base, dataclasses.replace(key, attack="none", aggregator="mean"))
            left_out.setdefault(str(error), []).append(key.name)
    if not configs:
        raise ValueError(f"the grid of {len(keys)} run(s) is not allowed: none of them can be "
                         f"done ({next(iter(left_out))}); change its rules or numbers of "
                         f"malicious clients")
    for error, names in left_out.items():
        print(f"not run: {len(names)} run(s) such as {names[0]} ({error})")
    return configs


def run_robustness(base: ByzantineConfig, out_dir: str | Path, attacks: list[str] | None = None,
                   aggregators: list[str] | None = None, malicious: list[int] = (1, 3),
                   alphas: list[float | None] = (None,), seeds: int = 1, progress: bool = True,
                   force: bool = False) -> list[dict]:
    """Run (or resume) every attack against every aggregation rule, around ``base``.

    The grid is ``attacks`` (default: ``robustness_attacks()``) x ``aggregators`` (default:
    every registered rule) x ``malicious`` (numbers of malicious clients) x ``alphas`` (None:
    IID; a number: Dirichlet) x ``seeds`` seeds from ``base.seed`` on. A value named twice is
    run once; a combination that cannot be run is left out with a note (``possible_runs``).
    Every run's configuration is checked before the first starts; the folder is kept as for the
    CRPA sweeps. At the end the heatmaps of ``ROBUSTNESS_FILES`` are drawn (the backdoor's only
    if some run measured it). Returns all results so far.
    """
    from .aggregators import AGGREGATORS
    from .recipes.byzantine import ByzantineConfig, run_byzantine

    check_base(base, ByzantineConfig)
    check_int("seeds", seeds, 1, MAX_SWEEP_SEEDS)
    check(isinstance(force, bool), "force", force, "True or False")
    grid = {"attacks": robustness_attacks() if attacks is None else attacks,
            "aggregators": AGGREGATORS.names() if aggregators is None else aggregators,
            "malicious": malicious, "alphas": alphas}
    for name, values in grid.items():
        check(isinstance(values, (list, tuple)) and len(values) > 0, name, values,
              "a non-empty list")
    out_dir = usable_out_dir(out_dir, ROBUSTNESS_RESULTS.command)
    keys = [RobustnessKey(attack, rule, count, alpha, seed)
            for attack, rule, count, alpha in itertools.product(
                *(dict.fromkeys(values) for values in grid.values()))
            for seed in range(base.seed, base.seed + seeds)]
    configs = possible_runs(base, keys)  # validates every run

    def line(key: RobustnessKey, summary: dict) -> dict:
        return {**dataclasses.asdict(key), "final_test_accuracy": summary["final_test_accuracy"],
                **{name: summary.get(name) for name in ("mean_detection_tpr",
                                                        "mean_detection_fpr",
                                                        "final_backdoor_success")},
                "rounds": summary["rounds"], "seconds": summary["total_seconds"]}

    return run_planned("robustness", configs, shared_settings(base, ROBUSTNESS_PER_RUN),
                       out_dir, ROBUSTNESS_RESULTS, run_byzantine, line,
                       lambda results: draw_robustness(results, out_dir), progress, force)


def draw_robustness(results: list[dict], out_dir: Path) -> list[Path]:
    """The heatmaps of a robustness sweep's results into ``out_dir``; the files drawn."""
    from .viz import robustness_heatmap

    titles = {"final_test_accuracy": ("final test accuracy (higher: the rule withstood it)",
                                      "RdYlGn"),
              "final_backdoor_success": ("final backdoor success (lower: the rule withstood it)",
                                         "RdYlGn_r")}
    paths = []
    for value, file in ROBUSTNESS_FILES.items():
        if any(r[value] is not None for r in results):
            title, cmap = titles[value]
            save_figure(robustness_heatmap(results, value, title, cmap), out_dir / file)
            paths.append(out_dir / file)
    return paths
