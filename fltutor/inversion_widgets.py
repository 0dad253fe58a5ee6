"""Notebook 06's gradient-inversion views: the reconstruction growing live, and its explorer.

``LiveReconstruction`` shows the victim's images over the attacker's current guesses (paired
with them as the scores pair them, ``fltutor.metrics.matched_pairs``) and a line with the
iteration, the gradient distance and the PSNR, redrawn while the attack runs.
``InversionExplorer`` puts every choice that changes what leaks in one place: the method, the
model (its activation), the batch size, how many FedAvg rounds trained the model, and how many
local steps the client took. The attacks are ``fltutor.attacks.inversion``'s; the runs are
``fltutor.recipes.inversion``'s.
"""

from __future__ import annotations

import time

import ipywidgets as widgets
import torch

from . import widgets as notebook_widgets
from .attacks.inversion import METHODS, Inversion
from .data import Data
from .metrics import reconstruction_scores
from .models import MODELS
from .recipes.inversion import MAX_TRAINED_ROUNDS, InversionConfig, attack_batch, victim_model
from .viz import reconstruction_pairs

#: What each model's name says about it in the explorer's menu.
MODEL_LABELS = {"lenet-dlg": "DLG's LeNet, sigmoid", "lenet-dlg-tanh": "DLG's LeNet, tanh",
                "lenet-dlg-relu": "DLG's LeNet, ReLU", "lenet5": "LeNet-5, tanh",
                "lenet5-wide": "LeNet-5 wide, ReLU", "classifier": "CRPA classifier, LeakyReLU"}


class LiveReconstruction:
    """The attacker's guess next to the original, redrawn every ``redraw_every`` iterations.

    Why: an inversion is a search; watching noise turn into the digit (or not) shows what the
    numbers in a table cannot, how fast and how completely a gradient gives its images away.
    ``callback`` is the attack's per-iteration callback (``fltutor.attacks.inversion.Callback``).
    """

    def __init__(self, redraw_every: int = 10):
        self.redraw_every = redraw_every
        self.output = widgets.Image(format="png")
        self.status = widgets.Label()
        self.originals: torch.Tensor | None = None
        self.method = ""

    def start(self, originals: torch.Tensor, method: str) -> None:
        self.originals, self.method = originals, method
        self.started = time.perf_counter()

    def callback(self, iteration: int, loss: float, images: torch.Tensor) -> None:
        if iteration == 1 or iteration % self.redraw_every == 0:
            self.show(iteration, loss, images)

    def show(self, iteration: int, loss: float, images: torch.Tensor) -> None:
        psnr = reconstruction_scores(images.clamp(-1, 1), self.originals)["psnr"]
        notebook_widgets.show_in(self.output, reconstruction_pairs(self.originals, images,
                                                  title=f"{self.method}, iteration {iteration}"))
        self.status.value = (f"iteration {iteration}: gradient distance {loss:.3g}, PSNR "
                             f"{psnr:.1f} dB ({time.perf_counter() - self.started:.0f} s)")

    def widget(self) -> widgets.Widget:
        return widgets.VBox([self.output, self.status])


class InversionExplorer:
    """Choose the method, model, batch size, training and local steps; watch the attack.

    Why: what a gradient gives away depends on all five, and the quickest way to learn how is to
    change one and look. Trained models are built once per (model, rounds) and kept
    (``victim_model`` trains them in a small federation on ``data``); the victim's batch is the
    first test images of ``data``. ``run()`` returns the result and its per-iteration trace.
    """

    def __init__(self, data: Data, config: InversionConfig | None = None,
                 models: tuple[str, ...] = tuple(MODEL_LABELS), max_rounds: int = 20,
                 redraw_every: int = 10):
        self.data = data
        self.config = config or InversionConfig(device=str(data.train_x.device))
        self.models: dict[tuple[str, int], torch.nn.Module] = {}
        self.method = widgets.Dropdown(options=list(METHODS), value=self.config.method,
                                       description="method")
        self.model = widgets.Dropdown(options=[(MODEL_LABELS.get(name, name), name)
                                               for name in models if name in MODELS],
                                      value=self.config.model, description="model")
        self.batch_size = widgets.IntSlider(self.config.batch_size, min=1, max=8,
                                            description="batch size")
        self.trained_rounds = widgets.IntSlider(self.config.trained_rounds, min=0,
                                                max=min(max_rounds, MAX_TRAINED_ROUNDS),
                                                description="trained rounds")
        self.local_steps = widgets.IntSlider(self.config.local_steps, min=0, max=10,
                                             description="local steps")
        self.iterations = widgets.IntSlider(self.config.iterations or 300, min=10, max=2000,
                                            step=10, description="iterations")
        self.live = LiveReconstruction(redraw_every)
        self.button = widgets.Button(description="reconstruct", button_style="primary")
        self.button.on_click(self.run)
        self.summary = widgets.HTML()

    def chosen_config(self) -> InversionConfig:
        return self.config.replace(method=self.method.value, model=self.model.value,
                                   batch_size=self.batch_size.value,
                                   trained_rounds=self.trained_rounds.value,
                                   local_steps=self.local_steps.value,
                                   iterations=self.iterations.value)

    def model_for(self, config: InversionConfig) -> torch.nn.Module:
        """The model the attacker was sent: trained once per (model, rounds), then reused."""
        key = (config.model, config.trained_rounds)
        if key not in self.models:
            self.live.status.value = (f"training {config.model} for {config.trained_rounds} "
                                      f"rounds..." if config.trained_rounds else "")
            self.models[key] = victim_model(config, self.data)[0]
        return self.models[key]

    def run(self, _button=None, config: InversionConfig | None = None
            ) -> tuple[Inversion, list[dict]]:
        """Attack the chosen batch with the chosen settings, drawing as it goes."""
        config = config or self.chosen_config()
        model = self.model_for(config)
        start = config.first_image
        images = self.data.test_x[start:start + config.batch_size]
        labels = self.data.test_y[start:start + config.batch_size]
        self.live.start(images, config.method)
        result, trace = attack_batch(config, model, images, labels, self.live.callback)
        self.live.show(result.iterations, result.losses[-1] if result.losses else float("nan"),
                       result.images)
        scores = reconstruction_scores(result.images.clamp(-1, 1), images, result.labels, labels)
        self.summary.value = (f"<b>{config.method}</b> on {config.model}, batch "
                              f"{config.batch_size}, {config.trained_rounds} trained rounds, "
                              f"{config.local_steps} local steps: PSNR {scores['psnr']:.1f} dB, "
                              f"SSIM {scores['ssim']:.3f}, labels {scores['label_accuracy']:.0%}"
                              f" right")
        return result, trace

    def widget(self) -> widgets.Widget:
        controls = widgets.VBox([self.method, self.model, self.batch_size, self.trained_rounds,
                                 self.local_steps, self.iterations, self.button])
        return widgets.VBox([widgets.HBox([controls, self.live.widget()]), self.summary])

    def _repr_mimebundle_(self, **kwargs):
        return self.widget()._repr_mimebundle_(**kwargs)
