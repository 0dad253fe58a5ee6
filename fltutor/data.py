"""Datasets as tensors: MNIST and Fashion-MNIST through torchvision, or a small embedded fallback.

Images are scaled to [-1, 1], as in the CRPA study, because the attacker's generator ends in
tanh and its samples must look like the real inputs to the classifier. The whole (capped) dataset
is kept as two tensors on the experiment's device; clients see index tensors into it, and a batch
is a slice, so no DataLoader is built per client per round.

Where the data comes from, in order: the ``root`` argument, the ``FLTUTOR_DATA`` environment
variable, a per-user cache folder. A missing dataset is downloaded through torchvision. Offline,
without a local copy, the caller may accept the *embedded fallback*: scikit-learn's 1,797 real
8x8 handwritten digits, brought to 28x28. It is announced every time it is used.
"""

from __future__ import annotations

import os
import socket
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F

from .registry import Registry


class DataNotice(UserWarning):
    """Something a user must know about the data in front of them (fallback, smaller caps)."""


warnings.simplefilter("always", DataNotice)


class DataUnavailableError(RuntimeError):
    """The dataset is not on disk and cannot be downloaded, and no fallback was accepted."""


@dataclass(frozen=True)
class DatasetSpec:
    """What fltutor knows about a dataset before loading it."""

    torchvision_name: str
    class_names: tuple[str, ...]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


DATASETS = Registry("dataset")
DATASETS.add("mnist", DatasetSpec("MNIST", tuple("0123456789")))
DATASETS.add(
    "fashion-mnist",
    DatasetSpec(
        "FashionMNIST",
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    ),
)

FALLBACK_SOURCE = "embedded fallback: scikit-learn's 8x8 handwritten digits, upscaled to 28x28"


@dataclass
class Data:
    """A dataset held as tensors: images ``[N, 1, 28, 28]`` in [-1, 1], labels ``[N]`` (int64)."""

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    class_names: tuple[str, ...]
    source: str

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def is_fallback(self) -> bool:
        return self.source == FALLBACK_SOURCE

    def to(self, device: torch.device | str) -> "Data":
        move = lambda t: t.to(device)  # noqa: E731
        return replace(self, train_x=move(self.train_x), train_y=move(self.train_y),
                       test_x=move(self.test_x), test_y=move(self.test_y))

    def __repr__(self) -> str:
        return (f"Data({self.name!r}, train={len(self.train_y)}, test={len(self.test_y)}, "
                f"source={self.source!r})")


def default_root() -> Path:
    """``$FLTUTOR_DATA`` if set, else ``$XDG_CACHE_HOME/fltutor`` (``~/.cache/fltutor``)."""
    if os.environ.get("FLTUTOR_DATA"):
        return Path(os.environ["FLTUTOR_DATA"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "fltutor"


def to_unit_range(images: torch.Tensor, max_value: float = 255.0) -> torch.Tensor:
    """Pixel values in [0, max_value] -> float32 in [-1, 1], with a channel axis."""
    images = images.float().div(max_value / 2).sub(1.0)
    return images.unsqueeze(1) if images.dim() == 3 else images


def first_per_class(labels: torch.Tensor, cap: int | None, num_classes: int) -> torch.Tensor:
    """Indices of the first ``cap`` samples of every class, in their original order.

    >>> first_per_class(torch.tensor([0, 1, 0, 0, 1]), 2, 2).tolist()
    [0, 1, 2, 4]
    """
    if cap is None:
        return torch.arange(len(labels))
    keep = torch.zeros(len(labels), dtype=torch.bool)
    for c in range(num_classes):
        keep[(labels == c).nonzero().flatten()[:cap]] = True
    return keep.nonzero().flatten()


def _torchvision_split(spec: DatasetSpec, root: Path, train: bool, download: bool):
    import torchvision

    dataset_class = getattr(torchvision.datasets, spec.torchvision_name)
    return dataset_class(str(root), train=train, download=download)


def _read_or_download(spec: DatasetSpec, root: Path, train: bool):
    """Read one split from ``root``; download it there if it is missing."""
    try:
        return _torchvision_split(spec, root, train, download=False)
    except RuntimeError:
        pass  # not on disk yet
    old_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(20)  # fail fast when offline
    try:
        return _torchvision_split(spec, root, train, download=True)
    except Exception as error:  # any network or mirror failure means: not available
        raise DataUnavailableError(
            f"{spec.torchvision_name} is not in {root} and could not be downloaded "
            f"({type(error).__name__}). Fix: connect to the internet, or run "
            f"'fltutor data fetch --root DIR' where there is one and copy DIR here, or point "
            f"FLTUTOR_DATA at a folder that holds it, or accept the embedded fallback."
        ) from None
    finally:
        socket.setdefaulttimeout(old_timeout)


def fetch(name: str, root: str | Path | None = None) -> Path:
    """Download both splits of dataset ``name`` into ``root`` (default: ``default_root()``)."""
    spec = DATASETS[name]
    root = Path(root) if root is not None else default_root()
    for train in (True, False):
        _read_or_download(spec, root, train)
    return root


def embedded_digits(test_share: float = 0.2) -> tuple[torch.Tensor, ...]:
    """scikit-learn's 1,797 real handwritten digits, laid out like MNIST.

    Each 8x8 image (values 0..16) is resized to 20x20 and centred in a 28x28 frame, which is how
    MNIST digits are framed. The last ``test_share`` of the images form the test split.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1)
    images = F.interpolate(images, size=(20, 20), mode="bilinear", align_corners=False)
    images = F.pad(images, (4, 4, 4, 4))
    images = to_unit_range(images.clamp(0, 16), max_value=16.0)
    labels = torch.tensor(digits.target, dtype=torch.int64)
    split = int(len(labels) * (1 - test_share))
    return images[:split], labels[:split], images[split:], labels[split:]


def load(
    name: str = "mnist",
    root: str | Path | None = None,
    *,
    max_per_class: int | None = None,
    max_test: int | None = None,
    device: torch.device | str = "cpu",
    allow_fallback: bool = False,
) -> Data:
    """Load dataset ``name`` as tensors on ``device``.

    ``max_per_class`` keeps the first so many training images of each class (the study uses
    5,000); ``max_test`` keeps the first so many test images. With ``allow_fallback`` a dataset
    that cannot be found or downloaded is replaced by the embedded digits, with a notice.
    """
    spec = DATASETS[name]
    root = Path(root) if root is not None else default_root()
    try:
        train = _read_or_download(spec, root, train=True)
        test = _read_or_download(spec, root, train=False)
        train_x, train_y = to_unit_range(train.data), train.targets.long()
        test_x, test_y = to_unit_range(test.data), test.targets.long()
        source = f"torchvision {spec.torchvision_name} in {root}"
        class_names = spec.class_names
    except DataUnavailableError as error:
        if not allow_fallback:
            raise
        warnings.warn(f"USING THE EMBEDDED FALLBACK DATASET instead of {name}: {error} "
                      f"Data: {FALLBACK_SOURCE}.", DataNotice, stacklevel=2)
        train_x, train_y, test_x, test_y = embedded_digits()
        source, class_names = FALLBACK_SOURCE, DATASETS["mnist"].class_names

    keep = first_per_class(train_y, max_per_class, len(class_names))
    train_x, train_y = train_x[keep], train_y[keep]
    if max_per_class is not None:
        fewest = int(torch.bincount(train_y, minlength=len(class_names)).min())
        if fewest < max_per_class:
            warnings.warn(f"{name}: asked for {max_per_class} training images per class, this copy "
                          f"has as few as {fewest} in a class; using what there is.",
                          DataNotice, stacklevel=2)
    if max_test is not None:
        test_x, test_y = test_x[:max_test], test_y[:max_test]
    return Data(name, train_x, train_y, test_x, test_y, class_names, source).to(device)
