"""Attribute datasets: images with a 0/1 label per attribute, and a torch Dataset over them.

``load_attribute_dataset(name, root)`` -> ``AttributeDataset`` (train/val/test lists of
``AttributeSample(path, labels)`` and the attribute names; ``image_dataset.AttributeImageDataset``
serves them to a loader). Two parsers:

- ``synthetic``: the built-in world's ``attributes.csv`` (``omnireid.data.synthetic``); train is
  ``bounding_box_train``, test is ``query`` + ``bounding_box_test`` (other identities), no val.
- ``pa100k``: PA-100K's ``annotation.mat`` (Liu et al., ICCV'17): ``train/val/test_images_name``
  are ``(n, 1)`` cell arrays of file names, ``train/val/test_label`` ``(n, 26)`` 0/1 matrices,
  ``attributes`` a ``(26, 1)`` cell array of names; images in ``data/`` (or
  ``release_data/release_data/``, the archive's layout) beside the ``.mat``.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from omnireid.data.datasets.base import DatasetLayoutError
from omnireid.data.datasets.market1501 import FOLDER, SPLIT_DIRS


class AttributeSample(NamedTuple):
    """One image and its ``(A,)`` 0/1 labels."""

    path: str
    labels: tuple[int, ...]


@dataclass
class AttributeDataset:
    name: str
    attributes: list[str]
    train: list[AttributeSample]
    val: list[AttributeSample]
    test: list[AttributeSample]

    @property
    def num_attributes(self) -> int:
        return len(self.attributes)

    def summary(self) -> str:
        lines = [f"{self.name}: {self.num_attributes} attributes"]
        for split in ("train", "val", "test"):
            lines.append(f"  {split:<6}{len(getattr(self, split)):>8} images")
        return "\n".join(lines)


def label_matrix(samples: Sequence[AttributeSample]) -> torch.Tensor:
    """``(N, A)`` float tensor of the samples' labels."""
    return torch.tensor([s.labels for s in samples], dtype=torch.float32)


def synthetic_attributes(root: str | Path) -> AttributeDataset:
    """The synthetic world under ``root`` (the folder given to ``generate_world``, or its
    ``Market-1501-v15.09.15`` folder) with the labels of its ``attributes.csv``."""
    root = Path(root).expanduser()
    base = root if (root / "attributes.csv").is_file() else root / FOLDER
    path = base / "attributes.csv"
    if not path.is_file():
        raise DatasetLayoutError(
            f"expected a synthetic world's attributes.csv at {root / 'attributes.csv'} or {path}"
        )
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        names = [c for c in reader.fieldnames or [] if c not in ("image", "pid", "camera")]
        rows = list(reader)
    if "image" not in (reader.fieldnames or []) or not names or not rows:
        raise DatasetLayoutError(f"{path}: expected columns image,pid,camera,<attributes> and rows")
    splits: dict[str, list[AttributeSample]] = {sub: [] for sub in SPLIT_DIRS.values()}
    for r in rows:
        sub = r["image"].split("/", 1)[0]
        if sub not in splits:
            raise DatasetLayoutError(f"{path}: image {r['image']!r} is in no split folder")
        splits[sub].append(AttributeSample(str(base / r["image"]), tuple(int(r[a]) for a in names)))
    test = splits[SPLIT_DIRS["query"]] + splits[SPLIT_DIRS["gallery"]]
    return AttributeDataset("synthetic", names, splits[SPLIT_DIRS["train"]], [], test)


def _mat_strings(cells: Any, key: str) -> list[str]:
    """A loadmat cell array (``(n, 1)`` objects, each a 1-element string array) -> strings."""
    out = []
    for cell in np.asarray(cells, dtype=object).reshape(-1):
        while isinstance(cell, np.ndarray):
            if cell.size != 1:
                raise DatasetLayoutError(f"annotation.mat {key}: expected one string per cell")
            cell = cell.reshape(-1)[0]
        out.append(str(cell))
    return out


def pa100k(root: str | Path) -> AttributeDataset:
    """PA-100K under ``root`` (holding ``annotation.mat``, or ``annotation/annotation.mat``)."""
    from scipy.io import loadmat

    root = Path(root).expanduser()
    mat_path = next(
        (
            p
            for p in (root / "annotation.mat", root / "annotation" / "annotation.mat")
            if p.is_file()
        ),
        None,
    )
    if mat_path is None:
        raise DatasetLayoutError(
            f"expected PA-100K's annotation.mat in {root} or {root}/annotation"
        )
    mat = loadmat(str(mat_path))
    keys = ["attributes"] + [
        f"{s}_{k}" for s in ("train", "val", "test") for k in ("images_name", "label")
    ]
    missing = [k for k in keys if k not in mat]
    if missing:
        found = sorted(k for k in mat if not k.startswith("__"))
        raise DatasetLayoutError(f"{mat_path}: missing fields {missing}; found {found}")
    names = _mat_strings(mat["attributes"], "attributes")
    image_dir = next(
        (d for d in (root / "data", root / "release_data" / "release_data") if d.is_dir()),
        root / "data",
    )
    splits = []
    for split in ("train", "val", "test"):
        files = _mat_strings(mat[f"{split}_images_name"], f"{split}_images_name")
        labels = np.asarray(mat[f"{split}_label"]).astype(np.int64)
        if labels.shape != (len(files), len(names)):
            raise DatasetLayoutError(
                f"{mat_path}: {split}_label has shape {labels.shape}, expected "
                f"({len(files)}, {len(names)}) (images x attributes)"
            )
        if not np.isin(labels, (0, 1)).all():
            raise DatasetLayoutError(f"{mat_path}: {split}_label holds values other than 0/1")
        splits.append(
            [
                AttributeSample(str(image_dir / f), tuple(row.tolist()))
                for f, row in zip(files, labels, strict=True)
            ]
        )
    return AttributeDataset("pa100k", names, *splits)


ATTRIBUTE_DATASETS: dict[str, Callable[[str | Path], AttributeDataset]] = {
    "synthetic": synthetic_attributes,
    "pa100k": pa100k,
}


def load_attribute_dataset(name: str, root: str | Path) -> AttributeDataset:
    """Parse attribute dataset ``name`` under ``root``; unknown names list the known ones."""
    if name not in ATTRIBUTE_DATASETS:
        known = ", ".join(sorted(ATTRIBUTE_DATASETS))
        raise KeyError(f"unknown attribute dataset {name!r}; available: {known}")
    return ATTRIBUTE_DATASETS[name](root)
