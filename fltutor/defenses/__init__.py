"""Defenses: they wrap a part of the federation (a client's training, an aggregator), never subclass it.

``dp``        record-level differential privacy: DP-SGD on every client through Opacus.
``local_dp``  local differential privacy: every honest client clips and noises its own update.
``client_dp`` client-level differential privacy: the server clips, aggregates and noises the
              updates (DP-FedAvg), with a fixed or an adaptive clip.
``sign_sgd``  stochastic sign-SGD: every honest client sends one random sign per weight.

Import a defense from its module (``from fltutor.defenses.dp import DPConfig``): this package
imports none of them, so that using one defense never pays for another's imports (Opacus alone
takes seconds). ``registered_defenses()`` imports them all, for a choice among every one.
"""


def registered_defenses() -> list[str]:
    """Every defense's name in ``fltutor.parts.DEFENSES``, its module imported to file it."""
    from ..parts import DEFENSES
    from . import client_dp, dp, local_dp, sign_sgd  # noqa: F401  (importing a defense's module files it)

    return DEFENSES.names()
