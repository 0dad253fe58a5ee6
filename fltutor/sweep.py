"""Resumable sweeps over the CRPA study's experiments (Becker et al. 2025, Figures 4, 6-8).

A sweep is a list of runs, each a CRPA configuration that differs from the others only in the
class pair (G, T), the Dirichlet alpha, DP on or off, and the seed. Every finished run appends
one line to ``results.jsonl`` in the sweep directory; the file is rewritten atomically, so a kill
at any moment leaves it whole. Started again, a sweep skips the runs already in the file and
resumes the one that was interrupted from its checkpoint. ``sweep.json`` records the settings
shared by all runs, and a directory holding a sweep of other settings is refused.

figure4  every ordered class pair at alpha = 0: the AAA matrix and its histogram (Fig. 4);
figure6  the alpha sweep {0, 0.05, 0.1, 0.2, 0.5, 1, 10} for the least, mean and most
         vulnerable pairs (Figs. 6 and 7);
figure8  DP-SGD on and off at alpha = 0 and alpha = 10 for the same pairs (Fig. 8).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import CRPAConfig, check, check_int
from .experiments import run_crpa, write_json
from .partition import STUDY_ALPHAS

FIGURES = ("figure4", "figure6", "figure8")
RESULTS = "results.jsonl"
SETTINGS = "sweep.json"


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


def read_results(out_dir: Path) -> list[dict]:
    path = out_dir / RESULTS
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def append_result(out_dir: Path, result: dict) -> None:
    """Add one line to results.jsonl by rewriting the whole file atomically."""
    from .experiments import atomic_write

    lines = [json.dumps(r) for r in [*read_results(out_dir), result]]
    atomic_write(out_dir / RESULTS, lambda tmp: Path(tmp).write_text("\n".join(lines) + "\n"))


def key_of(result: dict) -> RunKey:
    return RunKey(result["generate_class"], result["target_class"], result["alpha"],
                  result["dp"], result["seed"])


def shared_settings(base: CRPAConfig) -> dict:
    """The settings every run of a sweep shares (the per-run fields blanked out)."""
    shared = dataclasses.asdict(base)
    for name in ("generate_class", "target_class", "alpha", "dp", "seed", "exclude"):
        shared.pop(name, None)
    return json.loads(json.dumps(shared, default=str))


def claim_directory(out_dir: Path, settings: dict) -> None:
    """Record the sweep's settings, or refuse a directory that holds a different sweep."""
    path = out_dir / SETTINGS
    held = json.loads(path.read_text()) if path.exists() else settings
    differing = [f"{name}={settings.get(name)!r} (it holds {held.get(name)!r})"
                 for name in sorted(set(held) | set(settings)) if held.get(name) != settings.get(name)]
    if differing:
        raise ValueError(f"out={str(out_dir)!r} is not allowed: it holds a sweep with other "
                         f"settings ({SETTINGS}): {', '.join(differing)}; use a new directory "
                         f"or the same settings")
    write_json(path, settings)


def config_for(base: CRPAConfig, key: RunKey) -> CRPAConfig:
    """The configuration of one run: the base with the run's pair, alpha, seed and DP."""
    from .defenses.dp import DPConfig  # Opacus takes seconds to import: only when needed

    return base.replace(generate_class=key.generate_class, target_class=key.target_class,
                        alpha=key.alpha, seed=key.seed, dp=DPConfig() if key.dp else None)


def run_sweep(figure: str, base: CRPAConfig, out_dir: str | Path, seeds: int = 1,
              pairs: list[tuple[int, int]] | None = None, progress: bool = True) -> list[dict]:
    """Run (or resume) the sweep of ``figure`` around ``base``; returns all results so far.

    Every run's configuration is validated before the first one starts.
    """
    from tqdm.auto import tqdm

    check_int("seeds", seeds, 1)
    out_dir = Path(out_dir)
    done = read_results(out_dir)
    keys = plan(figure, base.num_classes, seeds, pairs, done, base.seed)
    configs = {key: config_for(base, key) for key in keys}  # validates every run up front
    claim_directory(out_dir, shared_settings(base))
    finished = {key_of(result) for result in done}
    todo = [key for key in keys if key not in finished]
    with tqdm(total=len(keys), initial=len(keys) - len(todo), desc=figure, unit="run",
              disable=not progress) as bar:
        for key in todo:
            bar.set_postfix_str(key.name)
            metrics = run_crpa(configs[key], out_dir / "runs" / key.name, progress=False)
            summary = metrics["summary"]
            append_result(out_dir, {**dataclasses.asdict(key), "figure": figure,
                                    "aaa": summary["aaa"],
                                    "final_test_accuracy": summary["final_test_accuracy"],
                                    "epsilon": summary.get("epsilon"),
                                    "rounds": summary["rounds"],
                                    "seconds": summary["total_seconds"]})
            bar.update(1)
    return read_results(out_dir)


def pair_means(results: list[dict], dp: bool = False, alpha: float = 0.0) -> dict:
    """Mean AAA over seeds for every pair, at one alpha and DP setting."""
    groups: dict[tuple[int, int], list[float]] = {}
    for r in results:
        if r["dp"] == dp and r["alpha"] == alpha:
            groups.setdefault((r["generate_class"], r["target_class"]), []).append(r["aaa"])
    return {pair: float(np.mean(values)) for pair, values in groups.items()}
