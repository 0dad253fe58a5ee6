"""The curious-client study's experiments at quick scale: per-round tables over seeds.

Runs (or resumes, or just reads, when a run's folder holds it finished) ``fltutor curious
--profile quick-fedsgd`` under each condition of ``CONDITIONS`` for every seed, one folder per
run (``OUT/q-NAME-sSEED``, as the README's commands name them), then prints, per condition and
per round the curious client reconstructed in: its RMSE, the best guess without the gradient
(``curious_control_rmse``), the gain (control minus RMSE: the leak) and the test accuracy, as the
mean over seeds with the lowest and highest seed beside. These are the README's curious-client
tables (the study: Yue et al., arXiv 2506.11413):

- the passive listener's window: ``B=1``, ``B=2``, ``B=4`` (images per client a round);
- poisoning to keep it open: ``sign-flip``, ``gaussian-noise``, ``backdoor``;
- beyond the study: ``2 colluders`` and ``3 colluders`` (its open question 4), and the study's
  own ``autoencoder`` prior against the pixel-space search.

    python benchmarks/study_curious.py --out runs/curious-study --seeds 3 --markdown

A run takes about a minute on one CPU thread (``OMP_NUM_THREADS=1`` lets several run side by
side on a busy machine). The backfire sweep is ``fltutor sweep backfire --profile quick-fedsgd``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from fltutor.recipes.curious import CuriousConfig, run_curious

#: Each condition's folder name and what it changes in the ``quick-fedsgd`` profile.
CONDITIONS: dict[str, tuple[str, dict]] = {
    "B=1": ("none", {}),
    "B=2": ("b2", dict(batch_size=2)),
    "B=4": ("b4", dict(batch_size=4)),
    "sign-flip": ("sign-flip", dict(poison="sign-flip")),
    "gaussian-noise": ("gaussian-noise", dict(poison="gaussian-noise")),
    "backdoor": ("backdoor", dict(poison="backdoor")),
    "2 colluders": ("c2", dict(colluders=2)),
    "3 colluders": ("c3", dict(colluders=3)),
    "autoencoder": ("ae", dict(curious_options=dict(prior="autoencoder"))),
}


def config_for(condition: str, seed: int, device: str, changes: dict) -> CuriousConfig:
    """The run's config, as ``fltutor curious --profile quick-fedsgd`` makes it."""
    settings = {**CONDITIONS[condition][1], **changes}
    options = {**settings.pop("curious_options", {}), **changes.get("curious_options", {})}
    return CuriousConfig.from_profile("quick-fedsgd", seed=seed, device=device, engine="auto",
                                      data_root=None, allow_fallback=False,
                                      curious_options=options, **settings)


def spread(values: list[float]) -> str:
    """``mean [lowest, highest]`` to three decimals (just the value for one seed)."""
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{np.mean(values):.3f} [{min(values):.3f}, {max(values):.3f}]"


def table(condition: str, runs: list[dict], markdown: bool) -> list[str]:
    """One condition's rows: every round it reconstructed in, over the seeds."""
    by_round: dict[int, list[dict]] = {}
    for metrics in runs:
        for r in metrics["rounds"]:
            if "curious_rmse" in r:
                by_round.setdefault(r["round"], []).append(r)
    rows = [[condition, str(number), spread([r["curious_rmse"] for r in scored]),
             spread([r["curious_control_rmse"] for r in scored]),
             spread([r["curious_control_rmse"] - r["curious_rmse"] for r in scored]),
             spread([r["test_accuracy"] for r in scored])]
            for number, scored in sorted(by_round.items())]
    if markdown:
        return [f"| {' | '.join(row)} |" for row in rows]
    return ["  ".join(cell.rjust(24 if i > 1 else 14) for i, cell in enumerate(row))
            for row in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/curious-study", help="folder of the runs")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0 to N-1 (default: 3)")
    parser.add_argument("--conditions", nargs="+", choices=list(CONDITIONS),
                        default=list(CONDITIONS), metavar="NAME", help=", ".join(CONDITIONS))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, help="fewer rounds (a smoke run)")
    parser.add_argument("--max-per-class", type=int, help="fewer images (a smoke run)")
    parser.add_argument("--iterations", type=int, help="fewer inversion steps (a smoke run)")
    parser.add_argument("--markdown", action="store_true", help="a Markdown table")
    args = parser.parse_args()
    changes = {name: value for name, value in (("num_rounds", args.rounds),
                                               ("max_per_class", args.max_per_class))
               if value is not None}
    if args.iterations is not None:
        changes["curious_options"] = dict(iterations=args.iterations)
    lines = []
    for condition in args.conditions:
        name = CONDITIONS[condition][0]
        runs = [run_curious(config_for(condition, seed, args.device, changes),
                            Path(args.out) / f"q-{name}-s{seed}", progress=False)
                for seed in range(args.seeds)]
        lines += table(condition, runs, args.markdown)
    print(f"The curious client at quick-fedsgd (10 clients, FedSGD, LeNet-5), seeds 0 to "
          f"{args.seeds - 1}: RMSE to the round's true images (pixels in [-1, 1]), the best guess "
          f"without the gradient, gain = control - RMSE, test accuracy; mean [lowest, highest].\n")
    if args.markdown:
        print("| condition | round | RMSE | control | gain | accuracy |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
