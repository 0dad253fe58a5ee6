"""Config validation: a bad value fails up front, in one line that names it and what is allowed."""

from __future__ import annotations

import json
import math
import re

import pytest

from fltutor.config import PROFILES, FedConfig, default_profile, resolve_device

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
    ("aggregator", "no-such-rule", ["aggregator='no-such-rule'", "one of", "mean"]),
    ("model", "resnet", ["model='resnet'", "one of", "classifier", "lenet5"]),
    ("num_rounds", 0, ["num_rounds=0", "integer >= 1"]),
    ("local_epochs", 0, ["local_epochs=0", "integer >= 1"]),
    ("batch_size", -1, ["batch_size=-1", "integer >= 1"]),
    ("lr", 0.0, ["lr=0.0", "> 0"]),
    ("client_fraction", 0.0, ["client_fraction=0.0", "> 0.0 and <= 1.0"]),
    ("client_fraction", 1.5, ["client_fraction=1.5", "> 0.0 and <= 1.0"]),
    ("max_per_class", 0, ["max_per_class=0", "integer >= 1"]),
    ("seed", -1, ["seed=-1", "integer >= 0"]),
    ("device", "tpu", ["device='tpu'", "auto, cpu, cuda"]),
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
