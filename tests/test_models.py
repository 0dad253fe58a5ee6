"""Models: output shapes, sizes, and moving weights in and out as one flat vector.

Parameter counts are worked out by hand from the layer sizes in the papers (weights + biases), so a
silently changed layer shows up here.
"""

from __future__ import annotations

import pytest
import torch

from fltutor.models import (MODELS, Classifier, Generator, LeNet5, WideLeNet5,
                            flat_parameters, load_flat_parameters)


def count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("num_classes", [10, 3])
def test_classifier_has_one_extra_output_for_the_fake_label(num_classes):
    model = Classifier(num_classes)
    assert model(torch.zeros(4, 1, 28, 28)).shape == (4, num_classes + 1)
    assert model.fake_label == num_classes


def test_lenet5_has_one_output_per_class():
    assert LeNet5(10)(torch.zeros(5, 1, 28, 28)).shape == (5, 10)


@pytest.mark.parametrize("num_classes", [10, 3])
def test_wide_lenet5_has_one_output_per_class(num_classes):
    assert WideLeNet5(num_classes)(torch.zeros(5, 1, 28, 28)).shape == (5, num_classes)


def test_wide_lenet5_has_the_layers_of_the_byzantine_experiments():
    # conv 1->32 5x5, conv 32->64 5x5, fc 64*4*4 -> 512, fc 512 -> classes; ReLU, max pooling.
    layers = list(WideLeNet5(10))
    convs = [m for m in layers if isinstance(m, torch.nn.Conv2d)]
    linears = [m for m in layers if isinstance(m, torch.nn.Linear)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == [
        (1, 32, (5, 5)), (32, 64, (5, 5))]
    assert [(m.in_features, m.out_features) for m in linears] == [(64 * 4 * 4, 512), (512, 10)]
    assert sum(isinstance(m, torch.nn.ReLU) for m in layers) == 3
    assert sum(isinstance(m, torch.nn.MaxPool2d) for m in layers) == 2


def test_wide_lenet5_is_accepted_by_opacus():
    from opacus.validators import ModuleValidator

    assert ModuleValidator.validate(WideLeNet5(10), strict=False) == []


def test_generator_draws_28x28_images_in_the_data_range():
    torch.manual_seed(0)
    images = Generator().sample(6)
    assert images.shape == (6, 1, 28, 28)
    assert images.min() >= -1 and images.max() <= 1
    assert images.std() > 0  # not a constant image


def test_generator_sample_is_reproducible_with_a_torch_generator():
    model = Generator().eval()
    first = model.sample(2, generator=torch.Generator().manual_seed(5))
    again = model.sample(2, generator=torch.Generator().manual_seed(5))
    assert torch.equal(first, again)


def test_parameter_counts_match_the_layer_sizes():
    conv = lambda c_in, c_out, k: c_in * c_out * k * k + c_out  # noqa: E731
    linear = lambda n_in, n_out: n_in * n_out + n_out  # noqa: E731
    assert count(Classifier(10)) == conv(1, 64, 5) + conv(64, 128, 5) + linear(128 * 7 * 7, 11)
    assert count(LeNet5(10)) == 61_706  # the classic LeNet-5 size
    assert count(LeNet5(10)) == (conv(1, 6, 5) + conv(6, 16, 5) + linear(400, 120)
                                 + linear(120, 84) + linear(84, 10))
    assert count(WideLeNet5(10)) == 582_026
    assert count(WideLeNet5(10)) == (conv(1, 32, 5) + conv(32, 64, 5) + linear(64 * 4 * 4, 512)
                                     + linear(512, 10))
    batch_norm = lambda channels: 2 * channels  # noqa: E731
    assert count(Generator(100)) == (100 * 7 * 7 * 256 + batch_norm(7 * 7 * 256)
                                     + 256 * 128 * 16 + batch_norm(128)
                                     + 128 * 64 * 16 + batch_norm(64) + 64 * 1 * 16)


def test_models_registry_builds_from_the_number_of_classes():
    assert set(MODELS.names()) >= {"classifier", "lenet5", "lenet5-wide"}
    assert MODELS["lenet5"](7)(torch.zeros(1, 1, 28, 28)).shape == (1, 7)
    assert isinstance(MODELS["lenet5-wide"](7), WideLeNet5)
    assert MODELS["lenet5-wide"](7)(torch.zeros(1, 1, 28, 28)).shape == (1, 7)


def test_flat_parameters_round_trip_reproduces_the_model():
    # Prepare: two differently initialised models.
    torch.manual_seed(0)
    source, target = LeNet5(10), LeNet5(10)
    x = torch.randn(3, 1, 28, 28)
    # Execute
    vector = flat_parameters(source)
    load_flat_parameters(target, vector)
    # Assert
    assert vector.shape == (count(source),)
    assert torch.equal(flat_parameters(target), vector)
    assert torch.equal(target(x), source(x))


def test_flat_parameters_is_a_detached_copy():
    model = LeNet5(10)
    vector = flat_parameters(model)
    vector += 1.0
    assert not torch.equal(flat_parameters(model), vector)
    assert not vector.requires_grad


def test_load_flat_parameters_writes_in_place_so_optimizers_keep_working():
    # Prepare: an optimizer that holds references to the model's parameter tensors.
    torch.manual_seed(0)
    model = LeNet5(10)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    tensors_before = [p for p in model.parameters()]
    storage_before = [p.data_ptr() for p in model.parameters()]
    # Execute: load new weights, then take one step.
    load_flat_parameters(model, torch.zeros(count(model)))
    model(torch.randn(2, 1, 28, 28)).sum().backward()
    optimizer.step()
    # Assert: same tensors, same storage, and the step moved the loaded weights.
    assert all(a is b for a, b in zip(model.parameters(), tensors_before))
    assert [p.data_ptr() for p in model.parameters()] == storage_before
    assert flat_parameters(model).abs().sum() > 0


@pytest.mark.parametrize("delta", [-5, 3])
def test_wrong_length_is_a_value_error_that_leaves_the_model_untouched(delta):
    model = LeNet5(10)
    before = flat_parameters(model)
    with pytest.raises(ValueError, match=f"vector has {count(model) + delta} numbers; "
                                         f"the model has {count(model)} weights"):
        load_flat_parameters(model, torch.zeros(count(model) + delta))
    assert torch.equal(flat_parameters(model), before)
