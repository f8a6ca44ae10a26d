"""MSMT17 (Wei et al., CVPR 2018): 4,101 ids (1,041 train, 3,060 test), 15 cameras.

Layout, v1: ``ROOT/MSMT17_V1/{train,test}/``; v2: ``ROOT/MSMT17_V2/{mask_train_v2,mask_test_v2}/``;
both with ``list_train.txt``, ``list_val.txt``, ``list_query.txt``, ``list_gallery.txt`` beside
the image folders (ROOT may also be the ``MSMT17_V*`` folder itself; v1 wins when both exist).
Each list line is ``relative/path.jpg PID``, relative to the train folder (train, val) or the
test folder (query, gallery). The camera is the third ``_`` field of the file name, 1-based:
``0000_000_01_0303morning_0015_0.jpg`` is camera 1.

Train is ``list_train`` only, the published protocol. ``combineall=True`` is the papers'
protocol for MSMT17 as a source (ICCV'19 footnote 7, TPAMI'21 Sec. 4.2): every image,
``list_train`` + ``list_val`` + query + gallery, 126,441 images of 4,101 identities, the test
identities numbered after the train ones. Query/gallery keep the test set's own pids, which
start at 0: pid 0 is a person here, not a distractor, and is kept.
"""

from __future__ import annotations

from pathlib import Path

from omnireid.data.datasets.base import (
    DatasetLayoutError,
    ReIDDataset,
    Sample,
    check_splits,
    combine_all,
    relabel,
)

NUM_CAMS = 15
# folder name -> (train image folder, test image folder)
VERSIONS = {"MSMT17_V1": ("train", "test"), "MSMT17_V2": ("mask_train_v2", "mask_test_v2")}


def find_version(root: str | Path) -> tuple[Path, str, str]:
    """``(dataset folder, train folder name, test folder name)`` of the MSMT17 copy in ``root``."""
    root = Path(root).expanduser()
    for folder, (train_dir, test_dir) in VERSIONS.items():
        for base in (root / folder, root):
            if (base / train_dir).is_dir():
                return base, train_dir, test_dir
    found = sorted(p.name for p in root.iterdir())[:20] if root.is_dir() else "nothing"
    raise DatasetLayoutError(
        f"expected MSMT17 at {root}/MSMT17_V1/train/ or {root}/MSMT17_V2/mask_train_v2/; "
        f"{root} contains: {found}"
    )


def read_list(list_path: Path, image_dir: Path, split: str) -> list[Sample]:
    """Samples of one ``list_*.txt``; every listed image must exist."""
    if not list_path.is_file():
        raise DatasetLayoutError(f"expected MSMT17's {split} list at {list_path}; it is missing")
    samples, missing = [], []
    for lineno, line in enumerate(list_path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            raise DatasetLayoutError(
                f"{list_path}:{lineno}: expected 'relative/path.jpg PID', found {line!r}"
            )
        rel, pid = parts[0], int(parts[1])
        fields = Path(rel).name.split("_")
        if len(fields) < 4 or not fields[2].isdigit() or not 1 <= int(fields[2]) <= NUM_CAMS:
            raise DatasetLayoutError(
                f"{list_path}:{lineno}: file name {Path(rel).name!r} does not follow "
                f"PPPP_NNN_CC_..., with CC a camera in 1..{NUM_CAMS}"
            )
        path = image_dir / rel
        if not path.is_file():
            missing.append(rel)
            continue
        samples.append(Sample(str(path), pid, int(fields[2]) - 1))
    if missing:
        raise DatasetLayoutError(
            f"{len(missing)} image(s) listed in {list_path} are missing under {image_dir}, "
            f"e.g. {missing[:5]}"
        )
    if not samples:
        raise DatasetLayoutError(f"MSMT17's {split} list {list_path} is empty")
    return samples


def msmt17(root: str | Path, combineall: bool = False) -> ReIDDataset:
    """Parse MSMT17 (v1 or v2) under ``root``; ``combineall``: train on all images."""
    base, train_dir, test_dir = find_version(root)
    train = read_list(base / "list_train.txt", base / train_dir, "train")
    if combineall:  # val holds more images of the train identities
        train += read_list(base / "list_val.txt", base / train_dir, "val")
    query = read_list(base / "list_query.txt", base / test_dir, "query")
    gallery = read_list(base / "list_gallery.txt", base / test_dir, "gallery")
    check_splits("msmt17", [("train", train), ("query", query), ("gallery", gallery)])
    extra = {"version": "v1" if train_dir == "train" else "v2"}
    dataset = ReIDDataset("msmt17", relabel(train), query, gallery, extra)
    return combine_all(dataset) if combineall else dataset
