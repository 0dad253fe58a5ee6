"""The curious client (arXiv 2506.11413) as a recipe: settings, composition, a run to disk.

``CuriousConfig`` adds to the federated-learning settings a curious client (client 0, or clients
0 to ``colluders - 1`` colluding; a ``fltutor.attacks.curious.CuriousClient``): whether it also
``poison``-s (a name of ``poisoning_attacks()``, or ``none``) with ``poison_options``, and its
reconstruction settings (``curious_options``: any setting of ``CuriousClient``). The aggregation
rule is the config's ``aggregator`` (a name with ``aggregator_options`` in ``from_profile``, as
for Byzantine runs), the defenses its ``defenses``.

Every round it reconstructs in records, beside the accuracy, the scores of
``fltutor.metrics.leak_scores`` against the images that were in that round's gradient:
``curious_rmse`` (lower: more leaked), ``curious_psnr``, ``curious_ssim``,
``curious_label_accuracy``, the controls ``curious_control_rmse_mean_image`` (the round's true
images' mean), ``curious_control_rmse_start``, ``curious_control_rmse_own_images``,
``curious_control_rmse_peers_mean`` (the mean of the peers' whole data) and their best
``curious_control_rmse``, and ``curious_gain`` (the control's RMSE minus the attack's: the leak).

Profiles (``CURIOUS_PROFILES``):

``quick-fedsgd``  the study's theory on two CPU cores: FedSGD, 10 clients on non-IID MNIST, the
                  classic LeNet-5, one fresh image per client a round, 200 rounds,
                  reconstructions in six rounds from the first to the last.
``paper-fedsgd``  the same at the study's scale: Fashion-MNIST in full, 500 rounds, a
                  reconstruction every 25 rounds; ``batch_size`` 1 to 4 on the command line.
``quick``         FedAvg (4 local steps on some 100 images a client): what local training does
                  to the leak.
``paper``         FedAvg with the training settings of the study's group's public Byzantine
                  experiments (31 clients, 40 rounds, Adam 5e-4, batch 100, ``lenet5-wide``).

An override's ``curious_options`` change the profile's one by one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..attacks.curious import CuriousClient, CuriousObserver, poisoning_attacks
from ..checks import MAX_CLIENTS, check, check_choice, check_int
from ..config import FedConfig, default_profile
from ..experiments import claim_out_dir, run_in_claimed_dir, save_figure
from ..federation import Federation
from ..parts import Attack, known_options
from ..viz import leak_curves, reconstruction_pairs
from .byzantine import named_aggregator

#: The metrics a curious client adds to a round it reconstructs in (``leak_scores``'s, named).
CURIOUS_METRICS = ("curious_rmse", "curious_psnr", "curious_ssim", "curious_label_accuracy",
                   "curious_control_rmse_mean_image", "curious_control_rmse_start",
                   "curious_control_rmse_own_images", "curious_control_rmse_peers_mean",
                   "curious_control_rmse", "curious_gain")

#: The rounds the FedSGD profiles reconstruct in: the first, where the study expects most leak,
#: then spread to the last.
QUICK_ROUNDS = (1, 10, 25, 50, 100, 200)

#: What each profile changes in ``fltutor.config.PROFILES``.
CURIOUS_PROFILES: dict[str, dict[str, Any]] = {
    "quick-fedsgd": dict(dataset="mnist", num_clients=10, partition="dirichlet", alpha=0.5,
                         model="lenet5", mode="fedsgd", batch_size=1, lr=0.1, num_rounds=200,
                         max_per_class=60, max_test=500,
                         curious_options=dict(rounds=QUICK_ROUNDS)),
    "paper-fedsgd": dict(dataset="fashion-mnist", num_clients=10, partition="dirichlet",
                         alpha=0.5, model="lenet5", mode="fedsgd", batch_size=1, lr=0.1,
                         num_rounds=500, max_per_class=None, max_test=None,
                         curious_options=dict(every=25)),
    "quick": dict(num_clients=6, partition="dirichlet", alpha=0.5, num_rounds=10,
                  model="lenet5", max_per_class=60, max_test=500, batch_size=32,
                  optimizer="sgd", lr=0.1, keep_optimizer_state=False),
    "paper": dict(dataset="fashion-mnist", num_clients=31, partition="dirichlet", alpha=0.5,
                  model="lenet5-wide", num_rounds=40, lr=5e-4, batch_size=100,
                  max_per_class=None),
}

#: The ``fltutor.config`` profile each of them builds on (and records as the config's profile).
BASE_PROFILES = {"quick-fedsgd": "quick", "paper-fedsgd": "paper", "quick": "quick",
                 "paper": "paper"}

#: The settings of ``CuriousClient`` that ``curious_options`` may not hold: they have fields here.
OWN_FIELDS = ("poison", "poison_options")


@dataclass
class CuriousConfig(FedConfig):
    """A run with a curious client (clients 0 to ``colluders - 1``) that may also ``poison``."""

    model: str = "lenet5"
    colluders: int = 1
    poison: str = "none"
    poison_options: dict[str, Any] = field(default_factory=dict)
    curious_options: dict[str, Any] = field(default_factory=dict)

    def validate_settings(self) -> None:
        super().validate_settings()
        check_int("colluders", self.colluders, 1, MAX_CLIENTS)
        check(self.colluders < self.num_clients, "colluders", self.colluders,
              f"fewer than num_clients={self.num_clients}: they need peers to learn about")
        check_choice("poison", self.poison, poisoning_attacks())
        known_options(CuriousClient, self.curious_options, "curious option")
        taken = sorted(set(self.curious_options) & set(OWN_FIELDS))
        check(not taken, "curious option", ", ".join(taken),
              "a reconstruction setting (poison and poison_options are settings of their own)")

    def attack_parts(self) -> tuple[Attack, ...]:
        curious = CuriousClient(clients=tuple(range(self.colluders)), poison=self.poison,
                                poison_options=self.poison_options, **self.curious_options)
        return (*self.attackers, curious)

    @classmethod
    def from_profile(cls, profile: str | None = None, **overrides: Any):
        """The profile's values, then ``overrides`` (``curious_options`` option by option over the
        profile's; the profile's reconstruction ``rounds`` are kept as far as the run goes).
        ``aggregator`` may be a rule's name, with ``aggregator_options``; a rule's
        ``num_malicious`` defaults to the number of colluders."""
        if profile is None:  # the FedSGD profiles, where the study's theory holds
            profile = default_profile(overrides.get("device", "auto")) + "-fedsgd"
        check_choice("profile", profile, CURIOUS_PROFILES)
        values = {**CURIOUS_PROFILES[profile], **overrides}
        profile_options = dict(CURIOUS_PROFILES[profile].get("curious_options", {}))
        if "rounds" in profile_options and "num_rounds" in values:
            profile_options["rounds"] = tuple(r for r in profile_options["rounds"]
                                              if r <= values["num_rounds"])
        values["curious_options"] = {**profile_options, **(overrides.get("curious_options") or {})}
        return super().from_profile(BASE_PROFILES[profile],
                                    **named_aggregator(values,
                                                       malicious=values.get("colluders", 1)))


def curious_observer(federation: Federation) -> CuriousObserver:
    """The federation's curious-client observer (its last reconstructions are in ``latest``)."""
    return next(o for o in federation.observers if isinstance(o, CuriousObserver))


def reconstruction_rounds(config: CuriousConfig) -> list[int]:
    """The rounds the curious client reconstructs in: its ``rounds``, or every ``every``-th.

    >>> reconstruction_rounds(CuriousConfig(num_rounds=10, curious_options=dict(every=4)))
    [1, 5, 9]
    """
    curious = next(a for a in config.attack_parts() if isinstance(a, CuriousClient))
    if curious.rounds:
        return list(curious.rounds)
    return list(range(1, config.num_rounds + 1, curious.every))


def figure_rounds(rounds: list[int], count: int = 3) -> set[int]:
    """The rounds whose reconstructions a run saves as figures: ``count`` of ``rounds``, spread
    from the first to the last.

    >>> sorted(figure_rounds([1, 10, 25, 50, 100]))
    [1, 25, 100]
    """
    picks = np.linspace(0, len(rounds) - 1, min(count, len(rounds))).round().astype(int)
    return {rounds[i] for i in picks}


#: The most image pairs a saved reconstruction figure shows (a round may hold 36 or more).
FIGURE_PAIRS = 12


def run_curious(config: CuriousConfig, out_dir: str | Path, progress: bool = True,
                force: bool = False,
                after_round: Callable[[Federation], None] | None = None) -> dict:
    """A curious-client run to ``out_dir`` (the ``fltutor curious`` command); resumable like any.

    metrics.json has the scores of ``CURIOUS_METRICS`` and ``test_accuracy`` per round and
    ``curious_summary``'s numbers in its summary; the figures are ``curious_rmse.png`` (the
    attack's RMSE and its best control's over the rounds, the accuracy beside them) and, for
    three of the rounds it reconstructs in (``figure_rounds``), ``reconstructions_round_R.png``:
    the true images of that round's gradient above the reconstructions paired with them, saved
    as the round ends. ``after_round(federation)`` is called after each round is saved.
    """
    finished = claim_out_dir(out_dir, config, force)
    if finished is not None:
        return finished
    out_dir = Path(out_dir)
    federation = Federation.build(config)
    observer = curious_observer(federation)
    shown = figure_rounds(reconstruction_rounds(config))

    def save_reconstructions(fed: Federation) -> None:
        latest = observer.latest
        if latest is not None and latest.round == fed.rounds_done and latest.round in shown:
            pairs = slice(0, FIGURE_PAIRS)
            title = (f"round {latest.round}: RMSE {latest.scores['rmse']:.3f} "
                     f"(best guess without the gradient {latest.scores['control_rmse']:.3f})")
            save_figure(reconstruction_pairs(latest.originals[pairs], latest.images[pairs],
                                             latest.true_labels[pairs].tolist(),
                                             latest.labels[pairs].tolist(), title=title),
                        out_dir / f"reconstructions_round_{latest.round}.png")
        if after_round is not None:
            after_round(fed)

    return run_in_claimed_dir(federation, out_dir, progress,
                              extra_summary=lambda fed: curious_summary(fed.history),
                              finish=draw_curious, after_round=save_reconstructions)


def curious_summary(history: list[dict]) -> dict:
    """A run's headline numbers over the rounds the curious client was scored in: its first and
    last RMSE with their controls and gains, the lowest RMSE and its round, the mean gain.

    >>> curious_summary([{"round": 1, "curious_rmse": 0.3, "curious_control_rmse": 0.5},
    ...                  {"round": 2},
    ...                  {"round": 3, "curious_rmse": 0.6, "curious_control_rmse": 0.55}]
    ...                 )  # doctest: +NORMALIZE_WHITESPACE
    {'first_curious_rmse': 0.3, 'first_control_rmse': 0.5, 'first_gain': 0.2,
     'final_curious_rmse': 0.6, 'final_control_rmse': 0.55, 'final_gain': -0.05,
     'min_curious_rmse': 0.3, 'min_curious_rmse_round': 1, 'mean_gain': 0.075}
    """
    scored = [r for r in history if "curious_rmse" in r]
    if not scored:
        return {}
    first, last = scored[0], scored[-1]
    lowest = min(scored, key=lambda r: r["curious_rmse"])
    gain = lambda r: round(r["curious_control_rmse"] - r["curious_rmse"], 6)  # noqa: E731
    return {"first_curious_rmse": first["curious_rmse"],
            "first_control_rmse": first["curious_control_rmse"], "first_gain": gain(first),
            "final_curious_rmse": last["curious_rmse"],
            "final_control_rmse": last["curious_control_rmse"], "final_gain": gain(last),
            "min_curious_rmse": lowest["curious_rmse"], "min_curious_rmse_round": lowest["round"],
            "mean_gain": round(float(np.mean([gain(r) for r in scored])), 6)}


def draw_curious(federation: Federation, final: dict, out_dir: Path) -> None:
    """The curious client's RMSE and its best control over the rounds, the accuracy beside."""
    config = federation.config
    title = f"curious client, {config.mode}, B={config.batch_size}, poison {config.poison}"
    save_figure(leak_curves({config.aggregator.name: federation.history}, title=title),
                out_dir / "curious_rmse.png")
