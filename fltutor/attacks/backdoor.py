"""Backdoors: a hidden trigger that makes the model answer the attacker's class.

BadNets (Gu et al. 2017): stamp a small pixel pattern, the *trigger*, onto some training images
and label them ``target_class``. The model learns the task as usual and, on the side, that "this
pattern means the target class". Clean images are still classified well, so accuracy alone does
not show the attack; triggered images of any class are called the target.

In federated learning one client can plant a backdoor this way, but averaging dilutes its update
among all the others. Model replacement (Bagdasaryan et al. 2020, "How to backdoor federated
learning") scales the backdoored update up before sending it, so that it survives averaging and
the global model becomes, for one round, the attacker's model (``replacement_factor``).

``BackdoorClient`` is such a client, and the spec ``Backdoor`` (``"backdoor"`` in
``fltutor.parts.ATTACKS``) puts it into a federation and records ``backdoor_success`` every round.

The images here are those of ``fltutor.data``: ``[N, 1, 28, 28]`` in [-1, 1], where -1 is the
black background and 1 is white, the colour of MNIST's strokes. The trigger defaults to a white
4x4 square one pixel from the lower-right corner, which MNIST's centred digits rarely reach.

>>> x = -torch.ones(1, 1, 28, 28)  # a black image
>>> int((add_trigger(x) == 1.0).sum())  # 16 white pixels
16
>>> _, y = poison(x.repeat(4, 1, 1, 1), torch.tensor([3, 1, 4, 1]), target_class=7, fraction=0.5)
>>> y.tolist()  # every second image is triggered and labelled 7
[3, 7, 4, 7]
>>> replacement_factor(attacker_samples=500, round_samples=5000)  # one of 10 equal clients
10.0
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..checks import MAX_SAMPLES, check, check_bool, check_class, check_int, check_number, is_int
from ..federation import Client, ClientUpdate
from ..parts import ATTACKS, Attack
from .byzantine import MAX_FACTOR

#: Height and width of the images of fltutor.data.
IMAGE_SIZE = 28


@dataclass(frozen=True)
class Trigger:
    """A square of ``size`` x ``size`` pixels set to ``value``, ``margin`` pixels from the
    lower-right corner.

    Gu et al. (2017) use a small pattern in the lower-right corner of MNIST digits; the default
    white 4x4 square is of that kind. ``value`` is in the images' range [-1, 1] (1 is white).
    """

    size: int = 4
    margin: int = 1
    value: float = 1.0

    def __post_init__(self) -> None:
        check_int("size", self.size, 1, IMAGE_SIZE)
        check_int("margin", self.margin, 0, IMAGE_SIZE - self.size)
        check_number("value", self.value, -1.0, 1.0)

    @property
    def rows(self) -> slice:
        """The rows (and, the square being in the corner, the columns) the trigger covers."""
        end = IMAGE_SIZE - self.margin
        return slice(end - self.size, end)


def add_trigger(x: torch.Tensor, trigger: Trigger = Trigger()) -> torch.Tensor:
    """A copy of the images ``x`` ``[N, 1, 28, 28]`` with the trigger stamped on every one."""
    check(isinstance(x, torch.Tensor) and x.dim() == 4 and tuple(x.shape[2:]) == (28, 28),
          "x.shape", tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__,
          "[N, channels, 28, 28]")
    stamped = x.clone()
    stamped[:, :, trigger.rows, trigger.rows] = trigger.value
    return stamped


def spread_choice(num_samples: int, fraction: float) -> torch.Tensor:
    """Indices of ``floor(fraction * num_samples)`` samples spread evenly over the range.

    Sample i is chosen when the running count floor((i + 1) * fraction) steps up at i. No random
    numbers are drawn, so poisoning leaves the federation's random stream as it was.

    >>> spread_choice(10, 0.3).tolist()
    [3, 6, 9]
    """
    check_int("num_samples", num_samples, 0, MAX_SAMPLES)
    check_number("fraction", fraction, 0.0, 1.0)
    count = (torch.arange(num_samples + 1, dtype=torch.float64) * fraction).floor()
    return (count[1:] > count[:-1]).nonzero().flatten()


def poison(x: torch.Tensor, y: torch.Tensor, target_class: int, fraction: float,
           trigger: Trigger = Trigger()) -> tuple[torch.Tensor, torch.Tensor]:
    """BadNets poisoning: a ``fraction`` of the images get the trigger and the label T.

    Returns copies of (x, y) in which ``floor(fraction * N)`` samples, spread evenly, are
    triggered and relabelled ``target_class``; the others stay clean, so the model still
    learns the real task: Gu et al. (2017) and Bagdasaryan et al. (2020) both train on such a
    mix, so that the backdoored model stays accurate and its update looks ordinary.
    """
    check(is_int(target_class) and target_class >= 0, "target_class", target_class,
          "a class index >= 0")
    chosen = spread_choice(len(y), fraction).to(y.device)
    x, y = x.clone(), y.clone()
    x[chosen] = add_trigger(x[chosen], trigger)
    y[chosen] = target_class
    return x, y


def replacement_factor(attacker_samples: int, round_samples: int, server_lr: float = 1.0) -> float:
    """Model replacement's scale gamma: the boost that makes the attacker's model the global one.

    Bagdasaryan et al. (2020): with n equal clients and a server learning rate eta,
    G' = G + (eta / n) * sum_i (L_i - G), and an attacker that submits gamma (X - G) with
    gamma = n / eta moves G to about X (the honest updates nearly cancel near convergence).
    FedAvg here weights client k by its samples, n_k / n_round, and adds the weighted mean of
    the updates (eta = 1): the attacker's share is ``attacker_samples / round_samples``, so
    gamma = round_samples / (eta * attacker_samples); n for n equal clients.
    """
    check_int("attacker_samples", attacker_samples, 1, MAX_SAMPLES)
    check_int("round_samples", round_samples, attacker_samples, MAX_SAMPLES)
    check_number("server_lr", server_lr, 0.0, 1e6, open_low=True)
    return round_samples / (server_lr * attacker_samples)


@torch.no_grad()
def backdoor_success(model: nn.Module, test_x: torch.Tensor, test_y: torch.Tensor,
                     target_class: int, trigger: Trigger = Trigger(),
                     batch_size: int = 1000) -> float:
    """The share of triggered test images, of true classes other than T, predicted as T.

    This is the backdoor's "attack success rate" (Gu et al. 2017; Bagdasaryan et al. 2020
    call it backdoor accuracy). Images of T itself are left out: calling them T is no success.
    Scored by the server on its test set; the attacker never sees this number. NaN when no test
    image is of another class. A model that calls every image T scores 1 as well (an untrained
    one may): read it beside the same model's accuracy on clean images, or a run without attack.
    """
    others = test_y != target_class
    x = test_x[others]
    if len(x) == 0:
        return float("nan")
    was_training = model.training
    model.eval()
    hits = sum(int((model(add_trigger(x[start:start + batch_size], trigger)).argmax(dim=1)
                    == target_class).sum())
               for start in range(0, len(x), batch_size))
    model.train(was_training)
    return hits / len(x)


class BackdoorClient(Client):
    """A client that, from ``start_round`` on, trains on its poisoned copy of its data and
    multiplies its update by ``boost`` (model replacement when boost is ``replacement_factor``).

    Before ``start_round`` it is an honest client, on its clean data.
    """

    def __init__(self, client_id, x, y, model, training, poisoned_x: torch.Tensor,
                 poisoned_y: torch.Tensor, start_round: int = 1, boost: float = 1.0):
        super().__init__(client_id, x, y, model, training)
        self.poisoned_x, self.poisoned_y = poisoned_x, poisoned_y
        self.start_round = start_round
        self.boost = boost
        self.attacking = False

    def local_update(self, global_params: torch.Tensor, round_index: int) -> ClientUpdate:
        self.attacking = round_index >= self.start_round
        update = super().local_update(global_params, round_index)
        if self.attacking:
            update.delta = self.boost * update.delta
        return update

    def train(self, x: torch.Tensor, y: torch.Tensor) -> float:
        if self.attacking:
            x, y = self.poisoned_x, self.poisoned_y
        return super().train(x, y)


@ATTACKS.register("backdoor")
@dataclass
class Backdoor(Attack):
    """BadNets in federated learning, optionally with model replacement.

    Each of its clients poisons ``fraction`` of its own images (``poison``: the trigger, a white
    ``trigger_size`` square in the lower-right corner, and the label ``target_class``) and trains
    on them from ``start_round`` on. Its update is multiplied by ``boost``; with
    ``model_replacement`` the boost is ``replacement_factor``: all clients' samples over this
    attack's clients' samples (exact when every client takes part in every round), which makes
    the global model about the attackers' after aggregation (Bagdasaryan et al. 2020). Every round
    records ``backdoor_success`` of the global model on the test set, also before the attack
    starts (the honest baseline).

    The default fraction 0.3 leaves most of the attacker's images clean, so its model keeps the
    main task and its update looks like any other.
    """

    target_class: int = 0
    fraction: float = 0.3
    boost: float = 1.0
    model_replacement: bool = False
    trigger_size: int = 4

    def validate(self) -> None:
        super().validate()
        check_int("target_class", self.target_class, 0)
        check_number("fraction", self.fraction, 0.0, 1.0, open_low=True)
        check_number("boost", self.boost, 0.0, MAX_FACTOR, open_low=True)
        check_bool("model_replacement", self.model_replacement)
        check(not (self.model_replacement and self.boost != 1.0), "boost", self.boost,
              "1.0 with model_replacement=True (model replacement computes the boost itself)")
        check_int("trigger_size", self.trigger_size, 1, IMAGE_SIZE - Trigger.margin)

    def check_fits(self, config) -> None:
        super().check_fits(config)
        check_class("target_class", self.target_class, config.num_classes)

    @property
    def trigger(self) -> Trigger:
        return Trigger(size=self.trigger_size)

    def boost_for(self, federation) -> float:
        """``boost``, or with model replacement all clients' samples over this attack's."""
        if not self.model_replacement:
            return self.boost
        own = sum(federation.clients[k].num_samples for k in self.clients)
        return replacement_factor(own, sum(c.num_samples for c in federation.clients))

    def make_client(self, honest: Client, federation) -> BackdoorClient:
        poisoned_x, poisoned_y = poison(honest.x, honest.y, self.target_class, self.fraction,
                                        self.trigger)
        return BackdoorClient(honest.client_id, honest.x, honest.y, honest.model,
                              honest.training, poisoned_x, poisoned_y, self.start_round,
                              self.boost_for(federation))

    def observers(self, federation) -> list:
        data = federation.data

        def observe(record) -> dict:
            return {"backdoor_success": backdoor_success(record.global_model, data.test_x,
                                                         data.test_y, self.target_class,
                                                         self.trigger)}

        return [observe]
