"""VIPeR (Gray et al., PETS 2007): 632 ids, one image per id in each of two cameras.

Layout: ``ROOT/VIPeR/{cam_a,cam_b}/`` (ROOT may also be the ``VIPeR`` folder itself). The
i-th image of ``cam_a`` and the i-th of ``cam_b``, in file-name order, show person i.

Protocol: 10 random splits of the ids into halves (316 train / 316 test), drawn with ``seed``
and saved to ``VIPeR/splits.json`` the first time, read back from there afterwards. Train:
both images of each train id (cameras 0 and 1), relabelled. Test: query = the ``cam_a``
images (camera 0), gallery = the ``cam_b`` images (camera 1) of the test ids; results are
for the a -> b direction only.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

from omnireid.data.datasets.base import (
    DatasetLayoutError,
    ReIDDataset,
    Sample,
    folder_images,
    relabel,
    require_dir,
)
from omnireid.data.datasets.market1501 import find_root
from omnireid.errors import UsageError

CAMS = ("cam_a", "cam_b")
NUM_SPLITS = 10
Split = dict[str, list[int]]
T = TypeVar("T")


def make_splits(num_ids: int, seed: int, num_splits: int = NUM_SPLITS) -> list[Split]:
    """``num_splits`` random halves of ``range(num_ids)``: ``num_ids // 2`` train, the rest test."""
    rng = random.Random(seed)
    cut = num_ids // 2
    splits = []
    for _ in range(num_splits):
        order = rng.sample(range(num_ids), num_ids)
        splits.append({"train": sorted(order[:cut]), "test": sorted(order[cut:])})
    return splits


def load_or_make_splits(path: Path, num_ids: int, seed: int) -> list[Split]:
    """The id splits saved in ``path`` (JSON); made with ``seed`` and saved there if absent.

    A saved file must match ``num_ids`` and ``seed``; delete it to draw new splits.
    """
    if not path.is_file():
        splits = make_splits(num_ids, seed)
        path.write_text(json.dumps({"num_ids": num_ids, "seed": seed, "splits": splits}))
        return splits
    try:
        saved = json.loads(path.read_text())
        splits = saved["splits"]
        saved_ids, saved_seed = saved["num_ids"], saved["seed"]
    except (ValueError, KeyError, TypeError) as e:
        raise DatasetLayoutError(
            f"{path} is not a splits file ({{num_ids, seed, splits}}): {e}; delete it to "
            "make new splits"
        ) from e
    if saved_ids != num_ids:
        raise DatasetLayoutError(
            f"{path} was made for {saved_ids} ids but {num_ids} were found; delete it to "
            "make new splits"
        )
    if saved_seed != seed:
        raise ValueError(
            f"{path} holds splits drawn with seed {saved_seed}, not {seed}: pass "
            f"seed={saved_seed}, or delete the file to draw new splits"
        )
    for i, split in enumerate(splits):
        ids = split.get("train", []) + split.get("test", []) if isinstance(split, dict) else []
        if sorted(ids) != list(range(num_ids)):
            raise DatasetLayoutError(
                f"split {i} in {path} does not divide ids 0..{num_ids - 1} into train and test"
            )
    return splits


def pick_split(splits: Sequence[T], split_id: int) -> T:
    """``splits[split_id]``, with an error that gives the valid range."""
    if not 0 <= split_id < len(splits):
        raise UsageError(f"split_id must be in 0..{len(splits) - 1}, got {split_id}")
    return splits[split_id]


def viper(root: str | Path, split_id: int = 0, seed: int = 0) -> ReIDDataset:
    """Parse VIPeR under ``root`` with split ``split_id`` of the 10 seeded splits."""
    base = find_root(root, "VIPeR", "cam_a")
    cam_a, cam_b = (folder_images(require_dir(base / c, f"VIPeR's {c}/ folder")) for c in CAMS)
    if len(cam_a) != len(cam_b) or len(cam_a) < 2:
        raise DatasetLayoutError(
            "VIPeR pairs the i-th image of cam_a with the i-th of cam_b, so both folders need "
            f"the same number (at least 2) of images; found {len(cam_a)} in {base / 'cam_a'} "
            f"and {len(cam_b)} in {base / 'cam_b'}"
        )
    split = pick_split(load_or_make_splits(base / "splits.json", len(cam_a), seed), split_id)
    train = [
        Sample(str(cam[pid]), pid, camid)
        for pid in split["train"]
        for camid, cam in enumerate((cam_a, cam_b))
    ]
    query = [Sample(str(cam_a[pid]), pid, 0) for pid in split["test"]]
    gallery = [Sample(str(cam_b[pid]), pid, 1) for pid in split["test"]]
    extra = {"split_id": split_id, "seed": seed}
    return ReIDDataset("viper", relabel(train), query, gallery, extra)
