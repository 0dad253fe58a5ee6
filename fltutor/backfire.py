"""The backfire sweep (``fltutor sweep backfire``): do defenses help the curious client?

"Byzantine outside, curious inside" (Yue et al., arXiv 2506.11413) finds that DP, Krum, Median,
DnC, FreqFed and their combinations can make a curious client's reconstructions of its peers'
images *better* (10-15 % more reconstruction success): they slow the federation's convergence,
and early models leak most; a rule that keeps few updates (Krum keeps one) averages fewer
images into the gradient the client inverts. This sweep measures it: the curious client's RMSE
to its peers' images (``fltutor.recipes.curious``; lower: more leaked) over the rounds, for each
defense, with and without its poisoning, over seeds.

A *defense* here is a label: ``none``, a defense of ``fltutor.parts.DEFENSES`` (``record-dp``,
``local-dp``), an aggregation rule of ``fltutor.aggregators.AGGREGATORS`` (``krum``, ``median``,
``dnc``, ``freqfed``, ...), or one of each joined by ``+`` (``record-dp+krum``). A rule with a
``num_malicious`` option assumes one malicious client, the curious one (``CuriousConfig``).

The DP settings are sized for the FedSGD profiles (``quick-fedsgd``: one image a client a
round, LeNet-5's 61,706 weights, updates of norm 0.2 to 0.6 in the first 60 rounds, measured).
At the CRPA study's DP-SGD (sigma 0.3, C 1.5) the noise on one image's clipped gradient has norm
about 112 against a gradient of norm 2 to 5: no model learns, so nothing converges or leaks. The
sweep gives each DP kind ``BACKFIRE_OPTIONS`` instead, noise about the size of what it hides,
where the model still learns: record-level DP sigma 0.01 at C 1.5 (DP-SGD's learning rate 0.25);
local DP C = 0.3 (about the median update, so clipping bites) and sigma 0.004, noise of norm
about 0.3 per update. Both guarantee next to nothing (their epsilons are recorded in every run's
metrics.json): the sweep asks whether the *mechanisms* help the attacker, not whether a
meaningful guarantee stops it (the privacy sweep, ``fltutor.privacy``, asks that).

The sweep folder is kept as every sweep's (``fltutor.sweep``): ``sweep.json``, ``results.jsonl``
(one line per run: its key, the RMSE of every round, its mean, final accuracy; ``BACKFIRE_FIELDS``),
``runs/NAME/``; a rerun skips finished runs. When all are done it writes ``BACKFIRE_FILES`` from
every run in the folder: the figure of RMSE over rounds per defense (mean over seeds, band from
the lowest to the highest seed) and the table of each defense's difference to no defense
(``backfire_table``).
"""

from __future__ import annotations

import csv
import math
import dataclasses
import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .checks import check, check_choice, check_int
from .experiments import atomic_write, save_figure, usable_out_dir, write_json
from .sweep import MAX_SWEEP_SEEDS, Results, check_base, run_planned, shared_settings

if TYPE_CHECKING:
    from .parts import Defense
    from .recipes.curious import CuriousConfig

#: The defenses of the study's backfire experiment, with two DP + robust-rule combinations.
BACKFIRE_DEFENSES = ("none", "record-dp", "local-dp", "krum", "median", "dnc", "freqfed",
                     "record-dp+krum", "local-dp+median")
#: The poisoning a curious client adds in the sweep's poisoned runs (``--poison``).
BACKFIRE_POISON = "sign-flip"
#: The figure and the table files a finished sweep writes into its folder.
BACKFIRE_FILES = ("backfire_rmse.png", "backfire_table.csv", "backfire_table.json")
#: The fields of a backfire sweep's results.jsonl line.
BACKFIRE_FIELDS = {"defense": "a text", "poison": "a text", "seed": "an integer",
                   "rmse_rounds": "a list", "curious_rmse": "a list",
                   "control_rmse": "a list", "test_accuracy": "a list",
                   "mean_curious_rmse": "a number", "mean_gain": "a number",
                   "final_test_accuracy": "a number",
                   "rounds": "an integer", "seconds": "a number"}
#: The fields a backfire sweep sets per run; the others are the sweep's shared settings.
BACKFIRE_PER_RUN = ("aggregator", "defenses", "poison", "seed")


#: Settings the sweep gives a defense other than its defaults (why: the module's docstring).
BACKFIRE_OPTIONS: dict[str, dict[str, Any]] = {
    "record-dp": dict(noise_multiplier=0.01),
    "local-dp": dict(noise_multiplier=0.004, max_update_norm=0.3)}


@dataclass(frozen=True)
class BackfireKey:
    """What tells one run of a backfire sweep from another."""

    defense: str
    poison: str
    seed: int

    @property
    def name(self) -> str:
        return f"{self.defense}-{self.poison}-seed{self.seed}"


BACKFIRE_RESULTS = Results(BackfireKey, BACKFIRE_FIELDS, "sweep backfire")


def defense_names() -> tuple[list[str], list[str]]:
    """The names a defense label is made of: the registered defenses, the aggregation rules."""
    from .aggregators import AGGREGATORS
    from .defenses import registered_defenses

    return registered_defenses(), [name for name in AGGREGATORS.names() if name != "mean"]


def defense_setting(label: str) -> tuple[tuple[Defense, ...], str]:
    """``label``'s defenses and rule: ``"record-dp+krum"`` -> ``((DPConfig(),), "krum")``.

    ``none`` is no defense and FedAvg's mean; otherwise each ``+``-joined name is a registered
    defense or a rule, each named once, with at most one rule.
    """
    defenses, rules = defense_names()
    names = label.split("+") if isinstance(label, str) else []
    check(label == "none" or (names and all(n in defenses or n in rules for n in names)
                              and len(set(names)) == len(names)
                              and sum(n in rules for n in names) <= 1),
          "defense", label, f"none, or names joined by +, each once, at most one rule: defenses "
          f"{', '.join(defenses)}; rules {', '.join(rules)}")
    from .parts import DEFENSES

    specs = tuple(DEFENSES[n](**BACKFIRE_OPTIONS.get(n, {})) for n in names if n in defenses)
    return specs, next((n for n in names if n in rules), "mean")


def backfire_config(base: CuriousConfig, key: BackfireKey) -> CuriousConfig:
    """One run's configuration: ``base`` with the run's defenses, rule, poisoning and seed, made
    by ``CuriousConfig.from_profile`` so that a rule assumes the curious client as its one
    malicious client."""
    defenses, rule = defense_setting(key.defense)
    settings = {f.name: getattr(base, f.name) for f in dataclasses.fields(base)}
    settings.pop("profile")
    return type(base).from_profile(base.profile, **{
        **settings, "aggregator": rule, "defenses": defenses, "poison": key.poison,
        "seed": key.seed})


def run_traced(config: CuriousConfig, out_dir: Path, **options: Any) -> dict:
    """``run_curious``, with the RMSE of every round it reconstructed in, its best control's
    and the test accuracy then, added to its summary (the sweep's results line keeps the
    curves, not only the headline numbers)."""
    from .recipes import curious

    metrics = curious.run_curious(config, out_dir, **options)
    scored = [r for r in metrics["rounds"] if "curious_rmse" in r]
    trace = {"rmse_rounds": [r["round"] for r in scored],
             "curious_rmse": [r["curious_rmse"] for r in scored],
             "control_rmse": [r["curious_control_rmse"] for r in scored],
             "test_accuracy": [r["test_accuracy"] for r in scored]}
    return {**metrics, "summary": {**metrics["summary"], **trace}}


def mean_or_nan(values) -> float:
    """The mean, or NaN for no values (a run whose every round Krum gave the curious client's
    own update back: nothing of a peer to score)."""
    return float(np.mean(values)) if len(values) else math.nan


def run_backfire(base: CuriousConfig, out_dir: str | Path, defenses: list[str] | None = None,
                 poison: str = BACKFIRE_POISON, seeds: int = 1, progress: bool = True,
                 force: bool = False) -> list[dict]:
    """Run (or resume) every defense with the curious client clean and poisoning, over seeds.

    ``defenses``: labels (default ``BACKFIRE_DEFENSES``; ``none`` is always run, as the
    baseline); ``poison``: the poisoning attack of the poisoned runs; ``seeds`` seeds from
    ``base.seed`` on. Every run's configuration is checked before the first starts. When all are
    done the figure and table of ``BACKFIRE_FILES`` are written, from all results in the folder
    (an earlier sweep there with more defenses or seeds included). Returns all results so far.
    """
    from .attacks.curious import poisoning_attacks
    from .recipes.curious import CuriousConfig

    check_base(base, CuriousConfig)
    check_int("seeds", seeds, 1, MAX_SWEEP_SEEDS)
    check(isinstance(force, bool), "force", force, "True or False")
    labels = BACKFIRE_DEFENSES if defenses is None else defenses
    check(isinstance(labels, (list, tuple)) and len(labels) > 0, "defenses", labels,
          "a non-empty list of defense labels")
    check_choice("poison", poison, [p for p in poisoning_attacks() if p != "none"])
    out_dir = usable_out_dir(out_dir, BACKFIRE_RESULTS.command)
    labels = list(dict.fromkeys(["none", *labels]))
    keys = [BackfireKey(label, attack, seed) for label in labels for attack in ("none", poison)
            for seed in range(base.seed, base.seed + seeds)]
    configs = {key: backfire_config(base, key) for key in keys}  # validates every run

    def line(key: BackfireKey, summary: dict) -> dict:
        return {**dataclasses.asdict(key), "rmse_rounds": summary["rmse_rounds"],
                "curious_rmse": summary["curious_rmse"], "control_rmse": summary["control_rmse"],
                "test_accuracy": summary["test_accuracy"],
                "mean_curious_rmse": mean_or_nan(summary["curious_rmse"]),
                "mean_gain": mean_or_nan(np.subtract(summary["control_rmse"],
                                                     summary["curious_rmse"])),
                "final_test_accuracy": summary["final_test_accuracy"],
                "rounds": summary["rounds"], "seconds": summary["total_seconds"]}

    return run_planned("backfire", configs, shared_settings(base, BACKFIRE_PER_RUN), out_dir,
                       BACKFIRE_RESULTS, run_traced, line,
                       lambda results: write_backfire(results, out_dir), progress, force)


def paired_difference(run: dict, baseline: dict) -> float:
    """The mean over the rounds both runs were scored in of ``run``'s RMSE minus ``baseline``'s
    (NaN when they share none: Krum may keep only the curious client's own update, and such a
    round has no score). Comparing round by round keeps a run that skipped its late, poorly
    reconstructed rounds from looking better than it is.

    >>> round(paired_difference({"rmse_rounds": [1, 10], "curious_rmse": [0.3, 0.9]},
    ...                         {"rmse_rounds": [1, 5, 10], "curious_rmse": [0.4, 0.5, 0.6]}), 3)
    0.1
    """
    base = dict(zip(baseline["rmse_rounds"], baseline["curious_rmse"]))
    pairs = [value - base[r] for r, value in zip(run["rmse_rounds"], run["curious_rmse"])
             if r in base]
    return float(np.mean(pairs)) if pairs else math.nan


def backfire_table(results: list[dict]) -> list[dict]:
    """Per defense and poisoning: its mean RMSE and how far it lies from no defense's.

    For every seed, the run's RMSE minus that of the run without defense (same poisoning, same
    seed: the same data and start), averaged over the rounds both were scored in
    (``paired_difference``); then the mean of those differences over the seeds, their standard
    deviation, lowest and highest, and the mean difference in percent of no defense's mean RMSE.
    A negative difference is the backfire: the defense made the curious client's
    reconstructions better. ``mean_gain`` is the mean over seeds of the runs' mean gain over the
    best guess without the gradient; ``final_test_accuracy`` the mean over seeds. A seed whose
    run was scored in no round is left out (``seeds`` counts the others).

    >>> runs = [{"defense": d, "poison": "none", "seed": s, "rmse_rounds": [1, 2],
    ...          "curious_rmse": v, "mean_curious_rmse": sum(v) / 2, "mean_gain": 0.1,
    ...          "final_test_accuracy": 0.5} for d, s, v in
    ...         [("none", 0, [0.4, 0.4]), ("none", 1, [0.5, 0.5]), ("krum", 0, [0.3, 0.3]),
    ...          ("krum", 1, [0.5, 0.5])]]
    >>> row = backfire_table(runs)[1]
    >>> row["defense"], round(row["difference"], 3), round(row["relative_percent"], 1)
    ('krum', -0.05, -11.1)
    """
    baseline = {(r["poison"], r["seed"]): r for r in results if r["defense"] == "none"}
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in results:
        if (r["poison"], r["seed"]) in baseline and r["curious_rmse"]:
            groups.setdefault((r["defense"], r["poison"]), []).append(r)
    rows = []
    for (defense, poison), runs in groups.items():
        rmse = np.array([r["mean_curious_rmse"] for r in runs])
        differences = np.array([paired_difference(r, baseline[(poison, r["seed"])])
                                for r in runs])
        reference = np.mean([baseline[(poison, r["seed"])]["mean_curious_rmse"] for r in runs])
        rows.append({"defense": defense, "poison": poison, "seeds": len(runs),
                     "mean_rmse": float(rmse.mean()), "difference": float(differences.mean()),
                     "difference_std": float(differences.std()),
                     "difference_min": float(differences.min()),
                     "difference_max": float(differences.max()),
                     "relative_percent": float(100 * differences.mean() / reference),
                     "mean_gain": float(np.mean([r["mean_gain"] for r in runs])),
                     "final_test_accuracy": float(np.mean([r["final_test_accuracy"]
                                                           for r in runs]))})
    return rows


def format_table(rows: list[dict]) -> str:
    """The table as fixed-width text, one row per defense and poisoning."""
    header = (f"{'defense':<18} {'poison':<10} {'seeds':>5} {'RMSE':>7} {'diff':>8} "
              f"{'std':>7} {'min':>8} {'max':>8} {'diff %':>7} {'gain':>7} {'acc':>6}")
    lines = [header] + [
        f"{r['defense']:<18} {r['poison']:<10} {r['seeds']:>5} {r['mean_rmse']:>7.4f} "
        f"{r['difference']:>+8.4f} {r['difference_std']:>7.4f} {r['difference_min']:>+8.4f} "
        f"{r['difference_max']:>+8.4f} {r['relative_percent']:>+7.1f} {r['mean_gain']:>+7.3f} "
        f"{r['final_test_accuracy']:>6.3f}" for r in rows]
    return "\n".join(lines)


def write_backfire(results: list[dict], out_dir: Path) -> list[dict]:
    """The figure and the table (CSV and JSON) of ``results`` into ``out_dir``; the table."""
    from .viz import backfire_curves

    rows = backfire_table(results)
    save_figure(backfire_curves(results), out_dir / BACKFIRE_FILES[0])
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]) if rows else ["defense"])
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(out_dir / BACKFIRE_FILES[1], lambda tmp: Path(tmp).write_text(text.getvalue()))
    write_json(out_dir / BACKFIRE_FILES[2], rows)
    return rows
