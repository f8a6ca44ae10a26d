"""Market-1501 (Zheng et al., ICCV 2015): 1,501 ids, 6 cameras.

Layout: ``ROOT/Market-1501-v15.09.15/{bounding_box_train,query,bounding_box_test}`` (ROOT may
also be the ``Market-1501-v15.09.15`` folder itself). Files ``PPPP_cCsS_FFFFFF_BB.jpg``;
pid -1 is junk and dropped, pid 0000 stays in the gallery as distractors.
"""

from __future__ import annotations

import re
from pathlib import Path

from omnireid.data.datasets.base import (
    ReIDDataset,
    check_splits,
    parse_filename_folder,
    relabel,
    require_dir,
)

FOLDER = "Market-1501-v15.09.15"
PATTERN = re.compile(r"^(-?\d+)_c(\d)")


def find_root(root: str | Path, folder: str, marker: str) -> Path:
    """``root`` itself when it holds ``marker``, else ``root/folder``."""
    root = Path(root).expanduser()
    if (root / marker).is_dir():
        return root
    return require_dir(root / folder, f"the {folder} folder (containing {marker}/)")


def market1501(root: str | Path) -> ReIDDataset:
    base = find_root(root, FOLDER, "bounding_box_train")
    split_dir = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}
    splits = {
        split: parse_filename_folder(
            require_dir(base / sub, f"Market-1501's {sub}/ folder"),
            PATTERN,
            num_cams=6,
            split=split,
        )
        for split, sub in split_dir.items()
    }
    check_splits("market1501", splits.items())
    train = [s for s in splits["train"] if s.pid > 0]
    return ReIDDataset("market1501", relabel(train), splits["query"], splits["gallery"])
