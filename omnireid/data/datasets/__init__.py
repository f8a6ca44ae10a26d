"""Dataset parsers: ``load_dataset(name, root)`` -> ``ReIDDataset`` of (path, pid, camid)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

from omnireid.data.datasets.base import DatasetLayoutError, ReIDDataset, Sample
from omnireid.data.datasets.cifar import ClassificationDataset, cifar
from omnireid.data.datasets.cuhk01 import cuhk01
from omnireid.data.datasets.cuhk03 import cuhk03
from omnireid.data.datasets.custom import custom
from omnireid.data.datasets.dukemtmc import dukemtmc
from omnireid.data.datasets.grid import grid
from omnireid.data.datasets.market1501 import market1501
from omnireid.data.datasets.msmt17 import msmt17
from omnireid.data.datasets.multisource import combine_sources
from omnireid.data.datasets.viper import viper
from omnireid.errors import UsageError

# The plain name -> parser table. Add a dataset by adding a line here.
DATASETS: dict[str, Callable[..., ReIDDataset]] = {
    "market1501": market1501,
    "dukemtmcreid": dukemtmc,
    "msmt17": msmt17,
    "cuhk03": cuhk03,
    "cuhk03_labeled": partial(cuhk03, labeled=True),
    "viper": viper,
    "grid": grid,
    "cuhk01": cuhk01,
    "custom": custom,
}


def load_dataset(name: str, root: str | Path, **options) -> ReIDDataset:
    """Parse dataset ``name`` under ``root``; unknown names raise with the list of known ones.

    ``options`` go to the parser (e.g. ``split_id`` for viper/grid/cuhk01, ``combineall`` for
    msmt17).
    """
    if name not in DATASETS:
        raise UsageError(f"unknown dataset {name!r}; available: {', '.join(sorted(DATASETS))}")
    return DATASETS[name](root, **options)


# Category-recognition datasets (train.task: classify), name -> parser.
CLASSIFICATION: dict[str, Callable[..., ClassificationDataset]] = {
    "cifar10": partial(cifar, num_classes=10),
    "cifar100": partial(cifar, num_classes=100),
}


def load_classification_dataset(name: str, root: str | Path) -> ClassificationDataset:
    """Parse category-recognition dataset ``name`` (CIFAR-10/100) under ``root``."""
    if name not in CLASSIFICATION:
        raise UsageError(
            f"unknown classification dataset {name!r}; available: {', '.join(CLASSIFICATION)}"
        )
    return CLASSIFICATION[name](root)


# Small benchmarks evaluated over 10 random train/test splits, results averaged.
MULTI_SPLIT: dict[str, int] = {"viper": 10, "grid": 10, "cuhk01": 10}

__all__ = [
    "CLASSIFICATION",
    "DATASETS",
    "MULTI_SPLIT",
    "DatasetLayoutError",
    "ReIDDataset",
    "Sample",
    "combine_sources",
    "load_classification_dataset",
    "load_dataset",
]
