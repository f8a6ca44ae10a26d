"""DukeMTMC-reID (Zheng et al., ICCV 2017): 702 train ids, 702 query ids, 8 cameras.

Layout: ``ROOT/DukeMTMC-reID/{bounding_box_train,query,bounding_box_test}`` (ROOT may also be
the ``DukeMTMC-reID`` folder itself). Files ``PPPP_cC_fFFFFFFF.jpg`` as in Market-1501; the
gallery's 408 ids without a query (distractors) are kept there.
"""

from __future__ import annotations

from pathlib import Path

from omnireid.data.datasets.base import ReIDDataset, combine_all
from omnireid.data.datasets.market1501 import JUNK_PIDS, bounding_box_layout

FOLDER = "DukeMTMC-reID"


def dukemtmc(root: str | Path, combineall: bool = False) -> ReIDDataset:
    """Parse DukeMTMC-reID under ``root``; train pids relabelled, cameras 0..7. ``combineall``
    trains on query and gallery too."""
    dataset = bounding_box_layout(root, FOLDER, "dukemtmcreid", num_cams=8)
    return combine_all(dataset, JUNK_PIDS) if combineall else dataset
