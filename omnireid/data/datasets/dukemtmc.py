"""DukeMTMC-reID (Zheng et al., ICCV 2017): 702 train ids, 702 query ids, 8 cameras.

Layout: ``ROOT/DukeMTMC-reID/{bounding_box_train,query,bounding_box_test}`` (ROOT may also be
the ``DukeMTMC-reID`` folder itself). Files ``PPPP_cC_fFFFFFFF.jpg`` as in Market-1501; the
gallery's 408 ids without a query (distractors) are kept there.
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
from omnireid.data.datasets.market1501 import find_root

FOLDER = "DukeMTMC-reID"
PATTERN = re.compile(r"^(-?\d+)_c(\d)")
SPLIT_DIRS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}


def dukemtmc(root: str | Path) -> ReIDDataset:
    """Parse DukeMTMC-reID under ``root``; train pids relabelled, cameras 0..7."""
    base = find_root(root, FOLDER, "bounding_box_train")
    splits = {
        split: parse_filename_folder(
            require_dir(base / sub, f"DukeMTMC-reID's {sub}/ folder"),
            PATTERN,
            num_cams=8,
            split=split,
        )
        for split, sub in SPLIT_DIRS.items()
    }
    check_splits("dukemtmcreid", splits.items())
    return ReIDDataset("dukemtmcreid", relabel(splits["train"]), splits["query"], splits["gallery"])
