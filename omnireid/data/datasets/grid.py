"""GRID (Loy et al., CVPR 2009): 250 paired ids plus 775 gallery-only distractors, 8 cameras.

Layout: ``ROOT/underground_reid/{probe,gallery}/`` and
``ROOT/underground_reid/features_and_partitions.mat`` (ROOT may also be the
``underground_reid`` folder itself). Files ``PPPP_C_...jpeg``, e.g.
``0001_1_25004_107_32_130_413.jpeg`` is pid 1 seen by camera 1 (1-based); pid 0000 (in the
gallery only) marks a distractor.

Protocol: the 10 fixed splits of the .mat's ``trainIdxAll`` (a 1x10 cell array; each entry
holds the 125 train pids, as a plain array or as a struct whose ``*train*`` field, else its
third field, holds them). Train: probe and gallery images of the train pids, relabelled.
Query: probe images of the other pids. Gallery: gallery images of the other pids plus all
distractors, which stay in the gallery.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from scipy.io import loadmat

from omnireid.data.datasets.base import (
    DatasetLayoutError,
    ReIDDataset,
    check_splits,
    parse_filename_folder,
    relabel,
    require_dir,
)
from omnireid.data.datasets.market1501 import find_root
from omnireid.data.datasets.viper import pick_split

PATTERN = re.compile(r"^(\d+)_(\d+)_")
SPLIT_FILE = "features_and_partitions.mat"


def cell_ids(cell: np.ndarray, where: str) -> list[int]:
    """The integer ids held by one ``trainIdxAll`` entry (array, nested cell or struct)."""
    arr = np.asarray(cell)
    while arr.dtype == object and arr.size == 1:
        arr = np.asarray(arr.ravel()[0])
    if arr.dtype.names:
        names = arr.dtype.names
        field = next((n for n in names if "train" in n.lower()), None)
        if field is None and len(names) >= 3:
            field = names[2]
        if field is None:
            raise DatasetLayoutError(f"{where}: a struct without a train-id field: {names}")
        return cell_ids(arr.ravel()[0][field], where)
    if arr.dtype.kind not in "iuf" or arr.size == 0:
        raise DatasetLayoutError(
            f"{where}: expected an array of pids, found {arr.dtype} {arr.shape}"
        )
    return sorted(int(v) for v in arr.ravel())


def read_train_ids(mat_path: Path) -> list[list[int]]:
    """The train pids of each split in ``features_and_partitions.mat``."""
    if not mat_path.is_file():
        raise DatasetLayoutError(f"expected GRID's split file {mat_path}; it is missing")
    try:
        mat = loadmat(mat_path)
    except (ValueError, NotImplementedError, OSError) as e:
        raise DatasetLayoutError(f"cannot read {mat_path} as a MATLAB v5 file: {e}") from e
    if "trainIdxAll" not in mat:
        found = sorted(k for k in mat if not k.startswith("__"))
        raise DatasetLayoutError(f"{mat_path} has no variable trainIdxAll; it holds {found}")
    cells = mat["trainIdxAll"].ravel()
    return [cell_ids(c, f"{mat_path} trainIdxAll[{i}]") for i, c in enumerate(cells)]


def grid(root: str | Path, split_id: int = 0) -> ReIDDataset:
    """Parse GRID under ``root`` with split ``split_id`` (0..9) of ``trainIdxAll``."""
    base = find_root(root, "underground_reid", "probe")
    probe, gallery = (
        parse_filename_folder(
            require_dir(base / sub, f"GRID's {sub}/ folder"), PATTERN, num_cams=8, split=sub
        )
        for sub in ("probe", "gallery")
    )
    train_ids = set(pick_split(read_train_ids(base / SPLIT_FILE), split_id))
    unknown = sorted(train_ids - {s.pid for s in probe})
    if unknown:
        raise DatasetLayoutError(
            f"{base / SPLIT_FILE} split {split_id} lists train pids with no probe image: "
            f"{unknown[:10]}"
        )
    train = [s for s in probe + gallery if s.pid in train_ids]
    query = [s for s in probe if s.pid not in train_ids and s.pid != 0]
    gallery = [s for s in gallery if s.pid not in train_ids]
    check_splits("grid", [("train", train), ("query", query), ("gallery", gallery)])
    return ReIDDataset("grid", relabel(train), query, gallery, {"split_id": split_id})
