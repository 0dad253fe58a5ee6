"""Input checks shared by every module: a bad value fails in one line that names it.

The line reads ``name=value is not allowed: it must be ...``, so a student sees at once which
value was wrong and what would be right. The checks run before any work (``FedConfig`` runs them
as it is made and again whenever a field is set), so nothing is half done when one fails.

The upper bounds below keep a typo (an extra zero or three) from allocating gigabytes or
overflowing torch's 64-bit integers. Each is far above anything the course or the CRPA study runs.

>>> check_int("num_clients", 0, 1, MAX_CLIENTS)
Traceback (most recent call last):
...
ValueError: num_clients=0 is not allowed: it must be an integer >= 1 and <= 1000
>>> check_number("lr", True, 0.0, open_low=True)
Traceback (most recent call last):
...
ValueError: lr=True is not allowed: it must be a finite number > 0.0
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

#: Clients in a federation: each holds a copy of the model (1 MB for the CRPA classifier) and an
#: optimizer (Adam: two more copies), so 1,000 clients hold about 3.3 GB. The study has 10.
MAX_CLIENTS = 1_000
#: Rounds, local epochs, GAN steps per round: they cost time, not memory; the study runs 300 rounds.
MAX_ROUNDS = 100_000
MAX_EPOCHS = 1_000
MAX_STEPS = 100_000
#: Training batches: more than MNIST's 60,000 training images (a larger batch is all the data).
MAX_BATCH = 100_000
#: Poisoned images generated per round, all at once: each costs about 0.16 MB of generator
#: activations (measured on the CPU), so 5,000, the study's largest poison, is about 0.8 GB.
MAX_GENERATED = 5_000
#: A GAN training batch: with gradients through generator and discriminator, about 0.5 MB per
#: image, so 1,000 is about 0.5 GB (the study trains on batches of 250).
MAX_GAN_BATCH = 1_000
#: Caps on images kept per class and in the test set: more than any dataset here holds.
MAX_SAMPLES = 1_000_000
#: Seeds: torch.manual_seed takes at most 64 bits.
MAX_SEED = 2**64 - 1
#: The GAN attacker's largest shift of the images it shows its discriminator: half an image.
MAX_JITTER = 14
#: Preview samples drawn every round to show the reconstruction improving: a 10 x 10 grid.
MAX_PREVIEW = 100
#: Classes a model may output and numbers a generator draws (the study: 10 and 100).
MAX_CLASSES = 1_000
MAX_LATENT = 1_000
#: Learning rates and DP's sigma: far larger ones overflow float32 weights to inf and nan at once.
MAX_RATE = 1_000.0
#: Clipping norms (DP's C, norm clipping's M): "no clipping" is a huge one (1e6, say); sigma * C
#: must stay finite, and float32 turns anything above 3.4e38 into inf.
MAX_CLIP = 1e12
#: Coordinates a rule samples from an update (DnC's b): 1,000 times the CRPA classifier's 582,026
#: weights; a larger b means every coordinate, and torch's integers end at 2**63.
MAX_DIMENSIONS = 10**9


def check(condition: bool, name: str, value: Any, allowed: str) -> None:
    """Raise the project's standard one-line ValueError unless ``condition`` holds."""
    if not condition:
        raise ValueError(f"{name}={value!r} is not allowed: it must be {allowed}")


def is_int(value: Any) -> bool:
    """True for a Python integer; False for a bool, which Python also counts as one."""
    return isinstance(value, int) and not isinstance(value, bool)


def check_int(name: str, value: Any, minimum: int, maximum: int | None = None) -> None:
    ok = is_int(value) and value >= minimum and (maximum is None or value <= maximum)
    upper = "" if maximum is None else f" and <= {maximum}"
    check(ok, name, value, f"an integer >= {minimum}{upper}")


def check_number(name: str, value: Any, low: float, high: float = math.inf, *,
                 open_low: bool = False) -> None:
    ok = (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
          and (value > low if open_low else value >= low) and value <= high)
    lower = f"> {low}" if open_low else f">= {low}"
    upper = f" and <= {high}" if high < math.inf else ""
    check(ok, name, value, f"a finite number {lower}{upper}")


def check_between_zero_and_one(name: str, value: Any) -> None:
    """A number strictly between 0 and 1, such as the delta of an (epsilon, delta) guarantee."""
    check(isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < 1,
          name, value, f"a number with 0 < {name} < 1")


def check_bool(name: str, value: Any) -> None:
    check(isinstance(value, bool), name, value, "True or False")


def check_choice(name: str, value: Any, choices) -> None:
    check(isinstance(value, str) and value in choices, name, value,
          "one of " + ", ".join(map(str, choices)))


def check_folder(name: str, value: str | Path) -> None:
    """A folder, or a path where one can be made: no file there or on the way to it.

    A file where a folder is needed would otherwise fail far from its cause: as a download that
    failed ("connect to the internet"), or as an error in the middle of a run.
    """
    path = Path(value)
    check(not path.exists() or path.is_dir(), name, str(value), "a folder, not an existing file")
    above = next((parent for parent in path.parents if parent.exists() and not parent.is_dir()),
                 None)
    check(above is None, name, str(value), f"a folder, but it lies under the file {above}")


def check_class(name: str, value: Any, num_classes: int) -> None:
    check(is_int(value) and 0 <= value < num_classes, name, value,
          f"a class index from 0 to {num_classes - 1}")


class OutputError(OSError):
    """A file of an output folder could not be written (a full disk, a drive gone): one line.

    Every file is replaced atomically (``fltutor.experiments.atomic_write``), so what was
    written before is whole: once there is room again, the same command resumes. It lives here,
    with the input checks, so that the command line can catch it without importing torch.
    """


class Checked:
    """Base of a dataclass whose fields are checked when it is made and whenever one is set.

    The checks live in ``validate()``. Setting a field after construction runs them again; if
    the new value is refused, the old one is put back, so the object never holds a bad value.
    A name that is not a field is refused too: ``config.num_round = 3`` is a typo, not a setting.
    ``dataclasses.replace`` makes a new object, checked like any other.
    """

    def __post_init__(self) -> None:
        self.validate()
        object.__setattr__(self, "_checked", True)

    def validate(self) -> None:
        """Raise the one-line ValueError of the first bad field (subclasses add their checks)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if not self.__dict__.get("_checked"):  # still in __init__: __post_init__ checks all
            object.__setattr__(self, name, value)
            return
        fields = [f.name for f in dataclasses.fields(self)]
        check(name in fields, "setting", name, f"a field of {type(self).__name__}")
        old = getattr(self, name)
        object.__setattr__(self, name, value)
        try:
            self.validate()
        except ValueError:
            object.__setattr__(self, name, old)
            raise
