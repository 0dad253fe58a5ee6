"""Running an experiment to disk: metrics.json, figures, and a checkpoint to resume from.

A run writes ``metrics.json`` (its ``config``, one object per round in ``rounds``, a ``summary``)
after every round, always atomically (a temporary file renamed into place), so a run killed at any
moment leaves the last complete file behind. A checkpoint beside it holds the global weights, the
clients' state and the random state; started again with the same config, the run continues
where it stopped. The checkpoint is removed when the run completes.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Callable

import torch

from .attacks import ATTACKS
from .config import CRPAConfig, FedConfig
from .data import Data
from .federation import Federation
from .metrics import Judge, aaa, attack_accuracy_observer, reconstruction_quality
from .viz import metric_curves, partition_heatmap, samples_over_rounds

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.json"


def atomic_write(path: Path, write: Callable[[str], None]) -> None:
    """Call ``write(temporary_path)``, then rename the result onto ``path`` in one step."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(handle)
    try:
        write(temporary)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def write_json(path: Path, payload) -> None:
    """Write ``payload`` as indented JSON, atomically."""
    def dump(temporary: str) -> None:
        with open(temporary, "w") as handle:
            json.dump(payload, handle, indent=1)

    atomic_write(path, dump)


def config_key(config: FedConfig) -> str:
    """A canonical text form of a config, to tell whether a checkpoint belongs to it."""
    return json.dumps(config.to_dict(), sort_keys=True, default=str)


def resume(federation: Federation, out_dir: Path) -> None:
    """Load ``out_dir``'s checkpoint into ``federation`` if there is one; refuse a foreign one."""
    path = out_dir / CHECKPOINT
    if not path.exists():
        return
    state = torch.load(path, map_location=federation.data.train_x.device, weights_only=False)
    if state["config"] != config_key(federation.config):
        raise ValueError(f"out={str(out_dir)!r} is not allowed: it holds a checkpoint of a "
                         f"different configuration; use a new directory or delete it")
    federation.load_state_dict(state["federation"])
    print(f"resuming {out_dir} after round {federation.rounds_done}")


def save_progress(federation: Federation, out_dir: Path, extra: dict | None = None) -> None:
    """Write metrics.json and the checkpoint for the rounds done so far."""
    state = {"config": config_key(federation.config), "federation": federation.state_dict()}
    atomic_write(out_dir / CHECKPOINT, lambda temporary: torch.save(state, temporary))
    write_json(out_dir / METRICS, results(federation, extra))


def results(federation: Federation, extra: dict | None = None) -> dict:
    """The content of metrics.json."""
    return {
        "config": federation.config.to_dict(),
        "data_source": federation.data.source,
        "partition": federation.class_counts().tolist(),
        "rounds": federation.history,
        "summary": {**federation.summary(), **(extra or {})},
    }


def save_figure(figure, path: Path) -> None:
    """Save a matplotlib figure as PNG, atomically, and release it."""
    import matplotlib.pyplot as plt

    atomic_write(path, lambda temporary: figure.savefig(temporary, format="png", dpi=120))
    plt.close(figure)


def run_to_disk(federation: Federation, out_dir: str | Path, progress: bool = True,
                extra_summary: Callable[[Federation], dict] | None = None) -> dict:
    """Run ``federation`` to its configured number of rounds, saving after every round.

    Returns the final content of metrics.json. ``extra_summary`` adds numbers to the summary
    (an attack adds its AAA, for instance).
    """
    out_dir = Path(out_dir)
    resume(federation, out_dir)
    summarise = extra_summary or (lambda _: {})
    federation.run(progress=progress,
                   after_round=lambda fed: save_progress(fed, out_dir, summarise(fed)))
    final = results(federation, summarise(federation))
    write_json(out_dir / METRICS, final)
    save_figure(metric_curves({"global model": federation.history}), out_dir / "accuracy.png")
    save_figure(partition_heatmap(federation.class_counts(), list(federation.data.class_names)),
                out_dir / "partition.png")
    (out_dir / CHECKPOINT).unlink(missing_ok=True)
    return final


def run_fedavg(config: FedConfig, out_dir: str | Path, progress: bool = True) -> dict:
    """Plain federated averaging from a config, to ``out_dir`` (the ``fltutor fedavg`` command)."""
    return run_to_disk(Federation.build(config), out_dir, progress)


def crpa_federation(config: CRPAConfig, data: Data | None = None) -> Federation:
    """A federation with client ``config.attacker`` replaced by the chosen attacker.

    The partition keeps G and T away from the attacker (``config.placement_exclude()``), and an
    observer records every round's ``attack_accuracy``. Run it with ``run()``, or to disk with
    ``run_crpa``.
    """
    federation = Federation.build(config.replace(exclude=config.placement_exclude()), data)
    federation.clients[config.attacker] = ATTACKS[config.attack](federation, config)
    federation.observers.append(attack_accuracy_observer(config.generate_class,
                                                         config.target_class))
    return federation


def generated_samples(federation: Federation) -> list[dict]:
    """The GAN attacker's previews (``{"round", "images"}`` per round); [] without a GAN attacker."""
    attacker = federation.clients[federation.config.attacker]
    reconstruction = getattr(attacker, "reconstruction", None)
    return reconstruction.previews if reconstruction is not None else []


def run_crpa(config: CRPAConfig, out_dir: str | Path, progress: bool = True) -> dict:
    """A CRPA-study run to ``out_dir`` (the ``fltutor crpa`` command); resumable like any run.

    Besides metrics.json (each round with ``attack_accuracy``, the summary with ``aaa``) it
    saves ``attack_accuracy.png`` and, for a GAN attacker, ``generated.png``: the generated
    samples at several rounds.
    """
    out_dir = Path(out_dir)
    federation = crpa_federation(config)
    final = run_to_disk(federation, out_dir, progress, extra_summary=attack_summary)
    g, t = (federation.data.class_names[c] for c in (config.generate_class, config.target_class))
    save_figure(metric_curves({config.attack: federation.history}, "attack_accuracy",
                              title=f"attack accuracy: test images of {g} predicted as {t}"),
                out_dir / "attack_accuracy.png")
    previews = generated_samples(federation)
    if previews:
        save_figure(samples_over_rounds(previews, title=f"generated samples of class {g}"),
                    out_dir / "generated.png")
        final["summary"].update(judge_reconstructions(federation, progress=progress))
        write_json(out_dir / METRICS, final)
    return final


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
