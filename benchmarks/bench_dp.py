"""Seconds per DP-SGD step in each of Opacus's per-sample-gradient modes, against a plain SGD step.

What it measures: one step of DP-SGD (forward, backward with per-sample gradients, clipping to
C, Gaussian noise, the SGD update; ``DPConfig()``'s sigma, C and lr) on one batch of synthetic
images of MNIST's shape, for each model and batch size, in each of Opacus's ways to get the
per-sample gradients (its ``grad_sample_mode``):

* ``hooks``: layer hooks compute each layer's per-sample gradient from its activations and
  output gradients (for a convolution: unfolded input patches times output gradients);
* ``functorch``: ``torch.func.vmap`` of the gradient of one record's loss, for every layer;
* ``ew``: PyTorch's expanded weights (``call_for_per_sample_grads``);
* ``ghost``: fast gradient clipping (Li et al. 2022, Bu et al. 2023): only the per-sample
  gradient *norms* (computed without the gradients themselves for linear layers, the "ghost"
  trick), then a second backward pass of the loss reweighted by each record's clipping factor.

Each mode is set up as Opacus's ``PrivacyEngine.make_private`` sets it up. The plain step
(``torch.optim.SGD``, no per-sample gradients, no clipping, no noise) runs on the same model and
batch in the same run; the ratio is DP / plain. Each is timed for ``--rounds`` steps in a row
(5), as a training run takes them, after two warm-up steps; the table gives the median. A mode
that breaks on a model says ``fails (ErrorType)`` in its cell. The default run takes about 2
minutes on 2 CPU cores.

    python benchmarks/bench_dp.py --markdown              # 3 models x 4 batch sizes x 4 modes
    python benchmarks/bench_dp.py --models classifier --batches 50 --modes hooks,ghost
"""

from __future__ import annotations

import copy
import math
import warnings
from statistics import median

import torch
from opacus import PrivacyEngine
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from common import (benchmark_parser, chosen_names, load_average, parse_benchmark_args,
                    print_machine, synthetic_mnist, table, timed)
from fltutor.defenses.dp import FIRST_LAYER_HOOK_NOTE, DPConfig
from fltutor.models import MODELS

MODEL_NAMES = ("classifier", "lenet5", "lenet5-wide")
BATCHES = ("32", "50", "100", "250")
MODES = ("hooks", "functorch", "ew", "ghost")
WARM_UP = 2
DEFAULT_REPEATS = 5


def sgd_step(model: nn.Module, optimizer: torch.optim.Optimizer, criterion, x, y) -> None:
    """One step: the loss of the batch, its backward pass, the optimizer's update."""
    optimizer.zero_grad(set_to_none=True)
    criterion(model(x), y).backward()
    optimizer.step()


def plain_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor):
    """A step of non-private SGD at DP's learning rate, ready to call."""
    optimizer = torch.optim.SGD(model.parameters(), lr=DPConfig().lr)
    return lambda: sgd_step(model, optimizer, nn.CrossEntropyLoss(), x, y)


def private_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, mode: str):
    """A step of DP-SGD in ``mode``, set up by Opacus's ``make_private``, ready to call.

    ``make_private`` also wraps a data loader (for Poisson sampling); the step ignores it and
    always takes the whole batch, so every mode and the plain step see the same records.
    """
    config = DPConfig()
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr)
    loader = DataLoader(TensorDataset(x, y), batch_size=len(y))
    private = PrivacyEngine().make_private(
        module=model, optimizer=optimizer, data_loader=loader, criterion=nn.CrossEntropyLoss(),
        noise_multiplier=config.noise_multiplier, max_grad_norm=config.max_grad_norm,
        grad_sample_mode=mode)
    module, private_optimizer = private[0], private[1]
    criterion = private[2] if mode == "ghost" else nn.CrossEntropyLoss()  # ghost's wrapped loss
    return lambda: sgd_step(module, private_optimizer, criterion, x, y)


def seconds_per_step(step, device: torch.device, repeats: int) -> float:
    """Median seconds of ``repeats`` calls of ``step()``, after ``WARM_UP`` calls."""
    for _ in range(WARM_UP):
        step()
    return median(timed(step, device) for _ in range(repeats))


def timed_mode(make_step, device: torch.device, repeats: int) -> float | str:
    """Seconds per step, or ``fails (ErrorType)`` if the mode cannot set up or take the step."""
    try:
        return seconds_per_step(make_step(), device, repeats)
    except Exception as error:  # a mode that breaks on a model is a result, not a crash
        return f"fails ({type(error).__name__})"


def benchmark_row(name: str, batch: int, modes: list[str], device: torch.device,
                  repeats: int) -> list[str]:
    """The table's row for one model and batch size: plain seconds, then each mode's and ratio."""
    torch.manual_seed(0)
    data = synthetic_mnist(math.ceil(batch / 10), test_images=1)
    x, y = data.train_x[:batch].to(device), data.train_y[:batch].to(device)
    model = MODELS[name](data.num_classes).to(device)
    plain = seconds_per_step(plain_step(copy.deepcopy(model), x, y), device, repeats)
    row = [str(device), name, f"{sum(p.numel() for p in model.parameters()):,}", str(batch),
           f"{plain:.3g}"]
    for mode in modes:
        seconds = timed_mode(lambda: private_step(copy.deepcopy(model), x, y, mode), device,
                             repeats)
        row += ([seconds, ""] if isinstance(seconds, str) else
                [f"{seconds:.3g}", f"{seconds / plain:.3g}"])
    return row


def main() -> None:
    parser = benchmark_parser(__doc__.split("\n\n")[0], {"quick": None},
                              rounds_help=f"timed steps after {WARM_UP} warm-up steps (default "
                                          f"{DEFAULT_REPEATS})")
    parser.add_argument("--models", default=",".join(MODEL_NAMES),
                        help="comma-separated: " + ", ".join(MODEL_NAMES))
    parser.add_argument("--batches", default=",".join(BATCHES),
                        help="comma-separated batch sizes: " + ", ".join(BATCHES))
    parser.add_argument("--modes", default=",".join(MODES),
                        help="comma-separated Opacus grad_sample_modes: " + ", ".join(MODES))
    args, _, devices = parse_benchmark_args(parser, {"quick": None})
    models = chosen_names(parser, "models", args.models, MODEL_NAMES)
    batches = [int(b) for b in chosen_names(parser, "batches", args.batches, BATCHES)]
    modes = chosen_names(parser, "modes", args.modes, MODES)
    repeats = args.rounds or DEFAULT_REPEATS
    config = DPConfig()
    print_machine(args.markdown)
    print(f"Seconds per step (median of {repeats} after {WARM_UP} warm-up steps) on synthetic "
          f"1x28x28 images; DP-SGD with sigma {config.noise_multiplier}, C "
          f"{config.max_grad_norm}, lr {config.lr}; plain = SGD at the same lr; x = DP / plain.\n")
    rows = []
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=FIRST_LAYER_HOOK_NOTE)
        warnings.filterwarnings("ignore", message="Secure RNG turned off")
        for device in devices:
            for name in models:
                for batch in batches:
                    rows.append(benchmark_row(name, batch, modes, torch.device(device), repeats))
                    print(f"  {name}, batch {batch} on {device}: done", flush=True)
    print()
    header = ["device", "model", "params", "batch", "plain s"]
    for mode in modes:
        header += [f"{mode} s", f"{mode} x"]
    print(table(header, rows, args.markdown, text_columns=2))
    print(f"\nLoad average at the end: {load_average()} (other work on the machine slows the steps "
          f"it overlaps)")


if __name__ == "__main__":
    main()
