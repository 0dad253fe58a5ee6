"""Every bad input, one line: a table of wrong values across the command line and the Python API.

The rule (README): a bad value stops everything before any work, with one line that names the
value and says what is allowed. In Python that line is a ``ValueError``; on the command line it
is exit code 2 on stderr, without a traceback. Each row below is one bad input and the text that
the error line must contain to name it. The command-line rows point ``--data-root`` at an empty
folder: a command that wrongly got past its checks would fail to load data there (exit 1), not
train, and it must leave no output folder behind.
"""

from __future__ import annotations

import io
import math
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch

from fltutor.aggregators import Dnc, NormClipping, mean
from fltutor.attacks.crpa import CRPA, LabelFlip
from fltutor.attacks.curious import CuriousClient
from fltutor.attacks.gan import GANSettings
from fltutor.config import FedConfig
from fltutor.data import load
from fltutor.defenses.client_dp import ClientDPConfig
from fltutor.defenses.dp import DPConfig
from fltutor.flower import from_bytes
from fltutor.recipes.byzantine import ByzantineConfig
from fltutor.recipes.crpa import CRPAConfig
from fltutor.recipes.curious import CuriousConfig
from fltutor.recipes.inversion import InversionConfig
from fltutor.models import Classifier, Generator, LeNet5, load_flat_parameters
from fltutor.partition import dirichlet, iid, one_class_per_client, shards, split
from fltutor.training import LocalTraining
from helpers import run_cli

LABELS = np.repeat(np.arange(10), 6)  # 60 samples, 6 of each of 10 classes
UPDATES = torch.tensor([[1.0, 0.0], [3.0, 2.0]])  # two clients, two weights each
RNG = np.random.default_rng(0)


def _has_mps() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


#: Devices that this machine lacks (cuda:99 is lacking everywhere).
ABSENT_DEVICES = ["cuda:99"] + [name for name, present in
                                [("cuda", torch.cuda.is_available()),
                                 ("cuda:3", torch.cuda.device_count() > 3), ("mps", _has_mps())]
                                if not present]


def changed(config, name, value):
    """Set one field of a finished config (as a notebook cell might)."""
    setattr(config, name, value)


def foreign_payload() -> bytes:
    """What a peer could send instead of tensors: a pickled object of another class."""
    buffer = io.BytesIO()
    torch.save(Path("planted"), buffer)
    return buffer.getvalue()


def training(**fields) -> LocalTraining:
    return LocalTraining(**{**dict(epochs=1, batch_size=10, optimizer="sgd", lr=0.1,
                                   keep_optimizer_state=False), **fields})


PYTHON_CASES = [
    # (what is called, the text that the error message must contain)
    # FedConfig: wrong types, where the old checks took a bool for a number or anything for a bool
    (lambda: FedConfig(lr=True), "lr=True"),
    (lambda: FedConfig(lr="0.1"), "lr='0.1'"),
    (lambda: FedConfig(alpha=True), "alpha=True"),
    (lambda: FedConfig(client_fraction=True), "client_fraction=True"),
    (lambda: FedConfig(allow_fallback="no"), "allow_fallback='no'"),
    (lambda: FedConfig(allow_fallback=None), "allow_fallback=None"),
    (lambda: FedConfig(keep_optimizer_state=1), "keep_optimizer_state=1"),
    (lambda: FedConfig(num_clients=True), "num_clients=True"),
    (lambda: FedConfig(num_rounds=2.0), "num_rounds=2.0"),
    (lambda: FedConfig(seed=True), "seed=True"),
    (lambda: FedConfig(seed=1.5), "seed=1.5"),
    (lambda: FedConfig(max_test=True), "max_test=True"),
    (lambda: FedConfig(max_test=0), "max_test=0"),
    (lambda: FedConfig(dataset=None), "dataset=None"),
    (lambda: FedConfig(optimizer="Adam"), "optimizer='Adam'"),
    (lambda: FedConfig(aggregator=None), "aggregator=None"),
    (lambda: FedConfig(mode=1), "mode=1"),
    (lambda: FedConfig(data_root=5), "data_root=5"),
    (lambda: FedConfig(data_root=""), "data_root=''"),
    (lambda: FedConfig(profile=None), "profile=None"),
    (lambda: FedConfig(defenses=True), "defenses=True"),
    (lambda: FedConfig(defenses=({"noise_multiplier": 1.0},)),
     "defenses=({'noise_multiplier': 1.0},)"),
    (lambda: FedConfig(attackers=[CRPA()]), "attackers=[CRPA("),
    (lambda: FedConfig(observations=("attack-accuracy",)), "observations=('attack-accuracy',)"),
    (lambda: FedConfig(aggregator="krum"), "aggregator='krum'"),
    (lambda: FedConfig(num_clients=3, attackers=(CRPA(clients=(3,)),), partition="dirichlet"),
     "clients=(3,)"),
    (lambda: FedConfig(num_clients=2, partition="dirichlet",
                       attackers=(CRPA(clients=(0,)), LabelFlip(clients=(0,)))),
     "attackers=[(0,), (0,)]"),
    (lambda: FedConfig(num_clients=2, partition="dirichlet", attackers=(CRPA(clients=(0, 1)),)),
     "malicious clients=2"),
    (lambda: CRPA(clients=()), "clients=()"),
    (lambda: CRPA(clients=[0]), "clients=[0]"),
    (lambda: CRPA(clients=(1, 1)), "clients=(1, 1)"),
    (lambda: CRPA(gan={"steps": 2}), "gan={'steps': 2}"),
    # FedConfig: numbers too large to use
    (lambda: FedConfig(num_clients=10**6), "num_clients=1000000"),
    (lambda: FedConfig(num_rounds=10**9), "num_rounds=1000000000"),
    (lambda: FedConfig(batch_size=10**9), "batch_size=1000000000"),
    (lambda: FedConfig(local_epochs=10**6), "local_epochs=1000000"),
    (lambda: FedConfig(seed=2**64), "seed=18446744073709551616"),
    (lambda: FedConfig(max_per_class=10**12), "max_per_class=1000000000000"),
    (lambda: FedConfig(partition="shards", shards_per_client=10**9),
     "shards_per_client=1000000000"),
    (lambda: FedConfig(lr=1e300), "lr=1e+300"),
    (lambda: FedConfig(num_clients=21, max_per_class=2), "num_clients=21"),  # 20 images in all
    (lambda: FedConfig(num_clients=11, partition="shards", max_per_class=2),
     "shards_per_client=2"),
    # FedConfig: devices that are not there, or no device at all
    *[(lambda name=name: FedConfig(device=name), f"device={name!r}") for name in ABSENT_DEVICES],
    (lambda: FedConfig(device="foo"), "device='foo'"),
    (lambda: FedConfig(device="cuda:x"), "device='cuda:x'"),
    (lambda: FedConfig(device=""), "device=''"),
    (lambda: FedConfig(device=None), "device=None"),
    (lambda: FedConfig(device=0), "device=0"),
    # FedConfig: exclusions that are malformed or cannot be met
    (lambda: FedConfig(partition="dirichlet", exclude={True: (4,)}), "exclude client=True"),
    (lambda: FedConfig(partition="dirichlet", exclude={0: (True,)}), "exclude class=True"),
    (lambda: FedConfig(partition="dirichlet", exclude={0: "49"}), "exclude classes='49'"),
    (lambda: FedConfig(exclude={0: (4,)}), "exclude={0: (4,)}"),  # iid: everyone holds every class
    (lambda: FedConfig(partition="dirichlet", exclude={0: tuple(range(10))}),
     "exclude classes=(0, 1, 2, 3, 4, 5, 6, 7, 8, 9)"),
    # FedConfig: fields changed after construction are checked again
    (lambda: changed(FedConfig(), "num_rounds", -1), "num_rounds=-1"),
    (lambda: changed(FedConfig(), "lr", True), "lr=True"),
    (lambda: changed(FedConfig(), "device", "foo"), "device='foo'"),
    (lambda: changed(FedConfig(), "seed", 2**64), "seed=18446744073709551616"),
    (lambda: changed(FedConfig(), "num_round", 3), "num_round"),  # a typo would be a new attribute
    (lambda: FedConfig().replace(seed=2**64), "seed=18446744073709551616"),
    # from_profile
    (lambda: FedConfig.from_profile("quick", device="foo"), "device='foo'"),
    (lambda: FedConfig.from_profile(None, device="foo"), "device='foo'"),
    (lambda: FedConfig.from_profile(None, device="cuda:99"), "device='cuda:99'"),
    (lambda: FedConfig.from_profile("quick", lr=True), "lr=True"),
    (lambda: FedConfig.from_profile(""), "profile=''"),
    (lambda: FedConfig.from_profile(5), "profile=5"),
    # CRPAConfig
    (lambda: CRPAConfig(poison_count=10**9), "poison_count=1000000000"),
    (lambda: CRPAConfig(poison_count=True), "poison_count=True"),
    (lambda: CRPAConfig(free_rider="yes"), "free_rider='yes'"),
    (lambda: CRPAConfig(free_rider=1), "free_rider=1"),
    (lambda: CRPAConfig(attacker=True), "attacker=True"),
    (lambda: CRPAConfig(generate_class=4.0), "generate_class=4.0"),
    (lambda: CRPAConfig(target_class=-1), "target_class=-1"),
    (lambda: CRPAConfig(attack_start_round=True), "attack_start_round=True"),
    (lambda: CRPAConfig(attack_start_round=0), "attack_start_round=0"),
    (lambda: GANSettings(batch_size=10**9), "batch_size=1000000000"),
    (lambda: GANSettings(steps=0), "steps=0"),
    (lambda: GANSettings(jitter=10**30), "jitter=" + str(10**30)),
    (lambda: GANSettings(latent_dim=10**9), "latent_dim=1000000000"),
    (lambda: GANSettings(preview_count=10**9), "preview_count=1000000000"),
    (lambda: GANSettings(generator_lr=1e300), "generator_lr=1e+300"),
    (lambda: GANSettings(smoothness=math.nan), "smoothness=nan"),
    (lambda: GANSettings(discriminator_lr=True), "discriminator_lr=True"),
    (lambda: CRPAConfig(gan=None), "gan=None"),
    (lambda: CRPAConfig.from_profile("quick", gan=dict(steps=0)), "steps=0"),
    (lambda: CRPAConfig.from_profile("quick", gan=dict(stepz=3)), "stepz"),
    (lambda: changed(CRPAConfig(), "num_rounds", 0), "num_rounds=0"),
    (lambda: changed(CRPAConfig(num_rounds=5), "attack_start_round", 6), "attack_start_round=6"),
    (lambda: changed(CRPAConfig(), "free_rider", "yes"), "free_rider='yes'"),
    (lambda: CRPAConfig.from_profile("quick", num_rounds=5, attack_start_round=6),
     "attack_start_round=6"),
    (lambda: CRPAConfig.from_profile("quick", device="foo"), "device='foo'"),
    # DPConfig
    (lambda: DPConfig(noise_multiplier=1e300), "noise_multiplier=1e+300"),
    (lambda: DPConfig(noise_multiplier=True), "noise_multiplier=True"),
    (lambda: DPConfig(max_grad_norm=math.inf), "max_grad_norm=inf"),
    (lambda: DPConfig(max_grad_norm=1e300), "max_grad_norm=1e+300"),
    (lambda: DPConfig(lr=True), "lr=True"),
    (lambda: DPConfig(lr=1e300), "lr=1e+300"),
    (lambda: DPConfig(delta=True), "delta=True"),
    (lambda: DPConfig(delta=math.nan), "delta=nan"),
    (lambda: changed(DPConfig(), "noise_multiplier", -1.0), "noise_multiplier=-1.0"),
    # split and the partition schemes
    (lambda: split(LABELS, "iid", 0), "num_clients=0"),
    (lambda: split(LABELS, "iid", -1), "num_clients=-1"),
    (lambda: split(LABELS, "iid", True), "num_clients=True"),
    (lambda: split(LABELS, "iid", 2.5), "num_clients=2.5"),
    (lambda: split(LABELS, "iid", 61), "num_clients=61"),
    (lambda: split(LABELS, "random", 2), "'random'"),
    (lambda: split(LABELS, "dirichlet", 3, alpha=-1.0), "alpha=-1.0"),
    (lambda: split(LABELS, "dirichlet", 3, alpha=math.nan), "alpha=nan"),
    (lambda: split(LABELS, "dirichlet", 3, alpha=math.inf), "alpha=inf"),
    (lambda: split(LABELS, "shards", 3, shards_per_client=0), "shards_per_client=0"),
    (lambda: split(LABELS, "shards", 3, shards_per_client=10**9), "shards_per_client=1000000000"),
    (lambda: split(LABELS, "iid", 3, seed=-1), "seed=-1"),
    (lambda: split(LABELS, "iid", 3, seed=1.5), "seed=1.5"),
    (lambda: split(np.array([], dtype=int), "iid", 1), "labels"),
    (lambda: split(np.array([[0, 1]]), "iid", 1), "labels"),
    (lambda: split(np.array([0.5, 1.0]), "iid", 1), "labels"),
    (lambda: split(np.array([-1, 0]), "iid", 1), "labels"),
    (lambda: split(LABELS, "iid", 3, max_tries=0), "max_tries=0"),
    (lambda: split(LABELS, "dirichlet", 3, exclude={5: (1,)}), "exclude client=5"),
    (lambda: split(LABELS, "dirichlet", 3, exclude={0: (12,)}), "exclude class=12"),
    (lambda: split(LABELS, "dirichlet", 3, exclude={0: 4}), "exclude classes=4"),
    (lambda: split(LABELS, "dirichlet", 3, exclude=[(0, 4)]), "exclude=[(0, 4)]"),
    (lambda: iid(LABELS, 0, RNG), "num_clients=0"),
    (lambda: dirichlet(LABELS, 3, RNG, alpha=-1.0), "alpha=-1.0"),
    (lambda: shards(LABELS, 0, RNG), "num_clients=0"),
    (lambda: one_class_per_client(LABELS, 0, RNG), "num_clients=0"),
    # aggregators
    (lambda: mean(UPDATES, torch.tensor([0.0, 0.0])), "weights=[0.0, 0.0]"),
    (lambda: mean(UPDATES, torch.tensor([-1.0, 2.0])), "weights=[-1.0, 2.0]"),
    (lambda: mean(UPDATES, torch.tensor([math.nan, 1.0])), "weights=[nan, 1.0]"),
    (lambda: mean(UPDATES, torch.tensor([math.inf, 1.0])), "weights=[inf, 1.0]"),
    (lambda: mean(UPDATES, torch.tensor([1.0, 1.0, 1.0])), "weights=[1.0, 1.0, 1.0]"),
    (lambda: mean(UPDATES, torch.ones(2, 1)), "weights=[[1.0], [1.0]]"),
    (lambda: mean(torch.zeros(0, 2), torch.zeros(0)), "client_updates.shape=(0, 2)"),
    (lambda: mean(torch.zeros(2), torch.ones(2)), "client_updates.shape=(2,)"),
    # local training and models
    (lambda: training(epochs=0), "epochs=0"),
    (lambda: training(batch_size=0), "batch_size=0"),
    (lambda: training(optimizer="rmsprop"), "optimizer='rmsprop'"),
    (lambda: training(lr=-1.0), "lr=-1.0"),
    (lambda: training(keep_optimizer_state="yes"), "keep_optimizer_state='yes'"),
    (lambda: Classifier(num_classes=0), "num_classes=0"),
    (lambda: Classifier(num_classes=10**9), "num_classes=1000000000"),
    (lambda: Generator(latent_dim=0), "latent_dim=0"),
    (lambda: Generator(latent_dim=10**9), "latent_dim=1000000000"),
    (lambda: LeNet5(num_classes=True), "num_classes=True"),
    (lambda: load_flat_parameters(LeNet5(), torch.zeros(3)), "vector"),
    # the curious client
    (lambda: CuriousClient(rounds=(0,)), "rounds=(0,)"),
    (lambda: CuriousClient(rounds=(1, 10), every=2), "every=2"),
    (lambda: CuriousClient(prior="autoencoder", latent_dim=0), "latent_dim=0"),
    (lambda: CuriousConfig(mode="fedprox"), "mode='fedprox'"),
    (lambda: CuriousConfig(num_rounds=5, curious_options=dict(rounds=(1, 6))), "rounds=(1, 6)"),
    # upper bounds that a typo's extra digits would pass, when made and when set
    (lambda: NormClipping(max_norm=1e300), "max_norm=1e+300"),
    (lambda: changed(NormClipping(), "max_norm", 1e300), "max_norm=1e+300"),
    (lambda: Dnc(subsample_dim=2**70), f"subsample_dim={2**70}"),
    (lambda: changed(Dnc(), "subsample_dim", 2**70), f"subsample_dim={2**70}"),
    (lambda: ClientDPConfig(count_noise=1e300), "count_noise=1e+300"),
    (lambda: changed(ClientDPConfig(), "count_noise", 1e300), "count_noise=1e+300"),
    (lambda: InversionConfig(iterations=10**12), "iterations=1000000000000"),
    (lambda: changed(InversionConfig(), "iterations", 10**12), "iterations=1000000000000"),
    # the Python API below the configs
    (lambda: load("mnist", max_per_class=-1), "max_per_class=-1"),
    (lambda: load("mnist", max_per_class=0), "max_per_class=0"),
    (lambda: load("mnist", max_test=-5), "max_test=-5"),
    (lambda: load("mnist", __file__), "root="),
    (lambda: FedConfig(data_root=__file__), "data_root="),
    (lambda: mean(torch.tensor([[1.0, math.nan], [0.0, 1.0]]), torch.ones(2)), "row(s) [0]"),
    (lambda: mean(torch.tensor([[1.0, 0.0], [math.inf, 1.0]]), torch.ones(2)), "row(s) [1]"),
    (lambda: ByzantineConfig.from_profile("quick", aggregator="krum", aggregator_options="x=1"),
     "aggregator_options='x=1'"),
    (lambda: from_bytes(foreign_payload()), "payload of"),
    (lambda: from_bytes(b"not a torch.save"), "payload of"),
]


@pytest.mark.parametrize("call, named", PYTHON_CASES,
                         ids=[named for _, named in PYTHON_CASES])
def test_a_bad_python_value_is_one_line_valueerror_naming_it(call, named):
    with pytest.raises(ValueError) as raised:
        call()
    message = str(raised.value)
    assert "\n" not in message, message
    assert named in message, message


CLI_CASES = [
    # (the command, as typed after "fltutor", without --out and --data-root; what the line names)
    # devices that are not there; the first under the default profile, which reads the device
    ("fedavg --device foo", "device='foo'"),
    *[(f"fedavg --device {name}", f"device={name!r}") for name in ABSENT_DEVICES],
    ("fedavg --device ''", "device=''"),
    ("crpa --generate 4 --target 9 --device foo", "device='foo'"),
    ("sweep figure4 --device cuda:99", "device='cuda:99'"),
    # numbers too large, too small, or not numbers
    ("fedavg --seed 18446744073709551616", "seed=18446744073709551616"),
    ("fedavg --seed -1", "seed=-1"),
    ("fedavg --seed 1.5", "invalid int value: '1.5'"),
    ("fedavg --clients 1000000", "num_clients=1000000"),
    ("fedavg --clients -3", "num_clients=-3"),
    ("fedavg --clients 500 --max-per-class 20", "num_clients=500"),  # 200 images for 500 clients
    ("fedavg --rounds 1000000000", "num_rounds=1000000000"),
    ("fedavg --rounds -1", "num_rounds=-1"),
    ("fedavg --max-per-class 0", "max_per_class=0"),
    ("fedavg --max-per-class 10000000000000", "max_per_class=10000000000000"),
    ("fedavg --max-test -5", "max_test=-5"),
    ("fedavg --alpha inf", "alpha=inf"),
    ("fedavg --alpha 1e999", "alpha=inf"),
    ("fedavg --alpha=-inf", "alpha=-inf"),
    # option strings that are malformed or cannot be met
    ("fedavg --exclude 0:4,x", "exclude='0:4,x'"),
    ("fedavg --exclude 0", "exclude='0'"),
    ("fedavg --exclude 0:4:5", "exclude='0:4:5'"),
    ("fedavg --exclude :4", "exclude=':4'"),
    ("fedavg --exclude 0:", "exclude='0:'"),
    ("fedavg --partition dirichlet --exclude=-1:4", "exclude='-1:4'"),
    ("fedavg --partition dirichlet --exclude 0:-4", "exclude='0:-4'"),
    ("fedavg --partition dirichlet --exclude 0:10", "exclude class=10"),
    ("fedavg --exclude 0:4", "exclude={0: (4,)}"),  # iid: every client holds every class
    ("fedavg --partition dirichlet --exclude 0:0,1,2,3,4,5,6,7,8,9",
     "exclude classes=(0, 1, 2, 3, 4, 5, 6, 7, 8, 9)"),
    ("fedavg --mode FedAvg", "mode='FedAvg'"),
    ("fedavg --data-root ''", "data_root=''"),  # not the current folder in disguise
    ("fedavg --dataset ''", "dataset=''"),
    ("fedavg --partition ''", "partition=''"),
    ("fedavg --profile ''", "profile=''"),  # not the default profile in disguise
    # crpa
    ("crpa --profile quick --generate 4 --target 9 --poison-count 1000000000",
     "poison_count=1000000000"),
    ("crpa --profile quick --generate 4 --target 9 --poison-count -1", "poison_count=-1"),
    ("crpa --profile quick --generate 4 --target 9 --start-round 41", "attack_start_round=41"),
    ("crpa --profile quick --generate 4 --target 9 --rounds 5 --start-round 6",
     "attack_start_round=6"),
    ("crpa --profile quick --generate 4 --target 9 --dp --noise-multiplier 1e300",
     "noise_multiplier=1e+300"),
    ("crpa --profile quick --generate 4 --target 9 --dp --noise-multiplier nan",
     "noise_multiplier=nan"),
    ("crpa --profile quick --generate 4 --target 9 --dp --max-grad-norm inf", "max_grad_norm=inf"),
    ("crpa --profile quick --generate=-1 --target 9", "generate_class=-1"),
    ("crpa --profile quick --generate 4 --target 10", "target_class=10"),
    ("crpa --profile quick --generate 4 --target 9 --attack ''", "invalid choice: ''"),
    ("crpa --profile quick --generate 4 --target 9 --alpha nan", "alpha=nan"),
    ("crpa --profile quick --generate 4 --target 9 --seed 18446744073709551616",
     "seed=18446744073709551616"),
    # sweep
    ("sweep figure4 --profile quick --pairs 4:9,4:9", "pairs='4:9,4:9'"),
    ("sweep figure4 --profile quick --pairs '4:9 7:5'", "pairs='4:9 7:5'"),
    ("sweep figure4 --profile quick --pairs=-4:9", "pairs='-4:9'"),
    ("sweep figure4 --profile quick --pairs 4:", "pairs='4:'"),
    ("sweep figure4 --profile quick --pairs ,", "pairs=','"),
    ("sweep figure4 --profile quick --seeds 1000000000", "seeds=1000000000"),
    ("sweep figure4 --profile quick --seeds -1", "seeds=-1"),
    ("sweep figure4 --profile quick --start-round 0", "attack_start_round=0"),
    ("sweep figure4 --profile quick --start-round 41", "attack_start_round=41"),
    ("sweep figure4 --profile quick --rounds 5 --start-round 6", "attack_start_round=6"),
    ("sweep figure4 --profile quick --seed 18446744073709551616", "seed=18446744073709551616"),
    ("sweep figure4 --profile paper --rounds 0", "num_rounds=0"),
    ("sweep figure6 --profile quick --pairs 4:4", "target_class=4"),
    # curious
    ("curious --profile quick-fedsgd --mode fedprox", "invalid choice: 'fedprox'"),
    ("curious --profile quick-fedsgd --curious-option rounds=1,x", "rounds='1,x'"),
    ("curious --profile quick-fedsgd --rounds 5 --curious-option rounds=1,6", "rounds=(1, 6)"),
    ("curious --profile quick-fedsgd --curious-option rounds=0", "rounds=(0,)"),
    ("curious --curious-option prior=autoencoder --curious-option latent_dim=0", "latent_dim=0"),
    ("curious --curious-option rounds=1 --curious-option every=2", "every=2"),
    # the other commands
    ("info --root ''", "argument --root: '' is not allowed"),  # not the current folder
    ("data fetch --root ''", "argument --root: '' is not allowed"),
    ("data fetch --dataset cifar10", "'cifar10'"),
    ("byzantine --profile quick --attack sign-flip --malicious 1 --aggregator norm-clipping "
     "--aggregator-option max_norm=1e300", "max_norm=1e+300"),
    ("byzantine --profile quick --attack sign-flip --malicious 1 --aggregator dnc "
     f"--aggregator-option subsample_dim={2**70}", f"subsample_dim={2**70}"),
    ("sweep privacy --kinds none --noises 0.5", "noises=[0.5]"),
]


@pytest.mark.parametrize("command, named", CLI_CASES, ids=[command for command, _ in CLI_CASES])
def test_a_bad_option_is_exit_2_and_one_line_before_any_work(command, named, tmp_path, capsys):
    out_dir = tmp_path / "out"
    argv = shlex.split(command)
    if argv[0] in ("fedavg", "crpa", "byzantine", "sweep", "curious"):
        argv += ["--out", str(out_dir), "--no-progress"]
        if "--data-root" not in argv:
            argv += ["--data-root", str(tmp_path / "nodata")]
    code, _, err = run_cli(argv, capsys)
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert named in err, err
    assert not out_dir.exists() and not (tmp_path / "nodata").exists()


def test_the_table_has_at_least_100_cases():
    assert len(PYTHON_CASES) + len(CLI_CASES) >= 100
