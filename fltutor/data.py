"""Datasets as tensors: MNIST and Fashion-MNIST through torchvision, or a small embedded fallback.

Images are scaled to [-1, 1], as in the CRPA study, because the attacker's generator ends in
tanh and its samples must look like the real inputs to the classifier. The whole (capped) dataset
is kept as two tensors on the experiment's device; clients see index tensors into it, and a batch
is a slice, so no DataLoader is built per client per round.

Where the data comes from, in order: the ``root`` argument, the ``FLTUTOR_DATA`` environment
variable, a per-user cache folder. A missing dataset is downloaded through torchvision. Offline,
without a local copy, the caller may accept the *embedded fallback*: scikit-learn's 1,797 real
8x8 handwritten digits, brought to 28x28. It is announced every time it is used. A failed
download leaves no empty folders behind.

Files found on disk are checked before they are read (each IDX file's header against its length,
every label against the classes): a damaged copy raises ``DataCorruptError`` (a ``ValueError``)
naming the file and what is wrong, instead of passing for a missing one or for good data.
"""

from __future__ import annotations

import math
import os
import socket
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F

from .checks import MAX_SAMPLES, check_folder, check_int
from .registry import Registry


class DataNotice(UserWarning):
    """Something a user must know about the data in front of them (fallback, smaller caps)."""


warnings.simplefilter("always", DataNotice)


class DataUnavailableError(RuntimeError):
    """The dataset is not on disk and cannot be downloaded, and no fallback was accepted.

    Its message names the ways out; ``explain(fallback)`` says how *this caller* accepts the
    fallback (``"--fallback"`` on the command line; the default is the Python argument).
    """

    def __init__(self, dataset: str, root: Path, reason: str):
        self.dataset, self.root, self.reason = dataset, root, reason
        super().__init__(self.explain("allow_fallback=True"))

    def explain(self, fallback: str | None) -> str:
        """The one-line message; ``fallback`` is how to accept the embedded data (None: no way)."""
        ways = ["connect to the internet",
                "run 'fltutor data fetch --root DIR' where there is one and copy DIR here",
                "point FLTUTOR_DATA at a folder that holds it"]
        if fallback:
            ways.append(f"accept the embedded fallback dataset ({fallback})")
        return (f"{self.dataset} is not in {self.root} and could not be downloaded "
                f"({self.reason}). Fix: {', or '.join(ways)}.")


class DataCorruptError(ValueError):
    """A dataset file is on disk but damaged: truncated, empty, or holding impossible values."""


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


def data_folder(root: str | Path | None) -> Path:
    """``root`` (default: ``default_root()``) once it is known to be no file (``check_folder``)."""
    root = Path(root) if root is not None else default_root()
    check_folder("root", root)
    return root


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


def idx_files(spec: DatasetSpec, root: Path, train: bool) -> tuple[Path, Path]:
    """The images and labels files of one split, in torchvision's layout under ``root``."""
    raw = root / spec.torchvision_name / "raw"
    prefix = "train" if train else "t10k"
    return raw / f"{prefix}-images-idx3-ubyte", raw / f"{prefix}-labels-idx1-ubyte"


def idx_sizes(path: Path, dims: int, remedy: str) -> list[int]:
    """The sizes an IDX file's header declares, once its magic number and length agree with them.

    IDX (LeCun's MNIST format): the bytes 0, 0, 8 (unsigned bytes follow), the number of
    dimensions; then each dimension's size as a 4-byte big-endian integer; then the values.
    """
    def corrupt(problem: str) -> DataCorruptError:
        return DataCorruptError(f"{path} is corrupt: {problem}; {remedy}")

    if not path.exists():
        raise corrupt("it is missing while the other file of its split is there")
    header_size = 4 + 4 * dims
    with open(path, "rb") as handle:
        header = handle.read(header_size)
    length = path.stat().st_size
    if length < header_size:
        raise corrupt(f"it is {length} bytes long, too short for an IDX header "
                      f"({'empty' if length == 0 else 'truncated'})")
    if header[:4] != bytes([0, 0, 8, dims]):
        raise corrupt(f"it does not start like an IDX file of {dims} dimension(s) "
                      f"(its first bytes are {header[:4].hex()}, not 000008{dims:02x})")
    sizes = [int.from_bytes(header[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims)]
    expected = header_size + math.prod(sizes)
    if length != expected:
        cut = "truncated" if length < expected else "with bytes after its data"
        raise corrupt(f"its header announces {'x'.join(map(str, sizes))} values ({expected} "
                      f"bytes), the file has {length} bytes ({cut})")
    return sizes


def check_idx_pair(spec: DatasetSpec, root: Path, train: bool) -> None:
    """Raise ``DataCorruptError`` naming the file unless one split's two IDX files are intact.

    Intact: images N x 28 x 28, N labels, every label a class of the dataset.
    """
    images, labels = idx_files(spec, root, train)
    remedy = (f"delete {root / spec.torchvision_name} so that it is downloaded again, or copy an "
              f"intact one there")
    count, height, width = idx_sizes(images, 3, remedy)
    if (height, width) != (28, 28):
        raise DataCorruptError(f"{images} is corrupt: its images are {height}x{width}, not 28x28; "
                               f"{remedy}")
    (label_count,) = idx_sizes(labels, 1, remedy)
    if label_count != count:
        raise DataCorruptError(f"{labels} is corrupt: it holds {label_count} labels for the "
                               f"{count} images of {images.name}; {remedy}")
    largest = max(labels.read_bytes()[8:], default=0)
    if largest >= spec.num_classes:
        raise DataCorruptError(f"{labels} is corrupt: it holds the label {largest}, and labels "
                               f"must be 0 to {spec.num_classes - 1}; {remedy}")


def missing_folders(folder: Path) -> list[Path]:
    """``folder`` and those of its parents that do not exist yet, deepest first."""
    return [f for f in (folder, *folder.parents) if not f.exists()]


def _read_or_download(spec: DatasetSpec, root: Path, train: bool):
    """Read one split from ``root``; download it there if it is missing.

    Files on disk are checked first, so a damaged copy is reported as such (and not downloaded
    over). A failed download removes the empty folders it made.
    """
    if any(path.exists() for path in idx_files(spec, root, train)):
        check_idx_pair(spec, root, train)
    try:
        return _torchvision_split(spec, root, train, download=False)
    except RuntimeError:
        pass  # not on disk yet
    made = missing_folders(root / spec.torchvision_name / "raw")
    old_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(20)  # fail fast when offline
    try:
        return _torchvision_split(spec, root, train, download=True)
    except Exception as error:  # any network or mirror failure means: not available
        for folder in made:  # deepest first; a folder that is not empty stays
            try:
                folder.rmdir()
            except OSError:
                break
        raise DataUnavailableError(spec.torchvision_name, root, type(error).__name__) from None
    finally:
        socket.setdefaulttimeout(old_timeout)


def fetch(name: str, root: str | Path | None = None) -> Path:
    """Download both splits of dataset ``name`` into ``root`` (default: ``default_root()``)."""
    spec = DATASETS[name]
    root = data_folder(root)
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
    for field, cap in (("max_per_class", max_per_class), ("max_test", max_test)):
        if cap is not None:
            check_int(field, cap, 1, MAX_SAMPLES)
    root = data_folder(root)
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
        warnings.warn(f"USING THE EMBEDDED FALLBACK DATASET instead of {name}: "
                      f"{error.explain(None)} "
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
