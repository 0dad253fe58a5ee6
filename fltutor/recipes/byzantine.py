"""Byzantine clients against robust aggregation, as a recipe: settings, composition, a run to disk.

``ByzantineConfig`` adds four settings to the federated-learning ones: which ``attack``
(a name in ``fltutor.parts.ATTACKS``, or ``none``), how many ``malicious`` clients run it
(clients 0 to K - 1; with iid or Dirichlet data every client is alike, so which ones does not
matter), the attack's own ``attack_options``, and whether the malicious clients ``collude``
(one attack spec for all of them, which sees all their updates and decides together, or one
spec each). The aggregation rule is the config's ``aggregator`` (``fltutor.aggregators``).
Every round records which clients the rule kept and how well it told attackers apart
(``fltutor.metrics.Detection``); a backdoor adds its success rate.

Profiles: ``quick`` is 10 clients on IID MNIST for two CPU cores; ``paper`` is the setting of
the curious-client study's group's public Byzantine experiments (Fashion-MNIST, LeNet-5, 31
clients, 40 rounds, Adam at 5e-4, batch 100).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..aggregators import AGGREGATORS, Rule
from ..attacks import ATTACKS
from ..checks import MAX_CLIENTS, check, check_bool, check_choice, check_int
from ..config import FedConfig, default_profile
from ..experiments import claim_out_dir, run_in_claimed_dir, save_figure
from ..federation import Federation
from ..metrics import Detection
from ..parts import Attack, Observation, known_options
from ..viz import kept_grid, metric_curves

#: The attacks a Byzantine run takes: ``none`` and every registered attack that runs on its own
#: (``Attack.byzantine_run``): not the CRPA study's, which need a class pair and a placement
#: (``fltutor.recipes.crpa``), nor the curious client (``fltutor.recipes.curious``).
BYZANTINE_ATTACKS = ("none", *(name for name in ATTACKS.names() if ATTACKS[name].byzantine_run))

#: What each profile changes in ``fltutor.config.PROFILES``.
BYZANTINE_PROFILES: dict[str, dict[str, Any]] = {
    "quick": dict(num_rounds=10, max_per_class=100, max_test=500, batch_size=32),
    "paper": dict(dataset="fashion-mnist", num_clients=31, num_rounds=40, lr=5e-4,
                  batch_size=100, max_per_class=None),
}


def aggregator_from(name: str, options: dict | None = None) -> Rule:
    """The rule registered as ``name`` with ``options``: ``aggregator_from("krum", {"num_malicious": 3})``."""
    rule = AGGREGATORS[name]
    return rule(**known_options(rule, options or {}, "aggregator option"))


@dataclass
class ByzantineConfig(FedConfig):
    """A run in which ``malicious`` clients run ``attack`` against the config's ``aggregator``."""

    model: str = "lenet5-wide"
    attack: str = "sign-flip"
    malicious: int = 3
    attack_options: dict[str, Any] = field(default_factory=dict)
    collude: bool = True

    def validate_settings(self) -> None:
        super().validate_settings()
        check_choice("attack", self.attack, BYZANTINE_ATTACKS)
        check_int("malicious", self.malicious, 0, MAX_CLIENTS)
        check(self.malicious < self.num_clients, "malicious", self.malicious,
              f"fewer than num_clients={self.num_clients} (at least one client must be honest)")
        check_bool("collude", self.collude)
        if self.attack == "none":
            check(not self.attack_options, "attack_options", self.attack_options,
                  "empty with attack='none', which has no options")
        else:
            known_options(ATTACKS[self.attack], self.attack_options, "attack option")

    def attack_parts(self) -> tuple[Attack, ...]:
        if self.attack == "none" or self.malicious == 0:
            return self.attackers
        spec = ATTACKS[self.attack]
        malicious = tuple(range(self.malicious))
        groups = [malicious] if self.collude else [(k,) for k in malicious]
        return (*self.attackers, *(spec(clients=group, **self.attack_options) for group in groups))

    def observation_parts(self) -> tuple[Observation, ...]:
        return (*self.observations, Detection())

    @classmethod
    def from_profile(cls, profile: str | None = None, **overrides: Any):
        """The profile's values, then ``overrides``. ``aggregator`` may be a rule's name, with
        ``aggregator_options``; a rule with a ``num_malicious`` option that is not given gets
        the run's number of malicious clients (what the defender is assumed to know)."""
        if profile is None:
            profile = default_profile(overrides.get("device", "auto"))
        check_choice("profile", profile, BYZANTINE_PROFILES)
        values = {**BYZANTINE_PROFILES[profile], **overrides}
        return super().from_profile(profile, **named_aggregator(
            values, values.get("malicious", cls.malicious)))


def named_aggregator(values: dict[str, Any], malicious: int) -> dict[str, Any]:
    """Config settings ``values`` with ``aggregator`` made a rule if it is a name, with
    ``aggregator_options`` (taken out); a rule with a ``num_malicious`` option that is not given
    gets ``malicious``, the number of malicious clients the defender is assumed to know of.

    >>> named_aggregator({"aggregator": "krum"}, malicious=2)["aggregator"].num_malicious
    2
    """
    values = dict(values)
    options = values.pop("aggregator_options", None) or {}
    check(isinstance(options, dict), "aggregator_options", options,
          "a dict of the rule's options, e.g. {'num_malicious': 2}")
    options = dict(options)
    name = values.get("aggregator", "mean")
    if isinstance(name, str):
        rule = AGGREGATORS[name]
        if "num_malicious" in {f.name for f in dataclasses.fields(rule)}:
            options.setdefault("num_malicious", malicious)
        values["aggregator"] = aggregator_from(name, options)
    return values


def run_byzantine(config: ByzantineConfig, out_dir: str | Path, progress: bool = True,
                  force: bool = False,
                  after_round: Callable[[Federation], None] | None = None) -> dict:
    """A Byzantine run to ``out_dir`` (the ``fltutor byzantine`` command); resumable like any run.

    Besides metrics.json (each round with ``kept``, ``detection_tpr`` and ``detection_fpr``, and
    ``backdoor_success`` for a backdoor) it saves ``kept.png``: which clients the rule kept in
    every round, the malicious ones marked. ``after_round(federation)`` is called after each
    round is saved (to show progress).
    """
    finished = claim_out_dir(out_dir, config, force)
    if finished is not None:
        return finished
    return run_in_claimed_dir(Federation.build(config), Path(out_dir), progress,
                              extra_summary=byzantine_summary, finish=draw_byzantine,
                              after_round=after_round)


def byzantine_summary(federation: Federation) -> dict:
    """The run's ``history_summary``, for metrics.json."""
    return history_summary(federation.history)


def history_summary(history: list[dict]) -> dict:
    """A run's headline numbers: final accuracy, mean detection rates, backdoor success.

    The detection rates are means over the rounds that have one (``None`` without attackers, for
    ``detection_tpr``); a backdoor adds its last and its highest success rate.

    >>> rounds = [{"test_accuracy": 0.5, "detection_tpr": 1.0, "detection_fpr": 0.5},
    ...           {"test_accuracy": 0.7, "detection_tpr": 0.5, "detection_fpr": 0.0}]
    >>> history_summary(rounds)
    {'final_test_accuracy': 0.7, 'mean_detection_tpr': 0.75, 'mean_detection_fpr': 0.25}
    """

    def mean_of(metric: str) -> float | None:
        values = [r[metric] for r in history if r.get(metric) is not None]
        return sum(values) / len(values) if values else None

    summary = {"final_test_accuracy": history[-1]["test_accuracy"],
               "mean_detection_tpr": mean_of("detection_tpr"),
               "mean_detection_fpr": mean_of("detection_fpr")}
    if "backdoor_success" in history[-1]:
        summary["final_backdoor_success"] = history[-1]["backdoor_success"]
        summary["max_backdoor_success"] = max(r["backdoor_success"] for r in history)
    return summary


def draw_byzantine(federation: Federation, final: dict, out_dir: Path) -> None:
    """Who the rule kept, round by round; the backdoor's success if there is one."""
    config = federation.config
    save_figure(kept_grid(federation.history, config.num_clients, federation.malicious_clients,
                          title=f"{config.aggregator.name} against {config.malicious} x "
                                f"{config.attack}: clients kept"), out_dir / "kept.png")
    if "backdoor_success" in federation.history[-1]:
        save_figure(metric_curves({config.aggregator.name: federation.history},
                                  "backdoor_success"), out_dir / "backdoor_success.png")
