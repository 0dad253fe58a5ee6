"""The curious client (arXiv 2506.11413) as a recipe: settings, composition, a run to disk.

``CuriousConfig`` adds to the federated-learning settings one curious client (client 0, a
``fltutor.attacks.curious.CuriousClient``): whether it also ``poison``-s (a name of
``poisoning_attacks()``, or ``none``) with ``poison_options``, and its reconstruction settings
(``curious_options``: any setting of ``CuriousClient``). The aggregation rule is the config's
``aggregator`` (a name with ``aggregator_options`` in ``from_profile``, as for Byzantine runs),
the defenses its ``defenses`` (record-level DP: ``fltutor.defenses.dp.DPConfig``).

Every round records, besides accuracy, how close the curious client's reconstructions come to
its peers' real images: ``curious_rmse`` (lower: more leaked), ``curious_psnr`` and
``curious_ssim`` (only in the rounds it reconstructs, every ``every`` rounds).

Profiles: ``quick`` is sized for two CPU cores (6 clients on non-IID MNIST, 10 rounds, a few
seconds a round); ``paper`` is the study's setting as far as it is published: LeNet-5 with ReLU
(``lenet5-wide``) on non-IID Fashion-MNIST, with the training settings of its group's public
Byzantine experiments (31 clients, 40 rounds, Adam 5e-4, batch 100).

``quick-fedsgd`` is where the leak shows on one CPU thread (the ``quick`` profile's does not:
there g averages some 500 images over 4 local steps, and the reconstructions stay within 0.03
RMSE of their starting codes in every round). Two clients, 40 MNIST images in all, FedSGD (one
full-batch step, lr 0.05) for 80 rounds, so g is the gradient of the peer's 20 images exactly;
20 dummies, 400 steps, ``prior_weight`` 0.01, an autoencoder trained 1000 epochs on the
attacker's 20 images, a reconstruction every 26 rounds (about 9 s each). Measured over seeds 0
to 2: in round 1 the reconstructions beat their decoded starting codes by 0.07 to 0.16 RMSE
(and beat a control fed the gradient of 20 test images by 0.03 to 0.08, so it is the peer's
gradient that helps, not the optimisation alone); as the training loss falls from 2.3 to 0.04
(round 79) that gain shrinks to 0.04 to 0.10 and the RMSE rises (0.53 -> 0.56, 0.46 -> 0.52,
0.51 -> 0.53). Sign flipping cannot be shown here: with one peer the flipped update outweighs
it and the model diverges. An override's ``curious_options`` change the profile's one by one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..attacks.curious import CuriousClient, CuriousObserver, poisoning_attacks
from ..checks import check, check_choice
from ..config import FedConfig, default_profile
from ..experiments import claim_out_dir, run_in_claimed_dir, save_figure
from ..federation import Federation
from ..parts import Attack, known_options
from ..viz import metric_curves, reconstruction_pairs
from .byzantine import named_aggregator

#: The metrics a curious client adds to a round it reconstructs in.
CURIOUS_METRICS = ("curious_rmse", "curious_psnr", "curious_ssim")

#: What each profile changes in ``fltutor.config.PROFILES``.
CURIOUS_PROFILES: dict[str, dict[str, Any]] = {
    "quick": dict(num_clients=6, partition="dirichlet", alpha=0.5, num_rounds=10,
                  max_per_class=60, max_test=500, batch_size=32, optimizer="sgd", lr=0.1,
                  keep_optimizer_state=False),
    "paper": dict(dataset="fashion-mnist", num_clients=31, partition="dirichlet", alpha=0.5,
                  num_rounds=40, lr=5e-4, batch_size=100, max_per_class=None),
    "quick-fedsgd": dict(num_clients=2, partition="dirichlet", alpha=0.5, mode="fedsgd",
                         max_per_class=4, max_test=500, lr=0.05, num_rounds=80,
                         curious_options=dict(autoencoder_epochs=1000, iterations=400,
                                              prior_weight=0.01, reconstruction_lr=0.1,
                                              every=26, max_dummies=20, batch_size=20)),
}

#: The ``fltutor.config`` profile each of them builds on (and records as the config's profile).
BASE_PROFILES = {"quick": "quick", "paper": "paper", "quick-fedsgd": "quick"}

#: The settings of ``CuriousClient`` that ``curious_options`` may not hold: they have fields here.
OWN_FIELDS = ("poison", "poison_options")


@dataclass
class CuriousConfig(FedConfig):
    """A run with one curious client (client 0) that may also ``poison``."""

    model: str = "lenet5-wide"
    poison: str = "none"
    poison_options: dict[str, Any] = field(default_factory=dict)
    curious_options: dict[str, Any] = field(default_factory=dict)

    def validate_settings(self) -> None:
        super().validate_settings()
        check_choice("poison", self.poison, poisoning_attacks())
        known_options(CuriousClient, self.curious_options, "curious option")
        taken = sorted(set(self.curious_options) & set(OWN_FIELDS))
        check(not taken, "curious option", ", ".join(taken),
              "a reconstruction setting (poison and poison_options are settings of their own)")

    def attack_parts(self) -> tuple[Attack, ...]:
        curious = CuriousClient(clients=(0,), poison=self.poison,
                                poison_options=self.poison_options, **self.curious_options)
        return (*self.attackers, curious)

    @classmethod
    def from_profile(cls, profile: str | None = None, **overrides: Any):
        """The profile's values, then ``overrides`` (``curious_options`` option by option over the
        profile's). ``aggregator`` may be a rule's name, with ``aggregator_options``; a rule's
        ``num_malicious`` defaults to 1, the curious client."""
        if profile is None:
            profile = default_profile(overrides.get("device", "auto"))
        check_choice("profile", profile, CURIOUS_PROFILES)
        values = {**CURIOUS_PROFILES[profile], **overrides}
        values["curious_options"] = {**CURIOUS_PROFILES[profile].get("curious_options", {}),
                                     **(overrides.get("curious_options") or {})}
        return super().from_profile(BASE_PROFILES[profile],
                                    **named_aggregator(values, malicious=1))


def curious_observer(federation: Federation) -> CuriousObserver:
    """The federation's curious-client observer (its last reconstructions are in ``latest``)."""
    return next(o for o in federation.observers if isinstance(o, CuriousObserver))


def figure_rounds(num_rounds: int, every: int, count: int = 3) -> set[int]:
    """The rounds whose reconstructions a run saves as figures: ``count`` of the rounds it
    reconstructs in, spread from the first to the last.

    >>> sorted(figure_rounds(10, every=1))
    [1, 5, 10]
    """
    rounds = np.arange(1, num_rounds + 1, every)
    return {int(rounds[i]) for i in np.linspace(0, len(rounds) - 1, min(count, len(rounds))).round()
            .astype(int)}


def run_curious(config: CuriousConfig, out_dir: str | Path, progress: bool = True,
                force: bool = False,
                after_round: Callable[[Federation], None] | None = None) -> dict:
    """A curious-client run to ``out_dir`` (the ``fltutor curious`` command); resumable like any.

    metrics.json has ``curious_rmse``, ``curious_psnr``, ``curious_ssim`` and ``test_accuracy``
    per round and ``curious_summary`` in its summary; the figures are ``curious_rmse.png`` (RMSE
    over rounds) and, for three rounds from the first to the last (``figure_rounds``),
    ``reconstructions_round_R.png``: the reconstructions above the peers' images they match,
    saved as the round ends. ``after_round(federation)`` is called after each round is saved.
    """
    finished = claim_out_dir(out_dir, config, force)
    if finished is not None:
        return finished
    out_dir = Path(out_dir)
    federation = Federation.build(config)
    observer = curious_observer(federation)
    shown = figure_rounds(config.num_rounds, observer.attack.every)

    def save_reconstructions(fed: Federation) -> None:
        latest = observer.latest
        if latest is not None and latest.round == fed.rounds_done and latest.round in shown:
            save_figure(reconstruction_pairs(latest.originals, latest.images,
                                             title=f"round {latest.round}: RMSE "
                                                   f"{latest.scores['rmse']:.3f}"),
                        out_dir / f"reconstructions_round_{latest.round}.png")
        if after_round is not None:
            after_round(fed)

    return run_in_claimed_dir(federation, out_dir, progress,
                              extra_summary=lambda fed: curious_summary(fed.history),
                              finish=draw_curious, after_round=save_reconstructions)


def curious_summary(history: list[dict]) -> dict:
    """A run's headline numbers: the curious client's first, lowest and last RMSE (and the round
    of the lowest), over the rounds it reconstructed in.

    >>> curious_summary([{"round": 1, "curious_rmse": 0.5}, {"round": 2},
    ...                  {"round": 3, "curious_rmse": 0.6}])  # doctest: +NORMALIZE_WHITESPACE
    {'first_curious_rmse': 0.5, 'min_curious_rmse': 0.5, 'min_curious_rmse_round': 1,
     'final_curious_rmse': 0.6}
    """
    scored = [r for r in history if "curious_rmse" in r]
    if not scored:
        return {}
    lowest = min(scored, key=lambda r: r["curious_rmse"])
    return {"first_curious_rmse": scored[0]["curious_rmse"],
            "min_curious_rmse": lowest["curious_rmse"], "min_curious_rmse_round": lowest["round"],
            "final_curious_rmse": scored[-1]["curious_rmse"]}


def draw_curious(federation: Federation, final: dict, out_dir: Path) -> None:
    """The curious client's RMSE over the rounds."""
    scored = [r for r in federation.history if "curious_rmse" in r]
    config = federation.config
    title = f"curious client, poison {config.poison}: RMSE to peers' images (lower: more leaked)"
    save_figure(metric_curves({config.aggregator.name: scored}, "curious_rmse", title=title),
                out_dir / "curious_rmse.png")
