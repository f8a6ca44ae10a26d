"""Multi-source training: several datasets' train splits as one.

Train pids and camera ids of source k are offset past those of sources 0..k-1 (pids past
their train pids, cameras past all their cameras), so no two sources share a class or a
camera, and ``dsetid`` is k. Query and gallery are the first dataset's, unchanged (its
offsets are 0): list the dataset to evaluate on first.
"""

from __future__ import annotations

from collections.abc import Sequence

from omnireid.data.datasets.base import ReIDDataset


def combine_sources(datasets: Sequence[ReIDDataset]) -> ReIDDataset:
    """One dataset whose train split is all sources' train splits, ids kept apart."""
    if not datasets:
        raise ValueError("combine_sources needs at least one dataset")
    train = []
    pid_offset = cam_offset = 0
    for dsetid, ds in enumerate(datasets):
        train += [
            s._replace(pid=s.pid + pid_offset, camid=s.camid + cam_offset, dsetid=dsetid)
            for s in ds.train
        ]
        pid_offset += max((s.pid for s in ds.train), default=-1) + 1
        every = (*ds.train, *ds.query, *ds.gallery)
        cam_offset += max((s.camid for s in every), default=-1) + 1
    first = datasets[0]
    name = "+".join(ds.name for ds in datasets)
    extra = {"sources": [ds.name for ds in datasets]}
    return ReIDDataset(name, train, list(first.query), list(first.gallery), extra)
