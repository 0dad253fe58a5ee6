"""The privacy sweep (``fltutor sweep privacy``): what differential privacy buys against each
attack of the course, and what it costs.

A *setting* is a DP kind, a noise multiplier sigma and a clipping norm C:

``none``       no DP, the reference every setting is compared with;
``record-dp``  DP-SGD on every client (``fltutor.defenses.dp``): one *record* is protected,
               C bounds one record's gradient;
``local-dp``   every honest client noises its own update (``fltutor.defenses.local_dp``): a
               client's whole data set is protected against everybody, the server included;
``client-dp``  the server clips every update and noises their sum (DP-FedAvg,
               ``fltutor.defenses.client_dp``): a client's whole data set is protected against
               whoever sees the released models, *not* against the server, which sees the
               updates in the clear.

Each setting is run in every *scenario* (``SCENARIOS``): the same federation with the setting's
defense added, and one attack of the course (or none). A scenario records the run's epsilon (its
DP kind's accountant, at ``PRIVACY_DELTA``), its test accuracy and its attack's ``success``:

=================  ===========================================================  ============
scenario           attack                                                       success
=================  ===========================================================  ============
clean              none: FedAvg on IID data, the accuracy DP costs              (none)
inversion          an honest-but-curious server inverts client 0's first update PSNR (dB)
                   (Inverting Gradients, ``fltutor.attacks.eavesdropper``)
crpa               the CRPA at alpha 0 (``fltutor.recipes.crpa``)               AAA
crpa-control       the same federation without attacker: the AAA of no attack   AAA
curious            a curious client reconstructs its peers (``recipes.curious``) RMSE
sign-flip-mean     3 of 10 clients flip their updates, FedAvg's mean            accuracy
sign-flip-median   the same against the coordinate-wise median                  accuracy
=================  ===========================================================  ============

The CRPA's lines also say how well its GAN imitated the class it never saw
(``RECONSTRUCTION_FIELDS``: the judge's confidence and the SSIM to the nearest real image).

``attack_stops`` reads the finished sweep: for every attack and DP kind, the largest epsilon at
which the attack no longer works (``STOP_RULES``), and the accuracy the clean federation keeps
there. Epsilons of different scenarios are not comparable: each is its own federation's (number
of rounds, records per client, clients per round), which is why the frontier (``fltutor.viz.
privacy_frontier``) draws each attack against its own run's epsilon.

The sweep folder is kept as every sweep's (``fltutor.sweep``): ``sweep.json`` (the profile's
scenario settings), ``results.jsonl`` (one line per setting, scenario and seed:
``PRIVACY_FIELDS``), ``runs/NAME/``; a rerun skips finished runs and resumes an interrupted one.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from .checks import MAX_CLIP, MAX_RATE, check, check_choice, check_int, check_number
from .experiments import config_json, save_figure, usable_out_dir
from .sweep import MAX_SWEEP_SEEDS, Results, run_planned

if TYPE_CHECKING:
    from .config import FedConfig
    from .parts import Defense

#: The setting without DP: every scenario's reference.
NO_DP = "none"
#: The delta every DP kind's epsilon is stated at in the sweep (well below 1 / the records of
#: any client's data set, and below 1 / the clients of any federation of the profiles).
PRIVACY_DELTA = 1e-5
#: The class pair of the CRPA scenario: the quick profile's pair of the course (4 imitated,
#: labelled 9), which looks alike, so that the attack has a chance at small scale.
CRPA_PAIR = (4, 9)
#: Clients that flip their update's sign in the Byzantine scenarios.
SIGN_FLIPPERS = 3

#: The noise multipliers and clipping norms ``run_privacy`` sweeps by default, per DP kind.
#: Each kind's C is of the size of what it clips (one record's gradient for DP-SGD, the study's
#: 1.5; one client's update for the others, 0.3 to 0.7 in these federations: C = 0.5), and
#: sigma goes from noise that changes little to noise that stops the models learning.
PRIVACY_GRID: dict[str, dict[str, tuple[float, ...]]] = {
    "record-dp": {"noises": (0.3, 1.0, 3.0), "clips": (1.5,)},
    "local-dp": {"noises": (0.0003, 0.003, 0.03), "clips": (0.5,)},
    "client-dp": {"noises": (0.01, 0.1, 1.0), "clips": (0.5,)},
}


@dataclass(frozen=True)
class Scenario:
    """One federation of the sweep: which recipe runs it, with which settings, and how its
    attack's ``success`` is read from the run's summary (``None``: no attack)."""

    recipe: str
    settings: dict[str, Any]
    success: str | None
    what: str


SCENARIOS: dict[str, Scenario] = {
    "clean": Scenario("byzantine", dict(attack="none", malicious=0), None,
                      "FedAvg without attack: the accuracy DP costs"),
    "inversion": Scenario("inversion", {}, "inversion_psnr",
                          "the server inverts client 0's update: PSNR in dB (higher: leaks)"),
    "crpa": Scenario("crpa", dict(attack="crpa"), "aaa",
                     "the CRPA at alpha 0: AAA (higher: the attack works)"),
    "crpa-control": Scenario("crpa", dict(attack="none"), "aaa",
                             "the CRPA's federation without attacker: the AAA of no attack"),
    "curious": Scenario("curious", {}, "mean_curious_rmse",
                        "a curious client reconstructs its peers: RMSE (lower: leaks)"),
    "sign-flip-mean": Scenario("byzantine", dict(attack="sign-flip", malicious=SIGN_FLIPPERS),
                               "final_test_accuracy",
                               "3 of 10 clients flip signs, FedAvg's mean: accuracy"),
    "sign-flip-median": Scenario("byzantine", dict(attack="sign-flip", malicious=SIGN_FLIPPERS,
                                                   aggregator="median"), "final_test_accuracy",
                                 "the same against the median: accuracy"),
}

#: The inversion scenario's federation: 10 clients of 2 images each, so that one local step of
#: plain SGD is all a client's update holds, and the server inverts the very first update (a
#: fresh model leaks most). Without DP, 300 iterations of Inverting Gradients reach 26 dB on
#: client 0's two digits, in about 4 s on two CPU cores; ten clients keep a notebook that runs it
#: several times within its memory (a hundred held a gigabyte of updates).
INVERSION_FEDERATION = dict(model="lenet5-wide", num_clients=10, max_per_class=2,
                            max_test=500, num_rounds=1, batch_size=2, optimizer="sgd", lr=0.05)

@dataclass(frozen=True)
class PrivacyProfile:
    """A scale of the sweep: the recipes' profile its scenarios build on, and what it changes in
    each scenario (``{scenario: {setting: value}}``)."""

    recipes: str
    changes: dict[str, dict[str, Any]]


#: ``quick``: about a minute and a half per setting, all seven scenarios, on two CPU cores;
#: ``tiny``: seconds per scenario (the inversion's 9 s aside), for notebook 07's live runs and the
#: tests, at which only the inversion and the Byzantine attacks show what they do; ``paper``:
#: the recipes' paper profiles.
PRIVACY_PROFILES: dict[str, PrivacyProfile] = {
    "quick": PrivacyProfile("quick", {"crpa": dict(num_rounds=12, max_per_class=100),
                                      "crpa-control": dict(num_rounds=12, max_per_class=100),
                                      "curious": dict(num_rounds=10,
                                                      curious_options=dict(rounds=(1, 5, 10)))}),
    "tiny": PrivacyProfile("quick", {
        **{name: dict(num_rounds=4, max_per_class=30, max_test=200)
           for name in ("clean", "sign-flip-mean", "sign-flip-median")},
        **{name: dict(num_rounds=3, max_per_class=20, max_test=200, gan=dict(steps=3))
           for name in ("crpa", "crpa-control")},
        "curious": dict(num_rounds=2, max_per_class=20, max_test=100,
                        curious_options=dict(rounds=(1, 2), iterations=5))}),
    "paper": PrivacyProfile("paper", {}),
}


def dp_kinds() -> list[str]:
    """The registered defenses that state an epsilon (``Defense.epsilon_metric``): the DP kinds."""
    from .defenses import registered_defenses
    from .parts import DEFENSES

    return [name for name in registered_defenses()
            if getattr(DEFENSES[name], "epsilon_metric", None)]


def dp_defense(kind: str, noise: float, clip: float) -> tuple[Defense, ...]:
    """The defenses of a setting: ``()`` for ``none``, else the kind's spec with sigma and C
    (its own clip setting, ``clip_setting``) at ``PRIVACY_DELTA``.

    >>> dp_defense("local-dp", 0.5, 2.0)[0].to_dict()
    {'name': 'local-dp', 'noise_multiplier': 0.5, 'max_update_norm': 2.0, 'delta': 1e-05}
    """
    from .parts import DEFENSES

    check_choice("kind", kind, [NO_DP, *dp_kinds()])
    check_number("noise", noise, 0.0, MAX_RATE)
    check_number("clip", clip, 0.0, MAX_CLIP, open_low=True)
    if kind == NO_DP:
        return ()
    spec = DEFENSES[kind]
    return (spec(noise_multiplier=noise, delta=PRIVACY_DELTA, **{spec.clip_setting: clip}),)


@dataclass(frozen=True)
class PrivacyKey:
    """What tells one run of a privacy sweep from another."""

    kind: str
    noise: float
    clip: float
    scenario: str
    seed: int

    @property
    def name(self) -> str:
        setting = "none" if self.kind == NO_DP else f"{self.kind}-z{self.noise:g}-c{self.clip:g}"
        return f"{setting}-{self.scenario}-seed{self.seed}"


#: How well the CRPA's GAN imitates the class it never saw (``fltutor.metrics.
#: reconstruction_quality``): an independent judge's confidence that the fakes are that class,
#: and their SSIM to the nearest real image of it. Null in the other scenarios.
RECONSTRUCTION_FIELDS = ("judge_confidence", "ssim_nearest")
#: The fields of a privacy sweep's results.jsonl line (``success`` null: the scenario has no
#: attack; ``epsilon`` infinite: no DP, or no noise).
PRIVACY_FIELDS = {"kind": "a text", "noise": "a number", "clip": "a number", "scenario": "a text",
                  "seed": "an integer", "epsilon": "a number", "final_test_accuracy": "a number",
                  "success": "a number or null",
                  **{field: "a number or null" for field in RECONSTRUCTION_FIELDS},
                  "rounds": "an integer", "seconds": "a number"}
PRIVACY_RESULTS = Results(PrivacyKey, PRIVACY_FIELDS, "sweep privacy")


def scenario_config(profile: str, key: PrivacyKey, shared: dict[str, Any] | None = None
                    ) -> FedConfig:
    """The configuration of one run: the scenario's recipe at ``profile`` with the profile's
    changes, the ``shared`` settings (device, dataset folder, ...), the setting's defense and
    the seed."""
    check_choice("profile", profile, PRIVACY_PROFILES)
    check_choice("scenario", key.scenario, SCENARIOS)
    scenario, scale = SCENARIOS[key.scenario], PRIVACY_PROFILES[profile]
    values = {**scenario.settings, **scale.changes.get(key.scenario, {}), **(shared or {}),
              "defenses": dp_defense(key.kind, key.noise, key.clip), "seed": key.seed}
    return RECIPES[scenario.recipe].config(scale.recipes, values)


@dataclass(frozen=True)
class Recipe:
    """How a scenario's federation is made and run: ``config(profile, values)`` and the recipe's
    ``run(config, out_dir, progress=..., force=..., after_round=...)``."""

    config: Callable[[str, dict], FedConfig]
    run: Callable[..., dict]


def byzantine_config(profile: str, values: dict) -> FedConfig:
    from .recipes.byzantine import ByzantineConfig

    return ByzantineConfig.from_profile(profile, **values)


def crpa_config(profile: str, values: dict) -> FedConfig:
    from .recipes.crpa import CRPAConfig

    g, t = CRPA_PAIR
    return CRPAConfig.from_profile(profile, generate_class=g, target_class=t, **values)


def curious_config(profile: str, values: dict) -> FedConfig:
    """The curious client in FedSGD (``quick-fedsgd`` or ``paper-fedsgd``), where it leaks."""
    from .recipes.curious import CuriousConfig

    return CuriousConfig.from_profile(f"{profile}-fedsgd", **values)


def inversion_config(profile: str, values: dict) -> FedConfig:
    """The eavesdropped federation (``INVERSION_FEDERATION``, the same at every profile: the
    attack is on one update) with the server's inversion of client 0's first update."""
    from .attacks.eavesdropper import GradientInversion
    from .config import FedConfig

    images = INVERSION_FEDERATION["batch_size"]
    spy = GradientInversion(client=0, every=1, images=images, iterations=300)
    return FedConfig.from_profile(profile, **{**INVERSION_FEDERATION, **values,
                                              "observations": (spy,)})


def run_byzantine(config: FedConfig, out_dir: Path, **options: Any) -> dict:
    from .recipes.byzantine import run_byzantine as run

    return run(config, out_dir, **options)


def run_crpa(config: FedConfig, out_dir: Path, **options: Any) -> dict:
    from .recipes.crpa import run_crpa as run

    return run(config, out_dir, **options)


def run_curious(config: FedConfig, out_dir: Path, **options: Any) -> dict:
    """``run_curious``, with the mean of the curious client's RMSE over its rounds added."""
    from .recipes.curious import run_curious as run

    metrics = run(config, out_dir, **options)
    scored = [r["curious_rmse"] for r in metrics["rounds"] if r.get("curious_rmse") is not None]
    mean = sum(scored) / len(scored) if scored else None
    return {**metrics, "summary": {**metrics["summary"], "mean_curious_rmse": mean}}


def run_eavesdropped(config: FedConfig, out_dir: Path, **options: Any) -> dict:
    """A FedAvg run with the server's inversion; its last inversion's PSNR and SSIM added."""
    from .experiments import run_fedavg

    options.pop("after_round", None)  # one round: nothing to show between rounds
    metrics = run_fedavg(config, out_dir, **options)
    inverted = [r for r in metrics["rounds"] if r.get("inversion_psnr") is not None]
    last = inverted[-1] if inverted else {}
    return {**metrics, "summary": {**metrics["summary"],
                                   "inversion_psnr": last.get("inversion_psnr"),
                                   "inversion_ssim": last.get("inversion_ssim")}}


RECIPES = {"byzantine": Recipe(byzantine_config, run_byzantine),
           "crpa": Recipe(crpa_config, run_crpa),
           "curious": Recipe(curious_config, run_curious),
           "inversion": Recipe(inversion_config, run_eavesdropped)}


def run_epsilon(config: FedConfig, last_round: dict) -> float:
    """The epsilon a run's DP defense recorded in its last round; infinite without DP."""
    specs = [d for d in config.defenses if getattr(d, "epsilon_metric", None)]
    return float(last_round[specs[0].epsilon_metric]) if specs else math.inf


@dataclass(frozen=True)
class PlannedRun:
    """A run of the sweep: its scenario and its configuration."""

    scenario: str
    config: FedConfig


def run_scenario(planned: PlannedRun, out_dir: Path, **options: Any) -> dict:
    """Run ``planned`` with its scenario's recipe; the summary gains the run's ``epsilon``."""
    recipe = RECIPES[SCENARIOS[planned.scenario].recipe]
    metrics = recipe.run(planned.config, out_dir, **options)
    epsilon = run_epsilon(planned.config, metrics["rounds"][-1])
    return {**metrics, "summary": {**metrics["summary"], "epsilon": epsilon}}


def settings_of(kinds: list[str], noises: list[float] | None,
                clips: list[float] | None) -> list[tuple[str, float, float]]:
    """Every (kind, sigma, C) of the sweep: ``none`` once, then each DP kind with ``noises`` x
    ``clips`` (default: its ``PRIVACY_GRID``)."""
    settings = [(NO_DP, 0.0, 1.0)]
    for kind in dict.fromkeys(kinds):
        if kind == NO_DP:
            continue
        grid = PRIVACY_GRID[kind]
        for noise, clip in itertools.product(dict.fromkeys(noises or grid["noises"]),
                                             dict.fromkeys(clips or grid["clips"])):
            settings.append((kind, float(noise), float(clip)))
    return settings


def run_privacy(out_dir: str | Path, kinds: list[str] | None = None,
                noises: list[float] | None = None, clips: list[float] | None = None,
                scenarios: list[str] | None = None, seeds: int = 1, seed: int = 0,
                profile: str = "quick", shared: dict[str, Any] | None = None,
                progress: bool = True, force: bool = False) -> list[dict]:
    """Run (or resume) every DP setting in every scenario, over seeds; returns all results.

    ``kinds``: DP kinds (default: all of ``dp_kinds()``; ``none`` is always run, as the
    reference); ``noises`` and ``clips``: sigma and C for every kind (default: each kind's
    ``PRIVACY_GRID``); ``scenarios``: names of ``SCENARIOS`` (default: all); ``seeds`` seeds
    from ``seed`` on; ``shared``: settings of every run (``device``, ``data_root``,
    ``dataset``, ``allow_fallback``). Every run's configuration is checked before the first
    starts, so a bad value stops the sweep before any work.
    """
    check_choice("profile", profile, PRIVACY_PROFILES)
    check_int("seeds", seeds, 1, MAX_SWEEP_SEEDS)
    check(isinstance(force, bool), "force", force, "True or False")
    kinds = dp_kinds() if kinds is None else kinds
    scenarios = list(SCENARIOS) if scenarios is None else scenarios
    for name, values in (("kinds", kinds), ("scenarios", scenarios), ("noises", noises),
                         ("clips", clips)):
        check(values is None or (isinstance(values, (list, tuple)) and len(values) > 0), name,
              values, "a non-empty list")
    for kind in kinds:
        check_choice("kind", kind, [NO_DP, *dp_kinds()])
    if all(kind == NO_DP for kind in kinds):  # then a noise or a clipping norm changes nothing
        for name, values in (("noises", noises), ("clips", clips)):
            check(values is None, name, values, f"left out with kinds {NO_DP} alone, which adds "
                  f"no noise and clips nothing")
    out_dir = usable_out_dir(out_dir, PRIVACY_RESULTS.command)
    keys = [PrivacyKey(kind, noise, clip, scenario, s)
            for kind, noise, clip in settings_of(kinds, noises, clips)
            for scenario in dict.fromkeys(scenarios)
            for s in range(seed, seed + seeds)]
    planned = {key: PlannedRun(key.scenario, scenario_config(profile, key, shared))
               for key in keys}  # validates every run

    def line(key: PrivacyKey, summary: dict) -> dict:
        success = SCENARIOS[key.scenario].success
        return {**dataclasses.asdict(key), "epsilon": summary["epsilon"],
                "final_test_accuracy": summary["final_test_accuracy"],
                "success": summary[success] if success else None,
                **{field: summary.get(field) for field in RECONSTRUCTION_FIELDS},
                "rounds": summary["rounds"], "seconds": summary["total_seconds"]}

    return run_planned("privacy", planned, sweep_settings(profile, shared), out_dir,
                       PRIVACY_RESULTS, run_scenario, line,
                       lambda results: write_privacy(results, out_dir), progress, force)


def sweep_settings(profile: str, shared: dict[str, Any] | None) -> dict:
    """What every run of a privacy sweep folder shares: each scenario's settings without DP,
    at seed 0 (sweep.json; a folder of other settings is refused)."""
    return {"profile": profile, **{
        name: {k: v for k, v in config_json(scenario_config(
            profile, PrivacyKey(NO_DP, 0.0, 1.0, name, 0), shared)).items()
            if k not in ("defenses", "seed")} for name in SCENARIOS}}


# --- reading a finished sweep -----------------------------------------------------------------

#: The PSNR of a blank guess: an all-background image scores 10.1 dB on average against the
#: inversion scenario's digits (8.6 to 11.4 dB over its ten clients; uniform noise: 5 dB).
BLANK_GUESS_PSNR_DB = 10.0
#: How far above the blank guess a reconstruction must be to count as leaking, in dB.
LEAK_MARGIN_DB = 3.0
#: How close to its control an attack's success must come to count as stopped: the CRPA's AAA
#: to that of no attacker at the same setting, a sign flip's accuracy to the clean federation's.
AAA_MARGIN = 0.1
ACCURACY_MARGIN = 0.05
#: How much worse than without DP the curious client's mean RMSE over its rounds must get to count
#: as stopped: 5 %. (Whether it still beats a guess without the gradient is in its own runs'
#: metrics.json: ``curious_gain``, notebook 06.)
RMSE_FACTOR = 1.05
#: When an attack no longer works, read from its scenario's ``success`` (``stopped``).
STOP_RULES = {
    "inversion": f"PSNR below {BLANK_GUESS_PSNR_DB + LEAK_MARGIN_DB:g} dB (a blank guess + "
                 f"{LEAK_MARGIN_DB:g} dB)",
    "crpa": f"AAA within {AAA_MARGIN:g} and accuracy within {ACCURACY_MARGIN:g} of "
            "crpa-control's",
    "curious": f"RMSE at least {RMSE_FACTOR:g} x that without DP",
    "sign-flip-mean": f"accuracy within {ACCURACY_MARGIN:g} of clean's",
    "sign-flip-median": f"accuracy within {ACCURACY_MARGIN:g} of clean's",
}


def stopped(scenario: str, run: dict, reference: dict | None) -> bool | None:
    """Whether ``scenario``'s attack no longer works in ``run``, by ``STOP_RULES``. ``run`` and
    ``reference`` are values of ``mean_by_setting`` (``success``, ``final_test_accuracy``): the
    scenario's at one setting, and what ``reference_for`` compares it with (crpa-control's or the
    clean federation's at the same setting, the curious client's without DP). None when the
    reference is missing. A CRPA that wrecks the whole model has not been stopped, however low
    its AAA: its run must also keep the control's accuracy.

    >>> control = {"success": 0.2, "final_test_accuracy": 0.6}
    >>> stopped("inversion", {"success": 9.0}, None), stopped("crpa", {"success": 0.5,
    ...     "final_test_accuracy": 0.6}, control)
    (True, False)
    >>> stopped("crpa", {"success": 0.25, "final_test_accuracy": 0.58}, control)
    True
    >>> stopped("crpa", {"success": 0.01, "final_test_accuracy": 0.09}, control)  # a wreck
    False
    """
    success = run["success"]
    if scenario == "inversion":
        return success < BLANK_GUESS_PSNR_DB + LEAK_MARGIN_DB
    if reference is None:
        return None
    if scenario == "crpa":
        return (success <= reference["success"] + AAA_MARGIN and run["final_test_accuracy"]
                >= reference["final_test_accuracy"] - ACCURACY_MARGIN)
    if scenario == "curious":
        return success >= RMSE_FACTOR * reference["success"]
    return success >= reference["final_test_accuracy"] - ACCURACY_MARGIN


def mean_by_setting(results: list[dict]) -> dict[tuple, dict]:
    """``{(kind, noise, clip, scenario): {"epsilon", "final_test_accuracy", "success",
    "judge_confidence", "ssim_nearest", "seeds"}}``: the mean over seeds of each setting's runs
    (None where no run has the field)."""
    groups: dict[tuple, list[dict]] = {}
    for r in results:
        groups.setdefault((r["kind"], r["noise"], r["clip"], r["scenario"]), []).append(r)

    def mean(runs: list[dict], field: str) -> float | None:
        values = [r[field] for r in runs if r.get(field) is not None]
        return sum(values) / len(values) if values else None

    fields = ("epsilon", "final_test_accuracy", "success", *RECONSTRUCTION_FIELDS)
    return {key: {**{field: mean(runs, field) for field in fields}, "seeds": len(runs)}
            for key, runs in groups.items()}


def reference_for(scenario: str, setting: tuple, means: dict) -> dict | None:
    """What ``stopped`` compares a scenario's run with, at ``setting`` (kind, sigma, C)."""
    control = {"crpa": "crpa-control", "sign-flip-mean": "clean", "sign-flip-median": "clean"}
    if scenario in control:
        return means.get((*setting, control[scenario]))
    if scenario == "curious":
        return means.get((NO_DP, 0.0, 1.0, "curious"))
    return None


def privacy_table(results: list[dict]) -> list[dict]:
    """One row per setting and attack scenario: epsilon, the attack's success, the attacked
    federation's own test accuracy, whether the attack stopped (``stopped``), and the clean
    federation's accuracy at that setting."""
    means = mean_by_setting(results)
    rows = []
    for (kind, noise, clip, scenario), value in sorted(
            means.items(), key=lambda item: (item[0][3], item[0][0] != NO_DP, item[0][0],
                                             item[0][1], item[0][2])):
        if SCENARIOS[scenario].success is None or scenario == "crpa-control":
            continue
        setting = (kind, noise, clip)
        clean = means.get((*setting, "clean"))
        rows.append({"scenario": scenario, "kind": kind, "noise": noise, "clip": clip,
                     "epsilon": value["epsilon"], "success": value["success"],
                     "accuracy": value["final_test_accuracy"],
                     "stopped": stopped(scenario, value, reference_for(scenario, setting, means)),
                     "clean_accuracy": clean["final_test_accuracy"] if clean else None,
                     "seeds": value["seeds"]})
    return rows


def attack_stops(results: list[dict]) -> list[dict]:
    """Per attack and DP kind: the largest epsilon at which the attack stopped (None: it never
    stopped in the sweep), with the clean accuracy there, and the largest epsilon at which it
    still worked."""
    rows = privacy_table(results)
    summary = []
    for scenario, kind in dict.fromkeys((r["scenario"], r["kind"]) for r in rows):
        if kind == NO_DP:
            continue
        runs = [r for r in rows if r["scenario"] == scenario and r["kind"] == kind]
        stopping = [r for r in runs if r["stopped"]]
        best = max(stopping, key=lambda r: r["epsilon"]) if stopping else None
        working = [r["epsilon"] for r in runs if r["stopped"] is False]
        summary.append({"scenario": scenario, "kind": kind,
                        "stops_at_epsilon": best["epsilon"] if best else None,
                        "noise": best["noise"] if best else None,
                        "clean_accuracy": best["clean_accuracy"] if best else None,
                        "works_up_to_epsilon": max(working) if working else None})
    return summary


def format_privacy_table(rows: list[dict]) -> str:
    """``privacy_table`` as fixed-width text."""
    def number(value, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    header = (f"{'scenario':<17} {'kind':<10} {'sigma':>7} {'C':>5} {'epsilon':>9} "
              f"{'success':>8} {'acc':>5} {'stopped':>7} {'clean acc':>9}")
    lines = [header] + [
        f"{r['scenario']:<17} {r['kind']:<10} {r['noise']:>7.3g} {r['clip']:>5.3g} "
        f"{number(r['epsilon'], '9.3g')} {number(r['success'], '8.3f')} "
        f"{number(r['accuracy'], '5.3f')} "
        f"{'-' if r['stopped'] is None else 'yes' if r['stopped'] else 'no':>7} "
        f"{number(r['clean_accuracy'], '9.3f')}" for r in rows]
    return "\n".join(lines)


#: The y axis of each scenario's panel of the frontier (the control's is left out: the CRPA's
#: panel is read against it in the table).
FRONTIER_LABELS = {"clean": "test accuracy (no attack)",
                   "inversion": "server's inversion PSNR (dB; higher: leaks)",
                   "crpa": "CRPA's AAA (higher: attack works)",
                   "curious": "curious client's RMSE (lower: leaks)",
                   "sign-flip-mean": "test accuracy under sign flip, mean",
                   "sign-flip-median": "test accuracy under sign flip, median"}
#: The figure and tables a finished privacy sweep writes into its folder.
PRIVACY_FILES = ("privacy_frontier.png", "privacy_table.json", "attack_stops.json")


def frontier_figure(results: list[dict]):
    """The frontier of a privacy sweep's ``results``: ``fltutor.viz.privacy_frontier`` of the
    means over seeds, every scenario's panel labelled by ``FRONTIER_LABELS``."""
    from .viz import privacy_frontier

    return privacy_frontier(mean_by_setting(results), FRONTIER_LABELS)


def write_privacy(results: list[dict], out_dir: Path) -> list[dict]:
    """The frontier figure, the table and the attack stops of ``results`` into ``out_dir``."""
    from .experiments import write_json

    rows = privacy_table(results)
    save_figure(frontier_figure(results), out_dir / PRIVACY_FILES[0])
    write_json(out_dir / PRIVACY_FILES[1], rows)
    write_json(out_dir / PRIVACY_FILES[2], attack_stops(results))
    return rows
