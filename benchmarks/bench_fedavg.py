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

import argparse
import copy
import os
import platform
import time
from statistics import mean

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from fltutor.config import PROFILES, FedConfig
from fltutor.data import DATASETS, Data
from fltutor.federation import Federation
from fltutor.metrics import evaluate

NUM_CLIENTS = 10
BATCH_SIZE = 250
LR = 1e-3
TEST_IMAGES = 1000
SCALES = {"quick": PROFILES["quick"]["max_per_class"], "paper": 5000}  # images per class


def synthetic_mnist(per_class: int, seed: int = 0) -> Data:
    """Random images of MNIST's shape in [-1, 1]: ``per_class`` training images per class."""
    gen = torch.Generator().manual_seed(seed)
    num_classes = DATASETS["mnist"].num_classes
    images = lambda n: torch.rand(n, 1, 28, 28, generator=gen) * 2 - 1  # noqa: E731
    train_y = torch.arange(num_classes).repeat_interleave(per_class)
    test_y = torch.randint(num_classes, (TEST_IMAGES,), generator=gen)
    return Data("mnist", images(len(train_y)), train_y, images(TEST_IMAGES), test_y,
                DATASETS["mnist"].class_names, "synthetic random images")


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


def timed(step, device: torch.device) -> float:
    """Wall-clock seconds of ``step()``, waiting for the GPU to finish its queued work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def benchmark(per_class: int, device: torch.device, rounds: int) -> dict[str, float]:
    """Mean seconds per round of the engine and of the plain loop, after one warm-up round each."""
    data = synthetic_mnist(per_class)
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


def machine() -> list[str]:
    """CPU model, cores, threads, load, GPU and torch version: what the numbers depend on."""
    cpu = platform.processor() or platform.machine()
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as info:
            names = [line.split(":", 1)[1].strip() for line in info if line.startswith("model name")]
        cpu = names[0] if names else cpu
    load = f", load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "none"
    return [f"CPU: {cpu}, {os.cpu_count()} cores, torch uses {torch.get_num_threads()} threads{load}",
            f"GPU: {gpu}", f"torch {torch.__version__}, Python {platform.python_version()}"]


def table(rows: list[list[str]], markdown: bool) -> str:
    header = ["scale", "device", "method", "images/client", "s/round", "samples/s",
              "plain / engine"]
    if markdown:
        lines = [header, ["---"] * 3 + ["---:"] * 4, *rows]
        return "\n".join("| " + " | ".join(row) + " |" for row in lines)
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(cell.rjust(w) for cell, w in zip(row, widths))
                     for row in [header, *rows])


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed: it must be an integer >= 1")
    return int(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                        help="auto: the CPU, and the GPU too when there is one")
    parser.add_argument("--scales", default="quick,paper",
                        help="comma-separated: " + ", ".join(SCALES))
    parser.add_argument("--rounds", type=positive_int,
                        help="timed rounds after one warm-up (default 3; 1 for paper on CPU)")
    parser.add_argument("--threads", type=positive_int, help="CPU threads for torch (default: torch's)")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    scales = args.scales.split(",")
    if not set(scales) <= set(SCALES):
        parser.error(f"scales={args.scales!r} is not allowed: use names from {', '.join(SCALES)}")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("device='cuda' is not allowed: this machine has no CUDA GPU")
    devices = {"auto": ["cpu"] + (["cuda"] if torch.cuda.is_available() else []),
               "cpu": ["cpu"], "cuda": ["cuda"]}[args.device]

    for line in machine():
        print(f"- {line}" if args.markdown else line)
    print(f"Settings: {NUM_CLIENTS} clients, one class each, batch {BATCH_SIZE}, 1 local epoch, "
          f"Adam lr {LR}; synthetic random 1x28x28 images; each round includes evaluation on "
          f"{TEST_IMAGES} test images; samples/s = training images / seconds per round.\n")
    rows = []
    for scale in scales:
        for name in devices:
            device = torch.device(name)
            rounds = args.rounds or (1 if scale == "paper" and name == "cpu" else 3)
            seconds = benchmark(SCALES[scale], device, rounds)
            images = SCALES[scale] * NUM_CLIENTS  # one class per client: per_class images each
            ratio = seconds["plain loop"] / seconds["engine"]
            for method, s in seconds.items():
                rows.append([scale, name, method, str(SCALES[scale]), f"{s:.3f}",
                             f"{images / s:,.0f}", f"{ratio:.2f}" if method == "engine" else ""])
            print(f"  {scale} on {name}: {rounds} timed round(s) done", flush=True)
    print()
    print(table(rows, args.markdown))


if __name__ == "__main__":
    main()
