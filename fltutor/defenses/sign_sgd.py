"""Stochastic sign-SGD: every honest client sends one random sign per weight instead of its update.

Jin et al. ("Stochastic-Sign SGD for Federated Learning with Theoretical Guarantees", 2020, Eq. 2)
compress a client's update u to signs drawn so that their mean is u:

    s_i = +1 with probability (1 + u_i / b) / 2,   -1 otherwise,   sent: b * s,

with b >= max_i |u_i|, so that every probability lies in [0, 1] and E[b * s_i] = u_i. Each
coordinate then carries one bit of the client's update and a lot of noise (its variance is
b^2 - u_i^2). The server averages as usual: the mean of the clients' b * s is an unbiased
estimate of the mean update, and with many clients the noise averages out.

Why it is here: the curious-client study (Yue et al., arXiv 2506.11413, its open question 2)
asks whether such a randomized, compressed update protects the peers against a curious client,
which inverts the *mean* of the updates. The sign noise lands in the very gradient it inverts,
as DP's noise does, but states no epsilon. ``fltutor sweep backfire --defenses sign-sgd``
measures it.

Who runs it: like local DP (``fltutor.defenses.local_dp``), a client runs it on its own machine,
so only the honest clients are wrapped; a malicious client sends what its attack decides. The
signs draw from torch's global generator, which the federation seeds and checkpoints.

>>> torch.manual_seed(0)  # doctest: +ELLIPSIS
<torch._C.Generator object at ...>
>>> update = torch.tensor([0.5, -0.25, 0.0])
>>> signs = torch.stack([stochastic_signs(update) for _ in range(4000)])
>>> signs.abs().unique().tolist()  # every coordinate sent as +-b, b = max |u_i| = 0.5
[0.5]
>>> [round(v, 1) + 0.0 for v in signs.mean(dim=0).tolist()]  # their mean is the update
[0.5, -0.2, 0.0]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from ..parts import DEFENSES, Defense
from .local_dp import send_privately

if TYPE_CHECKING:
    from ..federation import Federation


def stochastic_signs(update: torch.Tensor) -> torch.Tensor:
    """``update`` sent as ``b * s``: one random sign per weight, +1 with probability
    (1 + u_i / b) / 2, where b = max_i |u_i| (Jin et al. 2020, Eq. 2). A zero update stays zero."""
    bound = update.abs().max()
    if bound == 0:
        return update.clone()
    plus = torch.rand_like(update) < (1 + update / bound) / 2
    return bound * (2 * plus.to(update.dtype) - 1)


@DEFENSES.register("sign-sgd")
@dataclass
class SignSGDConfig(Defense):
    """Stochastic sign-SGD on every honest client (no options: b is each update's largest
    coordinate, the smallest that keeps the signs unbiased)."""

    def protect(self, federation: Federation) -> None:
        """Every honest client sends the stochastic signs of its update."""
        for k, client in enumerate(federation.clients):
            if k not in federation.malicious_clients:
                send_privately(client, stochastic_signs)

