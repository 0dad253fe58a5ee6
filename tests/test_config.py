"""Config validation: a bad value fails up front, in one line that names it and what is allowed."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import pickle
import re

import pytest
import torch

from fltutor.config import PROFILES, FedConfig, available_devices, default_profile, resolve_device
from fltutor.recipes.crpa import CRPAConfig

BAD_VALUES = [
    # (field, bad value, message fragments: the value as written, then what is allowed)
    ("alpha", -0.5, ["alpha=-0.5", ">= 0"]),
    ("alpha", math.nan, ["alpha=nan", "finite number"]),
    ("alpha", math.inf, ["alpha=inf", "finite number"]),
    ("num_clients", 0, ["num_clients=0", "integer >= 1"]),
    ("num_clients", 2.5, ["num_clients=2.5", "integer >= 1"]),
    ("dataset", "cifar10", ["dataset='cifar10'", "one of mnist, fashion-mnist"]),
    ("partition", "random", ["partition='random'", "one of", "iid", "dirichlet"]),
    ("optimizer", "rmsprop", ["optimizer='rmsprop'", "one of adam, sgd"]),
    ("mode", "fedprox", ["mode='fedprox'", "one of fedavg, fedsgd"]),
    ("aggregator", "mean", ["aggregator='mean'", "a rule spec such as Mean()", "mean"]),
    ("model", "resnet", ["model='resnet'", "one of", "classifier", "lenet5"]),
    ("num_rounds", 0, ["num_rounds=0", "integer >= 1"]),
    ("local_epochs", 0, ["local_epochs=0", "integer >= 1"]),
    ("batch_size", -1, ["batch_size=-1", "integer >= 1"]),
    ("lr", 0.0, ["lr=0.0", "> 0"]),
    ("client_fraction", 0.0, ["client_fraction=0.0", "> 0.0 and <= 1.0"]),
    ("client_fraction", 1.5, ["client_fraction=1.5", "> 0.0 and <= 1.0"]),
    ("max_per_class", 0, ["max_per_class=0", "integer >= 1"]),
    ("seed", -1, ["seed=-1", "integer >= 0"]),
    ("device", "tpu", ["device='tpu'", "one of auto, cpu", "the devices on this machine"]),
    ("profile", "fast", ["profile='fast'", "quick", "paper"]),
    ("exclude", {10: (1,)}, ["exclude client=10", "client index from 0 to 9"]),
    ("exclude", {0: (10,)}, ["exclude class=10", "class index from 0 to 9"]),
    ("exclude", {0: 4}, ["exclude classes=4", "tuple of class indices"]),
    ("exclude", [(0, 4)], ["exclude=[(0, 4)]", "a dict"]),
]


@pytest.mark.parametrize("field, value, fragments", BAD_VALUES,
                         ids=[f"{field}={value!r}" for field, value, _ in BAD_VALUES])
def test_bad_value_is_one_line_naming_it_and_what_is_allowed(field, value, fragments):
    with pytest.raises(ValueError) as raised:
        FedConfig(**{field: value})
    message = str(raised.value)
    assert "\n" not in message
    assert "is not allowed: it must be" in message
    for fragment in fragments:
        assert fragment in message


def test_defaults_are_valid_and_json_ready():
    config = FedConfig()
    assert json.loads(json.dumps(config.to_dict()))["num_clients"] == 10
    assert config.num_classes == 10


def test_alpha_zero_is_allowed():
    assert FedConfig(partition="dirichlet", alpha=0.0).alpha == 0.0


def test_replace_validates_the_copy():
    config = FedConfig(num_clients=4)
    assert config.replace(alpha=0.1).alpha == 0.1
    with pytest.raises(ValueError, match="alpha=-1"):
        config.replace(alpha=-1)


@pytest.mark.parametrize("profile", ["quick", "paper"])
def test_from_profile_takes_the_profile_values(profile):
    config = FedConfig.from_profile(profile, device="cpu")
    for name, value in PROFILES[profile].items():
        assert getattr(config, name) == value
    assert config.profile == profile


def test_paper_profile_is_the_crpa_reference_setting():
    paper = FedConfig.from_profile("paper", device="cpu")
    assert (paper.num_rounds, paper.max_per_class, paper.batch_size) == (300, 5000, 250)
    assert (paper.num_clients, paper.local_epochs, paper.optimizer, paper.lr) == (10, 1, "adam",
                                                                                    1e-3)
    assert paper.max_test is None


def test_overrides_win_over_the_profile():
    config = FedConfig.from_profile("quick", device="cpu", num_rounds=2, alpha=0.1)
    assert (config.num_rounds, config.alpha) == (2, 0.1)
    assert config.max_per_class == PROFILES["quick"]["max_per_class"]


def test_default_profile_follows_the_device():
    assert default_profile("cpu") == "quick"
    assert FedConfig.from_profile(None, device="cpu").profile == "quick"
    expected = "paper" if resolve_device("auto").type == "cuda" else "quick"
    assert default_profile() == expected


def test_unknown_override_key_is_rejected_by_name():
    with pytest.raises(ValueError, match=re.escape("setting='colour, rounds' is not allowed: "
                                                   "it must be a field of FedConfig")):
        FedConfig.from_profile("quick", rounds=3, colour="red")


def test_unknown_profile_lists_the_known_ones():
    with pytest.raises(ValueError, match=re.escape("profile='fast' is not allowed: it must be "
                                                   "one of quick, paper")):
        FedConfig.from_profile("fast")


def test_bad_override_fails_like_a_bad_field():
    with pytest.raises(ValueError, match="num_rounds=0"):
        FedConfig.from_profile("quick", num_rounds=0)


def test_resolve_device_honours_an_explicit_choice():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in {"cpu", "cuda", "mps"}


def test_a_device_that_is_not_here_is_refused_naming_those_that_are():
    absent = "cuda:99"  # no machine has a hundred GPUs
    with pytest.raises(ValueError) as raised:
        resolve_device(absent)
    message = str(raised.value)
    assert message.startswith("device='cuda:99' is not allowed: it must be one of auto, cpu")
    assert "(the devices on this machine)" in message
    assert available_devices()[0] == "cpu" and resolve_device("cpu").type == "cpu"
    assert str(resolve_device("auto")) in {*available_devices(), "cuda"}


def test_a_field_set_later_is_checked_again_and_a_refused_value_is_not_kept():
    config = FedConfig(num_rounds=7)
    with pytest.raises(ValueError, match=re.escape("num_rounds=-1 is not allowed")):
        config.num_rounds = -1
    assert config.num_rounds == 7
    config.num_rounds = 9  # a good value is taken
    assert config.num_rounds == 9
    with pytest.raises(ValueError, match=re.escape("setting='num_round' is not allowed: it must "
                                                   "be a field of FedConfig")):
        config.num_round = 3  # a typo would otherwise create a new attribute, silently unused
    assert not hasattr(config, "num_round")


def test_a_field_set_later_is_checked_against_the_others():
    config = CRPAConfig(num_rounds=10, attack_start_round=8)
    with pytest.raises(ValueError, match=re.escape("attack_start_round=8 is not allowed: it must "
                                                   "be a round from 1 to num_rounds=5")):
        config.num_rounds = 5
    assert (config.num_rounds, config.attack_start_round) == (10, 8)


def test_checked_configs_still_copy_replace_and_compare():
    config = CRPAConfig.from_profile("quick", device="cpu", seed=3)
    assert copy.deepcopy(config) == config and pickle.loads(pickle.dumps(config)) == config
    changed = dataclasses.replace(config, seed=4)
    assert changed.seed == 4 and config.seed == 3
    copied = copy.deepcopy(config)
    with pytest.raises(ValueError, match="seed=-1"):
        copied.seed = -1  # a copy is checked like the original
    assert "_checked" not in config.to_dict()


def test_a_seed_past_64_bits_is_refused_and_the_largest_is_usable():
    largest = 2**64 - 1
    assert FedConfig(seed=largest).seed == largest
    torch.manual_seed(largest)  # the bound is torch's own
    with pytest.raises(ValueError, match=f"seed={largest + 1} is not allowed"):
        FedConfig(seed=largest + 1)


def test_an_empty_profile_name_is_refused_not_taken_for_the_default():
    with pytest.raises(ValueError, match=re.escape("profile='' is not allowed")):
        FedConfig.from_profile("", device="cpu")


@pytest.mark.parametrize("rounds, start", [(40, 10), (5, 2), (4, 1), (100, 23), (1, 1)])
def test_the_quick_attack_start_follows_the_number_of_rounds(rounds, start):
    config = CRPAConfig.from_profile("quick", device="cpu", num_rounds=rounds)
    assert (config.num_rounds, config.attack_start_round) == (rounds, start)


def test_the_quick_profile_keeps_round_10_of_40_and_the_paper_round_1():
    assert CRPAConfig.from_profile("quick", device="cpu").attack_start_round == 10
    for rounds in (5, 300, 1000):
        assert CRPAConfig.from_profile("paper", device="cpu",
                                       num_rounds=rounds).attack_start_round == 1


def test_an_explicit_start_round_is_kept_and_checked():
    config = CRPAConfig.from_profile("quick", device="cpu", num_rounds=5, attack_start_round=4)
    assert config.attack_start_round == 4
    with pytest.raises(ValueError, match=re.escape("attack_start_round=6 is not allowed: it must "
                                                   "be a round from 1 to num_rounds=5")):
        CRPAConfig.from_profile("quick", device="cpu", num_rounds=5, attack_start_round=6)
