"""CIFAR-10/100 from tiny archives in the authors' Python (pickle) and binary formats."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from omnireid.data.datasets import DatasetLayoutError, load_classification_dataset
from omnireid.data.datasets.cifar import cifar


def _pixels(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 3072), dtype=np.uint8)


def write_cifar10_python(root: Path, per_batch: int = 4) -> Path:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for i, name in enumerate([*(f"data_batch_{k}" for k in range(1, 6)), "test_batch"]):
        batch = {
            b"labels": [(i + j) % 10 for j in range(per_batch)],
            b"data": _pixels(per_batch, i),
        }
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    meta = {b"label_names": [f"class{k}".encode() for k in range(10)]}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return root


def test_the_python_version_reads_into_hwc_rgb_arrays(tmp_path: Path) -> None:
    root = write_cifar10_python(tmp_path)
    ds = load_classification_dataset("cifar10", root)
    assert (len(ds.train), len(ds.test), ds.num_classes) == (20, 4, 10)
    assert ds.train.images.shape == (20, 32, 32, 3) and ds.train.images.dtype == np.uint8
    flat = _pixels(4, 0)[1]  # data_batch_1, image 1: 1024 red, 1024 green, 1024 blue values
    image = ds.train.images[1]
    assert image[0, 0].tolist() == [flat[0], flat[1024], flat[2048]]
    assert image[31, 31].tolist() == [flat[1023], flat[2047], flat[3071]]
    assert ds.train.labels[:4].tolist() == [0, 1, 2, 3] and ds.classes[3] == "class3"


def test_the_binary_version_of_cifar100_uses_the_fine_labels(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-100-binary"
    folder.mkdir()
    for name, n in (("train.bin", 5), ("test.bin", 2)):
        rows = np.zeros((n, 2 + 3072), np.uint8)
        rows[:, 0] = 7  # coarse label
        rows[:, 1] = np.arange(n) + 40  # fine label
        rows[:, 2:] = _pixels(n, n)
        rows.tofile(folder / name)
    (folder / "fine_label_names.txt").write_text("\n".join(f"f{k}" for k in range(100)))
    ds = cifar(tmp_path, 100)
    assert ds.train.labels.tolist() == [40, 41, 42, 43, 44] and len(ds.test) == 2
    assert ds.train.images[0, 0, 0].tolist() == [_pixels(5, 5)[0][k] for k in (0, 1024, 2048)]


class _Exploit:
    def __reduce__(self):
        return os.system, ("echo pwned",)


def test_a_pickle_that_would_run_code_is_refused(tmp_path: Path) -> None:
    root = write_cifar10_python(tmp_path)
    (root / "cifar-10-batches-py" / "data_batch_3").write_bytes(pickle.dumps({b"x": _Exploit()}))
    with pytest.raises(DatasetLayoutError, match=r"refusing to load posix\.system"):
        cifar(root, 10)


def test_missing_or_broken_archives_are_named(tmp_path: Path) -> None:
    with pytest.raises(DatasetLayoutError, match="cifar-10-batches-py or"):
        cifar(tmp_path, 10)
    root = write_cifar10_python(tmp_path)
    (root / "cifar-10-batches-py" / "test_batch").unlink()
    with pytest.raises(DatasetLayoutError, match="test_batch; it is missing"):
        cifar(root, 10)
