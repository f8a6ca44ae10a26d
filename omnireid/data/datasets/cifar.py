"""CIFAR-10 and CIFAR-100 (Krizhevsky 2009), the category-recognition check of ICCV'19 Sec. 4.3.

``cifar(root, num_classes)`` reads the files as the authors distribute them, found under
``root``: the Python version (``cifar-10-batches-py/``: ``data_batch_1..5``, ``test_batch``,
``batches.meta``; ``cifar-100-python/``: ``train``, ``test``, ``meta``) or the binary version
(``cifar-10-batches-bin/``: ``data_batch_1..5.bin``, ``test_batch.bin``,
``batches.meta.txt``; ``cifar-100-binary/``: ``train.bin``, ``test.bin``,
``fine_label_names.txt``). The Python files are pickles: they are read with an unpickler that
builds only plain containers and NumPy arrays and refuses anything else, so a tampered file
cannot run code. Images come back as ``(N, 32, 32, 3)`` uint8 RGB arrays.
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from omnireid.data.datasets.base import DatasetLayoutError

FOLDERS = {
    10: ("cifar-10-batches-py", "cifar-10-batches-bin"),
    100: ("cifar-100-python", "cifar-100-binary"),
}
PIXELS = 3 * 32 * 32


@dataclass
class ImageArrays:
    images: np.ndarray  # (N, 32, 32, 3) uint8 RGB
    labels: np.ndarray  # (N,) int64 class indices

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class ClassificationDataset:
    name: str
    classes: list[str]
    train: ImageArrays
    test: ImageArrays

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def summary(self) -> str:
        return (
            f"{self.name}: {self.num_classes} classes, {len(self.train)} train and "
            f"{len(self.test)} test images"
        )


# What a CIFAR pickle may build: NumPy arrays and their dtypes, and bytes (protocol-2 pickles
# written by Python 3 spell bytes as _codecs.encode(text, "latin1")); containers are opcodes
_ALLOWED = {
    ("_codecs", "encode"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


class _ArraysOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR file")


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            obj = _ArraysOnly(io.BufferedReader(f), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as e:
        raise DatasetLayoutError(f"{path} is not a CIFAR batch file ({e})") from e
    if not isinstance(obj, dict):
        raise DatasetLayoutError(f"{path} is not a CIFAR batch file (holds {type(obj).__name__})")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _to_images(flat: Any, path: Path) -> np.ndarray:
    data = np.asarray(flat, dtype=np.uint8)
    if data.ndim != 2 or data.shape[1] != PIXELS:
        raise DatasetLayoutError(f"{path}: expected (N, 3072) pixel rows, got {data.shape}")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy()  # channel planes -> HWC


def _names(values: Any) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def _python_batches(folder: Path, files: list[str], label_key: str) -> ImageArrays:
    images, labels = [], []
    for name in files:
        path = folder / name
        if not path.is_file():
            raise DatasetLayoutError(f"expected the CIFAR file {path}; it is missing")
        batch = _unpickle(path)
        if "data" not in batch or label_key not in batch:
            raise DatasetLayoutError(f"{path} has no 'data' and '{label_key}' entries")
        images.append(_to_images(batch["data"], path))
        labels.append(np.asarray(batch[label_key], dtype=np.int64))
    return ImageArrays(np.concatenate(images), np.concatenate(labels))


def _binary_batches(folder: Path, files: list[str], label_bytes: int) -> ImageArrays:
    images, labels = [], []
    row = label_bytes + PIXELS
    for name in files:
        path = folder / name
        if not path.is_file():
            raise DatasetLayoutError(f"expected the CIFAR file {path}; it is missing")
        raw = np.fromfile(path, dtype=np.uint8)
        if raw.size == 0 or raw.size % row:
            raise DatasetLayoutError(f"{path}: size {raw.size} is not a multiple of {row} bytes")
        rows = raw.reshape(-1, row)
        labels.append(rows[:, label_bytes - 1].astype(np.int64))  # CIFAR-100: the fine label
        images.append(_to_images(rows[:, label_bytes:], path))
    return ImageArrays(np.concatenate(images), np.concatenate(labels))


def cifar(root: str | Path, num_classes: int = 10) -> ClassificationDataset:
    """CIFAR-``num_classes`` (10 or 100) from the Python or binary version under ``root``."""
    if num_classes not in FOLDERS:
        raise DatasetLayoutError(f"CIFAR has 10 or 100 classes, not {num_classes}")
    root = Path(root).expanduser()
    python_dir, binary_dir = (root / f for f in FOLDERS[num_classes])
    name = f"cifar{num_classes}"
    if num_classes == 10 and python_dir.is_dir():
        train_files = [f"data_batch_{i}" for i in range(1, 6)]
        train = _python_batches(python_dir, train_files, "labels")
        test = _python_batches(python_dir, ["test_batch"], "labels")
        classes = _names(_unpickle(python_dir / "batches.meta")["label_names"])
    elif num_classes == 100 and python_dir.is_dir():
        train = _python_batches(python_dir, ["train"], "fine_labels")
        test = _python_batches(python_dir, ["test"], "fine_labels")
        classes = _names(_unpickle(python_dir / "meta")["fine_label_names"])
    elif num_classes == 10 and binary_dir.is_dir():
        train = _binary_batches(binary_dir, [f"data_batch_{i}.bin" for i in range(1, 6)], 1)
        test = _binary_batches(binary_dir, ["test_batch.bin"], 1)
        classes = (binary_dir / "batches.meta.txt").read_text().split()
    elif num_classes == 100 and binary_dir.is_dir():
        train = _binary_batches(binary_dir, ["train.bin"], 2)
        test = _binary_batches(binary_dir, ["test.bin"], 2)
        classes = (binary_dir / "fine_label_names.txt").read_text().split()
    else:
        raise DatasetLayoutError(
            f"expected {python_dir} or {binary_dir} (the CIFAR-{num_classes} archive, unpacked)"
        )
    bad = [int(v) for v in np.concatenate([train.labels, test.labels]) if not 0 <= v < num_classes]
    if bad or len(classes) != num_classes:
        raise DatasetLayoutError(
            f"{name} under {root}: expected {num_classes} class names and labels below it"
        )
    return ClassificationDataset(name, classes, train, test)
