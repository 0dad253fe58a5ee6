"""Byzantine attacks on updates and backdoors: hand-checked numbers and the properties each paper
relies on; the backdoor also on real MNIST, trained for a second."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from fltutor.attacks.backdoor import (Backdoor, BackdoorClient, Trigger, add_trigger,
                                      backdoor_success, poison, replacement_factor,
                                      spread_choice)
from fltutor.attacks.byzantine import (ALIE, IPM, GaussianNoise, MinMax, Scaling, SignFlip, alie,
                                       alie_z, boost, distances, gaussian_noise, ipm, min_max,
                                       min_max_gamma, perturbation_direction, sign_flip)
from fltutor.federation import Federation
from fltutor.models import LeNet5, flat_parameters
from fltutor.parts import ATTACKS
from fltutor.training import LocalTraining


def benign(num_clients: int = 8, num_params: int = 50, seed: int = 0) -> torch.Tensor:
    """Honest-looking updates: a shared direction plus client noise, seeded."""
    generator = torch.Generator().manual_seed(seed)
    common = torch.randn(num_params, generator=generator)
    return common + 0.5 * torch.randn(num_clients, num_params, generator=generator)


# sign_flip, boost, gaussian_noise -------------------------------------------------------------

def test_sign_flip_reverses_the_update_and_doubles_its_distance():
    own = torch.tensor([[3.0, -4.0]])  # norm 5
    flipped = sign_flip(own)
    assert flipped.tolist() == [[-3.0, 4.0]]
    assert (flipped - own).norm().item() == pytest.approx(10.0)  # twice the norm
    assert flipped.norm().item() == pytest.approx(5.0)  # same size: invisible to a norm check


def test_sign_flip_scale_multiplies():
    assert sign_flip(torch.tensor([[1.0, -2.0]]), scale=4.0).tolist() == [[-4.0, 8.0]]


def test_boost_multiplies_each_row():
    own = torch.tensor([[1.0, 2.0], [0.5, -1.0]])
    assert boost(own, factor=3.0).tolist() == [[3.0, 6.0], [1.5, -3.0]]


def test_boosting_by_n_undoes_the_averaging_of_n_clients():
    # Prepare: 4 equal clients; three send nothing, the attacker sends u boosted by 4.
    u = torch.tensor([1.0, -2.0, 0.5])
    stacked = torch.stack([torch.zeros(3)] * 3 + [boost(u.unsqueeze(0), factor=4.0)[0]])
    # Execute / Assert: the plain mean is u itself, as if the attacker alone had set the step.
    assert torch.allclose(stacked.mean(dim=0), u)


def test_gaussian_noise_ignores_the_update_and_has_the_asked_spread():
    torch.manual_seed(0)
    own = torch.full((3, 20_000), 7.0)
    noise = gaussian_noise(own, std=2.0)
    assert noise.shape == own.shape
    assert abs(noise.mean().item()) < 0.05  # centred on 0, not on the update
    assert noise.std().item() == pytest.approx(2.0, rel=0.02)


def test_gaussian_noise_repeats_under_the_same_seed():
    own = torch.zeros(2, 10)
    torch.manual_seed(5)
    first = gaussian_noise(own)
    torch.manual_seed(5)
    assert torch.equal(gaussian_noise(own), first)
    assert first.std().item() > 50  # the default std is Blanchard et al.'s 200


# ALIE --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("num_clients, num_malicious, expected", [
    (50, 12, 0.5828),  # s = 26 - 12 = 14, Phi^-1(36/50 = 0.72)
    (50, 24, 1.7507),  # s = 2, Phi^-1(0.96)
    (10, 2, 0.2533),   # s = 4, Phi^-1(0.6)
    (31, 6, 0.4605),   # s = 16 - 6 = 10, Phi^-1(21/31)
    (10, 1, 0.0),      # s = 5, Phi^-1(0.5): no room at all
])
def test_alie_z_follows_the_paper(num_clients, num_malicious, expected):
    assert alie_z(num_clients, num_malicious) == pytest.approx(expected, abs=1e-4)


def test_alie_z_refuses_an_attacking_majority():
    with pytest.raises(ValueError, match="num_malicious=6 is not allowed"):
        alie_z(10, 6)  # s would be 0: z_max infinite


def test_alie_by_hand():
    honest = torch.tensor([[1.0, 0.0], [3.0, 4.0]])  # mean (2, 2), sample std (sqrt 2, 2 sqrt 2)
    crafted = alie(honest, num_clients=4, num_malicious=2, z=1.0)
    expected = [2 - math.sqrt(2), 2 - 2 * math.sqrt(2)]
    assert crafted.shape == (2, 2)
    assert torch.allclose(crafted, torch.tensor([expected, expected]))


def test_alie_stays_within_z_std_of_the_honest_mean_in_every_coordinate():
    honest = benign(num_clients=20, num_params=200)
    crafted = alie(honest, num_clients=25, num_malicious=5)
    z = alie_z(25, 5)
    mean, std = honest.mean(dim=0), honest.std(dim=0)
    assert 0 < z < 3
    assert torch.all((crafted - mean).abs() <= z * std + 1e-6)
    assert torch.all(crafted < mean)  # all coordinates move together, the same way


def test_alie_needs_two_updates_for_a_spread():
    with pytest.raises(ValueError, match="honest_updates.shape"):
        alie(torch.ones(1, 4), num_clients=10, num_malicious=2)


# IPM ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("epsilon", [0.1, 100.0])
def test_ipm_has_a_negative_inner_product_with_the_honest_mean(epsilon):
    honest = benign()
    crafted = ipm(honest, num_malicious=3, epsilon=epsilon)
    mean = honest.mean(dim=0)
    assert crafted.shape == (3, honest.shape[1])
    assert torch.all(crafted @ mean < 0)
    assert torch.allclose(crafted[0], -epsilon * mean)


def test_large_ipm_turns_the_mean_of_all_updates_uphill():
    honest = benign(num_clients=8)
    crafted = ipm(honest, num_malicious=2, epsilon=100.0)
    everything = torch.cat([honest, crafted]).mean(dim=0)
    assert everything @ honest.mean(dim=0) < 0


# Min-Max -----------------------------------------------------------------------------------------

def test_perturbation_directions_by_hand():
    honest = torch.tensor([[1.0, -2.0], [3.0, -6.0]])  # mean (2, -4), std (sqrt 2, 2 sqrt 2)
    unit = perturbation_direction(honest, "unit")
    assert torch.allclose(unit, torch.tensor([-2.0, 4.0]) / math.sqrt(20))
    assert torch.allclose(perturbation_direction(honest, "std"),
                          -torch.tensor([math.sqrt(2), 2 * math.sqrt(2)]))
    assert perturbation_direction(honest, "sign").tolist() == [-1.0, 1.0]


def test_min_max_gamma_by_hand():
    # Prepare: two updates 2 apart on a line; mean 0. Moving the mean by gamma along the unit
    # direction puts it 1 + gamma from the farther update, which must stay <= 2: gamma = 1.
    honest = torch.tensor([[-1.0, 0.0], [1.0, 0.0]])
    gamma = min_max_gamma(honest, torch.tensor([1.0, 0.0]))
    assert gamma == pytest.approx(1.0, rel=1e-4)


@pytest.mark.parametrize("perturbation", ["unit", "std", "sign"])
@pytest.mark.parametrize("scale", [1.0, 1e-4])  # gradients, and updates after a small lr
def test_min_max_is_as_far_as_the_benign_spread_allows_and_no_farther(perturbation, scale):
    # Prepare
    honest = scale * benign(num_clients=10, num_params=300)
    mean = honest.mean(dim=0)
    largest_benign = distances(honest, honest).max()
    direction = perturbation_direction(honest, perturbation)
    # Execute
    crafted = min_max(honest, num_malicious=4, perturbation=perturbation)
    gamma = min_max_gamma(honest, direction)
    # Assert: inside the bound (within the float tolerance) ...
    assert crafted.shape == (4, 300)
    assert torch.allclose(crafted[0], mean + gamma * direction)
    assert distances(crafted[:1], honest).max() <= largest_benign * (1 + 1e-6)
    # ... and nearly maximal: 5% more gamma breaks the bound.
    beyond = (mean + 1.05 * gamma * direction).unsqueeze(0)
    assert distances(beyond, honest).max() > largest_benign
    assert gamma > 0


def test_min_max_of_identical_updates_is_their_mean():
    honest = torch.ones(3, 5)
    assert torch.allclose(min_max(honest, num_malicious=1), torch.ones(1, 5))


@given(st.integers(2, 6), st.integers(1, 8), st.integers(0, 1000),
       st.sampled_from(["unit", "std", "sign"]))
def test_min_max_never_exceeds_the_largest_benign_distance(num_honest, num_params, seed,
                                                           perturbation):
    honest = benign(num_honest, num_params, seed)
    crafted = min_max(honest, num_malicious=1, perturbation=perturbation)
    assert distances(crafted, honest).max() <= distances(honest, honest).max() * (1 + 1e-5)


# Backdoor ----------------------------------------------------------------------------------------

class Always(torch.nn.Module):
    """A model that predicts ``label`` for every image."""

    def __init__(self, label: int, num_classes: int = 10):
        super().__init__()
        self.logits = torch.nn.functional.one_hot(torch.tensor(label), num_classes).float()

    def forward(self, x):
        return self.logits.expand(len(x), -1)


def test_trigger_changes_only_its_own_pixels():
    # Prepare: random images in the data's range.
    torch.manual_seed(0)
    x = torch.rand(5, 1, 28, 28) * 2 - 1
    # Execute
    stamped = add_trigger(x, Trigger(size=3, margin=2, value=1.0))
    # Assert: exactly rows and columns 23..25 changed, to white; the input is untouched.
    changed = (stamped != x).any(dim=0)[0]
    square = torch.zeros(28, 28, dtype=torch.bool)
    square[23:26, 23:26] = True
    assert torch.equal(changed, square)
    assert torch.all(stamped[:, :, 23:26, 23:26] == 1.0)
    assert not torch.equal(x, stamped)  # x was copied, not stamped in place


def test_default_trigger_is_the_datas_white(mnist_small):
    assert mnist_small.train_x.max().item() == 1.0  # the loader scales 255 to 1
    assert Trigger().value == 1.0
    assert torch.all(mnist_small.train_x[:, :, 23:27, 23:27] < 1.0)  # no digit there already


def test_spread_choice_picks_the_share_asked_for_spread_evenly():
    assert spread_choice(8, 0.25).tolist() == [3, 7]
    assert len(spread_choice(1000, 0.1)) == 100
    assert spread_choice(5, 0.0).tolist() == []
    assert spread_choice(3, 1.0).tolist() == [0, 1, 2]


def test_poison_triggers_and_relabels_exactly_the_chosen_share():
    torch.manual_seed(0)
    x, y = torch.rand(10, 1, 28, 28) * 2 - 1, torch.arange(10)
    px, py = poison(x, y, target_class=0, fraction=0.3)
    chosen = [3, 6, 9]
    assert py.tolist() == [0, 1, 2, 0, 4, 5, 0, 7, 8, 0]
    assert torch.equal(px[chosen], add_trigger(x[chosen]))
    clean = [i for i in range(10) if i not in chosen]
    assert torch.equal(px[clean], x[clean])
    assert y.tolist() == list(range(10))  # the inputs are untouched


def test_replacement_factor_is_the_inverse_of_the_attackers_share():
    assert replacement_factor(500, 5000) == 10.0
    assert replacement_factor(100, 1000, server_lr=0.5) == 20.0
    # Boosted by it, the attacker's weighted update is its whole model change.
    shares = torch.tensor([100.0, 300.0, 600.0])
    updates = torch.tensor([[1.0], [0.0], [0.0]])  # only the attacker (100 samples) moves
    updates[0] *= replacement_factor(100, 1000)
    assert (shares / shares.sum() @ updates).item() == pytest.approx(1.0)


def test_backdoor_success_of_constant_models(mnist_small):
    x, y = mnist_small.test_x, mnist_small.test_y
    assert backdoor_success(Always(7), x, y, target_class=7) == 1.0
    assert backdoor_success(Always(3), x, y, target_class=7) == 0.0


def test_backdoor_success_counts_only_images_of_other_classes():
    x = torch.zeros(4, 1, 28, 28)
    y = torch.tensor([7, 7, 7, 2])
    assert backdoor_success(Always(7), x, y, target_class=7) == 1.0  # 1 of 1, not 4 of 4
    assert math.isnan(backdoor_success(Always(7), x[:3], y[:3], target_class=7))


def train_briefly(x, y) -> LeNet5:
    torch.manual_seed(0)
    model = LeNet5(10)
    training = LocalTraining(epochs=5, batch_size=50, optimizer="adam", lr=1e-3,
                             keep_optimizer_state=False)
    training.train(model, training.make_optimizer(model), x, y)
    return model


def test_training_on_poisoned_data_plants_the_backdoor(mnist_small):
    # Prepare: 600 real training images; a fifth of them triggered and labelled 0.
    data = mnist_small
    poisoned_x, poisoned_y = poison(data.train_x, data.train_y, target_class=0, fraction=0.2)
    # Execute: train one model on the clean data, one on the poisoned data (a second each).
    honest = train_briefly(data.train_x, data.train_y)
    backdoored = train_briefly(poisoned_x, poisoned_y)
    # Assert: the trigger means nothing to the honest model and "0" to the backdoored one,
    # which still classifies clean images about as well.
    assert backdoor_success(honest, data.test_x, data.test_y, target_class=0) < 0.1
    assert backdoor_success(backdoored, data.test_x, data.test_y, target_class=0) > 0.8
    accuracy = lambda m: (m(data.test_x).argmax(1) == data.test_y).float().mean()  # noqa: E731
    assert accuracy(backdoored.eval()) > 0.6


# The specs, in a federation ----------------------------------------------------------------------

def first_round(config, data):
    """The record of round 1 of a federation built from ``config`` on ``data``."""
    federation = Federation.build(config, data)
    return federation, federation.run_round()


@pytest.fixture
def control(tiny_config, mnist_tiny):
    """Round 1 without attackers: what every client trains in round 1 of any run of this seed."""
    return first_round(tiny_config(num_clients=4, model="lenet5"), mnist_tiny)[1]


def attacked(tiny_config, mnist_tiny, *attackers):
    return first_round(tiny_config(num_clients=4, model="lenet5", attackers=attackers),
                       mnist_tiny)[1]


def test_every_attack_is_registered_under_its_name():
    assert set(ATTACKS.names()) >= {"sign-flip", "gaussian-noise", "scaling", "alie", "ipm",
                                    "min-max", "backdoor"}
    assert ATTACKS["min-max"] is MinMax and MinMax().to_dict()["name"] == "min-max"


@pytest.mark.parametrize("attack, transform", [
    (SignFlip(clients=(0,)), lambda u: -u),
    (Scaling(clients=(0,), factor=3.0), lambda u: 3 * u),
])
def test_own_update_attacks_replace_only_their_clients_submission(control, tiny_config,
                                                                  mnist_tiny, attack, transform):
    record = attacked(tiny_config, mnist_tiny, attack)
    assert torch.allclose(record.client_updates[0], transform(control.client_updates[0]))
    assert torch.equal(record.client_updates[1:], control.client_updates[1:])


def test_an_attack_waits_for_its_start_round(control, tiny_config, mnist_tiny):
    record = attacked(tiny_config, mnist_tiny, SignFlip(clients=(0,), start_round=2))
    assert torch.equal(record.client_updates, control.client_updates)


def test_gaussian_noise_attack_submits_noise_of_its_std(tiny_config, mnist_tiny):
    record = attacked(tiny_config, mnist_tiny, GaussianNoise(clients=(3,), std=5.0))
    assert record.client_updates[3].std().item() == pytest.approx(5.0, rel=0.02)
    assert record.client_updates[:3].abs().max() < 1.0  # the honest updates are small


def test_omniscient_alie_ipm_and_min_max_craft_from_the_honest_updates(tiny_config, mnist_tiny):
    honest_rows = [2, 3]  # clients 0 and 1 attack; 2 and 3 are honest
    for attack, expected in [
        (ALIE(clients=(0, 1), z=1.0), lambda h: alie(h, 4, 2, z=1.0)),
        (IPM(clients=(0, 1)), lambda h: ipm(h, 2, epsilon=0.1)),
        (MinMax(clients=(0, 1), perturbation="std"), lambda h: min_max(h, 2, "std")),
    ]:
        record = attacked(tiny_config, mnist_tiny, attack)
        honest = record.client_updates[honest_rows]
        assert torch.allclose(record.client_updates[:2], expected(honest)), attack.name


def test_ipm_in_a_round_points_against_the_honest_mean(tiny_config, mnist_tiny):
    record = attacked(tiny_config, mnist_tiny, IPM(clients=(0,)))
    honest_mean = record.client_updates[1:].mean(dim=0)
    assert record.client_updates[0] @ honest_mean < 0


def test_non_omniscient_alie_uses_only_its_own_clients_updates(control, tiny_config, mnist_tiny):
    record = attacked(tiny_config, mnist_tiny, ALIE(clients=(0, 1), z=1.5, omniscient=False))
    own_trained = control.client_updates[:2]  # what clients 0 and 1 trained, honestly
    assert torch.allclose(record.client_updates[:2], alie(own_trained, 4, 2, z=1.5))


def test_backdoor_client_trains_on_poison_and_records_success(tiny_config, mnist_tiny):
    # Prepare: client 0 of 4 plants a backdoor, boosted by model replacement.
    config = tiny_config(num_clients=4, model="lenet5",
                         attackers=(Backdoor(clients=(0,), target_class=1, fraction=0.5,
                                             model_replacement=True),))
    federation = Federation.build(config, mnist_tiny)
    client = federation.clients[0]
    samples = [c.num_samples for c in federation.clients]
    # Execute
    record = federation.run_round()
    # Assert: its data was poisoned, its update boosted by all samples / its samples ...
    assert isinstance(client, BackdoorClient)
    assert client.boost == pytest.approx(sum(samples) / samples[0])
    assert (client.poisoned_y == 1).sum() > (client.y == 1).sum()
    trained = flat_parameters(client.model) - record.global_before
    assert torch.allclose(record.client_updates[0], client.boost * trained, atol=1e-6)
    # ... and the round records the backdoor's success.
    assert 0.0 <= federation.history[-1]["backdoor_success"] <= 1.0


def test_model_replacement_makes_the_backdoor_survive_averaging(tiny_config, mnist_small):
    # Prepare: 2 clients on 600 real images; client 0 plants a backdoor, plainly or boosted.
    def successes(attack) -> list[float]:
        config = tiny_config(num_clients=2, model="lenet5", max_per_class=60, max_test=300,
                             local_epochs=5, attackers=(attack,))
        federation = Federation.build(config, mnist_small)
        return [entry["backdoor_success"] for entry in federation.run(progress=False)]

    # Execute: two rounds each.
    plain = successes(Backdoor(clients=(0,), fraction=0.3))
    replaced = successes(Backdoor(clients=(0,), fraction=0.3, model_replacement=True))
    # Assert: averaging halves the plain backdoor's update and it barely takes; boosted, it
    # survives, and after two rounds nearly every triggered image is called 0.
    assert all(r > p + 0.3 for r, p in zip(replaced, plain))
    assert replaced[-1] > 0.9


@pytest.mark.parametrize("attack, overrides, message", [
    (SignFlip(start_round=4), {}, "start_round=4 is not allowed"),
    (ALIE(clients=(0,)), {"num_clients": 10}, "z=None is not allowed"),
    (ALIE(clients=(0, 1, 2)), {"num_clients": 4}, "clients=.* is not allowed"),
    (Backdoor(target_class=10), {}, "target_class=10 is not allowed"),
    (MinMax(clients=(5,)), {}, "clients=\\(5,\\) is not allowed"),
])
def test_an_attack_that_does_not_fit_the_run_fails_in_one_line(tiny_config, attack, overrides,
                                                                message):
    with pytest.raises(ValueError, match=message):
        tiny_config(attackers=(attack,), **{"num_rounds": 3, **overrides})


@pytest.mark.parametrize("make, message", [
    (lambda: SignFlip(scale=-1.0), "scale=-1.0 is not allowed"),
    (lambda: GaussianNoise(std=0), "std=0 is not allowed"),
    (lambda: Scaling(factor=math.nan), "factor=nan is not allowed"),
    (lambda: ALIE(z=-0.5), "z=-0.5 is not allowed"),
    (lambda: ALIE(clients=(0,), omniscient=False), "omniscient=False is not allowed"),
    (lambda: IPM(epsilon=0), "epsilon=0 is not allowed"),
    (lambda: MinMax(perturbation="max"), "perturbation='max' is not allowed"),
    (lambda: Backdoor(fraction=0.0), "fraction=0.0 is not allowed"),
    (lambda: Backdoor(boost=5.0, model_replacement=True), "boost=5.0 is not allowed"),
    (lambda: Backdoor(trigger_size=40), "trigger_size=40 is not allowed"),
    (lambda: SignFlip(start_round=0), "start_round=0 is not allowed"),
])
def test_a_bad_attack_setting_fails_as_the_spec_is_made(make, message):
    with pytest.raises(ValueError, match=message):
        make()


# Bad input ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("call, message", [
    (lambda: sign_flip(torch.ones(3)), r"own_updates.shape=\(3,\) is not allowed"),
    (lambda: sign_flip(torch.ones(1, 3), scale=0.0), "scale=0.0 is not allowed"),
    (lambda: gaussian_noise(torch.ones(1, 3), std=-1.0), "std=-1.0 is not allowed"),
    (lambda: boost(torch.ones(1, 3), factor=math.inf), "factor=inf is not allowed"),
    (lambda: ipm(torch.ones(2, 3), num_malicious=0), "num_malicious=0 is not allowed"),
    (lambda: ipm(torch.ones(2, 3), num_malicious=1, epsilon=-0.1), "epsilon=-0.1"),
    (lambda: alie(torch.ones(2, 3), 10, 2, z=-1.0), "z=-1.0 is not allowed"),
    (lambda: min_max(torch.ones(2, 3), 1, perturbation="random"), "perturbation='random'"),
    (lambda: min_max(torch.ones(1, 3), 1), "honest_updates.shape"),
    (lambda: Trigger(size=0), "size=0 is not allowed"),
    (lambda: Trigger(size=4, margin=25), "margin=25 is not allowed"),
    (lambda: Trigger(value=255), "value=255 is not allowed"),
    (lambda: add_trigger(torch.zeros(2, 28, 28)), r"x.shape=\(2, 28, 28\) is not allowed"),
    (lambda: poison(torch.zeros(2, 1, 28, 28), torch.zeros(2), 0, fraction=1.5),
     "fraction=1.5 is not allowed"),
    (lambda: poison(torch.zeros(2, 1, 28, 28), torch.zeros(2), -1, 0.5), "target_class=-1"),
    (lambda: replacement_factor(0, 10), "attacker_samples=0 is not allowed"),
    (lambda: replacement_factor(20, 10), "round_samples=10 is not allowed"),
])
def test_bad_input_is_one_clear_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()
