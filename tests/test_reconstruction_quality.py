"""Scoring reconstructions: an independent judge and SSIM to the nearest real image."""

import torch

from fltutor.metrics import Judge, evaluate, nearest_ssim, reconstruction_quality


def test_the_judge_is_independent_and_competent(mnist_small):
    judge = Judge.train(mnist_small, seed=0, progress=False)

    accuracy = evaluate(judge.model, mnist_small.test_x, mnist_small.test_y, 10).accuracy

    assert accuracy > 0.7  # trained on 600 images only, yet a fair judge of digits
    assert not judge.model.training


def test_the_judges_progress_bar_counts_its_epochs_and_changes_nothing(mnist_small, capsys):
    quiet = Judge.train(mnist_small, epochs=2, progress=False)
    assert capsys.readouterr().err == ""

    shown = Judge.train(mnist_small, epochs=2, progress=True)

    shown_bar = capsys.readouterr().err
    assert "judge" in shown_bar and "2/2" in shown_bar  # the bar reached its last epoch
    for a, b in zip(quiet.model.parameters(), shown.model.parameters()):
        assert torch.equal(a, b)


def test_training_the_judge_leaves_the_global_random_stream_alone(mnist_small):
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    Judge.train(mnist_small, epochs=1, progress=False)
    assert torch.equal(torch.rand(3), expected)


def test_real_images_of_g_score_far_above_noise_and_above_another_class(mnist_small):
    judge = Judge.train(mnist_small, seed=0, progress=False)
    fours = mnist_small.train_x[mnist_small.train_y == 4]
    test_fours = mnist_small.test_x[mnist_small.test_y == 4]
    test_ones = mnist_small.test_x[mnist_small.test_y == 1]
    noise = torch.rand(len(test_fours), 1, 28, 28, generator=torch.Generator().manual_seed(0))
    noise = noise * 2 - 1

    real = reconstruction_quality(test_fours, fours, judge, generate_class=4)
    fake = reconstruction_quality(noise, fours, judge, generate_class=4)
    other = reconstruction_quality(test_ones, fours, judge, generate_class=4)

    assert real["judge_accuracy"] > 0.6 and fake["judge_accuracy"] < 0.3
    assert real["judge_confidence"] > other["judge_confidence"] + 0.4
    assert real["ssim_nearest"] > fake["ssim_nearest"] + 0.3


def test_an_image_that_is_in_the_reference_set_has_ssim_one(mnist_small):
    reals = mnist_small.train_x[:50]
    scores = nearest_ssim(reals[:5], reals)
    assert torch.allclose(scores, torch.ones(5), atol=1e-4)


def test_scoring_the_fakes_in_chunks_gives_every_fake_its_own_score(mnist_small):
    reals = mnist_small.train_x[:60]
    fakes = torch.cat([reals[:3], torch.rand(4, 1, 28, 28) * 2 - 1, reals[3:5]])

    in_chunks = nearest_ssim(fakes, reals, chunk=2)

    assert torch.equal(in_chunks, nearest_ssim(fakes, reals, chunk=len(fakes)))
    assert torch.allclose(in_chunks[[0, 1, 2, 7, 8]], torch.ones(5), atol=1e-4)
    assert (in_chunks[3:7] < 0.5).all()
