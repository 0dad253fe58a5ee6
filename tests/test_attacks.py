"""The CRPA study's attacks: each measured against a control run with the same seed and data."""

import json

import pytest
import torch

from fltutor.attacks.crpa import CRPAClient
from fltutor.attacks.gan import ReconstructionClient
from fltutor.attacks.poisoning import LabelFlipClient
from fltutor.experiments import save_progress
from fltutor.federation import Federation
from fltutor.recipes.crpa import CRPA_ATTACKS, CRPAConfig, run_crpa
from fltutor.metrics import aaa, attack_accuracy, mean_and_std

# Tiny and fast: 10 clients with 30 images each, a few rounds, a short GAN round. Plain SGD
# keeps so small a one-class-per-client federation steady from the first round.
TINY = dict(max_per_class=30, max_test=300, batch_size=10, optimizer="sgd", lr=0.05,
            num_rounds=3, attack_start_round=1, poison_count=15, gan=dict(steps=2, batch_size=8),
            device="cpu",
            allow_fallback=True)


def tiny(**changes) -> CRPAConfig:
    return CRPAConfig.from_profile("quick", **{**TINY, **changes})


def run_aaa(**changes) -> float:
    federation = Federation.build(tiny(**changes))
    return aaa(federation.run(progress=False))


def test_crpa_raises_attack_accuracy_above_the_control_run():
    assert run_aaa(attack="crpa") > run_aaa(attack="none") + 0.2


def test_label_flipping_with_real_images_of_g_raises_attack_accuracy():
    assert run_aaa(attack="label-flip") > run_aaa(attack="none") + 0.2


def test_until_the_attack_starts_a_run_repeats_its_control_run_exactly():
    attacked = Federation.build(tiny(attack_start_round=3)).run(progress=False)
    control = Federation.build(tiny(attack="none")).run(progress=False)
    same = [{k: v for k, v in r.items() if k != "seconds"} for r in control[:2]]
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in attacked[:2]] == same
    assert attacked[2]["attack_accuracy"] > control[2]["attack_accuracy"]


@pytest.mark.parametrize("alpha", [0.0, 10.0])  # at alpha 10 every other client holds all
def test_the_attacker_holds_neither_g_nor_t_and_the_label_flipper_is_handed_g(alpha):
    for attack, holds_g in (("crpa", False), ("none", False), ("label-flip", True)):
        config = tiny(attack=attack, alpha=alpha, generate_class=4, target_class=9, attacker=3)
        federation = Federation.build(config)
        held = set(federation.clients[3].y.tolist())
        assert 9 not in held and (4 in held) == holds_g
        assert len(federation.clients[3].y) >= 30  # a full share of the other classes


def test_each_attack_name_builds_its_kind_of_client():
    kinds = {"crpa": CRPAClient, "reconstruction": ReconstructionClient,
             "label-flip": LabelFlipClient}
    for name, kind in kinds.items():
        assert type(Federation.build(tiny(attack=name)).clients[0]) is kind
    assert set(CRPA_ATTACKS) == {*kinds, "none"}


def test_crpa_labels_its_generated_images_t_and_reconstruction_labels_them_fake():
    config = tiny(num_rounds=1)
    crpa = Federation.build(config).clients[0]
    hitaj = Federation.build(config.replace(attack="reconstruction")).clients[0]
    assert crpa.generated_label == config.target_class
    assert hitaj.generated_label == config.num_classes  # the classifier's extra "fake" output


def test_a_free_rider_submits_only_its_generated_images():
    federation = Federation.build(tiny(free_rider=True, num_rounds=1))
    attacker = federation.clients[0]
    federation.run(progress=False)
    assert len(attacker.y) == 0 and attacker.num_samples == 15
    assert attacker.generated.shape == (15, 1, 28, 28)


def test_attack_accuracy_and_aaa_follow_the_confusion_matrix_of_every_round():
    federation = Federation.build(tiny())
    history = federation.run(progress=False)
    for record in history:
        confusion = torch.tensor(record["confusion"])
        assert record["attack_accuracy"] == attack_accuracy(confusion, 4, 9)
    values = [r["attack_accuracy"] for r in history]
    assert aaa(history) == pytest.approx(sum(values) / len(values))
    assert mean_and_std(values)[0] == pytest.approx(aaa(history))


@pytest.mark.parametrize("changes, message", [
    (dict(generate_class=4, target_class=4), "target_class=4"),
    (dict(generate_class=10), "generate_class=10"),
    (dict(target_class=-1), "target_class=-1"),
    (dict(attacker=10), "attacker=10"),
    (dict(attack="backdoor"), "attack='backdoor'"),
    (dict(partition="iid"), "the attacker would hold generate_class=4 and target_class=9"),
    (dict(poison_count=0), "poison_count=0"),
    (dict(attack="none", free_rider=True), "free_rider=True"),
    (dict(model="lenet5"), "model='lenet5'"),
    (dict(gan=dict(steps=0)), "steps=0"),
    (dict(gan=dict(batch_size=1)), "batch_size=1"),
    (dict(attack_start_round=0), "attack_start_round=0"),
])
def test_bad_settings_fail_before_any_work_with_one_line(changes, message):
    with pytest.raises(ValueError, match=message) as error:
        CRPAConfig.from_profile("quick", **changes)
    assert "\n" not in str(error.value)


def test_a_resumed_crpa_run_keeps_its_generator_and_repeats_the_uninterrupted_run(tmp_path):
    config = tiny(num_rounds=2)
    straight = run_crpa(config, tmp_path / "straight", progress=False)

    interrupted = Federation.build(config)
    interrupted.run(num_rounds=1, progress=False)
    save_progress(interrupted, tmp_path / "resumed")  # what a run killed after round 1 leaves
    resumed = run_crpa(config, tmp_path / "resumed", progress=False)

    keys = ("test_accuracy", "attack_accuracy", "train_loss")
    assert [[r[k] for k in keys] for r in resumed["rounds"]] == \
           [[r[k] for k in keys] for r in straight["rounds"]]
    assert resumed["summary"]["aaa"] == straight["summary"]["aaa"]
    saved = json.loads((tmp_path / "resumed" / "metrics.json").read_text())
    assert [r["round"] for r in saved["rounds"]] == [1, 2]
    for name in ("generated.png", "attack_accuracy.png"):
        assert (tmp_path / "resumed" / name).stat().st_size > 0


def test_the_attackers_state_holds_its_generator_and_previews():
    config = tiny(num_rounds=1)
    federation = Federation.build(config)
    federation.run(progress=False)
    restored = Federation.build(config)
    restored.load_state_dict(federation.state_dict())
    before, after = federation.clients[0].reconstruction, restored.clients[0].reconstruction
    for a, b in zip(before.generator.state_dict().values(), after.generator.state_dict().values()):
        assert torch.equal(a, b)
    assert len(after.previews) == 1 and torch.equal(after.previews[0]["images"],
                                                    before.previews[0]["images"])


def test_jitter_only_moves_images_by_at_most_its_shift_and_zero_leaves_them_alone():
    from fltutor.attacks.gan import jittered, mean_total_variation

    images = torch.zeros(2, 1, 28, 28)
    images[:, :, 14, 14] = 1.0
    assert jittered(images, 0) is images
    for _ in range(20):
        row, col = divmod(int(jittered(images, 2)[0, 0].argmax()), 28)
        assert abs(row - 14) <= 2 and abs(col - 14) <= 2
    noise = torch.rand(2, 1, 28, 28) * 2 - 1
    assert mean_total_variation(noise) > mean_total_variation(torch.zeros_like(noise)) == 0
