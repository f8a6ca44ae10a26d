"""Market-1501 (Zheng et al., ICCV 2015): 1,501 ids, 6 cameras; and its folder layout.

Layout: ``ROOT/Market-1501-v15.09.15/{bounding_box_train,query,bounding_box_test}`` (ROOT may
also be the ``Market-1501-v15.09.15`` folder itself). Files ``PPPP_cCsS_FFFFFF_BB.jpg``;
pid -1 is junk and dropped, pid 0000 stays in the gallery as distractors. DukeMTMC-reID uses
the same layout (``bounding_box_layout``).
"""

from __future__ import annotations

from pathlib import Path

from omnireid.data.datasets.base import (
    ReIDDataset,
    check_splits,
    combine_all,
    parse_filename_folder,
    relabel,
    require_dir,
)
from omnireid.data.images import MARKET_NAME

FOLDER = "Market-1501-v15.09.15"
SPLIT_DIRS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}


def find_root(root: str | Path, folder: str, marker: str) -> Path:
    """``root`` itself when it holds ``marker``, else ``root/folder``."""
    root = Path(root).expanduser()
    if (root / marker).is_dir():
        return root
    return require_dir(root / folder, f"the {folder} folder (containing {marker}/)")


def bounding_box_layout(root: str | Path, folder: str, name: str, num_cams: int) -> ReIDDataset:
    """Parse a ``{bounding_box_train,query,bounding_box_test}`` dataset of ``PPPP_cC...`` files.

    Junk (pid -1) is dropped everywhere; distractors (pid 0) are kept in the gallery only.
    """
    base = find_root(root, folder, SPLIT_DIRS["train"])
    splits = {
        split: parse_filename_folder(
            require_dir(base / sub, f"{folder}'s {sub}/ folder"),
            MARKET_NAME,
            num_cams=num_cams,
            split=split,
        )
        for split, sub in SPLIT_DIRS.items()
    }
    check_splits(name, splits.items())
    train = [s for s in splits["train"] if s.pid > 0]
    return ReIDDataset(name, relabel(train), splits["query"], splits["gallery"])


JUNK_PIDS = (0, -1)  # distractors and junk: never identities to learn


def market1501(root: str | Path, combineall: bool = False) -> ReIDDataset:
    """Parse Market-1501 under ``root``; train pids relabelled, cameras 0..5. ``combineall``
    trains on query and gallery too (distractors and junk left out)."""
    dataset = bounding_box_layout(root, FOLDER, "market1501", num_cams=6)
    return combine_all(dataset, JUNK_PIDS) if combineall else dataset
