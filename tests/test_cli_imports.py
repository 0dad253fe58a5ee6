"""The command line answers at once: its help, its version and its refusals import no heavy package.

``fltutor --help`` used to wait seconds for torch. Rather than timing it (the test machines are
shared and slow), each case runs one invocation in a fresh interpreter and looks at the modules it
imported. The cases are read off the parser itself, so a new command is covered without a change
here. The names the help offers come from ``fltutor.names``; the last tests hold them to the
registries they mirror.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from fltutor import names
from fltutor.cli import build_parser

#: Packages that take long to import; none may be imported before a command runs.
HEAVY = ("torch", "torchvision", "opacus", "matplotlib", "scipy", "sklearn", "flwr",
         "torchmetrics")
#: The repository's root: the fresh interpreter imports this copy of fltutor.
ROOT = Path(__file__).resolve().parents[1]

#: Run ``fltutor.cli.main(ARGV)`` and print what it left behind: its exit code and its modules.
SCRIPT = """
import json, sys
from fltutor.cli import main
try:
    code = main(json.loads(sys.argv[1]))
except SystemExit as exit:
    code = exit.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}), file=sys.__stdout__)
"""


def command_paths(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list[tuple]:
    """Every command and subcommand of ``parser`` as the words that name it: (), ("info",), ...,
    ("sweep", "figure4"), ... (argparse keeps subcommands in a ``_SubParsersAction``)."""
    paths = [path]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, subparser in action.choices.items():
                paths += command_paths(subparser, (*path, name))
    return paths


def run_main(argv: list[str]) -> tuple[dict, str]:
    """The exit code and the imported modules of ``fltutor ARGV`` in a fresh interpreter, and
    what it wrote on stderr."""
    done = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(argv)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1]), done.stderr


def heavy_imports(modules: list[str]) -> list[str]:
    return [module for module in modules if module.split(".")[0] in HEAVY]


HELP_CASES = [[*path, "--help"] for path in command_paths(build_parser())]


def test_every_command_is_covered():
    # a command found by walking the parser: the walk itself is right
    assert ["--help"] in HELP_CASES and ["sweep", "privacy", "--help"] in HELP_CASES
    assert ["data", "fetch", "--help"] in HELP_CASES


@pytest.mark.parametrize("argv", [*HELP_CASES, ["--version"]], ids=" ".join)
def test_help_and_version_import_no_heavy_package(argv):
    result, _ = run_main(argv)
    assert result["code"] == 0
    assert heavy_imports(result["modules"]) == []


REFUSALS = [
    ["fedavg", "--bogus"],  # an option no command has
    ["fedavg", "--clients", "many", "--out", "run"],  # a value of the wrong type
    ["byzantine", "--attack", "nope"],  # a name that no registry holds
    ["sweep", "privacy", "--kinds", "record-dp", "nope", "--out", "run"],
    ["nope"],  # no such command
]


@pytest.mark.parametrize("argv", REFUSALS, ids=" ".join)
def test_a_refusal_is_one_line_before_any_heavy_import(argv):
    result, err = run_main(argv)
    assert result["code"] == 2
    assert len(err.splitlines()) == 1 and err.startswith("fltutor") and "Traceback" not in err
    assert heavy_imports(result["modules"]) == []


def test_the_names_are_the_registries_names():
    """Each tuple of ``fltutor.names`` holds the names of the registry it mirrors, in its
    order (the help lists them in that order)."""
    import fltutor.attacks  # noqa: F401  (importing the attacks files them in ATTACKS)
    from fltutor.aggregators import AGGREGATORS
    from fltutor.attacks.curious import poisoning_attacks
    from fltutor.attacks.inversion import METHODS
    from fltutor.backfire import BACKFIRE_DEFENSES, BACKFIRE_POISON
    from fltutor.config import MODES
    from fltutor.data import DATASETS
    from fltutor.defenses import registered_defenses
    from fltutor.models import MODELS
    from fltutor.partition import PARTITIONS
    from fltutor.privacy import NO_DP, SCENARIOS, dp_kinds
    from fltutor.recipes.byzantine import BYZANTINE_ATTACKS
    from fltutor.recipes.crpa import CRPA_ATTACKS
    from fltutor.sweep import FIGURES, MAX_SWEEP_SEEDS

    registered = {
        "DATASETS": DATASETS.names(), "PARTITIONS": PARTITIONS.names(), "MODES": MODES,
        "AGGREGATORS": AGGREGATORS.names(), "DEFENSES": registered_defenses(),
        "MODELS": MODELS.names(), "INVERSION_METHODS": list(METHODS),
        "CRPA_ATTACKS": CRPA_ATTACKS, "BYZANTINE_ATTACKS": BYZANTINE_ATTACKS,
        "POISONING_ATTACKS": poisoning_attacks(), "FIGURES": FIGURES,
        "BACKFIRE_DEFENSES": BACKFIRE_DEFENSES, "PRIVACY_KINDS": [NO_DP, *dp_kinds()],
        "PRIVACY_SCENARIOS": list(SCENARIOS),
    }
    for constant, expected in registered.items():
        assert getattr(names, constant) == tuple(expected), \
            f"fltutor/names.py: {constant} must be {tuple(expected)}"
    assert (names.MAX_SWEEP_SEEDS, names.BACKFIRE_POISON) == (MAX_SWEEP_SEEDS, BACKFIRE_POISON)

