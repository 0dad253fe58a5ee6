"""Record-level differential privacy on every client: DP-SGD, done by Opacus.

DP-SGD (Abadi et al. 2016, Algorithm 1) changes three things in a step of SGD:

1. Poisson sampling: each local record joins the batch on its own with probability q;
2. per-sample clipping: every record's gradient is shrunk to norm at most C,
   ``clip(g_i) = g_i * min(1, C / ||g_i||)``;
3. Gaussian noise: ``w <- w - lr * (sum_i clip(g_i) + N(0, sigma^2 C^2 I)) / (q N)``.

One record can then move the weights by at most ``lr * C / (q N)`` per step, under noise of
standard deviation ``lr * sigma * C / (q N)``. An accountant adds the steps up into an
(epsilon, delta) guarantee; Opacus's ``RDPAccountant`` uses the Renyi DP of the sampled Gaussian
mechanism (Mironov, Talwar and Zhang 2019), fast at any number of rounds. The CRPA study
(Becker et al. 2025) trains every client with sigma = 0.3, C = 1.5, lr = 0.25, delta = 1e-6:
``DPConfig()``'s defaults.

Opacus does all of it. ``GradSampleModule`` computes per-sample gradients, ``DPOptimizer`` clips,
noises and averages them, ``UniformWithReplacementSampler`` draws the Poisson batches (it is the
sampler inside Opacus's ``DPDataLoader``; its batches index the on-device tensors directly) and
``ModuleValidator`` checks that a model has per-sample gradients at all. This module plugs them
into the federation: ``make_private(federation, DPConfig())`` gives every client a ``DPTraining``
and records epsilon every round. ``FedConfig(defenses=(DPConfig(),))`` does the same from a
config: ``DPConfig`` is the defense's spec, filed as ``record-dp``.

Opacus clips in one of four ways (``DPConfig.grad_sample_mode``), and all four take the same step,
up to float rounding (``tests/test_dp_modes.py``). Three build every record's gradient:
``"hooks"``, the default, from each layer's inputs and output gradients, caught by layer hooks;
``"functorch"`` by ``torch.func.vmap`` of one record's gradient; ``"ew"`` by PyTorch's expanded
weights. ``"ghost"``, ghost clipping (Li et al. 2022; Bu et al. 2023), keeps none of them: its
hooks compute only each record's gradient norm (a linear layer's from its inputs and output
gradients alone; another layer's per-sample gradients are built, measured and dropped), and a
second backward pass of the loss, each record's term weighted by its clipping factor, yields the
sum of the clipped gradients at once. No mode is as cheap as plain SGD: the clipping needs every
record's gradient norm, so at least one more pass over the backward's work. Ghost's second backward
puts its floor near 1.5-2x a plain step on a CPU; materialised per-sample gradients cost B x P of
memory traffic (B records, P parameters), which is why hooks take 7-10x on the wide LeNet-5.
``benchmarks/bench_dp.py`` on 2 shared cores of an AMD EPYC (DP step / plain step): the CRPA
classifier (275,595 parameters) at batch 50 takes hooks 3.62x, functorch 4.27x, ew 2.71x, ghost
3.13x, and at batch 250 3.72x, 4.58x, 3.45x, 3.65x, so ``ew`` is the fastest there; LeNet-5
(61,706) at batch 50: hooks 2.67x, ghost 1.94x; the wide LeNet-5 (582,026): hooks 7.91x against
ghost 2.33x at batch 32, 6.73x against 2.33x at batch 250. So ghost gains the more over hooks the
more parameters a model has. ``functorch`` and ``ew`` fail on an empty Poisson batch; hooks and
ghost take it as a noise-only step.

Sampling and noise draw from torch's global generators, which the federation seeds and saves in
its checkpoints: a CPU run repeats exactly, and a resumed run goes on as if never stopped.
(Opacus's ``secure_mode`` draws from a cryptographic generator instead: right for a deployment,
wrong for a lab whose runs must repeat.)
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, ClassVar, Iterator

import torch
import torch.nn.functional as F
from opacus.accountants import RDPAccountant
from opacus.grad_sample import GradSampleModuleFastGradientClipping, prepare_module
from opacus.optimizers import DPOptimizer, DPOptimizerFastGradientClipping
from opacus.utils.fast_gradient_clipping_utils import DPLossFastGradientClipping
from opacus.utils.uniform_sampler import UniformWithReplacementSampler
from opacus.validators import ModuleValidator
from torch import nn

from ..checks import (MAX_CLIP, MAX_RATE, check, check_between_zero_and_one, check_choice,
                      check_number)
from ..parts import DEFENSES, Defense
from ..training import LocalTraining, train_epochs

if TYPE_CHECKING:
    from ..federation import Federation, RoundRecord

#: PyTorch's note that a backward hook sits on the first layer, whose input needs no gradient.
#: Opacus puts its per-sample-gradient hooks on every layer, so the note is expected: hidden.
FIRST_LAYER_HOOK_NOTE = "Full backward hook is firing when gradients are computed with respect"

#: The Renyi orders the accountant minimises epsilon over: Opacus's own, which start at 1.1, plus
#: orders between 1 and 1.1. Weak noise (the study's sigma = 0.3 over many steps) has its best
#: order there: over the study's 300 rounds it is 1.05, and from 1.1 on epsilon would come out
#: larger than the guarantee really is (and Opacus would warn that the range is too narrow).
RENYI_ORDERS = ([1 + x / 1000 for x in range(1, 10)] + [1 + x / 100 for x in range(1, 10)]
                + RDPAccountant.DEFAULT_ALPHAS)

#: Opacus's ways to clip per-sample gradients (its ``grad_sample_mode``) that give the models here
#: the same step up to float rounding: layer hooks, torch.func's vmap and PyTorch's expanded
#: weights materialise every record's gradient; ghost clipping keeps only their norms.
#: ``benchmarks/bench_dp.py`` times them (the module docstring gives its figures).
GRAD_SAMPLE_MODES = ("hooks", "functorch", "ew", "ghost")
#: The modes that fail on a batch of no records (Opacus 1.6: vmap and expanded weights need one).
NEEDS_RECORDS = ("functorch", "ew")
#: The smallest batch size those modes take. A Poisson batch of expected size about B or more is
#: empty with probability at most e^(-B/2) per step (module docstring): 1e-11 at B = 50.
MIN_VECTORISED_BATCH = 50


@DEFENSES.register("record-dp")
@dataclass
class DPConfig(Defense):
    """Settings of DP-SGD on every client; the defaults are the CRPA study's (Becker et al. 2025).

    ``noise_multiplier`` (sigma): the noise's standard deviation in units of the clipping norm.
    ``max_grad_norm`` (C): the largest norm one record's gradient keeps after clipping.
    ``lr``: DP-SGD's learning rate; DP training uses plain SGD instead of the client's optimizer.
    ``delta``: the delta of the reported (epsilon, delta) guarantee, well below 1 / records.
    ``grad_sample_mode``: how Opacus clips per record, one of ``GRAD_SAMPLE_MODES``; all take the
    same step, at different speeds (module docstring). ``"hooks"``, Opacus's default, is ours too,
    though it was never the fastest on our CPU: ``"ew"`` was on the CRPA classifier, and
    ``"ghost"`` (ghost clipping) beat hooks on both LeNet-5s, by about 3x on the wide one.
    ``functorch`` and ``ew`` need batches of at least ``MIN_VECTORISED_BATCH`` (or ``None``, all
    records): they fail on an empty Poisson batch. ``ghost`` needs the clients' loss to be the
    default cross-entropy. Left at ``"hooks"``, the mode is not written to JSON, so runs saved
    before it existed still match their config.
    Sigma and lr stay at most 1,000 and C at most 1e12 (``fltutor.checks``): far larger ones
    overflow the float32 weights. A field set later is checked again (``fltutor.checks.Checked``).

    >>> DPConfig(delta=1.0)
    Traceback (most recent call last):
    ...
    ValueError: delta=1.0 is not allowed: it must be a number with 0 < delta < 1
    >>> DPConfig(grad_sample_mode="jit")
    Traceback (most recent call last):
    ...
    ValueError: grad_sample_mode='jit' is not allowed: it must be one of hooks, functorch, ew, ghost
    >>> DPConfig().to_dict()
    {'name': 'record-dp', 'noise_multiplier': 0.3, 'max_grad_norm': 1.5, 'lr': 0.25, 'delta': 1e-06}
    >>> DPConfig(grad_sample_mode="ew").to_dict()["grad_sample_mode"]
    'ew'
    """

    #: What every DP spec names (``ClientDPConfig`` and ``LocalDPConfig`` too), so a sweep or a
    #: notebook can handle any of them: the field holding its clipping norm, and the history key
    #: its epsilon is recorded under.
    clip_setting: ClassVar[str] = "max_grad_norm"
    epsilon_metric: ClassVar[str] = "epsilon"

    noise_multiplier: float = 0.3
    max_grad_norm: float = 1.5
    lr: float = 0.25
    delta: float = 1e-6
    grad_sample_mode: str = "hooks"

    def validate(self) -> None:
        check_number("noise_multiplier", self.noise_multiplier, 0.0, MAX_RATE)
        check_number("max_grad_norm", self.max_grad_norm, 0.0, MAX_CLIP, open_low=True)
        check_number("lr", self.lr, 0.0, MAX_RATE, open_low=True)
        check_between_zero_and_one("delta", self.delta)
        check_choice("grad_sample_mode", self.grad_sample_mode, GRAD_SAMPLE_MODES)

    def check_fits(self, config) -> None:
        batch = None if config.mode == "fedsgd" else config.batch_size
        check(self.grad_sample_mode not in NEEDS_RECORDS or batch is None
              or batch >= MIN_VECTORISED_BATCH, "grad_sample_mode", self.grad_sample_mode,
              f"hooks for batch_size={batch}: the others need batches of at least "
              f"{MIN_VECTORISED_BATCH} (an empty Poisson batch breaks them)")

    def to_dict(self) -> dict:
        """The spec's dict; ``grad_sample_mode`` only if it is not ``"hooks"``, so that runs
        saved before the setting existed (all of them with hooks) still match their config."""
        values = super().to_dict()
        if self.grad_sample_mode == "hooks":
            del values["grad_sample_mode"]
        return values

    def protect(self, federation: Federation) -> None:
        """Every client trains with DP-SGD (``make_private``)."""
        make_private(federation, self)


def accountant_epsilon(noise_multiplier: float, sample_rate: float, steps: int,
                       delta: float) -> float:
    """Epsilon after ``steps`` releases of the sampled Gaussian mechanism, at ``delta``.

    Each release samples at ``sample_rate`` and adds noise ``noise_multiplier`` times the
    sensitivity; Opacus's ``RDPAccountant`` composes them over ``RENYI_ORDERS``. No noise, no
    guarantee: infinity. The callers check their own arguments, in their own terms.

    >>> round(accountant_epsilon(1.0, 0.1, 100, 1e-5), 2)
    7.9
    """
    if noise_multiplier == 0:
        return math.inf
    accountant = RDPAccountant()
    accountant.history = [(noise_multiplier, sample_rate, steps)]
    return float(accountant.get_epsilon(delta, alphas=RENYI_ORDERS))


def poisson_sample_rate(num_samples: int, batch_size: int | None) -> float:
    """q = 1 / (the number of batches plain training takes per epoch): Opacus's DPDataLoader rule.

    So an epoch has as many steps as without DP, each record is expected in one of them, and a
    batch holds about ``batch_size`` records on average (exactly when it divides the number of
    records; all records, always, for ``None``).
    """
    return 1 / math.ceil(num_samples / (batch_size or num_samples))


def poisson_batches(num_samples: int, batch_size: int | None, device) -> Iterator[torch.Tensor]:
    """One epoch of Poisson batches: index tensors, each record in each batch with probability q.

    Batch sizes vary around ``batch_size`` and a batch may be empty: DP-SGD's analysis needs
    exactly this. Drawn from torch's global generator, which the federation seeds.
    """
    rate = poisson_sample_rate(num_samples, batch_size)
    sampler = UniformWithReplacementSampler(num_samples=num_samples, sample_rate=rate,
                                            steps=round(1 / rate))
    for indices in sampler:
        yield torch.tensor(indices, dtype=torch.long, device=device)


class DPTraining:
    """A client's local training made differentially private with DP-SGD; one per client.

    It wraps the client's ``LocalTraining``, keeps its epochs and batch size, and offers the same
    interface, so the client never knows. Each client has its own accountant: its data is its own
    database. ``train`` gets its data anew each call (a CRPA attacker's set changes every round),
    so the sampler, the DP optimizer and the accountant's sample rate are made per call, and the
    model carries Opacus's hooks only while it trains.
    """

    #: Plain SGD has no state to carry from round to round.
    keep_optimizer_state = False

    def __init__(self, local: LocalTraining, config: DPConfig):
        if config.grad_sample_mode == "ghost" and local.loss is not F.cross_entropy:
            raise ValueError(f"grad_sample_mode='ghost' is not allowed with loss={local.loss!r}: "
                             f"it must be F.cross_entropy (Opacus reweights its per-record terms)")
        self.local = local
        self.config = config
        self.accountant = RDPAccountant()

    def draw_minibatch(self, num_samples: int) -> torch.Tensor | None:
        """The round's FedSGD minibatch, as the wrapped training draws it. DP-SGD then runs on
        it with sample rate 1, and the accountant counts every step at that rate: it claims no
        amplification from the draw of the minibatch (an upper bound on epsilon)."""
        return self.local.draw_minibatch(num_samples)

    def make_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        """Plain SGD at the DP learning rate; ``train`` wraps it in Opacus's ``DPOptimizer``."""
        return torch.optim.SGD(model.parameters(), lr=self.config.lr)

    def train(self, model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor,
              y: torch.Tensor) -> float:
        """One round of DP-SGD on (x, y), counted by the accountant; returns the mean batch loss.

        The weights change in place, in ``model`` itself: ``GradSampleModule`` shares them. They
        are made contiguous first: on a channels-last convolution (``fltutor.models.
        CHANNELS_LAST``) Opacus 1.6's hooks compute wrong per-sample gradients of the weight (off
        by 0.1 on the classifier's second convolution, where one record's gradient is about 1;
        ``tests/test_dp.py`` checks them against one-record backward passes), and PyTorch's
        expanded weights fail.
        """
        if len(y) == 0:
            return math.nan  # nothing to learn from or protect (Opacus's sampler needs records)
        model.to(memory_format=torch.contiguous_format)
        ghost = self.config.grad_sample_mode == "ghost"
        sample_rate = poisson_sample_rate(len(y), self.local.batch_size)
        private_optimizer = (DPOptimizerFastGradientClipping if ghost else DPOptimizer)(
            optimizer, noise_multiplier=self.config.noise_multiplier,
            max_grad_norm=self.config.max_grad_norm,
            expected_batch_size=int(len(y) * sample_rate))  # as Opacus's make_private computes it
        private_optimizer.attach_step_hook(self.accountant.get_optimizer_hook_fn(sample_rate))
        if ghost:  # the norms in the module's hooks, the clipping in the loss's second backward
            module = GradSampleModuleFastGradientClipping(
                model, max_grad_norm=self.config.max_grad_norm, use_ghost_clipping=True)
            loss = DPLossFastGradientClipping(module, private_optimizer, nn.CrossEntropyLoss())
        else:  # GradSampleModule for hooks
            module, loss = prepare_module(model, self.config.grad_sample_mode), self.local.loss
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=FIRST_LAYER_HOOK_NOTE)
                return train_epochs(module, private_optimizer, x, y, self.local.epochs,
                                    self.local.batch_size, batches=poisson_batches, loss=loss)
        finally:
            module.cleanup()  # a plain model again: no hooks, no per-sample gradients kept

    def epsilon(self) -> float:
        """The privacy spent so far: the epsilon of an (epsilon, delta) guarantee at our delta.

        Without noise there is no guarantee at all, once a step is taken: infinity.
        """
        if self.config.noise_multiplier == 0 and self.accountant.history:
            return math.inf
        return float(self.accountant.get_epsilon(self.config.delta, alphas=RENYI_ORDERS))

    def state_dict(self) -> dict:
        """The accountant's history of steps, so epsilon keeps counting after a resume."""
        return {"accountant": self.accountant.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.accountant.load_state_dict(state["accountant"])


def opacus_compatible(model: nn.Module) -> nn.Module:
    """``model`` itself if Opacus can compute its per-sample gradients, else a fixed copy.

    A layer that mixes the records of a batch (BatchNorm) has no per-sample gradient and would
    void the guarantee. Opacus's ``ModuleValidator`` swaps such layers (BatchNorm -> GroupNorm)
    and refuses what it cannot fix. Both models of the studies pass unchanged.
    """
    if ModuleValidator.is_valid(model):
        return model
    return ModuleValidator.fix_and_validate(model)


def epsilon_observer(federation: Federation) -> Callable[[RoundRecord], dict]:
    """An observer that records ``epsilon``: the most privacy any DP client has spent so far."""

    def observe(record: RoundRecord) -> dict:
        trainings = [c.training for c in federation.clients if isinstance(c.training, DPTraining)]
        distinct = {tuple(t.accountant.history): t for t in trainings}  # same steps, same epsilon
        return {"epsilon": max(t.epsilon() for t in distinct.values())}

    return observe


def make_private(federation: Federation, config: DPConfig) -> None:
    """Train every client of ``federation`` with DP-SGD and record epsilon in every round.

    The models are made Opacus-compatible first; then each client's ``training`` is wrapped in
    its own ``DPTraining``. The attackers are in place by then (``Federation.build``), so a
    malicious client trains privately too, as in the CRPA study's DP runs.
    """
    federation.global_model = opacus_compatible(federation.global_model)
    for client in federation.clients:
        client.model = opacus_compatible(client.model)
        client.training = DPTraining(client.training, config)
    federation.observers.append(epsilon_observer(federation))
