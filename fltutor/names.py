"""The names the command line offers, written out so that they are known without importing torch.

``fltutor --help`` lists the datasets, aggregation rules, attacks, defenses, models, ... that a
command accepts, and argparse refuses any other name before a command starts. Those names belong
to registries (``fltutor.registry.Registry``) that fill as their modules are imported, and those
modules import torch, Opacus and matplotlib: seconds before the help could print a line. So the
command line takes its choices from this module, which imports nothing, and imports the real
registries only in the command that runs.

Each tuple below mirrors one registry (or a list made from one), in its order. The registries stay
the truth: ``tests/test_cli_imports.py`` imports every module and checks that each tuple holds the
same names. Registering a new attack, rule or defense is therefore also adding its name here; the
test says where if it is forgotten.
"""

#: ``fltutor.data.DATASETS``.
DATASETS = ("mnist", "fashion-mnist")
#: ``fltutor.partition.PARTITIONS``.
PARTITIONS = ("iid", "one-class", "dirichlet", "shards")
#: ``fltutor.config.MODES``: how the clients' updates are made.
MODES = ("fedavg", "fedsgd")
#: ``fltutor.aggregators.AGGREGATORS``.
AGGREGATORS = ("mean", "krum", "multi-krum", "median", "trimmed-mean", "bulyan", "norm-clipping",
               "dnc", "freqfed")
#: ``fltutor.defenses.registered_defenses()``: every defense in ``fltutor.parts.DEFENSES``.
DEFENSES = ("record-dp", "local-dp", "client-dp", "sign-sgd")
#: ``fltutor.models.MODELS``.
MODELS = ("classifier", "lenet5", "lenet5-wide", "lenet-dlg", "lenet-dlg-tanh", "lenet-dlg-relu")
#: ``fltutor.attacks.inversion.METHODS``: the gradient inversions.
INVERSION_METHODS = ("dlg", "idlg", "ig")

#: ``fltutor.recipes.crpa.CRPA_ATTACKS``: the CRPA study's attacks, and ``none``.
CRPA_ATTACKS = ("none", "label-flip", "reconstruction", "crpa")
#: ``fltutor.recipes.byzantine.BYZANTINE_ATTACKS``: the attacks a Byzantine run takes.
BYZANTINE_ATTACKS = ("none", "sign-flip", "gaussian-noise", "scaling", "alie", "ipm", "min-max",
                     "backdoor")
#: ``fltutor.attacks.curious.poisoning_attacks()``: what a curious client may poison with.
POISONING_ATTACKS = ("none", "sign-flip", "gaussian-noise", "scaling", "alie", "ipm", "min-max",
                     "backdoor")

#: ``fltutor.sweep.FIGURES``: the CRPA study's figures that ``fltutor sweep`` reruns.
FIGURES = ("figure4", "figure6", "figure8")
#: ``fltutor.sweep.MAX_SWEEP_SEEDS``: seeds per setting of a sweep.
MAX_SWEEP_SEEDS = 100
#: ``fltutor.backfire.BACKFIRE_DEFENSES`` and ``BACKFIRE_POISON``: the backfire sweep's defaults.
BACKFIRE_DEFENSES = ("none", "record-dp", "local-dp", "krum", "median", "dnc", "freqfed",
                     "record-dp+krum", "local-dp+median")
BACKFIRE_POISON = "sign-flip"
#: ``fltutor.privacy``: ``NO_DP`` and ``dp_kinds()`` (the defenses that state an epsilon).
PRIVACY_KINDS = ("none", "record-dp", "local-dp", "client-dp")
#: ``fltutor.privacy.SCENARIOS``: the attacks the privacy sweep runs against each DP setting.
PRIVACY_SCENARIOS = ("clean", "inversion", "crpa", "crpa-control", "curious", "sign-flip-mean",
                     "sign-flip-median")
