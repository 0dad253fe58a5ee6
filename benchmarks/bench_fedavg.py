"""Seconds per FedAvg round, and training samples per second, for the CRPA study's classifier.

What it measures: one round of FedAvg with the study's settings (10 clients holding one class
each, batch 250, one local epoch, Adam lr 1e-3, the ``Classifier``) done two ways on the same data:

* ``engine``: ``Federation.run_round()``. Each client's data sits on the device as one tensor and
  a batch is an index slice; weights travel as one flat vector.
* ``plain loop``: the loop most tutorials write. Every round, every client builds a
  ``DataLoader(TensorDataset(x, y), batch_size=250, shuffle=True)`` over tensors kept on the
  CPU, copies the global model, trains it with a fresh Adam, and the server averages the
  clients' ``state_dict``s. (The engine's clients keep their Adam state across rounds, as in the
  study; an Adam step costs the same either way.)

Both include the same end-of-round evaluation (``fltutor.metrics.evaluate`` on 1,000 test
images), so the ratio shows what the engine's way of feeding data and moving weights is worth.
The two are timed in alternation, round by round, so background load hits both alike; still,
on a busy machine the seconds vary a lot (the load average is printed), and ``--threads 1`` can
be much faster there than torch's default of one thread per core.

Why synthetic images: the time does not depend on the pixel values, and the paper scale
(5,000 images per class) needs more images than a small local copy of MNIST holds.

    python benchmarks/bench_fedavg.py                      # quick and paper scale, CPU (+ GPU)
    python benchmarks/bench_fedavg.py --scales quick --rounds 5 --markdown
"""

from __future__ import annotations

import copy
from statistics import mean

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from common import (benchmark_parser, parse_benchmark_args, print_machine, synthetic_mnist, table,
                    timed, timed_rounds)
from fltutor.config import PROFILES, FedConfig
from fltutor.data import DATASETS
from fltutor.federation import Federation
from fltutor.metrics import evaluate

NUM_CLIENTS = 10
BATCH_SIZE = 250
LR = 1e-3
TEST_IMAGES = 1000
SCALES = {"quick": PROFILES["quick"]["max_per_class"], "paper": 5000}  # images per class
HEADER = ["scale", "device", "method", "images/client", "s/round", "samples/s", "plain / engine"]


def plain_round(global_model, clients, test, device) -> None:
    """One FedAvg round the tutorial way: a DataLoader per client, averaged state_dicts."""
    states, sizes = [], []
    for x, y in clients:
        model = copy.deepcopy(global_model).train()
        optimizer = torch.optim.Adam(model.parameters(), lr=LR)
        losses = []
        for xb, yb in DataLoader(TensorDataset(x, y), batch_size=BATCH_SIZE, shuffle=True):
            xb, yb = xb.to(device), yb.to(device)
            optimizer.zero_grad()
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        states.append(model.state_dict())
        sizes.append(len(y))
    total = sum(sizes)
    global_model.load_state_dict(
        {name: sum(s[name] * (n / total) for s, n in zip(states, sizes)) for name in states[0]})
    evaluate(global_model, *test, DATASETS["mnist"].num_classes)


def benchmark(per_class: int, device: torch.device, rounds: int) -> dict[str, float]:
    """Mean seconds per round of the engine and of the plain loop, after one warm-up round each."""
    data = synthetic_mnist(per_class, TEST_IMAGES)
    config = FedConfig(num_clients=NUM_CLIENTS, partition="one-class", batch_size=BATCH_SIZE,
                       local_epochs=1, lr=LR, optimizer="adam", model="classifier",
                       device=str(device))
    fed = Federation.build(config, data=data)
    plain_model = copy.deepcopy(fed.global_model)
    plain_clients = [(c.x.cpu(), c.y.cpu()) for c in fed.clients]  # same split, kept on the CPU
    test = (fed.data.test_x, fed.data.test_y)
    methods = {"engine": fed.run_round,
               "plain loop": lambda: plain_round(plain_model, plain_clients, test, device)}
    seconds = {name: [] for name in methods}
    for _ in range(1 + rounds):  # the first round of each is a warm-up, not counted
        for name, step in methods.items():
            seconds[name].append(timed(step, device))
    return {name: mean(times[1:]) for name, times in seconds.items()}


def main() -> None:
    parser = benchmark_parser(__doc__.split("\n\n")[0], SCALES)
    args, scales, devices = parse_benchmark_args(parser, SCALES)
    print_machine(args.markdown)
    print(f"Settings: {NUM_CLIENTS} clients, one class each, batch {BATCH_SIZE}, 1 local epoch, "
          f"Adam lr {LR}; synthetic random 1x28x28 images; each round includes evaluation on "
          f"{TEST_IMAGES} test images; samples/s = training images / seconds per round.\n")
    rows = []
    for scale in scales:
        for name in devices:
            device = torch.device(name)
            rounds = timed_rounds(args.rounds, scale, name)
            seconds = benchmark(SCALES[scale], device, rounds)
            images = SCALES[scale] * NUM_CLIENTS  # one class per client: per_class images each
            ratio = seconds["plain loop"] / seconds["engine"]
            for method, s in seconds.items():
                rows.append([scale, name, method, str(SCALES[scale]), f"{s:.3f}",
                             f"{images / s:,.0f}", f"{ratio:.2f}" if method == "engine" else ""])
            print(f"  {scale} on {name}: {rounds} timed round(s) done", flush=True)
    print()
    print(table(HEADER, rows, args.markdown, text_columns=3))


if __name__ == "__main__":
    main()
