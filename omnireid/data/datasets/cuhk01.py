"""CUHK01 (Li et al., ACCV 2012): 971 ids, two camera views, two images per id in each.

Layout: ``ROOT/campus/`` (ROOT may also be the ``campus`` folder itself) holding
``PPPPIII.png``: a 4-digit pid and a 3-digit image index; images 001-002 are camera A
(camera 0), 003-004 camera B (camera 1). E.g. ``0001001.png`` .. ``0971004.png``.

Protocol: 10 random splits, ``num_ids // 2`` train ids (485) and the rest test (486), drawn
with ``seed`` and saved to ``campus/splits.json`` the first time, read back afterwards. Train:
all images of the train ids, relabelled. Test: query = camera A images, gallery = camera B
images of the test ids.
"""

from __future__ import annotations

import re
from pathlib import Path

from omnireid.data.datasets.base import (
    DatasetLayoutError,
    ReIDDataset,
    Sample,
    check_splits,
    folder_images,
    relabel,
    require_dir,
)
from omnireid.data.datasets.viper import load_or_make_splits, pick_split

PATTERN = re.compile(r"^(\d{4})(\d{3})\.\w+$")


def find_campus(root: str | Path) -> Path:
    """``root/campus``, or ``root`` itself when it already holds the images."""
    root = Path(root).expanduser()
    if (root / "campus").is_dir():
        return root / "campus"
    if root.is_dir() and folder_images(root):
        return root
    return require_dir(root / "campus", "CUHK01's campus/ folder of PPPPIII.png images")


def parse_campus(folder: Path) -> list[Sample]:
    """All images of ``folder`` as samples, camera 0 for images 1-2 and camera 1 for 3-4."""
    samples, bad = [], []
    for img in folder_images(folder):
        m = PATTERN.match(img.name)
        if not m or not 1 <= int(m.group(2)) <= 4:
            bad.append(img.name)
            continue
        samples.append(Sample(str(img), int(m.group(1)), 0 if int(m.group(2)) <= 2 else 1))
    if bad:
        raise DatasetLayoutError(
            f"{len(bad)} file(s) in {folder} are not named PPPPIII.png (4-digit pid, image "
            f"index 001-004), e.g. {bad[:5]}"
        )
    if len({s.pid for s in samples}) < 2:
        raise DatasetLayoutError(
            f"CUHK01 needs images of at least 2 ids in {folder}; found {len(samples)} image(s)"
        )
    return samples


def cuhk01(root: str | Path, split_id: int = 0, seed: int = 0) -> ReIDDataset:
    """Parse CUHK01 under ``root`` with split ``split_id`` of the 10 seeded splits."""
    folder = find_campus(root)
    samples = parse_campus(folder)
    pids = sorted({s.pid for s in samples})
    split = pick_split(load_or_make_splits(folder / "splits.json", len(pids), seed), split_id)
    train_pids = {pids[i] for i in split["train"]}
    test_pids = {pids[i] for i in split["test"]}
    train = [s for s in samples if s.pid in train_pids]
    query = [s for s in samples if s.pid in test_pids and s.camid == 0]
    gallery = [s for s in samples if s.pid in test_pids and s.camid == 1]
    check_splits("cuhk01", [("train", train), ("query", query), ("gallery", gallery)])
    extra = {"split_id": split_id, "seed": seed}
    return ReIDDataset("cuhk01", relabel(train), query, gallery, extra)
