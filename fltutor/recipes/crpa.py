"""The CRPA study as a recipe: its settings, composed into a federation's parts, run to disk.

``CRPAConfig`` adds the study's few settings to the federated-learning ones (which attack, the
classes G and T, which client attacks, from which round, with how many images, the GAN's
settings) and composes them into parts (``fltutor.parts``): the attack spec of
``fltutor.attacks.crpa`` on client ``attacker``, G and T kept away from that client, and attack
accuracy measured every round. ``Federation.build(config)`` builds it like any other config;
the control run (``attack="none"``) keeps the placement and the measurement without the attacker.

``run_crpa`` runs it to disk: metrics.json with every round's ``attack_accuracy``, the summary
with the AAA (Becker et al. 2025, Eq. 1) and, for a GAN attacker, a judge's scores of its images.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..attacks import ATTACKS
from ..attacks.crpa import GANAttack, TargetedPoisoning
from ..attacks.gan import GANSettings
from ..checks import MAX_GENERATED, check, check_bool, check_choice, check_int, is_int
from ..config import PROFILES, FedConfig, default_profile
from ..experiments import (METRICS, check_fields, claim_out_dir, run_in_claimed_dir,
                           save_figure)
from ..federation import Federation
from ..metrics import AttackAccuracy, Judge, aaa, reconstruction_quality
from ..parts import Attack, Observation, known_options
from ..viz import metric_curves, samples_over_rounds

#: The CRPA study's attacks (the specs of ``fltutor.attacks.crpa``), and ``none``: the control.
CRPA_ATTACKS = ("none", *(name for name in ATTACKS.names()
                          if issubclass(ATTACKS[name], TargetedPoisoning)))
#: Those that train a generator (their runs save generated samples).
GAN_ATTACKS = tuple(name for name in ATTACKS.names() if issubclass(ATTACKS[name], GANAttack))

#: What the CRPA study changes in ``PROFILES`` (see ``CRPAConfig`` for why quick departs from it).
#: ``gan`` names only the GAN settings that differ from the study's (``GANSettings``' defaults).
CRPA_PROFILES: dict[str, dict[str, Any]] = {
    "quick": dict(
        num_rounds=40,
        max_per_class=200,
        keep_optimizer_state=False,
        attack_start_round=10,
        poison_count=20,
        gan=dict(steps=30, batch_size=32, generator_optimizer="adam", generator_lr=5e-4,
                 jitter=2, smoothness=0.3),
    ),
    "paper": dict(),  # PROFILES["paper"] and the defaults below are the study's settings
}


def scaled_start_round(profile: str, num_rounds: int) -> int:
    """The profile's first attack round for a run of ``num_rounds``: its honest rounds keep their
    share of the run (the profile's ``attack_start_round - 1`` honest rounds of its own length).

    >>> [scaled_start_round("quick", rounds) for rounds in (40, 5, 4, 100)]
    [10, 2, 1, 23]
    >>> scaled_start_round("paper", 30)
    1
    """
    values = {**PROFILES[profile], **CRPA_PROFILES[profile]}
    honest_rounds = values.get("attack_start_round", 1) - 1
    return 1 + honest_rounds * num_rounds // values["num_rounds"]


@dataclass
class CRPAConfig(FedConfig):
    """A run of the CRPA study (Becker et al. 2025): the federation and one malicious client.

    ``attack`` names the attacker (``CRPA_ATTACKS``): ``crpa`` reconstructs class
    ``generate_class`` (G) with a GAN and submits the reconstructions labelled ``target_class`` (T);
    ``reconstruction`` runs the GAN only (Hitaj et al. 2017); ``label-flip`` holds real images of
    G and submits them labelled T; ``none`` is the control run without an attacker. The attacker
    trains honestly before round ``attack_start_round`` and attacks from it on. Client
    ``attacker`` is placed as in the study: it holds neither G nor T; the label-flip attacker is
    handed ``poison_count`` real images of G on top. A ``free_rider`` attacker holds no data of
    its own. The default partition is the study's alpha = 0, one class per client. ``gan``
    (``fltutor.attacks.gan.GANSettings``) says how a GAN attacker trains its generator; in
    ``from_profile`` a dict names the settings that differ from the profile's. DP-SGD on every
    client is ``defenses=(DPConfig(),)``, as for any run.

    The ``paper`` profile is the study's setting exactly. The ``quick`` profile departs from it
    to show the same effects on two CPU cores in a few minutes (MNIST, G = 4, T = 9, seed 0: AAA
    0.80 at alpha 0 against 0.15 without an attacker; the README's comparison table has the rest):

    - 200 images per class, not 5,000, batch 50, 1,000 test images, 40 rounds, not 300;
    - every client starts each round with a fresh optimizer (``keep_optimizer_state=False``):
      with one class per client, Adam moments carried over from round to round made the global
      model swing between classes (test accuracy 0.35 to 0.72 from round to round; 0.80 and
      steady with fresh optimizers);
    - the attack starts in round 10, not 1. At alpha 0 the federation needs some rounds to
      learn G at all; a generator trained against a model that knows nothing of G has nothing
      to reconstruct, and its poison then only keeps G from ever being learnt. The study's 300
      rounds leave time for both; the reference code of the GAN attack also waits until the
      global model is accurate before it attacks. A run of another length keeps the share of
      honest rounds (round 2 of 5, see ``scaled_start_round``);
    - 20 poisoned images per round: one tenth of a client's 200, the study's 500 to 5,000;
    - the generator trains with Adam (lr 5e-4, beta1 0.5), 30 steps of 32 per round. The
      study's SGD at 1e-3 for one epoch moves it too little to follow the global model in
      30 rounds;
    - two image priors that the study does not use (``jitter=2``, ``smoothness=0.3``, see
      ``GANSettings``): without them the generator's images are high-frequency patterns that
      fool the classifier; with them they are smooth blobs.

    In so short a run the generated images are not yet recognisable digits (see the README's
    comparison table): they fool the global model, and the poison works, long before they look
    like G to a person.
    """

    partition: str = "dirichlet"
    alpha: float = 0.0
    attack: str = "crpa"
    generate_class: int = 4
    target_class: int = 9
    attacker: int = 0
    attack_start_round: int = 1
    poison_count: int = 500
    free_rider: bool = False
    gan: GANSettings = field(default_factory=GANSettings)

    def validate_settings(self) -> None:
        """The study's own settings, named as the user wrote them, before the parts are made."""
        super().validate_settings()
        check_choice("attack", self.attack, CRPA_ATTACKS)
        check_int("num_clients", self.num_clients, 2)  # the attacker and at least one victim
        check(is_int(self.attacker) and 0 <= self.attacker < self.num_clients,
              "attacker", self.attacker, f"a client index from 0 to {self.num_clients - 1}")
        AttackAccuracy(self.generate_class, self.target_class).check_fits(self)
        check(is_int(self.attack_start_round) and 1 <= self.attack_start_round <= self.num_rounds,
              "attack_start_round", self.attack_start_round,
              f"a round from 1 to num_rounds={self.num_rounds}")
        check_int("poison_count", self.poison_count, 1, MAX_GENERATED)
        check_bool("free_rider", self.free_rider)
        check(not (self.free_rider and self.attack == "none"), "free_rider", self.free_rider,
              "False when attack='none' (the control run has no attacker)")
        check(isinstance(self.gan, GANSettings), "gan", self.gan, "a GANSettings")

    def study_attack(self) -> TargetedPoisoning | None:
        """The attack spec of this run (None for the control run)."""
        if self.attack == "none":
            return None
        spec = ATTACKS[self.attack]
        settings = dict(clients=(self.attacker,), generate_class=self.generate_class,
                        target_class=self.target_class, start_round=self.attack_start_round,
                        poison_count=self.poison_count, free_rider=self.free_rider, gan=self.gan)
        fields = {f.name for f in dataclasses.fields(spec)}
        return spec(**{name: value for name, value in settings.items() if name in fields})

    def attack_parts(self) -> tuple[Attack, ...]:
        study = self.study_attack()
        return (*self.attackers, *([study] if study is not None else []))

    def observation_parts(self) -> tuple[Observation, ...]:
        return (*self.observations, AttackAccuracy(self.generate_class, self.target_class))

    def partition_exclude(self) -> dict[int, tuple[int, ...]]:
        """The parts' exclusions, and the study's placement, also for the control run: client
        ``attacker`` holds neither G nor T.

        >>> CRPAConfig(generate_class=4, target_class=9, attacker=2).partition_exclude()
        {2: (4, 9)}
        """
        merged = super().partition_exclude()
        kept_away = {*merged.get(self.attacker, ()), self.generate_class, self.target_class}
        return {**merged, self.attacker: tuple(sorted(kept_away))}

    @classmethod
    def from_profile(cls, profile: str | None = None, **overrides: Any):
        """The profile's federation and CRPA values, then ``overrides`` on top.

        ``gan`` may be a dict of the GAN settings to change on top of the profile's. A run
        shorter or longer than the profile's that names no ``attack_start_round`` gets the
        profile's start scaled to its length (``scaled_start_round``): ``quick`` attacks from
        round 10 of 40, so from round 2 of 5; ``paper`` always from round 1.
        """
        if profile is None:
            profile = default_profile(overrides.get("device", "auto"))
        check_choice("profile", profile, CRPA_PROFILES)
        values = {**CRPA_PROFILES[profile], **overrides}
        gan = overrides.get("gan", {})
        if isinstance(gan, dict):
            known_options(GANSettings, gan, "gan setting")
            values["gan"] = GANSettings(**{**CRPA_PROFILES[profile].get("gan", {}), **gan})
        rounds = values.get("num_rounds", PROFILES[profile]["num_rounds"])
        if "attack_start_round" not in overrides and is_int(rounds) and rounds >= 1:
            values["attack_start_round"] = scaled_start_round(profile, rounds)
        return super().from_profile(profile, **values)


# --- running it ---------------------------------------------------------------------------------

def run_crpa(config: CRPAConfig, out_dir: str | Path, progress: bool = True,
             force: bool = False,
             after_round: Callable[[Federation], None] | None = None) -> dict:
    """A CRPA-study run to ``out_dir`` (the ``fltutor crpa`` command); resumable like any run.

    Besides metrics.json (each round with ``attack_accuracy``, the summary with ``aaa``) it
    saves ``attack_accuracy.png`` and, for a GAN attacker, ``generated.png``: the generated
    samples at several rounds. A finished run in ``out_dir`` is kept (``force=True`` reruns it).
    """
    finished = claim_out_dir(out_dir, config, force)
    if finished is not None:
        check_fields(Path(out_dir) / METRICS, finished["summary"], {"aaa": "a number"},
                     "its 'summary'")
        return finished
    return run_in_claimed_dir(Federation.build(config), Path(out_dir), progress,
                              extra_summary=attack_summary,
                              finish=lambda federation, final, out: draw_attack(federation, final,
                                                                                out, progress),
                              after_round=after_round)


def generated_samples(federation: Federation) -> list[dict]:
    """The GAN attacker's previews (``{"round", "images"}`` per round); [] without a GAN attacker."""
    attacker = federation.clients[federation.config.attacker]
    reconstruction = getattr(attacker, "reconstruction", None)
    return reconstruction.previews if reconstruction is not None else []


def draw_attack(federation: Federation, final: dict, out_dir: Path, progress: bool = True) -> None:
    """A CRPA run's own figures, and the judge's scores of a GAN attacker's reconstructions."""
    config = federation.config
    g, t = (federation.data.class_names[c] for c in (config.generate_class, config.target_class))
    save_figure(metric_curves({config.attack: federation.history}, "attack_accuracy",
                              title=f"attack accuracy: test images of {g} predicted as {t}"),
                out_dir / "attack_accuracy.png")
    previews = generated_samples(federation)
    if previews:
        save_figure(samples_over_rounds(previews, title=f"generated samples of class {g}"),
                    out_dir / "generated.png")
        final["summary"].update(judge_reconstructions(federation, progress=progress))


def attack_summary(federation: Federation) -> dict:
    """AAA over the rounds so far, and the privacy budget spent (epsilon) under DP."""
    summary = {"aaa": aaa(federation.history)}
    if "epsilon" in federation.history[-1]:
        summary["epsilon"] = federation.history[-1]["epsilon"]
    return summary


def judge_reconstructions(federation: Federation, count: int = 64, progress: bool = True) -> dict:
    """Score ``count`` fresh samples of the GAN attacker with an independent judge and SSIM.

    The judge is trained here, by the experimenter, on the real training data; the attacker
    never sees it (``fltutor.metrics.reconstruction_quality``).
    """
    config, data = federation.config, federation.data
    attacker = federation.clients[config.attacker]
    fakes = attacker.reconstruction.generate(count)
    real_of_class = data.train_x[data.train_y == config.generate_class]
    judge = Judge.train(data, seed=config.seed, progress=progress)
    return reconstruction_quality(fakes, real_of_class, judge, config.generate_class)
